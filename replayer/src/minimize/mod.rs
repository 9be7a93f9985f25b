//! `ttalloc minimize`: the smallest sub-trace that still shows a finding.
//!
//! ```text
//! trace ──one pass: cycles, prerequisites──> original replay ──> the finding to keep (target)
//!       ──> delta debugging: cycles, processes, devices, call sites, events
//!           (every candidate closed under prerequisites, replayed from the file's
//!            blocks or from memory, cached)
//!       ──> sweep to 1-minimal ──> pruned intern tables + provenance ──> OUT.zst
//! ```
//!
//! Every candidate that keeps the whole trace before a checkpoint (the
//! trace file's, or taken in memory every 65,536 events) replays from it
//! when that cannot change the verdict (`resume`).
//!
//! The result is 1-minimal: removing any one remaining event, together
//! with the events that need it (a free needs its alloc, a device event its
//! device's open and close, ...), loses the finding.

mod deps;
mod output;
mod resume;
mod search;
mod store;
mod target;

pub use deps::{Deps, DepsBuilder};
pub use search::{is_one_minimal, Oracle};
pub use store::{EventStore, Part, TraceEvents};
pub use target::{site_name, still_shows, FindingKind, Selection, Target};

use crate::cycles::CycleScanner;
use crate::options::ReplayOptions;
use crate::source::{Chunk, EventSource};
use crate::{ReplayError, Result};
use serde::Serialize;
use std::path::Path;
use ttalloc_model::{Event, InternTables};
use ttalloc_trace::checkpoint::checkpoints_of;
use ttalloc_trace::{Checkpoint, Provenance, TraceHeader, TraceReader};

/// What `minimize` is asked to keep.
#[derive(Clone, Debug, Default)]
pub struct MinimizeOptions {
    /// The finding kind (`--keep`); the most severe present when None.
    pub keep: Option<FindingKind>,
    /// Only a finding whose call stack has a frame of this function (`--site`).
    pub site_function: Option<String>,
    /// OOM: also keep tt-metal's exact message (`--exact`).
    pub exact: bool,
    pub replay: ReplayOptions,
    /// Replay every candidate from the first event, ignoring checkpoints
    /// (for comparison; the result is the same).
    pub from_start: bool,
}

/// The outcome (`--json` prints it).
#[derive(Clone, Debug, Serialize)]
pub struct Minimized {
    pub original_events: u64,
    pub kept_events: u64,
    /// Replays run (cache hits not counted).
    pub replays: u32,
    pub cache_hits: u32,
    /// The finding kept, in words.
    pub finding: String,
    pub kind: FindingKind,
    #[serde(skip)]
    pub events: Vec<Event>,
    #[serde(skip)]
    pub interner: InternTables,
    /// Original ordinals of the kept events.
    #[serde(skip)]
    pub kept: Vec<u32>,
    /// Events all replays went through, and the replays that started at a
    /// checkpoint instead of the first event.
    pub events_replayed: u64,
    pub resumed_replays: u32,
    /// Checkpoints that could not be used (damaged), in words.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Minimises events held in memory (ordinals are positions in `events`).
pub fn minimize_events(
    events: &[Event],
    interner: &InternTables,
    opts: &MinimizeOptions,
    on_replay: Option<Box<dyn FnMut(u32, usize) + '_>>,
) -> Result<Minimized> {
    let mut warnings = Vec::new();
    let checkpoints = if opts.from_start {
        Vec::new()
    } else {
        checkpoints_of(events, resume::EVERY, interner).unwrap_or_else(|e| {
            warnings.push(format!("no checkpoints: {e}"));
            Vec::new()
        })
    };
    let mut first = FirstPass::new(opts, events.len());
    events.each_in(0..events.len(), &mut |at, run| {
        first.take(at, run);
        Ok(())
    })?;
    minimize_from(
        &events,
        first,
        interner,
        opts,
        checkpoints,
        warnings,
        on_replay,
    )
}

/// What one pass over the trace gathers before the search: the cycle
/// boundaries and every event's prerequisites.
struct FirstPass {
    scanner: CycleScanner,
    deps: DepsBuilder,
}

impl FirstPass {
    /// A pass over about `events` events (their tables sized at once: grown
    /// by doubling, the 10M-event trace's two took 134 MB for 80 MB of
    /// entries), whose cycles the replay options' mode cuts (a scanner for
    /// that mode keeps no op spans it cannot use: every op's, 50 MB of
    /// that trace, for the `auto` mode's markers).
    fn new(opts: &MinimizeOptions, events: usize) -> FirstPass {
        FirstPass {
            scanner: CycleScanner::for_mode(&opts.replay.cycles),
            deps: DepsBuilder::with_capacity(events),
        }
    }

    /// The events from ordinal `at` on.
    fn take(&mut self, at: usize, events: &[Event]) {
        self.scanner.scan(at as u64, events);
        for (k, e) in events.iter().enumerate() {
            self.deps.push((at + k) as u32, e);
        }
    }

    /// The events of `part`, from ordinal `at` on.
    fn take_part(&mut self, at: usize, part: Part<'_>) {
        match part {
            Part::Block(columns) => {
                self.scanner.scan_chunk(&Chunk::Columns {
                    first: at as u64,
                    columns,
                });
                self.deps.push_columns(at as u32, columns);
            }
            Part::Events(events) => self.take(at, events),
            Part::Event(e) => self.take(at, std::slice::from_ref(e)),
        }
    }
}

/// [`minimize_events`] of a store, with the first pass over it made and
/// the checkpoints to resume candidates from.
fn minimize_from(
    events: &dyn EventStore,
    first: FirstPass,
    interner: &InternTables,
    opts: &MinimizeOptions,
    checkpoints: Vec<Checkpoint>,
    warnings: Vec<String>,
    mut on_replay: Option<Box<dyn FnMut(u32, usize) + '_>>,
) -> Result<Minimized> {
    // The original replay: its findings pick the target, its cycle rule is
    // reused for every subset.
    let FirstPass { scanner, deps } = first;
    let rule = scanner.rule(&opts.replay.cycles, interner);
    let cycles = scanner.spans(&rule, interner);
    drop(scanner);
    let selection = Selection {
        kind: opts.keep,
        site_function: opts.site_function.as_deref(),
        exact: opts.exact,
        warmup: opts.replay.warmup,
    };
    let points: Vec<u64> = checkpoints.iter().map(|c| c.next_event).collect();
    let (original, known, first_events) = {
        let dummy = Target::none();
        let mut o = Oracle::new(events, interner, &dummy, &opts.replay, rule.clone());
        let (findings, known) = o.replay_all(&points)?;
        (findings, known, o.events_replayed)
    };
    let target = target::select(&original, events, interner, &selection)?;
    let mut deps = deps.finish();
    let mut oracle = Oracle::new(events, interner, &target, &opts.replay, rule);
    oracle.on_replay = on_replay.take();
    oracle.resume_points = resume::usable(
        checkpoints.into_iter().zip(known).collect(),
        &target,
        &original,
    );
    let kept = search::minimise(&mut oracle, &mut deps, &cycles.spans, events.len() as u32)?;
    let (replays, cache_hits) = (oracle.replays + 1, oracle.cache_hits);
    let (events_replayed, resumed_replays) =
        (oracle.events_replayed + first_events, oracle.resumed);
    drop(oracle);
    let (events_out, interner_out) = output::prune(events, &kept, interner)?;
    Ok(Minimized {
        original_events: events.len() as u64,
        kept_events: kept.len() as u64,
        replays,
        cache_hits,
        finding: target.describe(interner),
        kind: target.kind,
        events: events_out,
        interner: interner_out,
        kept,
        events_replayed,
        resumed_replays,
        warnings,
    })
}

/// The refusal of a trace with more events than ordinals can name.
fn too_many(events: u64) -> Result<()> {
    if events >= u32::MAX as u64 {
        return Err(ReplayError::Usage(format!(
            "{events} events are more than minimize handles ({})",
            u32::MAX - 1
        )));
    }
    Ok(())
}

/// Reads `input`, minimises it and writes `output`. A trace with
/// checkpoints is read from the file again for each candidate, a block at
/// a time (`store`); one without (format 2.0/2.1) is held in memory, where
/// its checkpoints are taken.
pub fn minimize_file(
    input: &Path,
    output: &Path,
    opts: &MinimizeOptions,
    on_replay: Option<Box<dyn FnMut(u32, usize) + '_>>,
) -> Result<Minimized> {
    let reader = TraceReader::open(input)?;
    if let Some(t) = reader.truncation() {
        return Err(ReplayError::Usage(format!(
            "{}: the trace is truncated at byte {} of {} ({}); run `ttalloc repair` first",
            input.display(),
            t.valid_up_to,
            t.file_size,
            t.reason
        )));
    }
    too_many(reader.num_events())?;
    let m = if reader.checkpoints().is_empty() {
        let mut events = Vec::with_capacity(reader.num_events() as usize);
        reader.visit(&mut |_, chunk| {
            events.extend_from_slice(chunk);
            Ok(())
        })?;
        too_many(events.len() as u64)?;
        let mut m = minimize_events(&events, reader.interner(), opts, on_replay)?;
        if let Some(e) = reader.checkpoint_index_error() {
            m.warnings.insert(0, format!("{}: {e}", input.display()));
        }
        m
    } else {
        let mut warnings = Vec::new();
        let checkpoints = if opts.from_start {
            Vec::new()
        } else {
            (0..reader.checkpoints().len())
                .filter_map(|i| {
                    reader
                        .checkpoint(i)
                        .map_err(|e| warnings.push(format!("{}: {e}; not used", input.display())))
                        .ok()
                })
                .collect()
        };
        let expected = usize::try_from(reader.num_events()).unwrap_or(0);
        let mut first = FirstPass::new(opts, expected);
        let events = TraceEvents::load(&reader, &mut |at, part| {
            too_many((at + part.len()) as u64)?;
            first.take_part(at, part);
            Ok(())
        })?;
        // The checkpoints count every event the file holds; the search
        // numbers the events it read. Events of kinds newer than this
        // reader were skipped: the two no longer agree.
        let checkpoints = if events.len() as u64 == reader.num_events() {
            checkpoints
        } else {
            warnings.push(format!(
                "{}: {} of its {} events are of kinds this ttalloc does not know and were left out; its checkpoints are not used",
                input.display(),
                reader.num_events() - events.len() as u64,
                reader.num_events()
            ));
            Vec::new()
        };
        minimize_from(
            &events,
            first,
            reader.interner(),
            opts,
            checkpoints,
            warnings,
            on_replay,
        )?
    };
    let source = input.file_name().map_or_else(
        || input.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let provenance = Provenance {
        source,
        source_events: m.original_events,
        finding: m.finding.clone(),
        ttalloc_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let header: TraceHeader = reader.header().clone();
    output::write(output, header, &provenance, &m.events, m.interner.clone())?;
    Ok(m)
}
