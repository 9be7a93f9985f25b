//! What a replay found, in the model's terms (ids, not yet resolved frames).
//! `report` turns this into the human and JSON outputs.

use crate::cycles::CycleSpan;
use serde::Serialize;
use std::collections::BTreeMap;
use ttalloc_model::{BufferId, BufferType, DeviceId, SiteId, StringId};

/// Index of a device-memory buffer type in per-type arrays:
/// DRAM 0, L1 1, L1_SMALL 2, TRACE 3.
pub const TYPES: [BufferType; 4] = BufferType::DEVICE;

pub fn type_slot(bt: BufferType) -> Option<usize> {
    match bt {
        BufferType::Dram => Some(0),
        BufferType::L1 => Some(1),
        BufferType::L1Small => Some(2),
        BufferType::Trace => Some(3),
        BufferType::SystemMemory => None,
    }
}

/// Bytes per device-memory buffer type, in `TYPES` order.
pub type PerType = [u64; 4];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeakClass {
    /// Allocated inside a cycle, still live at its end and never freed.
    LeftBehind,
    /// Still live when its device closed (tt-metal's `deallocate_all` frees
    /// it without a tracking call).
    OutlivedDevice,
    /// Allocated outside every cycle and still live at the end of the trace.
    NeverFreed,
}

impl LeakClass {
    pub fn name(self) -> &'static str {
        match self {
            LeakClass::LeftBehind => "left_behind",
            LeakClass::OutlivedDevice => "outlived_device",
            LeakClass::NeverFreed => "never_freed",
        }
    }
}

/// What a live object is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum ObjectKind {
    Buffer = 0,
    /// Kernel binaries of a program (DRAM).
    Program = 1,
    /// A captured trace (trace region).
    Trace = 2,
}

/// A buffer (or program, or trace) that was never freed by a tracking call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leak {
    pub device: DeviceId,
    pub buffer_type: BufferType,
    pub size: u64,
    /// The buffer id (the program or trace id for those objects).
    pub buffer: BufferId,
    pub object: ObjectKind,
    /// The recorded address, else the model's; `None` if it could not be placed.
    pub address: Option<u64>,
    pub class: LeakClass,
    /// 1-based cycle the allocation happened in.
    pub cycle: Option<u32>,
    /// Ordinal of the allocation event.
    pub event: u64,
    pub site: SiteId,
    /// The buffer's label, `StringId::EMPTY` if it has none.
    pub label: StringId,
    /// For `OutlivedDevice`: the ordinal of the `DeviceClose`.
    pub closed_at: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OomFinding {
    pub event: u64,
    pub device: DeviceId,
    pub buffer_type: BufferType,
    pub size: u64,
    /// The model's message (tt-metal's text, as the model computes it).
    pub message: String,
    /// What tt-metal itself said, when the trace recorded the refusal
    /// (an AllocRefused event); compared byte for byte with `message`.
    pub recorded_message: Option<StringId>,
    pub free_bytes: Option<u64>,
    pub largest_free_block: Option<u64>,
    /// Enough bytes were free in total but no block was large enough.
    pub fragmentation: bool,
    pub site: SiteId,
    /// The refused buffer's spread and its device's carve-outs, for the hint.
    pub context: Option<OomContext>,
}

/// What the out-of-memory hint needs beyond the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OomContext {
    /// Banks (cores, for a sharded buffer) the buffer would have spread over.
    pub num_banks: u32,
    /// Banks of that type on the device.
    pub device_banks: u32,
    /// Bytes per bank the device gives L1_SMALL (carved from L1's top).
    pub l1_small_size: u64,
    /// Bytes per bank of the trace region (carved from DRAM's top).
    pub trace_region_size: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    pub event: u64,
    pub device: DeviceId,
    pub buffer: BufferId,
    pub recorded: u64,
    pub model: Option<u64>,
}

/// An allocation tt-metal refused that the model placed: a divergence
/// (the model has more room than the device had).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacedRefusal {
    pub event: u64,
    pub device: DeviceId,
    pub buffer_type: BufferType,
    pub size: u64,
    /// Where the model put it (it is freed again at once).
    pub model_address: u64,
    /// tt-metal's message.
    pub message: StringId,
    pub site: SiteId,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CbClash {
    pub event: u64,
    pub device: DeviceId,
    pub message: String,
    pub site: SiteId,
}

/// A free that matched no live buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadFree {
    pub event: u64,
    pub device: DeviceId,
    pub buffer: BufferId,
    pub site: SiteId,
}

/// The first allocation of a cycle that is still live at the cycle's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirstLeft {
    pub event: u64,
    pub device: DeviceId,
    pub buffer: BufferId,
    /// The recorded address, else the model's.
    pub address: Option<u64>,
    pub buffer_type: BufferType,
    pub size: u64,
    pub site: SiteId,
    pub label: StringId,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CycleStats {
    /// 1-based.
    pub index: u32,
    pub span: CycleSpan,
    /// Tracked live bytes per device when the cycle began.
    pub live_before: BTreeMap<DeviceId, PerType>,
    /// Tracked live bytes (allocated and not freed by a tracking call) per
    /// device at the cycle's end.
    pub live_after: BTreeMap<DeviceId, PerType>,
    /// Bytes of buffers (and trace buffers) allocated in this cycle and still
    /// live at its end. Program binaries are not counted (see live_after).
    pub left_behind_bytes: u64,
    pub left_behind_buffers: u64,
    /// `left_behind_bytes` by buffer type.
    pub left_behind: PerType,
    pub first_left: Option<FirstLeft>,
    /// The label of the marker that started the cycle (marker and test cycles).
    pub label: Option<StringId>,
    /// Highest resident bytes per device and type during the cycle.
    pub peak: BTreeMap<DeviceId, PerType>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Peak {
    pub bytes: u64,
    pub event: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Findings {
    pub events: u64,
    pub devices: Vec<DeviceId>,
    pub leaks: Vec<Leak>,
    pub cycle_kind: String,
    pub cycles: crate::cycle_log::CycleLog,
    pub unknown_frees: u64,
    pub first_unknown_free: Option<BadFree>,
    pub double_frees: u64,
    pub first_double_free: Option<BadFree>,
    pub oom: Option<OomFinding>,
    pub ooms: u64,
    /// Placement divergences and refusals the model placed, together.
    pub divergences: u64,
    pub first_divergence: Option<Divergence>,
    /// Allocations tt-metal refused that the model placed (also counted in `divergences`).
    pub placed_refusals: u64,
    pub first_placed_refusal: Option<PlacedRefusal>,
    pub cb_clashes: u64,
    pub first_cb_clash: Option<CbClash>,
    /// Peak bytes per core of the static circular buffers live at once
    /// (allocated since the device's last free-all), per device.
    pub cb_peak: BTreeMap<DeviceId, u64>,
    /// Peak resident bytes per device and type, and the event where it happened.
    pub peak: BTreeMap<DeviceId, [Peak; 4]>,
    /// Bytes of buffers (and trace buffers) left behind per allocation site,
    /// summed over the cycles after warm-up.
    pub site_left_behind: Vec<(SiteId, u64)>,
    /// The same for kernel binaries of programs loaded and kept (program caches).
    pub program_site_left_behind: Vec<(SiteId, u64)>,
    /// Sites (with resident bytes) of the buffers resident in the bank that
    /// ran out of memory, at the first OOM.
    pub oom_resident_sites: Vec<(SiteId, u64)>,
    /// Allocations that reused the id of a live buffer.
    pub duplicate_allocs: u64,
    /// Allocations the model refused outright (not out-of-memory), and the first reason.
    pub rejected_allocs: u64,
    pub first_rejection: Option<String>,
    /// Things the replay had to work around (e.g. an unusable recorded config).
    pub warnings: Vec<String>,
    /// The process of each buffer id's source, to name buffers.
    pub source_pids: crate::source_pids::SourcePids,
}

impl Findings {
    pub fn has_leaks(&self) -> bool {
        !self.leaks.is_empty()
    }
}
