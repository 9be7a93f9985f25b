//! The walk over a decoded block that skips buffer allocs and frees, op
//! begins and ends and circular buffers (nearly all of a trace) without
//! looking at them: the
//! other kinds come with the positions the decoder kept, and markers are
//! found by a byte search of the kind column.

use crate::source::Item;
use ttalloc_model::{Event, EventKind};
use ttalloc_trace::BlockColumns;

use ttalloc_model::tag_code::{MARKER, OP_BEGIN};

/// Calls `f(ordinal, item)` for every event of `c` (first ordinal `first`)
/// that is neither a buffer alloc or free, an op begin or end nor a
/// circular buffer (those are in `c.cbs`, not `c.others`), in order;
/// stops at the first error. The same items, in the same order, as the
/// general walk of `Chunk::Columns` gives with buffers and ops skipped.
pub(crate) fn for_each_rare_kind<E>(
    first: u64,
    c: &BlockColumns,
    mut f: impl FnMut(u64, Item<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let tags = &c.tags[..];
    let mut others = c.others.iter().peekable();
    // A marker's label is in `names`, shared with op begins: its index is
    // the number of op begins and markers before it (`named`, counted up
    // to position `counted`).
    let (mut named, mut counted) = (0usize, 0usize);
    let mut marker = memchr::memchr(MARKER, tags);
    loop {
        let other_at = others.peek().map_or(usize::MAX, |(p, _)| *p as usize);
        match marker {
            Some(m) if m < other_at => {
                named += count_named(&tags[counted..m]);
                counted = m + 1;
                if let Some(&label) = c.names.get(named) {
                    let event = Event {
                        ts: c.ts_at(m),
                        pid: c.pid_at(m),
                        kind: EventKind::Marker { label },
                    };
                    f(first + m as u64, Item::Light(event))?;
                }
                named += 1;
                marker = memchr::memchr(MARKER, &tags[m + 1..]).map(|k| m + 1 + k);
            }
            _ => match others.next() {
                Some((p, e)) => f(first + *p as u64, Item::Event(e))?,
                None => return Ok(()),
            },
        }
    }
}

/// How many of `tags` are op begins or markers (the kinds with a name):
/// counted in byte lanes, 255 tags at most per lane sum, so that it
/// vectorises (a filtered count went a tag at a time: ~2.7 instructions
/// per tag, over nearly every tag of a trace).
fn count_named(tags: &[u8]) -> usize {
    tags.chunks(255)
        .map(|run| {
            run.iter().fold(0u8, |n, &t| {
                n + u8::from(t == OP_BEGIN) + u8::from(t == MARKER)
            }) as usize
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use crate::source::{Chunk, Item};
    use proptest::prelude::*;
    use ttalloc_model::{Event, EventKind, Pid, StringId};
    use ttalloc_trace::{BlockColumns, TraceHeader, TraceReader, TraceWriter, WriterOptions};

    fn kind(code: u8, i: u64, names: &[StringId]) -> EventKind {
        crate::tests::mixed_events::mixed_kind(code, i, names, 3)
    }

    /// What a walk yields, as comparable values.
    fn items(chunk: &Chunk<'_>, rare: bool) -> Vec<(u64, Event)> {
        let mut v = Vec::new();
        let mut note = |ord, item: Item<'_>| -> Result<(), ()> {
            match item {
                Item::Event(e) => v.push((ord, e.clone())),
                Item::Light(e) | Item::Cb(e) => v.push((ord, e)),
                Item::Alloc(_) | Item::Free(_) => {}
            }
            Ok(())
        };
        if rare {
            chunk.try_for_each_non_buffer_non_op(&mut note).unwrap();
        } else {
            // The general walk, filtered by hand.
            chunk
                .try_for_each(|ord, item| match &item {
                    Item::Light(Event {
                        kind: EventKind::OpBegin { .. } | EventKind::OpEnd,
                        ..
                    }) => Ok(()),
                    Item::Cb(_) => Ok(()),
                    _ => note(ord, item),
                })
                .unwrap();
        }
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

        /// The lane count agrees with a plain filtered count, across the
        /// 255-tag runs it sums in.
        #[test]
        fn the_named_count_is_the_filtered_count(
            tags in proptest::collection::vec(0u8..9, 0..2000),
        ) {
            let plain = tags.iter().filter(|&&t| t == super::OP_BEGIN || t == super::MARKER).count();
            prop_assert_eq!(super::count_named(&tags), plain);
        }

        /// Markers among op begins (which share the names column) and the
        /// other kinds come out as the general walk gives them, with their
        /// ordinals, across blocks.
        #[test]
        fn the_rare_kinds_walk_gives_what_the_general_walk_gives(
            codes in proptest::collection::vec(0u8..8, 1..400),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t.zst");
            let opts = WriterOptions { block_events: 97, ..WriterOptions::default() };
            let mut w = TraceWriter::create(&path, TraceHeader::default(), opts).unwrap();
            let names: Vec<StringId> =
                ["a", "b", "c"].iter().map(|s| w.interner_mut().intern_string(s)).collect();
            for (i, &code) in codes.iter().enumerate() {
                let e = Event { ts: 10 * i as u64, pid: Pid(1 + (i / 50) as u32), kind: kind(code, i as u64, &names) };
                w.push(&e).unwrap();
            }
            w.finish().unwrap();
            let r = TraceReader::open(&path).unwrap();
            let mut cols = BlockColumns::default();
            let mut seen = 0;
            for (i, b) in r.blocks().iter().enumerate() {
                r.decode_columns(i, &mut cols).unwrap();
                let chunk = Chunk::Columns { first: b.first_event, columns: &cols };
                let rare = items(&chunk, true);
                prop_assert_eq!(&rare, &items(&chunk, false));
                seen += rare.len();
            }
            // Markers (4) and device opens (7): not circular buffers (5, 6).
            let expected = codes.iter().filter(|&&c| c == 4 || c == 7).count();
            prop_assert_eq!(seen, expected);
        }
    }
}
