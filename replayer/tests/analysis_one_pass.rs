//! `analyse_file` replays a trace once: memory over time comes from the
//! findings' own pass, the timestamps of chosen events are looked up in the
//! blocks that hold them afterwards, and the call sites resident at the
//! highest peak come from a replay resumed at the checkpoint before the
//! peak. Each must equal what a full observed replay of the trace says.

use ttalloc_corpora::synth::{write_trace, LeakSite, SynthOptions};
use ttalloc_replayer::analysis::{analyse, analyse_file, analyse_file_summarised, AnalysisOptions};
use ttalloc_replayer::engine::CycleInput;
use ttalloc_replayer::findings::type_slot;
use ttalloc_replayer::observe::replay_observed;
use ttalloc_replayer::source::EventSource;
use ttalloc_replayer::timeline::{TimelineOptions, TimelineRecorder};
use ttalloc_replayer::{MemoryTrace, ReplayOptions};
use ttalloc_trace::summary::{SummaryTally, TraceSummary};
use ttalloc_trace::{TraceReader, WriterOptions};

#[test]
fn one_pass_analysis_equals_a_full_observed_replay() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("synth.zst");
    // Site 7 leaks from cycle 10 of 40: resident memory keeps growing, so
    // the highest peak lies late in the trace, after many of its
    // checkpoints (small blocks: a checkpoint every few thousand events).
    let synth = SynthOptions {
        events: 200_000,
        cycles: 40,
        leak_site: Some(LeakSite {
            site: 7,
            from_cycle: 10,
        }),
        ..SynthOptions::default()
    };
    let writer = WriterOptions {
        block_events: 2048,
        ..WriterOptions::default()
    };
    write_trace(&path, &synth, writer).unwrap();
    let reader = TraceReader::open(&path).unwrap();
    let opts = ReplayOptions::default();
    let aopts = AnalysisOptions {
        max_leak_marks: 50,
        max_ops: 1_000_000,
        ..AnalysisOptions::default()
    };
    let a = analyse_file(&reader, &opts, &aopts).unwrap();

    let peak = a.peak.clone().expect("a leaking trace has a peak");
    let before = reader.checkpoint_before(peak.event);
    assert!(
        before.is_some_and(|i| i > 0),
        "the peak (event {}) should follow several checkpoints",
        peak.event
    );
    assert!(!a.timeline.snapshot_sites.is_empty());
    // Every mark of the report: its cycles' bounds and the peak.
    assert!(a.timeline.marks.len() > 2 * 40 / 2);

    // The reference: one full replay with the timeline recorder told the
    // marks and the snapshot event up front (the report's former way).
    let marks: Vec<u64> = a.timeline.marks.iter().map(|m| m.0).collect();
    let mut recorder = TimelineRecorder::new(TimelineOptions {
        events: reader.num_events(),
        points: aopts.points,
        max_ops: aopts.max_ops,
        marks: marks.clone(),
        snapshot: Some((
            peak.event,
            peak.device,
            type_slot(peak.buffer_type).unwrap(),
        )),
    });
    replay_observed(&reader, &opts, CycleInput::Spans(&[]), &mut recorder).unwrap();
    let reference = recorder.finish();
    assert_eq!(a.timeline.snapshot_sites, reference.snapshot_sites);
    assert_eq!(a.timeline.marks, reference.marks);
    assert_eq!(a.timeline.series, reference.series);
    let bytes: u64 = a.timeline.snapshot_sites.iter().map(|s| s.1).sum();
    assert_eq!(bytes, peak.bytes, "the sites at the peak sum to it");

    // The same events held in memory (no checkpoints, no blocks): the same
    // analysis by the other lookups (a prefix replay, a scan for marks).
    let mut events = Vec::new();
    reader
        .visit(&mut |_, chunk| {
            events.extend_from_slice(chunk);
            Ok(())
        })
        .unwrap();
    let memory = MemoryTrace::new(events, reader.interner().clone());
    let m = analyse(&memory, &opts, &aopts).unwrap();
    assert_eq!(m.peak, a.peak);
    assert_eq!(m.timeline.snapshot_sites, a.timeline.snapshot_sites);
    assert_eq!(m.timeline.marks, a.timeline.marks);
    // Events in memory go through the general step, a file's blocks
    // through the observed walk over their columns: the same memory over
    // time, op scopes and findings.
    assert_eq!(m.timeline.series, a.timeline.series);
    assert!(!a.timeline.ops.is_empty());
    assert_eq!(m.timeline.ops, a.timeline.ops);
    assert_eq!(m.timeline.ops_dropped, a.timeline.ops_dropped);
    assert_eq!(
        (m.timeline.first_ts, m.timeline.last_ts),
        (a.timeline.first_ts, a.timeline.last_ts)
    );
    assert_eq!(m.report.leaks, a.report.leaks);
    assert_eq!(m.report.cycles, a.report.cycles);
    assert_eq!(m.leaked_by_site, a.leaked_by_site);
}

/// A report's summary is counted from the blocks its replay decodes: it
/// equals the summary of a read of its own (`ttalloc info`), with a
/// timeline (the blocks come with their times) and without one (they do
/// not: the summary then reads the trace). Without live bytes, it is the
/// same but for the devices' live bytes, empty (the synthetic trace has
/// some at its peaks).
#[test]
fn the_summary_from_the_replay_equals_a_read_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("synth.zst");
    let synth = SynthOptions {
        events: 50_000,
        cycles: 10,
        devices: 3,
        ..SynthOptions::default()
    };
    let writer = WriterOptions {
        block_events: 4096,
        ..WriterOptions::default()
    };
    write_trace(&path, &synth, writer).unwrap();
    let reader = TraceReader::open(&path).unwrap();
    assert!(reader.blocks().len() > 10);
    let own = TraceSummary::compute(&reader).unwrap();
    assert_eq!(own.devices.len(), 3);
    let mut without_live = own.clone();
    for d in &mut without_live.devices {
        assert!(!d.peak_live_bytes.is_empty());
        d.peak_live_bytes.clear();
        d.live_bytes_at_end.clear();
    }
    for timeline in [true, false] {
        let aopts = AnalysisOptions {
            timeline,
            ..AnalysisOptions::default()
        };
        let opts = ReplayOptions::default();
        let (a, summary) =
            analyse_file_summarised(&reader, &opts, &aopts, SummaryTally::new()).unwrap();
        assert_eq!(summary, own, "timeline: {timeline}");
        assert_eq!(a.report.events, own.events);
        let tally = SummaryTally::without_live_bytes();
        let (_, summary) = analyse_file_summarised(&reader, &opts, &aopts, tally).unwrap();
        assert_eq!(summary, without_live, "timeline: {timeline}");
    }
}
