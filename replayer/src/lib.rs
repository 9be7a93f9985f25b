//! Replay through the model: leak and accumulation analysis, bisect, reports.
//!
//! ```text
//! trace blocks ──(decoder thread: decode, scan for cycle candidates)──┐
//!              ──> engine: one simulated Device per device id, cycles
//!                  applied online ──> findings
//!              ──> accumulation, bisect, ddmin ──> Report (human / JSON)
//! ```
//!
//! One pass in the common case: `auto` cycles are guessed from the trace's
//! beginning and checked at the end; a wrong guess costs a second pass.
//!
//! Entry points: [`replay_file`] for a trace on disk, [`replay`] for any
//! [`EventSource`] (events in memory: [`MemoryTrace`]).

pub mod accumulation;
pub mod analysis;
pub mod bisect;
pub mod bisect_op;
pub mod cycle_log;
pub mod cycles;
pub mod ddmin;
pub mod diff;
pub mod engine;
pub mod error;
pub mod export;
pub mod fail;
pub mod findings;
mod freed;
pub mod html;
mod human;
pub mod library_frames;
pub mod markdown;
pub mod minimize;
pub mod observe;
pub mod oom_hint;
pub mod options;
pub mod progress;
mod rare_kinds;
pub mod report;
pub mod repro;
mod sim;
pub mod source;
pub mod source_pids;
pub mod timeline;

pub use error::{ReplayError, Result};
pub use fail::{parse_fail_on, FailKind};
pub use options::{CycleMode, ReplayOptions};
pub use report::Report;
pub use source::{ChunkPass, EventSource, MemoryTrace};

use cycles::{CycleRule, CycleScanner, Cycles};
use engine::{CycleInput, Engine, EngineSetup};
use findings::Findings;
use indicatif::{ProgressBar, ProgressStyle};
use progress::{progress, PROGRESS_MIN_EVENTS};
use source::{Chunk, ChunkHook};
use std::borrow::Cow;
use std::path::Path;
use ttalloc_model::hash::FastSet;
use ttalloc_model::{Event, InternTables, SiteId};
use ttalloc_trace::TraceReader;

/// Replays a trace file.
pub fn replay_file(path: &Path, opts: &ReplayOptions) -> Result<Report> {
    replay_reader(&TraceReader::open(path)?, opts)
}

/// Replays an opened trace file; a truncated one says so in the report.
pub fn replay_reader(reader: &TraceReader, opts: &ReplayOptions) -> Result<Report> {
    let truncated = reader.truncation().map(|t| {
        format!(
            "{} events recovered, readable up to byte {} of {}: {}",
            t.events_recovered, t.valid_up_to, t.file_size, t.reason
        )
    });
    let mut report = replay(reader, opts)?;
    report.truncated = truncated;
    Ok(report)
}

/// Replays events held in memory.
pub fn replay_events(
    events: Vec<Event>,
    interner: InternTables,
    opts: &ReplayOptions,
) -> Result<Report> {
    replay(&MemoryTrace::new(events, interner), opts)
}

/// Replays any event source: finds cycles, drives the engine, analyses.
pub fn replay(src: &dyn EventSource, opts: &ReplayOptions) -> Result<Report> {
    replay_inspect(src, opts, &mut |_| {})
}

/// Like [`replay`], letting `inspect` look at the findings (every leak, with
/// call-site ids) before they are summarised into the report.
pub fn replay_inspect(
    src: &dyn EventSource,
    opts: &ReplayOptions,
    inspect: &mut dyn FnMut(&Findings),
) -> Result<Report> {
    replay_inspect_observed(src, opts, None, inspect)
}

/// Like [`replay_inspect`], with `observer` watching the first replay pass
/// (the one every event goes through once; what it sees does not depend on
/// the cycle rule): a report's memory over time comes from the same pass as
/// its findings.
pub fn replay_inspect_observed(
    src: &dyn EventSource,
    opts: &ReplayOptions,
    observer: Option<&mut dyn observe::Observer>,
    inspect: &mut dyn FnMut(&Findings),
) -> Result<Report> {
    let first = FirstPass {
        observer,
        chunks: None,
    };
    replay_inspect_watched(src, opts, first, inspect)
}

/// Like [`replay_inspect_observed`], with `first`'s watchers on the first
/// pass (a report's summary is counted from the blocks it decodes).
pub fn replay_inspect_watched(
    src: &dyn EventSource,
    opts: &ReplayOptions,
    first: FirstPass<'_, '_>,
    inspect: &mut dyn FnMut(&Findings),
) -> Result<Report> {
    let (findings, rule) = replay_with_cycles(src, opts, first)?;
    inspect(&findings);
    let opts = &*options_for(&rule, opts);
    let growth = accumulation::growth(&findings.cycles, opts.warmup);
    let (bisection, minimal_sites) = if opts.bisect {
        let mut b = bisect::bisect(
            &findings.cycles,
            opts.warmup,
            &findings.site_left_behind,
            src.interner(),
        );
        if let Some(first) = &b.first {
            b.first_op = bisect_op::enclosing_op(src, first.event)?;
        }
        let m = minimal_sites(src, opts, &rule, &findings, &growth);
        (Some(b), m)
    } else {
        (None, None)
    };
    let mut report = Report::build(report::ReportInputs {
        findings,
        growth,
        bisection,
        minimal_sites,
        warmup: opts.warmup,
        interner: src.interner(),
        truncated: None,
    });
    // The source's warnings first (what was not replayed at all), once each.
    let mut warnings = src.warnings();
    warnings.append(&mut report.warnings);
    report.warnings = warnings;
    Ok(report)
}

/// The replay proper, with its cycles. Explicit modes are applied while
/// replaying. `auto` and plain `marker` depend on the whole trace: the rule
/// is guessed from the trace's beginning, checked by a scanner that sees the
/// same events as the engine, and only if the guess was wrong is the trace
/// replayed again with the right cycles.
fn replay_with_cycles(
    src: &dyn EventSource,
    opts: &ReplayOptions,
    first: FirstPass<'_, '_>,
) -> Result<(Findings, CycleRule)> {
    let FirstPass { observer, chunks } = first;
    let interner = src.interner();
    if let Some(rule) = CycleRule::explicit(&opts.cycles) {
        let f = run_engine(
            src,
            &options_for(&rule, opts),
            CycleInput::Online(rule.clone()),
            None,
            false,
            "replaying",
            PassWatchers {
                scanner: None,
                observer,
                chunks,
            },
        )?;
        return Ok((f, rule));
    }
    let guess = cycles::probe::guess_rule(src, &opts.cycles)?;
    let mut scanner = CycleScanner::for_mode(&opts.cycles);
    let f = run_engine(
        src,
        &options_for(&guess, opts),
        CycleInput::Online(guess.clone()),
        None,
        false,
        "replaying",
        PassWatchers {
            scanner: Some(&mut scanner),
            observer,
            chunks,
        },
    )?;
    let rule = scanner.rule(&opts.cycles, interner);
    if rule == guess {
        return Ok((f, rule));
    }
    let cycles = scanner.spans(&rule, interner);
    let mut f = run_engine(
        src,
        &options_for(&rule, opts),
        CycleInput::Spans(&cycles.spans),
        None,
        false,
        "replaying",
        PassWatchers::default(),
    )?;
    f.cycle_kind = cycles.kind;
    Ok((f, rule))
}

/// The options a replay with `rule` uses: test cycles have no warm-up, as
/// tests are not repetitions of one another (the pytest plugin runs a
/// test's own warm-ups, `ttalloc_limit_leaks(warmups=N)`, outside its cycle).
fn options_for<'a>(rule: &CycleRule, opts: &'a ReplayOptions) -> Cow<'a, ReplayOptions> {
    if *rule == CycleRule::Test && opts.warmup != 0 {
        Cow::Owned(ReplayOptions {
            warmup: 0,
            ..opts.clone()
        })
    } else {
        Cow::Borrowed(opts)
    }
}

/// The cycle boundaries `opts.cycles` gives on the whole source (one scan).
pub fn find_cycles(src: &dyn EventSource, opts: &ReplayOptions) -> Result<Cycles> {
    let mut scanner = CycleScanner::for_mode(&opts.cycles);
    // The scan is light: one thread decodes, this one only looks at events
    // (in the same chunks, with the same ordinals, as a replay).
    let pass = ChunkPass {
        ahead: opts.decode_ahead,
        timed: false,
    };
    src.visit_chunks_with(pass, None, &mut |chunk| {
        scanner.scan_chunk(chunk);
        Ok(())
    })?;
    Ok(scanner.finish(&opts.cycles, src.interner()))
}

/// Who else sees the events of a replay pass besides the engine.
#[derive(Default)]
pub struct PassWatchers<'s, 'o, 'c> {
    /// Scans for cycles, on the decoding thread (when there is one).
    pub scanner: Option<&'s mut CycleScanner>,
    /// Sees every event right after the engine applied it.
    pub observer: Option<&'o mut dyn observe::Observer>,
    /// Sees every chunk, in order, on the decoding thread (when there is
    /// one), as it was decoded for the replay (with times when an observer
    /// watches).
    pub chunks: Option<ChunkHook<'c>>,
}

/// Who watches the first replay pass, the one every event goes through
/// once (what they see does not depend on the cycle rule).
#[derive(Default)]
pub struct FirstPass<'o, 'c> {
    pub observer: Option<&'o mut dyn observe::Observer>,
    /// As [`PassWatchers::chunks`].
    pub chunks: Option<ChunkHook<'c>>,
}

/// Drives every event through the simulated devices (`scanner`, if given,
/// sees the same events).
pub fn run_engine(
    src: &dyn EventSource,
    opts: &ReplayOptions,
    cycles: CycleInput<'_>,
    release_sites: Option<&FastSet<SiteId>>,
    stop_at_oom: bool,
    what: &str,
    watchers: PassWatchers<'_, '_, '_>,
) -> Result<Findings> {
    let PassWatchers {
        scanner,
        observer,
        mut chunks,
    } = watchers;
    let kind = match &cycles {
        CycleInput::Online(rule) => rule.kind(),
        CycleInput::Spans(_) => String::new(),
    };
    let mut engine = Engine::new(EngineSetup {
        arch: opts.arch,
        overrides: &opts.overrides,
        warmup: opts.warmup,
        cycles,
        interner: src.interner(),
        release_sites,
        stop_at_oom,
    });
    let observer_set = observer.is_some();
    if let Some(o) = observer {
        engine.set_observer(o);
    }
    let bar = progress(src, opts, what);
    // With `decode_ahead`, one thread decodes ahead (and scans for cycles)
    // while this one replays.
    let mut consume = |chunk: &Chunk<'_>| {
        engine.feed_chunk(chunk)?;
        if let Some(b) = &bar {
            b.inc(chunk.len() as u64);
        }
        Ok(())
    };
    // The decoding thread (or this one) also notes each buffer's process
    // (for names).
    let mut pids = source_pids::SourcePids::default();
    // The engine reads no time; an observer may (a report's timeline).
    let pass = ChunkPass {
        ahead: opts.decode_ahead,
        timed: observer_set,
    };
    match scanner {
        Some(s) => src.visit_chunks_with(
            pass,
            Some(&mut |chunk| {
                s.scan_chunk(chunk);
                pids.scan(chunk);
                if let Some(c) = chunks.as_deref_mut() {
                    c(chunk);
                }
            }),
            &mut consume,
        )?,
        None => src.visit_chunks_with(
            pass,
            Some(&mut |chunk| {
                pids.scan(chunk);
                if let Some(c) = chunks.as_deref_mut() {
                    c(chunk);
                }
            }),
            &mut consume,
        )?,
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let mut f = engine.finish();
    f.cycle_kind = kind;
    f.source_pids = pids;
    Ok(f)
}

/// Most sites delta debugging considers, and most replays it may run.
const DDMIN_MAX_SITES: usize = 64;
const DDMIN_MAX_REPLAYS: usize = 200;
/// Events all delta-debugging replays together may go through (a long
/// trace gets fewer replays; at least 4).
const DDMIN_EVENT_BUDGET: u64 = 400_000_000;

/// Delta debugging over call sites when a failure is not explained by a
/// leaked buffer: an out-of-memory, or growth with nothing leaked (memory
/// that is held across cycles and released only at close).
fn minimal_sites(
    src: &dyn EventSource,
    opts: &ReplayOptions,
    rule: &CycleRule,
    findings: &Findings,
    growth: &[accumulation::Growth],
) -> Option<(String, Vec<SiteId>, u32)> {
    let (failure, candidates): (&str, Vec<SiteId>) = if findings.oom.is_some() {
        (
            "oom",
            findings.oom_resident_sites.iter().map(|s| s.0).collect(),
        )
    } else if !growth.is_empty() && findings.leaks.is_empty() {
        // Buffers first, then kernel binaries kept across cycles.
        let mut sites: Vec<SiteId> = findings.site_left_behind.iter().map(|s| s.0).collect();
        for (s, _) in &findings.program_site_left_behind {
            if !sites.contains(s) {
                sites.push(*s);
            }
        }
        ("growth", sites)
    } else {
        return None;
    };
    let candidates: Vec<SiteId> = candidates.into_iter().take(DDMIN_MAX_SITES).collect();
    let mut replays = 0u32;
    let quiet = ReplayOptions {
        progress: false,
        ..opts.clone()
    };
    let budget =
        (DDMIN_EVENT_BUDGET / src.num_events().max(1)).clamp(4, DDMIN_MAX_REPLAYS as u64) as usize;
    // One bar for the whole search (the replays themselves stay quiet).
    let bar = (opts.progress && src.num_events() >= PROGRESS_MIN_EVENTS).then(|| {
        let bar = ProgressBar::new(budget as u64);
        if let Ok(style) =
            ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} replays at most")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(format!("ddmin {failure}"));
        bar
    });
    let found = ddmin::ddmin(&candidates, budget, |set| {
        replays += 1;
        if let Some(b) = &bar {
            b.inc(1);
        }
        let release: FastSet<SiteId> = set.iter().copied().collect();
        let cycles = CycleInput::Online(rule.clone());
        match run_engine(
            src,
            &quiet,
            cycles,
            Some(&release),
            failure == "oom",
            "ddmin",
            PassWatchers::default(),
        ) {
            Ok(f) => match failure {
                "oom" => f.oom.is_none(),
                _ => accumulation::growth(&f.cycles, opts.warmup).is_empty(),
            },
            Err(_) => false,
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Some((failure.to_owned(), found?, replays))
}

#[cfg(test)]
mod tests;
