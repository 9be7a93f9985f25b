//! A trace file's blocks (columns: the engine's own walk) and the same
//! events held in memory (the general step, event by event) give the same
//! findings — cycles from every rule, online and as precomputed spans that
//! start and end inside blocks, leaks, peaks, sites, and the what-if release
//! of a site.

use super::*;
use crate::options::{CycleMode, ReplayOptions};
use crate::source::{EventSource, MemoryTrace};
use ttalloc_corpora::synth::{write_trace, LeakSite, SynthOptions};
use ttalloc_trace::{TraceReader, WriterOptions};

fn findings(
    src: &dyn EventSource,
    cycles: CycleInput<'_>,
    release: Option<&FastSet<SiteId>>,
) -> Findings {
    let opts = ReplayOptions::default();
    let mut f = crate::run_engine(
        src,
        &opts,
        cycles,
        release,
        false,
        "test",
        Default::default(),
    )
    .unwrap();
    // Which process allocated what is noted beside the engine, not by it.
    f.source_pids = Default::default();
    f
}

/// `synth` written into `dir` in blocks of `block_events` events, opened.
fn synth_file(dir: &tempfile::TempDir, synth: &SynthOptions, block_events: usize) -> TraceReader {
    let path = dir.path().join("synth.zst");
    let wopts = WriterOptions {
        block_events,
        ..WriterOptions::default()
    };
    write_trace(&path, synth, wopts).unwrap();
    TraceReader::open(&path).unwrap()
}

/// `kinds` as events of process 1, one nanosecond apart from ts 1000.
fn timed(kinds: Vec<ttalloc_model::EventKind>) -> Vec<ttalloc_model::Event> {
    (0u64..)
        .zip(kinds)
        .map(|(ts, kind)| ttalloc_model::Event {
            ts: 1_000 + ts,
            pid: ttalloc_model::Pid(1),
            kind,
        })
        .collect()
}

#[test]
fn columns_and_events_replay_alike_under_every_cycle_rule() {
    let dir = tempfile::tempdir().unwrap();
    let synth = SynthOptions {
        events: 30_000,
        seed: 7,
        devices: 2,
        cycles: 6,
        leak_site: Some(LeakSite {
            site: 3,
            from_cycle: 2,
        }),
        reopen_devices: true,
    };
    // Small blocks: many chunks, spans that start and end inside them.
    let reader = synth_file(&dir, &synth, 700);
    let mut events = Vec::new();
    reader.for_each_event(|_, e| events.push(e)).unwrap();
    let memory = MemoryTrace::new(events, reader.interner().clone());

    let rules = [
        CycleRule::Device,
        CycleRule::MarkerAll,
        CycleRule::Op("ttnn.matmul".into()),
        CycleRule::Test,
        CycleRule::None,
    ];
    for rule in rules {
        let from_file = findings(&reader, CycleInput::Online(rule.clone()), None);
        let in_memory = findings(&memory, CycleInput::Online(rule.clone()), None);
        assert_eq!(from_file, in_memory, "online {rule:?}");
    }
    let mut leaked_sites = FastSet::default();
    for mode in ["marker", "op=ttnn.matmul", "device"] {
        let opts = ReplayOptions {
            cycles: mode.parse::<CycleMode>().unwrap(),
            ..ReplayOptions::default()
        };
        let spans = crate::find_cycles(&memory, &opts).unwrap().spans;
        assert!(spans.len() > 1, "{mode}: {} spans", spans.len());
        let from_file = findings(&reader, CycleInput::Spans(&spans), None);
        let in_memory = findings(&memory, CycleInput::Spans(&spans), None);
        assert_eq!(from_file, in_memory, "spans of {mode}");
        assert_eq!(from_file.cycles.len(), spans.len(), "spans of {mode}");
        leaked_sites.extend(from_file.site_left_behind.iter().map(|s| s.0));
    }
    // The leaking site is found, and releasing what sites leave behind
    // changes the findings the same way on both paths.
    assert!(!leaked_sites.is_empty());
    let spans = crate::find_cycles(&memory, &ReplayOptions::default())
        .unwrap()
        .spans;
    let from_file = findings(&reader, CycleInput::Spans(&spans), Some(&leaked_sites));
    let in_memory = findings(&memory, CycleInput::Spans(&spans), Some(&leaked_sites));
    assert_eq!(from_file, in_memory, "released sites");
    assert!(from_file.site_left_behind.is_empty());
}

/// Circular buffers that clash with an L1 buffer, several times: each is
/// counted, and the first is the finding, from a file's blocks (the block
/// walk) and from memory (the general step) alike.
#[test]
fn every_cb_clash_is_counted_and_the_first_reported() {
    use ttalloc_model::{Arch, BufferId, BufferType, DeviceConfig, EventKind, Layout};
    use ttalloc_trace::{TraceHeader, TraceWriter};
    // One L1 bank of 64 KiB above 4 KiB: a 61440 B buffer placed top-down
    // starts at 8192, so CBs from 4096 that end past 8192 clash.
    let config = DeviceConfig {
        l1_banks: Some(1),
        l1_bank_size: Some(65536),
        l1_alignment: Some(16),
        l1_unreserved_base: Some(4096),
        l1_small_size: Some(0),
        worker_l1_size: Some(4096 + 65536),
        ..Default::default()
    };
    let device = DeviceId(0);
    let mut kinds = vec![
        EventKind::DeviceOpen {
            device,
            arch: Arch::WormholeB0,
            config: Box::new(config),
        },
        EventKind::BufferAlloc {
            device,
            buffer: BufferId(1),
            buffer_type: BufferType::L1,
            address: None,
            size: 61440,
            page_size: Some(2048),
            layout: Layout::Interleaved,
            num_cores: None,
            per_bank_size: None,
            label: StringId::EMPTY,
            site: SiteId::UNKNOWN,
        },
    ];
    // Three programs' CBs: 2048 B (fine) then 4096 B more (a clash), each
    // freed after; the second and fourth CB events of each are the clashes.
    let mut clashes = Vec::new();
    for _ in 0..3 {
        for (address, size) in [(4096, 2048), (6144, 4096)] {
            if size == 4096 {
                clashes.push(kinds.len() as u64);
            }
            kinds.push(EventKind::CbAlloc {
                device,
                address,
                size,
                cores: Some(1),
                globally_allocated: false,
                site: SiteId::UNKNOWN,
            });
        }
        kinds.push(EventKind::CbFreeAll { device });
    }
    let events = timed(kinds);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clashes.zst");
    let header = TraceHeader::new(vec!["test".into()], "test".into());
    let mut w = TraceWriter::create(&path, header, WriterOptions::default()).unwrap();
    for e in &events {
        w.push(e).unwrap();
    }
    w.finish().unwrap();
    let reader = TraceReader::open(&path).unwrap();
    let memory = MemoryTrace::new(events, reader.interner().clone());
    for (what, f) in [
        ("file", findings(&reader, CycleInput::Spans(&[]), None)),
        ("memory", findings(&memory, CycleInput::Spans(&[]), None)),
    ] {
        assert_eq!(f.cb_clashes, 3, "{what}");
        let first = f.first_cb_clash.as_ref().expect("a clash");
        assert_eq!(first.event, clashes[0], "{what}");
    }
}

/// Blocks whose allocs have no format 2.1 field (their walk passes the
/// defaults as constants) and blocks where some have a per-bank size and a
/// label replay alike from a file's blocks and from memory: the leaks keep
/// each label and the model's placements, which the per-bank size moves.
#[test]
fn blocks_with_and_without_2_1_fields_replay_alike() {
    use ttalloc_model::{Arch, BufferId, BufferType, DeviceConfig, EventKind, Layout};
    use ttalloc_trace::{TraceHeader, TraceWriter};
    let config = DeviceConfig {
        l1_banks: Some(8),
        l1_bank_size: Some(1 << 20),
        l1_alignment: Some(32),
        l1_unreserved_base: Some(4096),
        l1_small_size: Some(0),
        worker_l1_size: Some(4096 + (1 << 20)),
        ..Default::default()
    };
    let device = DeviceId(0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ext.zst");
    let header = TraceHeader::new(vec!["test".into()], "test".into());
    // Four events a block: blocks 2, 3, 6, 7, ... hold allocs with 2.1
    // fields, the others none.
    let wopts = WriterOptions {
        block_events: 4,
        ..WriterOptions::default()
    };
    let mut w = TraceWriter::create(&path, header, wopts).unwrap();
    let label = w.interner_mut().intern_string("sharded tensor");
    let mut kinds = vec![EventKind::DeviceOpen {
        device,
        arch: Arch::WormholeB0,
        config: Box::new(config),
    }];
    let mut labelled = Vec::new();
    for k in 0..48u64 {
        let ext = (k / 8) % 2 == 1 && k % 3 != 2;
        if ext {
            labelled.push(BufferId(k + 1));
        }
        kinds.push(EventKind::BufferAlloc {
            device,
            buffer: BufferId(k + 1),
            buffer_type: BufferType::L1,
            address: None,
            size: 4096 * (1 + k % 5),
            page_size: Some(1024),
            layout: Layout::BlockSharded,
            num_cores: Some(4),
            per_bank_size: ext.then_some(8192 * (1 + k % 3)),
            label: if ext { label } else { StringId::EMPTY },
            site: SiteId::UNKNOWN,
        });
        if k % 4 == 3 {
            kinds.push(EventKind::BufferFree {
                device,
                buffer: BufferId(k),
                site: SiteId::UNKNOWN,
            });
        }
    }
    let events = timed(kinds);
    for e in &events {
        w.push(e).unwrap();
    }
    w.finish().unwrap();
    let reader = TraceReader::open(&path).unwrap();
    let memory = MemoryTrace::new(events, reader.interner().clone());
    let from_file = findings(&reader, CycleInput::Spans(&[]), None);
    let in_memory = findings(&memory, CycleInput::Spans(&[]), None);
    assert_eq!(from_file, in_memory);
    let leaked_with_label: Vec<BufferId> = from_file
        .leaks
        .iter()
        .filter(|l| l.label == label)
        .map(|l| l.buffer)
        .collect();
    let still_live: Vec<BufferId> = labelled.into_iter().filter(|b| b.0 % 4 != 3).collect();
    assert!(!still_live.is_empty());
    assert_eq!(leaked_with_label, still_live);
}

/// Blocks whose columns lack entries for some of their allocs, frees or
/// circular buffers (not what a decoder makes, but a block is plain data)
/// take the walk that checks each event's entry: they replay as the
/// general step does (with an observer), which skips such events too.
#[test]
fn blocks_short_of_column_entries_replay_as_the_general_step() {
    use crate::observe::EngineView;
    use ttalloc_model::{Arch, DeviceConfig};
    use ttalloc_trace::{AllocColumns, BlockColumns, CbColumns, FreeColumns};
    struct Nothing;
    impl Observer for Nothing {
        fn event(&mut self, _: u64, _: &Item<'_>, _: &EngineView<'_, '_>) {}
    }
    let dir = tempfile::tempdir().unwrap();
    let synth = SynthOptions {
        events: 6_000,
        seed: 11,
        devices: 2,
        cycles: 4,
        leak_site: None,
        reopen_devices: false,
    };
    let reader = synth_file(&dir, &synth, 500);
    // Block `b` keeps the first half of its allocs (b % 4 == 1), of its
    // frees (2), or none of its circular buffers (3); others are whole.
    let mut blocks = Vec::new();
    for (b, block) in reader.blocks().iter().enumerate() {
        let mut cols = BlockColumns::default();
        reader.decode_columns(b, &mut cols).unwrap();
        match b % 4 {
            1 => {
                let mut short = AllocColumns::default();
                for a in cols.allocs.iter().take(cols.allocs.len() / 2) {
                    short.push(&a);
                }
                cols.allocs = short;
            }
            2 => {
                let mut short = FreeColumns::default();
                for x in cols.frees.iter().take(cols.frees.len() / 2) {
                    short.push(&x);
                }
                cols.frees = short;
            }
            3 => cols.cbs = CbColumns::default(),
            _ => {}
        }
        blocks.push((block.first_event, cols));
    }
    let overrides = DeviceConfig::default();
    let run = |observe: bool| {
        let mut nothing = Nothing;
        let mut engine = Engine::new(EngineSetup {
            arch: Arch::WormholeB0,
            overrides: &overrides,
            warmup: 1,
            cycles: CycleInput::Spans(&[]),
            interner: reader.interner(),
            release_sites: None,
            stop_at_oom: false,
        });
        if observe {
            engine.set_observer(&mut nothing);
        }
        for (first, columns) in &blocks {
            let chunk = Chunk::Columns {
                first: *first,
                columns,
            };
            engine.feed_chunk(&chunk).unwrap();
        }
        engine.finish()
    };
    let (walked, stepped) = (run(false), run(true));
    assert!(stepped.unknown_frees > 0 && !stepped.leaks.is_empty());
    assert_eq!(walked, stepped);
}
