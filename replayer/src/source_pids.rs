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

/// The source number every buffer id of `allocs` and `frees` has:
/// `Some(None)` when there are none, `None` when they have several. One
/// AND and one OR reduction (they vectorise, unlike a 64-bit min/max):
/// the sources are all equal exactly when no bit is set in some and clear
/// in others, i.e. when their AND equals their OR.
fn one_source(allocs: &[u64], frees: &[u64]) -> Option<Option<u64>> {
    if allocs.is_empty() && frees.is_empty() {
        return Some(None);
    }
    // The ids are reduced whole and shifted once: the source bits of an
    // AND (an OR) are the AND (OR) of the sources.
    let (mut all, mut any) = (u64::MAX, 0u64);
    for ids in [allocs, frees] {
        let (a, o) = and_or(ids);
        all &= a;
        any |= o;
    }
    let (all, any) = (all >> LOCAL_BITS, any >> LOCAL_BITS);
    (all == any).then_some(Some(all))
}

/// The AND and the OR of `ids` (`u64::MAX` and 0 when there are none),
/// in AVX2's 256-bit lanes when the CPU has them: in SSE2's 128-bit ones
/// (the build's baseline) the reduction took 2.25 instructions per id,
/// 2.57M for the 2M-event synthetic trace, against 1.07M.
#[inline]
fn and_or(ids: &[u64]) -> (u64, u64) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (just checked), all `and_or_avx2` needs.
        return unsafe { and_or_avx2(ids) };
    }
    and_or_portable(ids)
}

#[inline(always)]
fn and_or_portable(ids: &[u64]) -> (u64, u64) {
    ids.iter()
        .fold((u64::MAX, 0u64), |(a, o), &b| (a & b, o | b))
}

/// [`and_or`] compiled for AVX2 (the same fold, vectorised by the compiler
/// in 256-bit lanes).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn and_or_avx2(ids: &[u64]) -> (u64, u64) {
    and_or_portable(ids)
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
                let (allocs, frees) = (c.allocs.buffers(), c.frees.buffers());
                if let Some(Pid(pid)) = c.one_pid() {
                    // One process wrote the whole block (nearly always): what
                    // is noted does not depend on the order, so the buffer
                    // id arrays are read straight, without the tag walk, and
                    // when they all come from one source (one recording
                    // connection: nearly always too) one reduction finds it.
                    match one_source(allocs, frees) {
                        Some(Some(source)) => self.note_source(source, pid),
                        Some(None) => {}
                        None => {
                            for &b in allocs.iter().chain(frees) {
                                self.note(BufferId(b), pid);
                            }
                        }
                    }
                    return;
                }
                let (mut allocs, mut frees) = (allocs.iter(), frees.iter());
                for (&tag, pid) in c.tags.iter().zip(c.pids()) {
                    let buffer = if tag == EventTag::BufferAlloc as u8 {
                        allocs.next()
                    } else if tag == EventTag::BufferFree as u8 {
                        frees.next()
                    } else {
                        continue;
                    };
                    if let Some(&b) = buffer {
                        self.note(BufferId(b), pid.0);
                    }
                }
            }
        }
    }

    #[inline]
    fn note(&mut self, buffer: BufferId, pid: u32) {
        self.note_source(buffer.get() >> LOCAL_BITS, pid)
    }

    #[inline]
    fn note_source(&mut self, source: u64, pid: u32) {
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
    use ttalloc_trace::{BlockColumns, FreeCol};

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

    fn scan_columns(tags: &[EventTag], pid: Vec<u32>, frees: &[u64]) -> SourcePids {
        let mut columns = BlockColumns::default();
        for (&t, &p) in tags.iter().zip(&pid) {
            columns.push_event_head(t as u8, 0, Pid(p));
        }
        for &b in frees {
            columns.frees.push(&FreeCol {
                device: DeviceId(0),
                buffer: BufferId(b),
                site: SiteId::UNKNOWN,
            });
        }
        let mut p = SourcePids::default();
        p.scan(&Chunk::Columns {
            first: 0,
            columns: &columns,
        });
        p
    }

    #[test]
    fn a_block_of_one_process_names_its_sources() {
        use EventTag::{BufferFree, OpEnd};
        // One pid for the whole block: both sources belong to process 7.
        let p = scan_columns(
            &[BufferFree, OpEnd, BufferFree],
            vec![7, 7, 7],
            &[1 << 40, 2 << 40],
        );
        assert_eq!(p.pid_of(BufferId(1 << 40)), Some(Pid(7)));
        assert_eq!(p.pid_of(BufferId(2 << 40)), Some(Pid(7)));
        assert_eq!(p.pid_of(BufferId(3 << 40)), None);
        // One pid and one source (the reduction's case): source 4 is 9's.
        let p = scan_columns(
            &[BufferFree, BufferFree],
            vec![9, 9],
            &[(4 << 40) | 1, (4 << 40) | 2],
        );
        assert_eq!(p.pid_of(BufferId(4 << 40)), Some(Pid(9)));
        assert_eq!(p.pid_of(BufferId(1 << 40)), None);
        // Two pids in the block: source 1 is seen with both, source 2 with 8.
        let p = scan_columns(
            &[BufferFree, BufferFree, BufferFree],
            vec![7, 8, 8],
            &[1 << 40, 1 << 40, 2 << 40],
        );
        assert_eq!(p.pid_of(BufferId(1 << 40)), None);
        assert_eq!(p.pid_of(BufferId(2 << 40)), Some(Pid(8)));
        // A block without allocs or frees names nothing.
        let p = scan_columns(&[OpEnd], vec![3], &[]);
        assert_eq!(p, SourcePids::default());
    }

    proptest::proptest! {
        /// The AND and OR reduction (vectorised where the CPU allows)
        /// equals a plain one over any ids, of any count (every remainder
        /// of the vector steps).
        #[test]
        fn and_or_equals_a_plain_reduction(
            ids in proptest::collection::vec(proptest::prelude::any::<u64>(), 0..80),
            bits in 0u32..64,
        ) {
            // Mostly one source (the common case), some ids of any bits.
            let ids: Vec<u64> = ids
                .iter()
                .enumerate()
                .map(|(i, &x)| if i % 7 == 3 { x } else { (5 << 40) | (x >> bits) })
                .collect();
            let plain = ids
                .iter()
                .fold((u64::MAX, 0u64), |(a, o), &b| (a & b, o | b));
            proptest::prop_assert_eq!(and_or(&ids), plain);
        }
    }

    #[test]
    fn one_source_is_found_by_and_and_or_of_the_source_numbers() {
        // Sources 1 and 3 (AND 1, OR 3) differ; so do 2 and 3 across the
        // two arrays; 2 with two local ids is one source; none is none.
        assert_eq!(one_source(&[1 << 40, 3 << 40], &[]), None);
        assert_eq!(one_source(&[2 << 40], &[3 << 40]), None);
        assert_eq!(one_source(&[(2 << 40) | 5], &[2 << 40]), Some(Some(2)));
        assert_eq!(one_source(&[], &[]), Some(None));
    }
}
