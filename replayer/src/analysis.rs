//! Everything the reports and exports show, from one replay of a trace:
//! the replay proper (findings, cycles, bisect: the same [`Report`] as
//! `ttalloc replay`), observed for memory over time. Afterwards only what
//! the replay's end decides is looked up: the timestamps of chosen events
//! the replay did not note (`marks`: it notes the cycles' bounds and the
//! highest peak's) and the call sites resident at the highest peak (a
//! replay resumed at the checkpoint before it: `peak_snapshot`). Call sites are
//! resolved here, so an [`Analysis`] stands on its own.

mod marks;
mod pair;
mod peak_snapshot;

use crate::findings::Findings;
use crate::observe::Observer;
use crate::options::ReplayOptions;
use crate::report::{Report, Site};
use crate::source::{Chunk, ChunkHook, EventSource};
use crate::timeline::{Timeline, TimelineOptions, TimelineRecorder};
pub use pair::{analyse_file_pair, PairPlan};
use peak_snapshot::{same_peak, sites_at_peak, PeakWatch};
use ttalloc_model::hash::FastMap;
use ttalloc_model::{BufferType, DeviceId, SiteId};
use ttalloc_trace::summary::{SummaryTally, TraceSummary};
use ttalloc_trace::TraceReader;

/// How much detail to keep.
#[derive(Clone, Debug)]
pub struct AnalysisOptions {
    /// Most points per memory-over-time series.
    pub points: usize,
    /// Most op scopes kept (for timelines).
    pub max_ops: usize,
    /// Most leaked objects whose allocation time is looked up.
    pub max_leak_marks: usize,
    /// Whether to observe the replay at all (memory over time, peak
    /// sites: the replay costs more when observed); `diff` does without.
    pub timeline: bool,
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        AnalysisOptions {
            points: 1000,
            max_ops: 0,
            max_leak_marks: 0,
            timeline: true,
        }
    }
}

/// The highest peak of any device and buffer type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeakPoint {
    pub device: DeviceId,
    pub buffer_type: BufferType,
    pub bytes: u64,
    pub event: u64,
}

/// An op scope with its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedOp {
    pub pid: u32,
    pub name: String,
    pub begin_ts: u64,
    pub end_ts: u64,
    pub depth: u32,
}

pub struct Analysis {
    pub report: Report,
    /// Bytes of every object still tracked at the end (all leak classes)
    /// per call site, largest first; sums to the leaked bytes.
    pub leaked_by_site: Vec<(Site, u64)>,
    /// Bytes left behind per cycle after warm-up, per exact call site.
    pub left_per_cycle_by_site: Vec<(Site, u64)>,
    /// Call sites resident at `peak`, largest first; sums to its bytes.
    pub peak: Option<PeakPoint>,
    pub peak_sites: Vec<(Site, u64)>,
    pub timeline: Timeline,
    pub ops: Vec<NamedOp>,
}

/// Analyses a trace file (the report carries its truncation note).
pub fn analyse_file(
    reader: &TraceReader,
    opts: &ReplayOptions,
    aopts: &AnalysisOptions,
) -> crate::Result<Analysis> {
    analyse_file_with(reader, opts, aopts, None)
}

/// [`analyse_file`] and the trace's summary (what `ttalloc info` says),
/// from the one read of the trace: the summary is counted from the blocks the replay decodes, on
/// the thread that decodes them (a report read the trace twice: on the
/// 10M synthetic trace its summary took a fifth of its CPU). Without
/// times (an analysis with no timeline) it reads the trace again. The
/// summary is what `tally` counts: [`SummaryTally::new`] counts all of
/// it, [`SummaryTally::without_live_bytes`] all but the devices' live
/// bytes (a report shows none).
pub fn analyse_file_summarised(
    reader: &TraceReader,
    opts: &ReplayOptions,
    aopts: &AnalysisOptions,
    mut tally: SummaryTally,
) -> crate::Result<(Analysis, TraceSummary)> {
    let interner = reader.interner();
    let fresh = tally.empty_like();
    let analysis = {
        let mut count = |chunk: &Chunk<'_>| {
            if let Chunk::Columns { columns, .. } = chunk {
                tally.block(columns, interner);
            }
        };
        analyse_file_with(reader, opts, aopts, Some(&mut count))?
    };
    let summary = match tally.finish(reader) {
        Some(summary) => summary,
        None => TraceSummary::count(reader, fresh)?,
    };
    Ok((analysis, summary))
}

fn analyse_file_with(
    reader: &TraceReader,
    opts: &ReplayOptions,
    aopts: &AnalysisOptions,
    chunks: Option<ChunkHook<'_>>,
) -> crate::Result<Analysis> {
    let mut a = analyse_source(reader, Some(reader), opts, aopts, chunks)?;
    a.report.truncated = reader.truncation().map(|t| {
        format!(
            "{} events recovered, readable up to byte {} of {}: {}",
            t.events_recovered, t.valid_up_to, t.file_size, t.reason
        )
    });
    Ok(a)
}

pub fn analyse(
    src: &dyn EventSource,
    opts: &ReplayOptions,
    aopts: &AnalysisOptions,
) -> crate::Result<Analysis> {
    analyse_source(src, None, opts, aopts, None)
}

/// `reader`: `src` itself when it is a trace file (its checkpoints and
/// blocks make the lookups after the replay cheap).
fn analyse_source(
    src: &dyn EventSource,
    reader: Option<&TraceReader>,
    opts: &ReplayOptions,
    aopts: &AnalysisOptions,
    chunks: Option<ChunkHook<'_>>,
) -> crate::Result<Analysis> {
    let interner = src.interner();
    let mut leaked: Vec<(SiteId, u64)> = Vec::new();
    let mut left: Vec<(SiteId, u64)> = Vec::new();
    let mut leak_events: Vec<u64> = Vec::new();
    let recorder = TimelineRecorder::new(TimelineOptions {
        events: src.num_events(),
        points: aopts.points,
        max_ops: aopts.max_ops,
        marks: Vec::new(),
        snapshot: None,
    });
    let mut watch = PeakWatch::new(recorder, reader);
    let observer = aopts.timeline.then_some(&mut watch as &mut dyn Observer);
    let first = crate::FirstPass { observer, chunks };
    let report = crate::replay_inspect_watched(src, opts, first, &mut |f: &Findings| {
        let mut by_site: FastMap<SiteId, u64> = FastMap::default();
        for l in &f.leaks {
            *by_site.entry(l.site).or_default() += l.size;
        }
        leaked = sorted(by_site.into_iter().collect());
        let counted = f.cycles.len().saturating_sub(opts.warmup).max(1) as u64;
        left = f
            .site_left_behind
            .iter()
            .map(|&(s, b)| (s, b / counted))
            .filter(|&(_, b)| b > 0)
            .collect();
        leak_events = f
            .leaks
            .iter()
            .take(aopts.max_leak_marks)
            .map(|l| l.event)
            .collect();
    })?;
    let peak = highest_peak(&report);
    let mut marks = leak_events;
    for c in &report.cycles {
        marks.push(c.start_event);
        marks.push(c.end_event);
    }
    if let Some(o) = &report.oom {
        marks.push(o.event);
    }
    if let Some(p) = &peak {
        marks.push(p.event);
    }
    let peak_snapshot::Finished {
        mut timeline,
        best,
        at_best,
        seen_times,
    } = watch.finish();
    if aopts.timeline {
        timeline.marks = marks::timestamps(src, reader, marks, &seen_times)?;
        if let Some(p) = &peak {
            // The checkpoint is the one before the timeline's own highest
            // peak: used only when that is the report's.
            let from = at_best.as_deref().filter(|_| same_peak(best, p));
            timeline.snapshot_sites = sites_at_peak(src, reader, opts, p, from)?;
        }
    }
    let resolve = |v: &[(SiteId, u64)]| -> Vec<(Site, u64)> {
        v.iter()
            .map(|&(s, b)| (Site::resolve(interner, s), b))
            .collect()
    };
    let ops = timeline
        .ops
        .iter()
        .map(|o| NamedOp {
            pid: o.pid,
            name: interner.string(o.name).to_owned(),
            begin_ts: o.begin_ts,
            end_ts: o.end_ts,
            depth: o.depth,
        })
        .collect();
    Ok(Analysis {
        leaked_by_site: resolve(&leaked),
        left_per_cycle_by_site: resolve(&left),
        peak_sites: resolve(&timeline.snapshot_sites),
        peak,
        report,
        ops,
        timeline,
    })
}

/// The largest peak in the report (ties: the lowest device, then type order).
fn highest_peak(report: &Report) -> Option<PeakPoint> {
    let mut best: Option<PeakPoint> = None;
    for (dev, p) in &report.peak {
        let Ok(device) = dev.parse::<u32>() else {
            continue;
        };
        let events = report.peak_events.get(dev).copied().unwrap_or_default();
        for (bt, bytes, event) in [
            (BufferType::Dram, p.dram, events.dram),
            (BufferType::L1, p.l1, events.l1),
            (BufferType::L1Small, p.l1_small, events.l1_small),
            (BufferType::Trace, p.trace, events.trace),
        ] {
            if bytes > best.as_ref().map_or(0, |b| b.bytes) {
                best = Some(PeakPoint {
                    device: DeviceId(device),
                    buffer_type: bt,
                    bytes,
                    event,
                });
            }
        }
    }
    best
}

fn sorted(mut v: Vec<(SiteId, u64)>) -> Vec<(SiteId, u64)> {
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}
