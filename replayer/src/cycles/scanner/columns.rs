//! The cycle scan of a block's columns that one process wrote, while op
//! scopes are followed (the scan of a trace's beginning, before `auto`
//! can rule ops out): one walk of the kind column with the process's op
//! nesting in a local, instead of an event built and a hash lookup made
//! per op begin and end.

use super::CycleScanner;
use crate::cycles::CycleSpan;
use ttalloc_model::{Pid, StringId};
use ttalloc_trace::BlockColumns;

use ttalloc_model::tag_code::{MARKER, OP_BEGIN, OP_END};

impl CycleScanner {
    /// What `scan_chunk` notes of block `c` (first ordinal `first`), every
    /// event of which process `pid` wrote, with finished top-level ops kept.
    /// Op scopes, markers and the other kinds touch separate books, so
    /// each is walked on its own: op scopes and markers from the kind
    /// column, the other kinds from `others`.
    pub(super) fn scan_columns_one_pid(&mut self, first: u64, c: &BlockColumns, pid: Pid) {
        let mut op = self.ops.get(&pid).copied();
        let mut names = c.names.iter();
        // Op scopes and markers are a third of a trace: found by a mask per
        // 64 tags, the others (allocs, frees, circular buffers) never looked at
        // one by one.
        for (base, group) in (first..).step_by(GROUP).zip(c.tags.chunks(GROUP)) {
            let mut scopes = scope_mask(group);
            while scopes != 0 {
                let at = scopes.trailing_zeros() as usize;
                scopes &= scopes - 1;
                let ord = base + at as u64;
                match group.get(at) {
                    Some(&OP_BEGIN) => {
                        let Some(&name) = names.next() else { continue };
                        let st = op.get_or_insert((0, 0, StringId::EMPTY));
                        if st.0 == 0 {
                            st.1 = ord;
                            st.2 = name;
                        }
                        st.0 += 1;
                    }
                    Some(&OP_END) => {
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
                    Some(_) => {
                        let Some(&label) = names.next() else { continue };
                        self.markers.push((ord, label, pid));
                    }
                    None => {}
                }
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

/// Tags per mask.
const GROUP: usize = 64;

/// Whether a kind code is an op begin, an op end or a marker (12, 13, 14).
#[inline(always)]
fn is_scope(tag: u8) -> bool {
    const _: () = assert!(OP_END == OP_BEGIN + 1 && MARKER == OP_BEGIN + 2);
    tag.wrapping_sub(OP_BEGIN) < 3
}

/// Bit `i` set when `group[i]` (at most 64 tags) is an op begin, an op end
/// or a marker.
#[inline]
fn scope_mask(group: &[u8]) -> u64 {
    match <&[u8; GROUP]>::try_from(group) {
        Ok(whole) => whole_scope_mask(whole),
        Err(_) => scope_mask_by_tag(group),
    }
}

/// [`scope_mask`] a tag at a time.
fn scope_mask_by_tag(group: &[u8]) -> u64 {
    (0..)
        .zip(group)
        .fold(0, |mask, (i, &t)| mask | u64::from(is_scope(t)) << i)
}

/// [`scope_mask`] of a whole group, sixteen tags a step (SSE2, part of
/// every x86_64 target): `tag - OP_BEGIN`, unsigned, at most 2.
#[cfg(target_arch = "x86_64")]
#[inline]
fn whole_scope_mask(group: &[u8; GROUP]) -> u64 {
    use std::arch::x86_64::*;
    let mut mask = 0u64;
    // SAFETY: SSE2 is part of every x86_64 target; each unaligned load
    // reads the sixteen bytes of `sixteen`.
    unsafe {
        let begin = _mm_set1_epi8(OP_BEGIN as i8);
        let two = _mm_set1_epi8(2);
        for (k, sixteen) in group.chunks_exact(16).enumerate() {
            let v = _mm_sub_epi8(_mm_loadu_si128(sixteen.as_ptr().cast()), begin);
            let scope = _mm_cmpeq_epi8(_mm_min_epu8(v, two), v);
            mask |= u64::from(_mm_movemask_epi8(scope) as u16) << (16 * k);
        }
    }
    mask
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn whole_scope_mask(group: &[u8; GROUP]) -> u64 {
    scope_mask_by_tag(group)
}

#[cfg(test)]
mod tests {
    use super::super::CycleScanner;
    use crate::source::Chunk;
    use proptest::prelude::*;
    use ttalloc_model::{Event, EventKind, Pid, StringId};
    use ttalloc_trace::{BlockColumns, TraceHeader, TraceReader, TraceWriter, WriterOptions};

    /// Op scopes twice as often as the other kinds (codes 0..10).
    fn kind(code: u8, i: u64, names: &[StringId]) -> EventKind {
        const CODES: [u8; 10] = [0, 1, 2, 2, 3, 3, 4, 6, 7, 8];
        crate::tests::mixed_events::mixed_kind(CODES[code as usize], i, names, 2)
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

    /// A whole group's mask by byte compares is the one a tag at a time
    /// gives, for every tag in every place.
    #[test]
    fn whole_group_scope_masks_agree_with_tag_at_a_time() {
        let mut tags = [0u8; super::GROUP];
        for tag in 0..=255u8 {
            for at in 0..super::GROUP {
                tags[at] = tag;
                assert_eq!(
                    super::whole_scope_mask(&tags),
                    super::scope_mask_by_tag(&tags),
                    "tag {tag} at {at}"
                );
                tags[at] = 0;
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

        /// Scanning a trace's blocks as columns (one process per block, or
        /// several) notes what scanning its events does, for a scanner that
        /// keeps every op and for one that stops following them.
        #[test]
        fn the_columns_scan_notes_what_the_event_scan_notes(
            events in proptest::collection::vec((0u8..10, 1u32..3), 1..600),
            one_process in any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t.zst");
            let opts = WriterOptions { block_events: 150, ..WriterOptions::default() };
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
