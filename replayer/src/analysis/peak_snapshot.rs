//! The call sites resident at a report's highest peak, without a second
//! replay of the whole trace. The one replay notes, at each checkpoint of
//! the trace, what the model knew there ([`PeakWatch`]), and keeps the one
//! before the highest peak so far; afterwards a replay resumed at that
//! checkpoint runs up to the peak's event and reads what is resident
//! ([`sites_at_peak`]). A trace without checkpoints replays its prefix.

use super::PeakPoint;
use crate::engine::{CycleInput, Engine, EngineSetup, ModelAddresses};
use crate::findings::type_slot;
use crate::observe::{EngineView, Observer};
use crate::options::ReplayOptions;
use crate::source::{Chunk, EventSource, Item};
use crate::timeline::{PeakSeen, Timeline, TimelineRecorder};
use std::rc::Rc;
use ttalloc_model::{Event, SiteId};
use ttalloc_trace::TraceReader;

/// A checkpoint of the trace, with what the model knew there.
pub(super) struct ResumeAt {
    checkpoint: usize,
    known: ModelAddresses,
}

/// What [`PeakWatch::finish`] gives.
pub(super) struct Finished {
    pub timeline: Timeline,
    pub best: Option<PeakSeen>,
    pub at_best: Option<Rc<ResumeAt>>,
    pub seen_times: Vec<(u64, u64)>,
}

/// Records the timeline, and remembers where a replay to its highest peak
/// can start.
pub(super) struct PeakWatch {
    timeline: TimelineRecorder,
    /// (last event before checkpoint i, i), in event order.
    boundaries: Vec<(u64, usize)>,
    next: usize,
    /// The latest checkpoint passed.
    latest: Option<Rc<ResumeAt>>,
    /// The latest checkpoint before the highest peak so far.
    at_best: Option<Rc<ResumeAt>>,
}

impl PeakWatch {
    pub fn new(timeline: TimelineRecorder, reader: Option<&TraceReader>) -> Self {
        let boundaries = reader
            .map(|r| {
                r.checkpoints()
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.next_event > 0)
                    .map(|(i, c)| (c.next_event - 1, i))
                    .collect()
            })
            .unwrap_or_default();
        PeakWatch {
            timeline,
            boundaries,
            next: 0,
            latest: None,
            at_best: None,
        }
    }

    /// The timeline, its highest peak, the checkpoint before that peak,
    /// and the times of the events the pass saw whose times a report asks
    /// for ([`TimelineRecorder::take_seen_times`]).
    pub fn finish(mut self) -> Finished {
        let best = self.timeline.best_peak();
        let seen_times = self.timeline.take_seen_times();
        Finished {
            timeline: self.timeline.finish(),
            best,
            at_best: self.at_best,
            seen_times,
        }
    }
}

impl Observer for PeakWatch {
    fn chunk(&mut self, chunk: &Chunk<'_>) {
        self.timeline.chunk(chunk);
    }

    fn cycle_bound(&mut self, ord: u64) {
        self.timeline.cycle_bound(ord);
    }

    fn event(&mut self, ord: u64, item: &Item<'_>, engine: &EngineView<'_, '_>) {
        self.timeline.event(ord, item, engine);
        if self.timeline.best_peak().is_some_and(|b| b.event == ord) {
            // Before the checkpoint that may follow this very event: a
            // replay resumed there would not see the peak.
            self.at_best = self.latest.clone();
        }
        while let Some(&(last, checkpoint)) = self.boundaries.get(self.next) {
            if last > ord {
                break;
            }
            if last == ord {
                self.latest = Some(Rc::new(ResumeAt {
                    checkpoint,
                    known: engine.model_addresses(),
                }));
            }
            self.next += 1;
        }
    }
}

/// Whether `seen` (the timeline's highest peak) is the report's `peak`.
pub(super) fn same_peak(seen: Option<PeakSeen>, peak: &PeakPoint) -> bool {
    seen.is_some_and(|s| {
        s.device == peak.device
            && Some(s.slot) == type_slot(peak.buffer_type)
            && s.bytes == peak.bytes
            && s.event == peak.event
    })
}

/// Call sites and bytes resident at `peak` (largest first), from a replay
/// resumed at `from` (a checkpoint before the peak) or from the start,
/// stopped after the peak's event.
pub(super) fn sites_at_peak(
    src: &dyn EventSource,
    reader: Option<&TraceReader>,
    opts: &ReplayOptions,
    peak: &PeakPoint,
    from: Option<&ResumeAt>,
) -> crate::Result<Vec<(SiteId, u64)>> {
    let Some(slot) = type_slot(peak.buffer_type) else {
        return Ok(Vec::new());
    };
    let setup = || EngineSetup {
        arch: opts.arch,
        overrides: &opts.overrides,
        warmup: opts.warmup,
        cycles: CycleInput::Spans(&[]),
        interner: src.interner(),
        release_sites: None,
        stop_at_oom: false,
    };
    if let (Some(r), Some(at)) = (reader, from) {
        // A checkpoint that cannot be read or restored is passed over: the
        // prefix replay below gives the same answer, slower.
        let resumed = r
            .checkpoint(at.checkpoint)
            .ok()
            .filter(|cp| cp.next_event <= peak.event)
            .and_then(|cp| {
                Some((
                    cp.next_event,
                    Engine::resume(setup(), &cp, Some(&at.known)).ok()?,
                ))
            });
        if let Some((start, mut engine)) = resumed {
            feed_blocks(r, &mut engine, start, peak.event)?;
            return Ok(engine.resident_sites_of(peak.device, slot));
        }
    }
    let mut engine = Engine::new(setup());
    src.visit_prefix(peak.event + 1, &mut |first, events| {
        feed_upto(&mut engine, first, events, peak.event)
    })?;
    Ok(engine.resident_sites_of(peak.device, slot))
}

/// Feeds the events `start..=last` of `r` to `engine`, block by block.
fn feed_blocks(
    r: &TraceReader,
    engine: &mut Engine<'_>,
    start: u64,
    last: u64,
) -> crate::Result<()> {
    let mut events = Vec::new();
    for (i, block) in r.blocks().iter().enumerate().skip(r.block_of(start)) {
        if block.first_event > last {
            break;
        }
        r.decode_block(i, &mut events)?;
        let skip = start.saturating_sub(block.first_event) as usize;
        let from = skip.min(events.len());
        feed_upto(
            engine,
            block.first_event + from as u64,
            &events[from..],
            last,
        )?;
    }
    Ok(())
}

/// Feeds the events of `events` (the first is event `first`) up to event `last`.
fn feed_upto(
    engine: &mut Engine<'_>,
    first: u64,
    events: &[Event],
    last: u64,
) -> crate::Result<()> {
    let n = (last + 1).saturating_sub(first).min(events.len() as u64) as usize;
    if n > 0 {
        engine.feed(first, &events[..n])?;
    }
    Ok(())
}
