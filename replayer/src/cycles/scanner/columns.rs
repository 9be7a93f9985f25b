//! The cycle scan of a block's columns that one process wrote, while op
//! scopes are followed (the scan of a trace's beginning, before `auto`
//! can rule ops out): one walk of the kind column with the process's op
//! nesting in a local, instead of an event built and a hash lookup made
//! per op begin and end.

use super::CycleScanner;
use crate::cycles::CycleSpan;
use ttalloc_model::{EventTag, Pid, StringId};
use ttalloc_trace::BlockColumns;

const OP_BEGIN: u8 = EventTag::OpBegin as u8;
const OP_END: u8 = EventTag::OpEnd as u8;
const MARKER: u8 = EventTag::Marker as u8;

impl CycleScanner {
    /// What `scan_chunk` notes of block `c` (first ordinal `first`), every
    /// event of which process `pid` wrote, with finished top-level ops kept.
    /// Op scopes, markers and the other kinds touch separate books, so
    /// each is walked on its own: op scopes and markers from the kind
    /// column, the other kinds from `others`.
    pub(super) fn scan_columns_one_pid(&mut self, first: u64, c: &BlockColumns, pid: Pid) {
        let mut op = self.ops.get(&pid).copied();
        let mut names = c.names.iter();
        for (ord, &tag) in (first..).zip(&c.tags) {
            match tag {
                OP_BEGIN => {
                    let Some(&name) = names.next() else { continue };
                    let st = op.get_or_insert((0, 0, StringId::EMPTY));
                    if st.0 == 0 {
                        st.1 = ord;
                        st.2 = name;
                    }
                    st.0 += 1;
                }
                OP_END => {
                    if let Some(st) = op.as_mut().filter(|st| st.0 > 0) {
                        st.0 -= 1;
                        if st.0 == 0 {
                            self.top_ops.push((
                                CycleSpan {
                                    start_event: st.1,
                                    end_event: ord,
                                },
                                st.2,
                            ));
                        }
                    }
                }
                MARKER => {
                    let Some(&label) = names.next() else { continue };
                    self.markers.push((ord, label, pid));
                }
                _ => {}
            }
        }
        if let Some(st) = op {
            self.ops.insert(pid, st);
        }
        for (pos, e) in &c.others {
            self.note(first + u64::from(*pos), e, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::CycleScanner;
    use crate::source::Chunk;
    use proptest::prelude::*;
    use ttalloc_model::{
        BufferId, BufferType, DeviceConfig, DeviceId, Event, EventKind, Layout, Pid, SiteId,
        StringId,
    };
    use ttalloc_trace::{BlockColumns, TraceHeader, TraceReader, TraceWriter, WriterOptions};

    fn kind(code: u8, i: u64, names: &[StringId]) -> EventKind {
        let device = DeviceId((i % 2) as u32);
        match code {
            0 => EventKind::BufferAlloc {
                device,
                buffer: BufferId(i),
                buffer_type: BufferType::Dram,
                address: None,
                size: 4096,
                page_size: None,
                layout: Layout::Interleaved,
                num_cores: None,
                per_bank_size: None,
                label: StringId::EMPTY,
                site: SiteId::UNKNOWN,
            },
            1 => EventKind::BufferFree {
                device,
                buffer: BufferId(i / 2),
                site: SiteId::UNKNOWN,
            },
            2 | 3 => EventKind::OpBegin {
                name: names[i as usize % names.len()],
            },
            4 | 5 => EventKind::OpEnd,
            6 => EventKind::Marker {
                label: names[(i as usize + 1) % names.len()],
            },
            7 => EventKind::CbFreeAll { device },
            8 => EventKind::DeviceOpen {
                device,
                arch: ttalloc_model::Arch::WormholeB0,
                config: Box::new(DeviceConfig::default()),
            },
            _ => EventKind::DeviceClose { device },
        }
    }

    /// Everything a scanner noted, as comparable values.
    fn books(s: &CycleScanner) -> impl PartialEq + std::fmt::Debug {
        let mut ops: Vec<_> = s.ops.iter().map(|(p, st)| (*p, *st)).collect();
        ops.sort();
        (
            (s.open.clone(), s.span_start, s.device_spans.clone()),
            (s.markers.clone(), ops, s.top_ops.clone(), s.last),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

        /// Scanning a trace's blocks as columns (one process per block, or
        /// several) notes what scanning its events does, for a scanner that
        /// keeps every op and for one that stops following them.
        #[test]
        fn the_columns_scan_notes_what_the_event_scan_notes(
            events in proptest::collection::vec((0u8..10, 1u32..3), 1..400),
            one_process in any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t.zst");
            let opts = WriterOptions { block_events: 61, ..WriterOptions::default() };
            let mut w = TraceWriter::create(&path, TraceHeader::default(), opts).unwrap();
            let names: Vec<StringId> =
                ["a", "b", "c"].iter().map(|s| w.interner_mut().intern_string(s)).collect();
            let mut all = Vec::new();
            for (i, &(code, pid)) in events.iter().enumerate() {
                let pid = if one_process { 1 } else { pid };
                let e = Event { ts: 10 * i as u64, pid: Pid(pid), kind: kind(code, i as u64, &names) };
                w.push(&e).unwrap();
                all.push(e);
            }
            w.finish().unwrap();
            let r = TraceReader::open(&path).unwrap();
            let mut cols = BlockColumns::default();
            let auto = crate::options::CycleMode::Auto;
            let mut by_columns = [CycleScanner::new(), CycleScanner::for_mode(&auto)];
            let mut by_events = [CycleScanner::new(), CycleScanner::for_mode(&auto)];
            for (i, b) in r.blocks().iter().enumerate() {
                r.decode_columns(i, &mut cols).unwrap();
                let chunk = Chunk::Columns { first: b.first_event, columns: &cols };
                let start = b.first_event as usize;
                let events = &all[start..start + cols.len()];
                for (c, e) in by_columns.iter_mut().zip(&mut by_events) {
                    c.scan_chunk(&chunk);
                    e.scan(b.first_event, events);
                }
            }
            for (c, e) in by_columns.iter().zip(&by_events) {
                prop_assert_eq!(books(c), books(e));
            }
        }
    }
}
