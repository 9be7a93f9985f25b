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
use crate::observe::Observer;
use crate::sim::{AllocFailure, Handle, Oom, Req, Sim};
use crate::source::{Chunk, Item};
use std::collections::BTreeMap;
use ttalloc_model::hash::{FastMap, FastSet};
use ttalloc_model::{
    Arch, BufferId, BufferType, DeviceConfig, DeviceId, Event, EventKind, EventTag, InternTables,
    SiteId, StringId,
};

mod buffer_ids;
mod buffers;
mod cycle_books;
mod devices;
mod feed;
mod live_table;
mod objects;
mod refusal;
mod resume;

pub use resume::ModelAddresses;

use cycle_books::CYCLE_ALLOCS_MIN;
use devices::{DevIx, Devices};
use live_table::LiveTable;

/// Counted in its device's resident (and tracked) bytes of its type: only
/// ever set alone (no other flag), and only on a record with a type slot,
/// so a free finds the common case by this one bit.
const RESIDENT: u8 = 1;
const OUTLIVED: u8 = 2;
/// The model could not place it: not tracked, not a leak; its free is silent.
const FAILED: u8 = 4;

/// A tracked object's record: 64 bytes on a line of its own, so an alloc
/// writes and a free reads one line (at 72 bytes, most records straddled
/// two).
#[derive(Clone, Copy, Debug)]
#[repr(align(64))]
struct Live {
    dev: u16,
    /// `type_slot`, or `NO_SLOT` for SYSTEM_MEMORY.
    slot: u8,
    flags: u8,
    /// 1-based cycle of the allocation, 0 outside every cycle.
    cycle: u32,
    site: SiteId,
    kind: ObjectKind,
    /// Buffer id, program id or trace id.
    id: u64,
    /// The buffer's label (`StringId::EMPTY` if none); fits the padding before `size`.
    label: StringId,
    size: u64,
    event: u64,
    /// What frees the buffer in its device's model (the model keeps no id
    /// table: this engine's is the only one); `None` if the model does not
    /// hold it (not placed, outlived its device, not a buffer).
    handle: Option<Handle>,
    /// Recorded address if any, else the model's; `u64::MAX` if none.
    /// (Where an `OUTLIVED` object's device closed: `LiveTable::closed_at`.)
    address: u64,
}

const _: () = assert!(std::mem::size_of::<Live>() == 64);

impl Live {
    /// A slot's record before it is written (vacant: see `LiveTable`).
    const VACANT: Live = Live {
        dev: 0,
        slot: NO_SLOT,
        flags: 0,
        cycle: 0,
        site: SiteId(0),
        kind: ObjectKind::Buffer,
        id: 0,
        label: StringId::EMPTY,
        size: 0,
        event: u64::MAX,
        handle: None,
        address: NO_ADDR,
    };
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
    /// Tracked bytes per type not resident: of objects that outlived the
    /// device (what is tracked is these and the resident bytes, see
    /// `Dev::tracked`: one count for an alloc or free to keep, not two).
    outlived: PerType,
    resident: PerType,
    peak: [Peak; 4],
    /// Highest resident bytes per type since the current cycle began.
    cycle_peak: PerType,
    /// Live objects (any flags) on this device, to skip scans at close.
    objects: u64,
    /// Highest `Sim::cb_bytes` after a `cb_alloc`; `None` before the first.
    cb_peak: Option<u64>,
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
    /// Every device seen so far, found by id (see `devices/table.rs`).
    devs: Devices,
    /// Every tracked object: live, or outlived its device (its device
    /// closed while it was live: still tracked, no longer on any device).
    live: LiveTable,
    /// Cycle boundaries: precomputed spans, or a rule applied online.
    spans: &'a [CycleSpan],
    online: Option<OnlineCycles>,
    /// Cycles started so far (the current one's 1-based index).
    cycle_count: u32,
    /// Index in `spans` of the next cycle to start.
    next_cycle: usize,
    in_cycle: bool,
    /// The current cycle's 1-based index, 0 outside every cycle (what an
    /// allocation records: one read, kept with `in_cycle`).
    cycle_number: u32,
    cur_start: u64,
    /// The label of the marker that started the current cycle.
    cycle_label: Option<StringId>,
    /// With spans: where the next cycle starts / the current one ends.
    next_start: u64,
    cur_end: u64,
    /// Allocations of the current cycle, (slot in `live`, event), in order. Entries of
    /// objects no longer tracked are dropped when the list is full and has
    /// doubled past `cycle_allocs_compact_at`, so it stays within a few
    /// times the live objects however long the cycle.
    cycle_allocs: Vec<(u32, u64)>,
    cycle_allocs_compact_at: usize,
    /// The current cycle's allocations are not listed: its end finds
    /// them in the table of records (cheaper when a cycle allocates about
    /// as many objects as the table holds; see `cycle_books.rs`).
    cycle_allocs_by_scan: bool,
    /// In a cycle whose allocations are listed (`in_cycle` and not
    /// `cycle_allocs_by_scan`): one flag for an allocation to test.
    list_cycle_allocs: bool,
    /// Allocations so far, in a cycle or not (counted without a test), and
    /// their count when the current cycle started: the difference is the
    /// cycle's allocations (listed or not).
    allocs_noted: u64,
    allocs_noted_at_start: u64,
    /// Allocations of the last cycle that ended: whether the next cycle is
    /// scanned is guessed from it.
    last_cycle_allocs: u64,
    /// Whether cycles are scanned: `None` guesses per cycle (tests force
    /// either way, to compare them).
    cycle_scan: Option<bool>,
    site_left: FastMap<SiteId, u64>,
    program_site_left: FastMap<SiteId, u64>,
    live_before: BTreeMap<DeviceId, PerType>,
    f: Findings,
    events: u64,
    stopped: bool,
    /// Sees every event after it is applied (memory over time, exports).
    observer: Option<&'a mut dyn Observer>,
    /// Scratch of the walk over a block's columns.
    op_skip: feed::OpSkip,
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
            devs: Devices::default(),
            live: LiveTable::default(),
            spans,
            online,
            cycle_count: 0,
            cycle_label: None,
            next_cycle: 0,
            in_cycle: false,
            cycle_number: 0,
            cur_start: 0,
            next_start,
            cur_end: u64::MAX,
            cycle_allocs: Vec::new(),
            cycle_allocs_compact_at: CYCLE_ALLOCS_MIN,
            cycle_allocs_by_scan: false,
            list_cycle_allocs: false,
            allocs_noted: 0,
            allocs_noted_at_start: 0,
            last_cycle_allocs: 0,
            cycle_scan: None,
            site_left: FastMap::default(),
            program_site_left: FastMap::default(),
            live_before: BTreeMap::new(),
            f: Findings::default(),
            events: 0,
            stopped: false,
            observer: None,
            op_skip: Default::default(),
        }
    }

    /// Lets `observer` see every event after it is applied.
    pub fn set_observer(&mut self, observer: &'a mut dyn Observer) {
        self.observer = Some(observer);
    }

    /// True once `stop_at_oom` triggered; further events are ignored.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Ends the replay: a cycle still open ends here; whatever is still
    /// tracked becomes a leak.
    pub fn finish(mut self) -> Findings {
        if self.in_cycle {
            self.end_cycle(self.events.saturating_sub(1));
        }
        let mut leaks = Vec::new();
        for (slot, live) in self.live.iter_with_slots() {
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
                buffer: BufferId(live.id),
                object: live.kind,
                address: (live.address != NO_ADDR).then_some(live.address),
                class,
                cycle: (live.cycle != 0).then_some(live.cycle),
                event: live.event,
                site: live.site,
                label: live.label,
                closed_at: (live.flags & OUTLIVED != 0).then(|| self.live.closed_at(slot)),
            });
        }
        leaks.sort_by_key(|l| (l.event, l.buffer));
        self.f.leaks = leaks;
        self.f.events = self.events;
        let mut devices: Vec<DeviceId> = self.devs.iter().map(|d| d.id).collect();
        devices.sort();
        self.f.devices = devices;
        self.f.peak = self.devs.iter().map(|d| (d.id, d.peak)).collect();
        self.f.cb_peak = self
            .devs
            .iter()
            .filter_map(|d| Some((d.id, d.cb_peak?)))
            .collect();
        self.f.site_left_behind = by_bytes(self.site_left);
        self.f.program_site_left_behind = by_bytes(self.program_site_left);
        self.f
    }
}

/// Sites sorted by bytes, largest first (ties by site id).
fn by_bytes(map: FastMap<SiteId, u64>) -> Vec<(SiteId, u64)> {
    let mut v: Vec<(SiteId, u64)> = map.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

/// Asks for the cache line of `column[at]`, if there is one.
#[inline(always)]
fn prefetch<T>(column: &[T], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(x) = column.get(at) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: SSE is part of every x86_64 target, and a prefetch is a
        // hint that reads nothing (the address is a live element anyway).
        unsafe { _mm_prefetch::<_MM_HINT_T0>((x as *const T).cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (column, at);
}

/// Called on a path the hot walks rarely take, so the compiler lays that
/// path out apart and the common one falls through: a jump less on it
/// (`std::hint::cold_path`, stable from Rust 1.95, is past the MSRV). A
/// call of an empty cold function, made only on the rare path.
#[cold]
#[inline(never)]
fn cold_path() {}
