//! Which process each buffer belongs to, to name it `process P buffer K`.
//!
//! A trace buffer id's bits 40 and up are the recorder's source (connection)
//! number, and a source is one process; events carry the pid, buffer ids do
//! not. The map is filled while decoding (off the engine's thread) from the
//! allocs and frees it sees. A source seen with two pids (a trace put
//! together by hand or by a tool, without source numbers) names no process.

use crate::source::Chunk;
use ttalloc_model::buffer_name::LOCAL_BITS;
use ttalloc_model::hash::FastMap;
use ttalloc_model::{BufferId, EventKind, EventTag, Pid};

#[derive(Clone, Debug, Default)]
pub struct SourcePids {
    /// Source number -> its pid, `None` when it had several.
    pids: FastMap<u64, Option<Pid>>,
    /// The last (source, pid) noted: runs of one source skip the map.
    last: Option<(u64, u32)>,
}

impl SourcePids {
    /// Notes the source of every buffer alloc and free in `chunk`.
    pub fn scan(&mut self, chunk: &Chunk<'_>) {
        match chunk {
            Chunk::Events { events, .. } => {
                for e in events.iter() {
                    match e.kind {
                        EventKind::BufferAlloc { buffer, .. }
                        | EventKind::BufferFree { buffer, .. } => self.note(buffer, e.pid.get()),
                        _ => {}
                    }
                }
            }
            Chunk::Columns { columns: c, .. } => {
                let (mut allocs, mut frees) = (c.allocs.iter(), c.frees.iter());
                for (pos, &tag) in c.tags.iter().enumerate() {
                    let buffer = if tag == EventTag::BufferAlloc as u8 {
                        allocs.next().map(|a| a.buffer)
                    } else if tag == EventTag::BufferFree as u8 {
                        frees.next().map(|x| x.buffer)
                    } else {
                        continue;
                    };
                    if let (Some(b), Some(&pid)) = (buffer, c.pid.get(pos)) {
                        self.note(b, pid);
                    }
                }
            }
        }
    }

    #[inline]
    fn note(&mut self, buffer: BufferId, pid: u32) {
        let source = buffer.get() >> LOCAL_BITS;
        if self.last == Some((source, pid)) {
            return;
        }
        self.last = Some((source, pid));
        let entry = self.pids.entry(source).or_insert(Some(Pid(pid)));
        if *entry != Some(Pid(pid)) {
            *entry = None;
        }
    }

    /// The process that allocated (or freed) `buffer`, if known.
    pub fn pid_of(&self, buffer: BufferId) -> Option<Pid> {
        self.pids
            .get(&(buffer.get() >> LOCAL_BITS))
            .copied()
            .flatten()
    }
}

impl PartialEq for SourcePids {
    fn eq(&self, other: &Self) -> bool {
        self.pids == other.pids
    }
}

impl Eq for SourcePids {}

#[cfg(test)]
mod tests {
    use super::*;
    use ttalloc_model::{DeviceId, Event, SiteId};

    fn free(pid: u32, buffer: u64) -> Event {
        Event {
            ts: 0,
            pid: Pid(pid),
            kind: EventKind::BufferFree {
                device: DeviceId(0),
                buffer: BufferId(buffer),
                site: SiteId::UNKNOWN,
            },
        }
    }

    #[test]
    fn each_source_number_names_its_process_and_a_mixed_one_none() {
        let events = [
            free(10, (1 << 40) | 3),
            free(20, (2 << 40) | 3),
            free(10, (1 << 40) | 4),
            // Source 0 seen with two pids: no process can be named.
            free(30, 5),
            free(31, 6),
        ];
        let mut p = SourcePids::default();
        p.scan(&Chunk::Events {
            first: 0,
            events: &events,
        });
        assert_eq!(p.pid_of(BufferId((1 << 40) | 99)), Some(Pid(10)));
        assert_eq!(p.pid_of(BufferId((2 << 40) | 3)), Some(Pid(20)));
        assert_eq!(p.pid_of(BufferId(5)), None);
        assert_eq!(p.pid_of(BufferId(7 << 40)), None);
    }
}
