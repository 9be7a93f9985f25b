//! The standard synthetic benchmark workload: a deterministic (seeded) stream
//! of tt-metal-like device-memory events.
//!
//! What it models: one Python process drives `devices` Wormhole devices
//! (default 8). Work is a sequence of ttnn ops (`OpBegin`/`OpEnd`), each on
//! one device: it may load its program once per device (program cache),
//! allocate circular buffers (freed at the op's end), allocate intermediate
//! buffers freed before the op ends, and output tensors that stay live for a
//! while and are freed later by one of a few "deallocate" call sites.
//! Buffers are multiples of 2048-byte tile pages, 32 KB to 64 MB in DRAM and
//! up to 2 MB in L1, interleaved or sharded, and get the address a first-fit
//! allocator (DRAM bottom-up, L1 top-down, one free list per bank manager)
//! would give them, so addresses are reused as on a device. 60 allocating call
//! sites (Python-looking stacks 5-7 frames deep) and 4 freeing sites.
//!
//! Addresses are meant to match the model exactly: the recorded
//! `DeviceConfig` is a self-consistent wormhole_b0 layout (the model accepts
//! it as is) and the generator's first fit uses the same ranges, rounding and
//! directions as `ttalloc_model::alloc`, so `ttalloc replay` on a generated
//! trace reports zero divergences (a divergence there is a bug in one of the
//! two). Program binaries and the trace buffer are not placed by the
//! generator (their events carry no address); the model puts them at the top
//! of DRAM and in the trace region, away from the generator's bottom-up DRAM
//! buffers.
//!
//! The workload is split into `cycles` (default 1), each starting with a
//! `Marker "cycle K"` (K from 1) and ending with every live buffer freed — except
//! the buffers of `leak_site`, which from cycle `from_cycle` on are never freed.
//! With `reopen_devices` the devices are closed at the end of every cycle and
//! opened again at the start of the next one.
//!
//! Files: [`generator`] (the event stream), [`layout`] (the recorded device
//! layout and the generator's first fit), [`vocabulary`] (ops and call
//! sites), [`rng`].

mod generator;
mod layout;
mod rng;
mod vocabulary;

pub use generator::Synth;

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use ttalloc_model::{Event, InternTables};
use ttalloc_trace::{TraceError, TraceHeader, TraceWriter, WriterOptions};

/// Number of allocating call sites (`LeakSite::site` is an index below this).
pub const NUM_ALLOC_SITES: usize = 60;
pub const TILE_PAGE: u64 = 2048;
pub const PID: u32 = 4242;
/// First timestamp: 2025-11-23T12:53:20Z in ns.
pub const START_TS: u64 = 1_763_902_400_000_000_000;

/// One call site whose buffers are never freed from a cycle on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LeakSite {
    /// Index of the allocating site, `0..NUM_ALLOC_SITES`.
    pub site: usize,
    /// First cycle (1-based) whose buffers from this site leak.
    pub from_cycle: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynthOptions {
    /// Target number of events (the generator ends near it — a cycle ends at
    /// an op boundary, so within about ten events per cycle;
    /// `SynthStats::events` is exact).
    pub events: u64,
    pub seed: u64,
    pub devices: u32,
    pub cycles: u32,
    pub leak_site: Option<LeakSite>,
    pub reopen_devices: bool,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            events: 100_000,
            seed: 1,
            devices: 8,
            cycles: 1,
            leak_site: None,
            reopen_devices: false,
        }
    }
}

/// Exactly what was generated.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SynthStats {
    pub events: u64,
    /// Every `EventTag::name`, zeros included.
    pub by_kind: BTreeMap<String, u64>,
    pub buffers_allocated: u64,
    pub buffers_freed: u64,
    /// Buffers of the leak site never freed, and their bytes (all cycles).
    pub leaked_buffers: u64,
    pub leaked_bytes: u64,
    /// Leaked bytes per cycle (index 0 = cycle 1).
    pub leaked_bytes_per_cycle: Vec<u64>,
    /// The leak site's `SiteId` in the trace's intern tables.
    pub leak_site_id: Option<u32>,
    /// Distinct allocating + freeing call sites.
    pub call_sites: usize,
}

impl SynthStats {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("stats serialize")
    }
}

/// Generates the whole workload in memory (for tests and small N).
pub fn generate(opts: &SynthOptions) -> (InternTables, Vec<Event>, SynthStats) {
    let mut t = InternTables::new();
    let mut s = Synth::new(opts.clone(), &mut t);
    let mut events = Vec::new();
    while let Some(e) = s.next_event() {
        events.push(e);
    }
    (t, events, s.stats().clone())
}

/// The header synthetic traces carry.
pub fn synth_header(opts: &SynthOptions) -> TraceHeader {
    let mut h = TraceHeader::new(
        vec![
            "ttalloc-synth".into(),
            "-n".into(),
            opts.events.to_string(),
            "--seed".into(),
            opts.seed.to_string(),
        ],
        "synthetic".into(),
    );
    h.start_time_ns = START_TS;
    h
}

/// Writes the workload to `path` as a finished trace.
pub fn write_trace(
    path: &Path,
    opts: &SynthOptions,
    wopts: WriterOptions,
) -> Result<SynthStats, TraceError> {
    let mut w = TraceWriter::create(path, synth_header(opts), wopts)?;
    let mut s = Synth::new(opts.clone(), w.interner_mut());
    while let Some(e) = s.next_event() {
        w.push(&e)?;
    }
    w.finish()?;
    Ok(s.stats().clone())
}

#[cfg(test)]
mod tests;
