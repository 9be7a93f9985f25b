//! The replay engine: drives events, in order, through one simulated device
//! per device id and keeps the books a leak hunt needs.
//!
//! Two views of memory are kept per device and buffer type:
//! - *tracked*: what a tracker that only sees tracking calls believes is
//!   live (allocated and not freed by a tracking call). A buffer still live
//!   when its device closes stays tracked: tt-metal's `deallocate_all` frees
//!   it without telling anyone. Cycles, growth and leaks use this view.
//! - *resident*: what the simulated device really holds. Peaks use it.
//!
//! The engine consumes chunks of consecutive events ([`Engine::feed_chunk`]):
//! a trace file's blocks as decoded columns (no `Event` is built for buffer
//! allocs and frees), or slices of events in memory ([`Engine::feed`]).

use crate::cycles::{Boundary, CycleRule, CycleSpan, OnlineCycles};
use crate::findings::*;
use crate::freed::FreedSet;
use crate::observe::Observer;
use crate::sim::{AllocFailure, Oom, Req, Sim};
use crate::source::{Chunk, Item};
use std::collections::BTreeMap;
use ttalloc_model::hash::{FastMap, FastSet};
use ttalloc_model::{
    Arch, BufferId, BufferType, DeviceConfig, DeviceId, Event, EventKind, InternTables, SiteId,
    StringId,
};

mod refusal;

const RESIDENT: u8 = 1;
const OUTLIVED: u8 = 2;
/// The model could not place it: not tracked, not a leak; its free is silent.
const FAILED: u8 = 4;

#[derive(Clone, Copy, Debug)]
struct Live {
    dev: u16,
    /// `type_slot`, or `NO_SLOT` for SYSTEM_MEMORY.
    slot: u8,
    flags: u8,
    /// 1-based cycle of the allocation, 0 outside every cycle.
    cycle: u32,
    site: SiteId,
    /// The buffer's label (`StringId::EMPTY` if none); fits the padding before `size`.
    label: StringId,
    size: u64,
    event: u64,
    /// Recorded address if any, else the model's; `u64::MAX` if none.
    address: u64,
    closed_at: u64,
}

const NO_SLOT: u8 = u8::MAX;
const NO_ADDR: u64 = u64::MAX;

struct Dev {
    id: DeviceId,
    sim: Option<Sim>,
    /// What the open simulator was built from.
    opened_with: Option<(Arch, DeviceConfig)>,
    /// A closed simulator (as empty as a new one), kept to be reopened with
    /// the same config: building a device costs far more than a reopen.
    spare: Option<(Arch, DeviceConfig, Sim)>,
    tracked: PerType,
    resident: PerType,
    peak: [Peak; 4],
    /// Highest resident bytes per type since the current cycle began.
    cycle_peak: PerType,
    /// Live objects (any flags) on this device, to skip scans at close.
    objects: u64,
}

/// Key of a program or trace in `others`.
type OtherKey = (ObjectKind, u16, u64);

/// Where cycle boundaries come from.
pub enum CycleInput<'a> {
    /// Precomputed spans (sorted, disjoint).
    Spans(&'a [CycleSpan]),
    /// Found while replaying, by a concrete rule.
    Online(CycleRule),
}

/// Engine settings beyond the user's options.
pub struct EngineSetup<'a> {
    pub arch: Arch,
    pub overrides: &'a DeviceConfig,
    pub warmup: usize,
    pub cycles: CycleInput<'a>,
    /// Resolves marker labels and op names for online cycles.
    pub interner: &'a InternTables,
    /// What-if mode (delta debugging): buffers allocated at these sites are
    /// released at the end of their cycle.
    pub release_sites: Option<&'a FastSet<SiteId>>,
    /// Stop at the first out-of-memory (delta debugging only needs to know
    /// whether one happens).
    pub stop_at_oom: bool,
}

pub struct Engine<'a> {
    setup: EngineSetup<'a>,
    devs: Vec<Dev>,
    last_dev: (DeviceId, usize),
    buffers: FastMap<u64, Live>,
    others: FastMap<OtherKey, Live>,
    /// Objects whose device closed while they were live: still tracked, no
    /// longer on any device (kept apart so closes only scan live objects).
    outlived: FastMap<u64, Live>,
    outlived_others: FastMap<OtherKey, Live>,
    freed: FreedSet,
    /// Cycle boundaries: precomputed spans, or a rule applied online.
    spans: &'a [CycleSpan],
    online: Option<OnlineCycles>,
    /// Cycles started so far (the current one's 1-based index).
    cycle_count: u32,
    /// Index in `spans` of the next cycle to start.
    next_cycle: usize,
    in_cycle: bool,
    cur_start: u64,
    /// The label of the marker that started the current cycle.
    cycle_label: Option<StringId>,
    /// With spans: where the next cycle starts / the current one ends.
    next_start: u64,
    cur_end: u64,
    /// Allocations of the current cycle, (key, event), in order. Entries of
    /// objects no longer tracked are dropped whenever the list doubles past
    /// `cycle_allocs_compact_at`, so it stays within a few times the live
    /// objects however long the cycle.
    cycle_allocs: Vec<(LiveKey, u64)>,
    cycle_allocs_compact_at: usize,
    site_left: FastMap<SiteId, u64>,
    program_site_left: FastMap<SiteId, u64>,
    live_before: BTreeMap<DeviceId, PerType>,
    f: Findings,
    events: u64,
    stopped: bool,
    /// Sees every event after it is applied (memory over time, exports).
    observer: Option<&'a mut dyn Observer>,
}

#[derive(Clone, Copy, Debug)]
enum LiveKey {
    Buffer(u64),
    Other(OtherKey),
}

impl<'a> Engine<'a> {
    pub fn new(setup: EngineSetup<'a>) -> Self {
        let (spans, online): (&[CycleSpan], _) = match &setup.cycles {
            CycleInput::Spans(s) => (s, None),
            CycleInput::Online(rule) => (&[], Some(OnlineCycles::new(rule.clone()))),
        };
        let next_start = spans.first().map_or(u64::MAX, |c| c.start_event);
        Engine {
            setup,
            devs: Vec::new(),
            last_dev: (DeviceId(u32::MAX), usize::MAX),
            buffers: FastMap::default(),
            others: FastMap::default(),
            outlived: FastMap::default(),
            outlived_others: FastMap::default(),
            freed: FreedSet::default(),
            spans,
            online,
            cycle_count: 0,
            cycle_label: None,
            next_cycle: 0,
            in_cycle: false,
            cur_start: 0,
            next_start,
            cur_end: u64::MAX,
            cycle_allocs: Vec::new(),
            cycle_allocs_compact_at: CYCLE_ALLOCS_MIN,
            site_left: FastMap::default(),
            program_site_left: FastMap::default(),
            live_before: BTreeMap::new(),
            f: Findings::default(),
            events: 0,
            stopped: false,
            observer: None,
        }
    }

    /// Lets `observer` see every event after it is applied.
    pub fn set_observer(&mut self, observer: &'a mut dyn Observer) {
        self.observer = Some(observer);
    }

    #[inline]
    fn observe(&mut self, ord: u64, item: &Item<'_>) {
        if let Some(o) = self.observer.take() {
            o.event(ord, item, &crate::observe::EngineView::new(self));
            self.observer = Some(o);
        }
    }

    /// True once `stop_at_oom` triggered; further events are ignored.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Replays `events`, the first of which has ordinal `first`.
    pub fn feed(&mut self, first: u64, events: &[Event]) -> crate::Result<()> {
        self.feed_chunk(&Chunk::Events { first, events })
    }

    /// Replays a chunk of consecutive events.
    pub fn feed_chunk(&mut self, chunk: &Chunk<'_>) -> crate::Result<()> {
        if let Some(o) = self.observer.as_deref_mut() {
            o.chunk(chunk);
        }
        let mut online = self.online.take();
        let result = match online.as_mut() {
            Some(o) => self.feed_online(o, chunk),
            None => self.feed_spans(chunk),
        };
        self.online = online;
        self.events = self.events.max(chunk.first() + chunk.len() as u64);
        result
    }

    fn feed_spans(&mut self, chunk: &Chunk<'_>) -> crate::Result<()> {
        chunk.try_for_each(|ord, item| {
            if self.stopped {
                return Ok(());
            }
            if ord == self.next_start {
                self.cur_end = self.spans[self.next_cycle].end_event;
                self.next_start = u64::MAX;
                self.start_cycle(ord, &item);
            }
            self.item(ord, &item)?;
            self.observe(ord, &item);
            if ord == self.cur_end {
                self.end_cycle(ord);
                self.cur_end = u64::MAX;
                self.next_cycle += 1;
                self.next_start = self
                    .spans
                    .get(self.next_cycle)
                    .map_or(u64::MAX, |c| c.start_event);
            }
            Ok(())
        })
    }

    fn feed_online(&mut self, cycles: &mut OnlineCycles, chunk: &Chunk<'_>) -> crate::Result<()> {
        let interner = self.setup.interner;
        chunk.try_for_each(|ord, item| {
            if self.stopped {
                return Ok(());
            }
            let b = match &item {
                // Buffer allocs and frees never bound a cycle.
                Item::Alloc(_) | Item::Free(_) => Boundary::default(),
                Item::Event(e) => cycles.boundary(e, interner),
                Item::Light(e) => cycles.boundary(e, interner),
            };
            if b.end_before && self.in_cycle {
                self.end_cycle(ord - 1);
            }
            if b.start && !self.in_cycle {
                self.start_cycle(ord, &item);
            }
            self.item(ord, &item)?;
            self.observe(ord, &item);
            if b.end_after && self.in_cycle {
                self.end_cycle(ord);
            }
            Ok(())
        })
    }

    #[inline]
    fn item(&mut self, ord: u64, item: &Item<'_>) -> crate::Result<()> {
        match item {
            Item::Alloc(a) => {
                let dev = self.dev_index(a.device)?;
                let req = Req {
                    buffer_type: a.buffer_type,
                    size: a.size,
                    page_size: a.page_size,
                    layout: a.layout,
                    num_cores: a.num_cores,
                    per_bank_size: a.per_bank_size,
                };
                self.alloc(ord, dev, a.buffer, &req, a.address, a.site, a.label)
            }
            Item::Free(x) => {
                let dev = self.dev_index(x.device)?;
                self.free(ord, dev, x.buffer, x.site);
                Ok(())
            }
            Item::Event(e) => self.event(ord, e),
            Item::Light(_) => Ok(()),
        }
    }

    fn start_cycle(&mut self, ord: u64, first: &Item<'_>) {
        self.in_cycle = true;
        self.cur_start = ord;
        self.cycle_label = match first {
            Item::Event(Event {
                kind: EventKind::Marker { label },
                ..
            }) => Some(*label),
            Item::Light(Event {
                kind: EventKind::Marker { label },
                ..
            }) => Some(*label),
            _ => None,
        };
        for d in &mut self.devs {
            d.cycle_peak = d.resident;
        }
        self.cycle_count += 1;
        self.cycle_allocs.clear();
        self.live_before = self.devs.iter().map(|d| (d.id, d.tracked)).collect();
    }

    fn cycle_number(&self) -> u32 {
        if self.in_cycle {
            self.cycle_count
        } else {
            0
        }
    }

    fn dev_index(&mut self, id: DeviceId) -> crate::Result<usize> {
        if self.last_dev.0 == id {
            return Ok(self.last_dev.1);
        }
        let idx = match self.devs.iter().position(|d| d.id == id) {
            Some(i) => i,
            None => {
                self.devs.push(Dev {
                    id,
                    sim: None,
                    opened_with: None,
                    spare: None,
                    tracked: [0; 4],
                    resident: [0; 4],
                    peak: [Peak::default(); 4],
                    cycle_peak: [0; 4],
                    objects: 0,
                });
                self.devs.len() - 1
            }
        };
        self.last_dev = (id, idx);
        Ok(idx)
    }

    /// The device's simulator: reopened as it was if the trace closed it,
    /// opened from the preset if the trace never opened it.
    fn sim(&mut self, dev: usize) -> crate::Result<&mut Sim> {
        if self.devs[dev].sim.is_none() {
            match self.devs[dev].spare.take() {
                // Used again after its close without a new DeviceOpen: as it was.
                Some((arch, config, sim)) => {
                    self.devs[dev].sim = Some(sim);
                    self.devs[dev].opened_with = Some((arch, config));
                }
                None => self.open(dev, self.setup.arch, &DeviceConfig::default())?,
            }
        }
        Ok(self.devs[dev].sim.as_mut().expect("opened above"))
    }

    fn open(&mut self, dev: usize, arch: Arch, recorded: &DeviceConfig) -> crate::Result<()> {
        let arch = if arch == Arch::Unknown {
            self.setup.arch
        } else {
            arch
        };
        let mut config = recorded.clone();
        config.overlay(self.setup.overrides);
        if let Some((a, c, sim)) = self.devs[dev].spare.take() {
            if a == arch && c == config {
                self.devs[dev].sim = Some(sim);
                self.devs[dev].opened_with = Some((arch, config));
                return Ok(());
            }
        }
        let sim = match Sim::open(arch, &config) {
            Ok(sim) => sim,
            // A recorded config the model cannot build: replay this device
            // from the preset (with the user's overrides) and say so.
            Err(recorded_error) if *recorded != DeviceConfig::default() => {
                // First keep the recorded layout but let the model derive the
                // bank sizes; failing that, the preset.
                let mut derived = recorded.clone();
                derived.dram_bank_size = None;
                derived.l1_bank_size = None;
                derived.overlay(self.setup.overrides);
                let (sim, what) = match Sim::open(arch, &derived) {
                    Ok(sim) => (sim, "the bank sizes derived from the recorded layout"),
                    Err(_) => {
                        derived = self.setup.overrides.clone();
                        let sim = Sim::open(arch, &derived).map_err(|message| {
                            crate::ReplayError::DeviceConfig {
                                device: self.devs[dev].id,
                                message,
                            }
                        })?;
                        (sim, "the preset")
                    }
                };
                let warning = format!(
                    "device {}: the recorded config is not usable ({recorded_error}); replayed with {what}",
                    self.devs[dev].id
                );
                if !self.f.warnings.contains(&warning) {
                    self.f.warnings.push(warning);
                }
                sim
            }
            Err(message) => {
                return Err(crate::ReplayError::DeviceConfig {
                    device: self.devs[dev].id,
                    message,
                })
            }
        };
        self.devs[dev].sim = Some(sim);
        // Spares are keyed by what was asked for, whatever it was built from.
        self.devs[dev].opened_with = Some((arch, config));
        Ok(())
    }

    /// A `DeviceOpen`. A device already open (used before its open, or
    /// opened twice) is rebuilt with the new config when it holds nothing;
    /// otherwise it keeps its config, and the report says which.
    fn device_open(
        &mut self,
        ord: u64,
        dev: usize,
        arch: Arch,
        config: &DeviceConfig,
    ) -> crate::Result<()> {
        let Some(sim) = self.devs[dev].sim.as_ref() else {
            return self.open(dev, arch, config);
        };
        let wanted_arch = if arch == Arch::Unknown {
            self.setup.arch
        } else {
            arch
        };
        let mut wanted = config.clone();
        wanted.overlay(self.setup.overrides);
        if self.devs[dev].opened_with.as_ref() == Some(&(wanted_arch, wanted)) {
            return Ok(());
        }
        if sim.holds_nothing() {
            self.devs[dev].sim = None;
            self.devs[dev].opened_with = None;
            return self.open(dev, arch, config);
        }
        let in_use = match &self.devs[dev].opened_with {
            Some((a, c)) if *c == *self.setup.overrides => format!("the {a} preset"),
            Some((a, c)) => {
                let keys: Vec<String> = c.known().iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("the {a} preset with {}", keys.join(", "))
            }
            None => "the config it was opened with".into(),
        };
        self.f.warnings.push(format!(
            "device {}: the device_open at event {ord} asks for another config, but the device \
             already holds memory allocated before it; replayed with {in_use}",
            self.devs[dev].id
        ));
        Ok(())
    }

    fn event(&mut self, ord: u64, e: &Event) -> crate::Result<()> {
        match &e.kind {
            EventKind::BufferAlloc {
                device,
                buffer,
                buffer_type,
                address,
                size,
                page_size,
                layout,
                num_cores,
                per_bank_size,
                label,
                site,
            } => {
                let dev = self.dev_index(*device)?;
                let req = Req {
                    buffer_type: *buffer_type,
                    size: *size,
                    page_size: *page_size,
                    layout: *layout,
                    num_cores: *num_cores,
                    per_bank_size: *per_bank_size,
                };
                self.alloc(ord, dev, *buffer, &req, *address, *site, *label)?;
            }
            EventKind::BufferFree {
                device,
                buffer,
                site,
            } => {
                let dev = self.dev_index(*device)?;
                self.free(ord, dev, *buffer, *site);
            }
            EventKind::DeviceOpen {
                device,
                arch,
                config,
            } => {
                let dev = self.dev_index(*device)?;
                self.device_open(ord, dev, *arch, config)?;
            }
            EventKind::DeviceClose { device } => {
                let dev = self.dev_index(*device)?;
                self.close(ord, dev);
            }
            EventKind::CbAlloc {
                device,
                address,
                size,
                cores,
                globally_allocated,
                site,
            } => {
                let dev = self.dev_index(*device)?;
                let sim = self.sim(dev)?;
                // Address 0 is firmware space, never a static CB's: it means
                // "not recorded" (graph captures), so place it as the
                // program's CB allocator does.
                let placed = if *address == 0 && !*globally_allocated {
                    sim.cb_place(*size, *cores)
                } else {
                    sim.cb_alloc(*address, *size, *cores, *globally_allocated)
                };
                let cb_bytes = sim.cb_bytes();
                let peak = self.f.cb_peak.entry(*device).or_default();
                *peak = (*peak).max(cb_bytes);
                if let Err(message) = placed {
                    self.f.cb_clashes += 1;
                    if self.f.first_cb_clash.is_none() {
                        self.f.first_cb_clash = Some(CbClash {
                            event: ord,
                            device: *device,
                            message,
                            site: *site,
                        });
                    }
                }
            }
            EventKind::CbFreeAll { device } => {
                let dev = self.dev_index(*device)?;
                self.sim(dev)?.cb_free_all();
            }
            EventKind::ProgramLoad {
                device,
                program,
                binary_size,
                site,
            } => {
                let dev = self.dev_index(*device)?;
                let key = (ObjectKind::Program, dev as u16, program.get());
                let sim = self.sim(dev)?;
                let mut placed = sim.load_program(program.get(), *binary_size);
                if let Err(AllocFailure::AlreadyLive) = placed {
                    // Loaded again while loaded: the first copy is gone.
                    sim.unload_program(program.get());
                    placed = sim.load_program(program.get(), *binary_size);
                }
                self.add_other(
                    ord,
                    dev,
                    key,
                    0,
                    *binary_size,
                    *site,
                    placed,
                    BufferType::Dram,
                );
            }
            EventKind::ProgramUnload { device, program } => {
                let dev = self.dev_index(*device)?;
                self.sim(dev)?.unload_program(program.get());
                self.remove_other((ObjectKind::Program, dev as u16, program.get()));
            }
            EventKind::TraceCapture {
                device,
                trace_id,
                size,
                site,
            } => {
                let dev = self.dev_index(*device)?;
                let key = (ObjectKind::Trace, dev as u16, trace_id.get() as u64);
                let sim = self.sim(dev)?;
                let mut placed = sim.capture_trace(trace_id.get(), *size);
                if let Err(AllocFailure::AlreadyLive) = placed {
                    sim.release_trace(trace_id.get());
                    placed = sim.capture_trace(trace_id.get(), *size);
                }
                self.add_other(ord, dev, key, 3, *size, *site, placed, BufferType::Trace);
            }
            EventKind::TraceRelease { device, trace_id } => {
                let dev = self.dev_index(*device)?;
                self.sim(dev)?.release_trace(trace_id.get());
                self.remove_other((ObjectKind::Trace, dev as u16, trace_id.get() as u64));
            }
            EventKind::ProcessStart { .. }
            | EventKind::ProcessExit { .. }
            | EventKind::OpBegin { .. }
            | EventKind::OpEnd
            | EventKind::Marker { .. } => {}
            EventKind::AllocRefused {
                device,
                buffer_type,
                size,
                page_size,
                layout,
                num_cores,
                per_bank_size,
                message,
                site,
            } => {
                let dev = self.dev_index(*device)?;
                let req = Req {
                    buffer_type: *buffer_type,
                    size: *size,
                    page_size: *page_size,
                    layout: *layout,
                    num_cores: *num_cores,
                    per_bank_size: *per_bank_size,
                };
                self.refused(ord, dev, &req, *message, *site)?;
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn alloc(
        &mut self,
        ord: u64,
        dev: usize,
        buffer: BufferId,
        req: &Req,
        recorded: Option<u64>,
        site: SiteId,
        label: StringId,
    ) -> crate::Result<()> {
        let slot = type_slot(req.buffer_type);
        self.freed.remove(buffer.get());
        let cycle = self.cycle_number();
        let mut live = Live {
            dev: dev as u16,
            slot: slot.map_or(NO_SLOT, |s| s as u8),
            flags: 0,
            cycle,
            site,
            label,
            size: req.size,
            event: ord,
            address: recorded.unwrap_or(NO_ADDR),
            closed_at: 0,
        };
        if let Some(s) = slot {
            let device = self.devs[dev].id;
            let mut placed = self.sim(dev)?.alloc(buffer, req);
            if let Err(AllocFailure::AlreadyLive) = placed {
                // A live id allocated again on this device: the first one is
                // gone for good (settled before the new one counts, so peaks
                // never hold both).
                match self.buffers.remove(&buffer.get()) {
                    Some(old) => {
                        self.f.duplicate_allocs += 1;
                        self.forget(old, buffer.get());
                    }
                    None => {
                        self.sim(dev)?.free(buffer);
                    }
                }
                placed = self.sim(dev)?.alloc(buffer, req);
            }
            let sim = self.sim(dev)?;
            match placed {
                Ok(addr) => {
                    live.flags = RESIDENT;
                    match recorded {
                        Some(rec) if rec != addr => {
                            // Re-sync on the recorded address so one divergence
                            // does not cascade into every later placement.
                            sim.free(buffer);
                            if !sim.alloc_at(buffer, req, rec) {
                                sim.alloc(buffer, req).ok();
                            }
                            self.divergence(ord, device, buffer, rec, Some(addr));
                        }
                        Some(_) => {}
                        None => live.address = addr,
                    }
                }
                Err(AllocFailure::Oom(oom)) => {
                    live.flags = FAILED;
                    self.out_of_memory(ord, dev, s, req.buffer_type, req.size, oom, site);
                }
                Err(other) => {
                    let why = other.reason();
                    live.flags = FAILED;
                    self.rejected(why);
                    if let Some(rec) = recorded {
                        self.divergence(ord, device, buffer, rec, None);
                    }
                }
            }
            if live.flags & FAILED == 0 {
                let d = &mut self.devs[dev];
                d.tracked[s] += req.size;
                d.resident[s] += req.size;
                d.cycle_peak[s] = d.cycle_peak[s].max(d.resident[s]);
                if d.resident[s] > d.peak[s].bytes {
                    d.peak[s] = Peak {
                        bytes: d.resident[s],
                        event: ord,
                    };
                }
            }
        }
        self.devs[dev].objects += 1;
        // One lookup on the hot path; a replaced entry is a live id allocated
        // again that this device's model did not hold (not placed, or on
        // another device).
        if let Some(old) = self.buffers.insert(buffer.get(), live) {
            self.f.duplicate_allocs += 1;
            self.untrack(&old);
            let od = &mut self.devs[old.dev as usize];
            od.objects -= 1;
            if old.dev as usize != dev && old.flags & RESIDENT != 0 {
                if let Some(sim) = od.sim.as_mut() {
                    sim.free(buffer);
                }
            }
        } else if !self.outlived.is_empty() {
            if let Some(old) = self.outlived.remove(&buffer.get()) {
                self.untrack(&old);
            }
        }
        self.note_alloc(LiveKey::Buffer(buffer.get()), ord);
        Ok(())
    }

    /// An object still tracked (live, or outlived its device).
    #[inline]
    fn tracked(&self, key: LiveKey) -> Option<Live> {
        match key {
            LiveKey::Buffer(id) => self.buffers.get(&id).or_else(|| self.outlived.get(&id)),
            LiveKey::Other(k) => self.others.get(&k).or_else(|| self.outlived_others.get(&k)),
        }
        .copied()
    }

    /// Records an allocation of the current cycle.
    #[inline]
    fn note_alloc(&mut self, key: LiveKey, event: u64) {
        if !self.in_cycle {
            return;
        }
        if self.cycle_allocs.len() >= self.cycle_allocs_compact_at {
            let mut allocs = std::mem::take(&mut self.cycle_allocs);
            allocs.retain(|&(k, e)| self.tracked(k).is_some_and(|l| l.event == e));
            self.cycle_allocs_compact_at = (2 * allocs.len()).max(CYCLE_ALLOCS_MIN);
            self.cycle_allocs = allocs;
        }
        self.cycle_allocs.push((key, event));
    }

    /// Counts an allocation the model could not place; the first one becomes
    /// the OOM finding, with what was resident at that moment.
    #[allow(clippy::too_many_arguments)]
    fn out_of_memory(
        &mut self,
        ord: u64,
        dev: usize,
        slot: usize,
        buffer_type: BufferType,
        size: u64,
        oom: Oom,
        site: SiteId,
    ) {
        self.f.ooms += 1;
        if self.f.oom.is_none() {
            self.f.oom_resident_sites = self.resident_sites(dev, slot);
            self.f.oom = Some(OomFinding {
                event: ord,
                device: self.devs[dev].id,
                buffer_type,
                size,
                message: oom.message,
                recorded_message: None,
                free_bytes: oom.free,
                largest_free_block: oom.largest_free_block,
                fragmentation: oom.fragmentation,
                site,
            });
        }
        if self.setup.stop_at_oom {
            self.stopped = true;
        }
    }

    fn rejected(&mut self, why: String) {
        self.f.rejected_allocs += 1;
        self.f.first_rejection.get_or_insert(why);
    }

    fn divergence(
        &mut self,
        ord: u64,
        device: DeviceId,
        buffer: BufferId,
        recorded: u64,
        model: Option<u64>,
    ) {
        self.f.divergences += 1;
        if self.f.first_divergence.is_none() {
            self.f.first_divergence = Some(Divergence {
                event: ord,
                device,
                buffer,
                recorded,
                model,
            });
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn add_other(
        &mut self,
        ord: u64,
        dev: usize,
        key: OtherKey,
        slot: usize,
        size: u64,
        site: SiteId,
        placed: Result<(), AllocFailure>,
        buffer_type: BufferType,
    ) {
        if let Some(old) = self.others.remove(&key) {
            self.f.duplicate_allocs += 1;
            self.untrack(&old);
            self.devs[dev].objects -= 1;
        }
        let mut live = Live {
            dev: dev as u16,
            slot: slot as u8,
            flags: RESIDENT,
            cycle: self.cycle_number(),
            site,
            label: StringId::EMPTY,
            size,
            event: ord,
            address: NO_ADDR,
            closed_at: 0,
        };
        match placed {
            Ok(()) => {
                let d = &mut self.devs[dev];
                d.tracked[slot] += size;
                d.resident[slot] += size;
                d.cycle_peak[slot] = d.cycle_peak[slot].max(d.resident[slot]);
                if d.resident[slot] > d.peak[slot].bytes {
                    d.peak[slot] = Peak {
                        bytes: d.resident[slot],
                        event: ord,
                    };
                }
            }
            Err(AllocFailure::Oom(oom)) => {
                live.flags = FAILED;
                self.out_of_memory(ord, dev, slot, buffer_type, size, oom, site);
            }
            Err(other) => {
                let why = other.reason();
                live.flags = FAILED;
                self.rejected(why);
            }
        }
        self.devs[dev].objects += 1;
        self.others.insert(key, live);
        self.note_alloc(LiveKey::Other(key), ord);
    }

    fn remove_other(&mut self, key: OtherKey) {
        if let Some(old) = self.others.remove(&key) {
            self.untrack(&old);
            self.devs[old.dev as usize].objects -= 1;
        } else if let Some(old) = self.outlived_others.remove(&key) {
            self.untrack(&old);
        }
    }

    /// Removes an object's bytes from the books (not from the simulator).
    fn untrack(&mut self, live: &Live) {
        if live.slot == NO_SLOT || live.flags & FAILED != 0 {
            return;
        }
        let d = &mut self.devs[live.dev as usize];
        let s = live.slot as usize;
        d.tracked[s] -= live.size;
        if live.flags & RESIDENT != 0 {
            d.resident[s] -= live.size;
        }
    }

    /// Drops a buffer from the books and from its device.
    fn forget(&mut self, live: Live, buffer: u64) {
        self.untrack(&live);
        let d = &mut self.devs[live.dev as usize];
        d.objects -= 1;
        if live.flags & RESIDENT != 0 {
            if let Some(sim) = d.sim.as_mut() {
                sim.free(BufferId(buffer));
            }
        }
    }

    fn free(&mut self, ord: u64, dev: usize, buffer: BufferId, site: SiteId) {
        match self.buffers.remove(&buffer.get()) {
            Some(live) => {
                self.forget(live, buffer.get());
                self.freed.insert(buffer.get());
            }
            None if self.outlived.contains_key(&buffer.get()) => {
                // Freed after its device closed: the tracker hears of it now.
                let live = self.outlived.remove(&buffer.get()).expect("checked");
                self.untrack(&live);
                self.freed.insert(buffer.get());
            }
            None => {
                let bad = BadFree {
                    event: ord,
                    device: self.devs[dev].id,
                    buffer,
                    site,
                };
                if self.freed.contains(buffer.get()) {
                    self.f.double_frees += 1;
                    self.f.first_double_free.get_or_insert(bad);
                } else {
                    self.f.unknown_frees += 1;
                    self.f.first_unknown_free.get_or_insert(bad);
                }
            }
        }
    }

    fn close(&mut self, ord: u64, dev: usize) {
        if self.devs[dev].objects > 0 {
            let d16 = dev as u16;
            let ids: Vec<u64> = self
                .buffers
                .iter()
                .filter(|(_, l)| l.dev == d16)
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                let live = self.buffers.remove(&id).expect("listed");
                // Objects the model never placed are gone with the device.
                if live.flags & FAILED == 0 {
                    self.outlived.insert(id, outlive(live, ord));
                }
            }
            let keys: Vec<OtherKey> = self.others.keys().filter(|k| k.1 == d16).copied().collect();
            for key in keys {
                let live = self.others.remove(&key).expect("listed");
                if live.flags & FAILED == 0 {
                    self.outlived_others.insert(key, outlive(live, ord));
                }
            }
            self.devs[dev].objects = 0;
            self.devs[dev].resident = [0; 4];
        }
        let d = &mut self.devs[dev];
        if let Some(mut sim) = d.sim.take() {
            sim.close();
            if let Some((arch, config)) = d.opened_with.take() {
                d.spare = Some((arch, config, sim));
            }
        }
    }

    /// Resident bytes per type of every device seen so far (for observers).
    pub(crate) fn resident_by_device(&self) -> impl Iterator<Item = (DeviceId, &PerType)> {
        self.devs.iter().map(|d| (d.id, &d.resident))
    }

    /// `resident_sites` by device id (for observers).
    pub(crate) fn resident_sites_of(&self, device: DeviceId, slot: usize) -> Vec<(SiteId, u64)> {
        match self.devs.iter().position(|d| d.id == device) {
            Some(dev) => self.resident_sites(dev, slot),
            None => Vec::new(),
        }
    }

    /// Sites and bytes of the objects resident in `slot` of device `dev`.
    fn resident_sites(&self, dev: usize, slot: usize) -> Vec<(SiteId, u64)> {
        let mut by_site: FastMap<SiteId, u64> = FastMap::default();
        for live in self.buffers.values().chain(self.others.values()) {
            if live.dev as usize == dev && live.slot as usize == slot && live.flags & RESIDENT != 0
            {
                *by_site.entry(live.site).or_default() += live.size;
            }
        }
        let mut v: Vec<_> = by_site.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }

    fn end_cycle(&mut self, end: u64) {
        let index = self.cycle_count;
        let span = CycleSpan {
            start_event: self.cur_start,
            end_event: end,
        };
        let after_warmup = index as usize > self.setup.warmup;
        let mut stats = CycleStats {
            index,
            span,
            live_before: std::mem::take(&mut self.live_before),
            live_after: BTreeMap::new(),
            left_behind_bytes: 0,
            left_behind_buffers: 0,
            left_behind: [0; 4],
            first_left: None,
            label: self.cycle_label.take(),
            peak: self.devs.iter().map(|d| (d.id, d.cycle_peak)).collect(),
        };
        let allocs = std::mem::take(&mut self.cycle_allocs);
        for &(key, event) in &allocs {
            let Some(live) = self.tracked(key) else {
                continue;
            };
            if live.event != event || live.slot == NO_SLOT || live.flags & FAILED != 0 {
                continue;
            }
            if let Some(release) = self.setup.release_sites {
                if release.contains(&live.site) {
                    self.release(key, live);
                    continue;
                }
            }
            if matches!(key, LiveKey::Other((ObjectKind::Program, ..))) {
                // Kernel binaries kept by a program cache count in live bytes
                // and growth, but bisect hunts buffers (and trace buffers).
                if after_warmup {
                    *self.program_site_left.entry(live.site).or_default() += live.size;
                }
                continue;
            }
            stats.left_behind_bytes += live.size;
            stats.left_behind_buffers += 1;
            stats.left_behind[live.slot as usize] += live.size;
            if stats.first_left.is_none() {
                let (buffer, buffer_type) = match key {
                    LiveKey::Buffer(id) => (BufferId(id), TYPES[live.slot as usize]),
                    LiveKey::Other(k) => (BufferId(k.2), TYPES[live.slot as usize]),
                };
                stats.first_left = Some(FirstLeft {
                    event,
                    device: self.devs[live.dev as usize].id,
                    buffer,
                    buffer_type,
                    size: live.size,
                    site: live.site,
                    label: live.label,
                });
            }
            if after_warmup {
                *self.site_left.entry(live.site).or_default() += live.size;
            }
        }
        for d in &self.devs {
            stats.live_after.insert(d.id, d.tracked);
        }
        self.cycle_allocs = allocs;
        self.cycle_allocs.clear();
        self.cycle_allocs_compact_at = CYCLE_ALLOCS_MIN;
        self.f.cycles.push(stats);
        self.in_cycle = false;
    }

    /// What-if: frees an object at the end of its cycle, as if its site had
    /// released it.
    fn release(&mut self, key: LiveKey, live: Live) {
        match key {
            LiveKey::Buffer(id) => {
                if self.buffers.remove(&id).is_some() {
                    self.forget(live, id);
                } else if let Some(old) = self.outlived.remove(&id) {
                    self.untrack(&old);
                }
            }
            LiveKey::Other(k) => {
                if let Some(sim) = self.devs[live.dev as usize].sim.as_mut() {
                    match k.0 {
                        ObjectKind::Program => sim.unload_program(k.2),
                        ObjectKind::Trace => sim.release_trace(k.2 as u32),
                        ObjectKind::Buffer => {}
                    }
                }
                self.remove_other(k);
            }
        }
    }

    /// Ends the replay: a cycle still open ends here; whatever is still
    /// tracked becomes a leak.
    pub fn finish(mut self) -> Findings {
        if self.in_cycle {
            self.end_cycle(self.events.saturating_sub(1));
        }
        let mut leaks = Vec::new();
        let objects = self
            .buffers
            .iter()
            .map(|(id, l)| (BufferId(*id), ObjectKind::Buffer, l))
            .chain(
                self.outlived
                    .iter()
                    .map(|(id, l)| (BufferId(*id), ObjectKind::Buffer, l)),
            )
            .chain(self.others.iter().map(|(k, l)| (BufferId(k.2), k.0, l)))
            .chain(
                self.outlived_others
                    .iter()
                    .map(|(k, l)| (BufferId(k.2), k.0, l)),
            );
        for (buffer, object, live) in objects {
            if live.slot == NO_SLOT || live.flags & FAILED != 0 {
                continue;
            }
            let class = if live.flags & OUTLIVED != 0 {
                LeakClass::OutlivedDevice
            } else if live.cycle != 0 {
                LeakClass::LeftBehind
            } else {
                LeakClass::NeverFreed
            };
            leaks.push(Leak {
                device: self.devs[live.dev as usize].id,
                buffer_type: TYPES[live.slot as usize],
                size: live.size,
                buffer,
                object,
                address: (live.address != NO_ADDR).then_some(live.address),
                class,
                cycle: (live.cycle != 0).then_some(live.cycle),
                event: live.event,
                site: live.site,
                label: live.label,
                closed_at: (live.flags & OUTLIVED != 0).then_some(live.closed_at),
            });
        }
        leaks.sort_by_key(|l| (l.event, l.buffer));
        self.f.leaks = leaks;
        self.f.events = self.events;
        let mut devices: Vec<DeviceId> = self.devs.iter().map(|d| d.id).collect();
        devices.sort();
        self.f.devices = devices;
        self.f.peak = self.devs.iter().map(|d| (d.id, d.peak)).collect();
        self.f.site_left_behind = by_bytes(self.site_left);
        self.f.program_site_left_behind = by_bytes(self.program_site_left);
        self.f
    }
}

/// The fewest entries `cycle_allocs` holds before it is compacted.
const CYCLE_ALLOCS_MIN: usize = 4096;

/// A live object whose device closed: still tracked, no longer resident.
fn outlive(mut live: Live, ord: u64) -> Live {
    live.flags = OUTLIVED;
    live.closed_at = ord;
    live
}

/// Sites sorted by bytes, largest first (ties by site id).
fn by_bytes(map: FastMap<SiteId, u64>) -> Vec<(SiteId, u64)> {
    let mut v: Vec<(SiteId, u64)> = map.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}
