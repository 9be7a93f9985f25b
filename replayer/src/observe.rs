//! Per-event hooks into a replay: an [`Observer`] sees every event right
//! after the engine applied it, with a read-only [`EngineView`] of what the
//! simulated devices hold — memory over time and exports are built this way
//! instead of with a second replay loop.

use crate::engine::{CycleInput, Engine, EngineSetup, ModelAddresses};
use crate::findings::{Findings, PerType};
use crate::options::ReplayOptions;
use crate::source::{Chunk, EventSource, Item};
use ttalloc_model::{DeviceId, SiteId};

/// Sees a replay event by event. Keep `event` cheap: it runs for every event.
pub trait Observer {
    /// A chunk of consecutive events is about to be replayed (its timestamps
    /// can be read here; `event` then sees its events one by one).
    fn chunk(&mut self, _chunk: &Chunk<'_>) {}
    /// Event `ord` has just been applied.
    fn event(&mut self, ord: u64, item: &Item<'_>, engine: &EngineView<'_, '_>);
    /// A cycle of this pass starts or ends at event `ord` (it starts before
    /// `event` sees it; it may end at the event before the one being
    /// applied).
    fn cycle_bound(&mut self, _ord: u64) {}
}

/// What an observer may look at in the engine.
pub struct EngineView<'e, 'a> {
    engine: &'e Engine<'a>,
}

impl<'e, 'a> EngineView<'e, 'a> {
    pub(crate) fn new(engine: &'e Engine<'a>) -> Self {
        EngineView { engine }
    }

    /// Resident bytes per buffer type (DRAM, L1, L1_SMALL, TRACE) of every
    /// device seen so far.
    pub fn resident(&self) -> impl Iterator<Item = (DeviceId, &PerType)> {
        self.engine.resident_by_device()
    }

    /// Call sites and bytes of what is resident in one device's buffer type
    /// (`slot` as in [`crate::findings::TYPES`]), largest first.
    pub fn resident_sites(&self, device: DeviceId, slot: usize) -> Vec<(SiteId, u64)> {
        self.engine.resident_sites_of(device, slot)
    }

    /// What the model holds that a checkpoint does not say: with it, a
    /// replay resumed at a checkpoint here is exact ([`Engine::resume`]).
    pub fn model_addresses(&self) -> ModelAddresses {
        self.engine.model_addresses()
    }
}

/// Replays `src` once with `observer` watching, cycles cut by `cycles`
/// (pass `CycleInput::Spans(&[])` when cycles do not matter).
pub fn replay_observed(
    src: &dyn EventSource,
    opts: &ReplayOptions,
    cycles: CycleInput<'_>,
    observer: &mut dyn Observer,
) -> crate::Result<Findings> {
    let mut engine = Engine::new(EngineSetup {
        arch: opts.arch,
        overrides: &opts.overrides,
        warmup: opts.warmup,
        cycles,
        interner: src.interner(),
        release_sites: None,
        stop_at_oom: false,
    });
    engine.set_observer(observer);
    src.visit_chunks(None, &mut |chunk| engine.feed_chunk(chunk))?;
    Ok(engine.finish())
}
