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

#[test]
fn columns_and_events_replay_alike_under_every_cycle_rule() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("synth.zst");
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
    let wopts = WriterOptions {
        block_events: 700,
        ..WriterOptions::default()
    };
    write_trace(&path, &synth, wopts).unwrap();
    let reader = TraceReader::open(&path).unwrap();
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
