use super::*;
use crate::minimize::{minimize_events, minimize_file, FindingKind, MinimizeOptions};
use std::path::{Path, PathBuf};
use ttalloc_corpora::synth::{generate, write_trace, LeakSite, SynthOptions};
use ttalloc_model::InternTables;
use ttalloc_trace::WriterOptions;

/// Blocks of this many events: the 40,000 events below fill ten blocks,
/// the last one short.
const BLOCK: usize = 4096;

fn synth() -> SynthOptions {
    SynthOptions {
        events: 40_000,
        seed: 5,
        devices: 2,
        cycles: 4,
        leak_site: Some(LeakSite {
            site: 9,
            from_cycle: 1,
        }),
        reopen_devices: false,
    }
}

/// The synthetic trace written to `dir` in small blocks, and the same
/// events generated in memory.
fn written(dir: &Path) -> (PathBuf, Vec<Event>, InternTables) {
    let path = dir.join("t.zst");
    let wopts = WriterOptions {
        block_events: BLOCK,
        ..WriterOptions::default()
    };
    write_trace(&path, &synth(), wopts).unwrap();
    let (interner, events, _) = generate(&synth());
    (path, events, interner)
}

fn picked(store: &dyn EventStore, ordinals: &[u32]) -> Vec<(u32, Event)> {
    let mut out = Vec::new();
    store
        .each_of(ordinals, &mut |i, e| {
            out.push((i, e.clone()));
            Ok(())
        })
        .unwrap();
    out
}

fn ranged(store: &dyn EventStore, range: Range<usize>) -> Vec<(usize, Event)> {
    let mut out = Vec::new();
    store
        .each_in(range, &mut |at, run| {
            out.extend(run.iter().cloned().enumerate().map(|(k, e)| (at + k, e)));
            Ok(())
        })
        .unwrap();
    out
}

/// The file's events, read back a block at a time in any selection, are
/// the events the trace was written from: the load pass hands every block
/// in order, subsets that cross block boundaries (and come back to a
/// block read before) pick the same events as from memory, ranges clip at
/// the end, and `get` past the end is none.
#[test]
fn a_trace_store_reads_the_events_held_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (path, events, _) = written(dir.path());
    let reader = TraceReader::open(&path).unwrap();
    assert!(reader.blocks().len() >= 9, "several blocks");
    let mut loaded: Vec<Event> = Vec::new();
    let store = TraceEvents::load(&reader, &mut |at, part| {
        assert_eq!(at, loaded.len(), "blocks come in order, none skipped");
        assert!(matches!(part, Part::Block(_)), "no kind skipped: columns");
        loaded.extend(parted(|f| f(part)).0);
        Ok(())
    })
    .unwrap();
    assert_eq!(loaded, untimed(events.iter().cloned()));
    assert_eq!(EventStore::len(&store), events.len());

    let n = events.len() as u32;
    let b = BLOCK as u32;
    let subsets: Vec<Vec<u32>> = vec![
        (0..n).collect(),
        (0..n).filter(|i| i % 13 == 4).collect(),
        vec![0, b - 1, b, b + 1, 2 * b - 1, 2 * b, 5 * b + 7, n - 1],
        vec![n - 1],
        vec![3 * b + 1, 3 * b + 2],
        Vec::new(),
    ];
    for s in &subsets {
        assert_eq!(
            picked(&store, s),
            picked(&events, s),
            "subset of {}",
            s.len()
        );
    }
    let len = events.len();
    for r in [
        0..len,
        BLOCK - 100..BLOCK + 100,
        len - 5..len + 10,
        7..7,
        2 * BLOCK..3 * BLOCK,
    ] {
        assert_eq!(
            ranged(&store, r.clone()),
            ranged(&events, r.clone()),
            "range {r:?}"
        );
    }
    assert_eq!(store.event(BLOCK).unwrap().as_ref(), events.get(BLOCK));
    assert_eq!(store.event(len - 1).unwrap().as_ref(), events.last());
    assert_eq!(store.event(len).unwrap(), None);
}

/// The events of each part, in order, and how many parts were whole blocks.
/// Times are left out (set to 0): a block's columns are decoded without them
/// (nothing a replay finds reads one).
fn parted(
    walk: impl FnOnce(&mut dyn FnMut(Part<'_>) -> Result<()>) -> Result<()>,
) -> (Vec<Event>, usize) {
    let (mut out, mut blocks) = (Vec::new(), 0);
    walk(&mut |part| {
        match part {
            Part::Event(e) => out.push(e.clone()),
            Part::Events(run) => out.extend_from_slice(run),
            Part::Block(c) => {
                blocks += 1;
                c.clone().for_each_event(|_, e| out.push(e));
            }
        }
        Ok(())
    })
    .unwrap();
    (untimed(out), blocks)
}

fn untimed(events: impl IntoIterator<Item = Event>) -> Vec<Event> {
    events.into_iter().map(|e| Event { ts: 0, ..e }).collect()
}

/// Walked in parts, a trace file hands the blocks a selection holds whole
/// as columns and the rest as events, and together they are the selected
/// events in order: all of them (every block whole), every 13th (none),
/// two blocks whole among single events, and ranges starting inside a
/// block or ending inside one.
#[test]
fn parts_are_the_selected_events_with_whole_blocks_as_columns() {
    let dir = tempfile::tempdir().unwrap();
    let (path, events, _) = written(dir.path());
    let reader = TraceReader::open(&path).unwrap();
    let store = TraceEvents::load(&reader, &mut |_, _| Ok(())).unwrap();
    let n = events.len() as u32;
    let b = BLOCK as u32;
    let blocks = reader.blocks().len();
    let two_whole: Vec<u32> = [5, 17]
        .into_iter()
        .chain(b..3 * b)
        .chain([3 * b + 9, n - 1])
        .collect();
    for (ordinals, whole) in [
        ((0..n).collect::<Vec<u32>>(), blocks),
        ((0..n).filter(|i| i % 13 == 4).collect(), 0),
        (two_whole, 2),
    ] {
        let want = untimed(ordinals.iter().map(|&i| events[i as usize].clone()));
        let (got, blocks) = parted(|f| store.each_part(&ordinals, f));
        assert!(got == want, "{} ordinals", ordinals.len());
        assert_eq!(blocks, whole, "{} ordinals", ordinals.len());
    }
    let len = events.len();
    for (r, whole) in [
        (0..len, blocks),
        (BLOCK + 1..3 * BLOCK, 1),
        (BLOCK..3 * BLOCK - 1, 1),
        (7..9, 0),
    ] {
        let (got, blocks) = parted(|f| store.each_part_in(r.clone(), f));
        assert!(got == untimed(events[r.clone()].to_vec()), "range {r:?}");
        assert_eq!(blocks, whole, "range {r:?}");
    }
}

/// A trace cut short after the store read it is an error naming the file
/// when a block past the cut is read again, not a panic.
#[test]
fn a_trace_cut_under_the_store_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (path, events, _) = written(dir.path());
    let reader = TraceReader::open(&path).unwrap();
    let store = TraceEvents::load(&reader, &mut |_, _| Ok(())).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(4096).unwrap();
    let last = events.len() as u32 - 1;
    let err = store
        .each_of(&[last], &mut |_, _| Ok(()))
        .expect_err("the block is gone");
    let text = err.to_string();
    assert!(text.contains("t.zst"), "names the file: {text}");
}

/// `minimize` of the file (read back a block at a time) keeps exactly the
/// events that `minimize` of the same events held in memory keeps, after
/// the same number of replays: from the first event each time, and from
/// checkpoints (the file's, or taken in memory).
#[test]
fn a_file_minimises_as_its_events_held_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (path, events, interner) = written(dir.path());
    for from_start in [true, false] {
        let opts = MinimizeOptions {
            keep: Some(FindingKind::Leak),
            from_start,
            ..MinimizeOptions::default()
        };
        let out = dir.path().join("min.zst");
        let file = minimize_file(&path, &out, &opts, None).unwrap();
        let memory = minimize_events(&events, &interner, &opts, None).unwrap();
        assert!(file.kept_events < 10, "the search found a small set");
        assert_eq!(file.kept, memory.kept, "from_start {from_start}");
        assert_eq!(file.replays, memory.replays);
        assert_eq!(file.events, memory.events);
    }
}

/// A trace from a newer writer, with events of kinds this reader skips
/// between the synthetic ones: its checkpoints count the skipped events,
/// the search does not, so `minimize` says so, leaves the checkpoints
/// unused, and keeps what the events it read in memory would keep.
#[test]
fn a_trace_with_skipped_kinds_is_minimised_without_its_checkpoints() {
    use ttalloc_trace::{TraceHeader, TraceWriter, FORMAT_MAJOR, FORMAT_MINOR};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("newer.zst");
    let (interner, events, _) = generate(&synth());
    let mut w = TraceWriter::create_with_version(
        &path,
        TraceHeader::default(),
        WriterOptions {
            block_events: BLOCK,
            ..WriterOptions::default()
        },
        FORMAT_MAJOR,
        FORMAT_MINOR + 1,
    )
    .unwrap();
    *w.interner_mut() = interner.clone();
    for (i, e) in events.iter().enumerate() {
        w.push(e).unwrap();
        if i % 1000 == 999 {
            w.push_unknown_kind(200, e.ts, e.pid, b"future").unwrap();
        }
    }
    w.finish().unwrap();
    let reader = TraceReader::open(&path).unwrap();
    assert!(!reader.checkpoints().is_empty(), "the file has checkpoints");
    drop(reader);
    let opts = MinimizeOptions {
        keep: Some(FindingKind::Leak),
        ..MinimizeOptions::default()
    };
    let out = dir.path().join("min.zst");
    let file = minimize_file(&path, &out, &opts, None).unwrap();
    let memory = minimize_events(&events, &interner, &opts, None).unwrap();
    assert_eq!(file.kept, memory.kept);
    assert_eq!(file.events, memory.events);
    assert_eq!(file.resumed_replays, 0);
    let skipped = events.len() / 1000;
    let said = format!("{skipped} of its {} events", events.len() + skipped);
    assert!(
        file.warnings
            .iter()
            .any(|w| w.contains(&said) && w.contains("checkpoints are not used")),
        "{:?}",
        file.warnings
    );
}

/// The first pass over a file's decoded columns finds every event's
/// prerequisites as the pass over its events does: for each event of a
/// synthetic trace with devices reopened every cycle (spans, programs,
/// ops, circular buffers, allocs and frees), the same partner and device
/// span.
#[test]
fn a_first_pass_over_columns_finds_what_one_over_events_does() {
    use crate::minimize::deps::DepsBuilder;
    let dir = tempfile::tempdir().unwrap();
    let opts = SynthOptions {
        reopen_devices: true,
        ..synth()
    };
    let path = dir.path().join("reopen.zst");
    let wopts = WriterOptions {
        block_events: BLOCK,
        ..WriterOptions::default()
    };
    write_trace(&path, &opts, wopts).unwrap();
    let (_, events, _) = generate(&opts);
    let reader = TraceReader::open(&path).unwrap();
    let mut from_columns = DepsBuilder::default();
    let mut blocks = 0;
    TraceEvents::load(&reader, &mut |at, part| {
        match part {
            Part::Block(columns) => {
                blocks += 1;
                from_columns.push_columns(at as u32, columns);
            }
            _ => panic!("no kind skipped: columns"),
        }
        Ok(())
    })
    .unwrap();
    assert!(blocks >= 9);
    let mut from_events = DepsBuilder::default();
    for (i, e) in events.iter().enumerate() {
        from_events.push(i as u32, e);
    }
    let (a, b) = (from_columns.finish(), from_events.finish());
    assert_eq!(a.len(), events.len());
    // Each event's partner and device span, and the spans, alike.
    assert!(a == b, "the two passes differ");
}
