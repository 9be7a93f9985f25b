//! The recorded events. Every event carries a timestamp (ns since the Unix
//! epoch) and the id of the process that produced it; the kind-specific
//! payload refers to interned strings and call sites by id.

use crate::config::{Arch, DeviceConfig};
use crate::ids::{BufferId, DeviceId, Pid, ProgramId, SiteId, StringId, TraceId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// tt-metal's `BufferType`, with tt-metal's numbering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum BufferType {
    Dram = 0,
    L1 = 1,
    SystemMemory = 2,
    L1Small = 3,
    Trace = 4,
}

impl BufferType {
    pub const ALL: [BufferType; 5] = [
        BufferType::Dram,
        BufferType::L1,
        BufferType::SystemMemory,
        BufferType::L1Small,
        BufferType::Trace,
    ];
    /// The buffer types that live in device memory (what replay accounts for).
    pub const DEVICE: [BufferType; 4] = [
        BufferType::Dram,
        BufferType::L1,
        BufferType::L1Small,
        BufferType::Trace,
    ];

    pub fn from_u8(v: u8) -> Option<BufferType> {
        BufferType::ALL.get(v as usize).copied()
    }

    /// tt-metal's spelling: `DRAM`, `L1`, `SYSTEM_MEMORY`, `L1_SMALL`, `TRACE`.
    pub fn name(self) -> &'static str {
        match self {
            BufferType::Dram => "DRAM",
            BufferType::L1 => "L1",
            BufferType::SystemMemory => "SYSTEM_MEMORY",
            BufferType::L1Small => "L1_SMALL",
            BufferType::Trace => "TRACE",
        }
    }
}

impl fmt::Display for BufferType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BufferType {
    type Err = String;
    /// Accepts tt-metal's names (any case, with or without `BufferType::`) and the numbers 0-4.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let t = t.strip_prefix("BufferType::").unwrap_or(t);
        if let Ok(n) = t.parse::<u8>() {
            return BufferType::from_u8(n)
                .ok_or_else(|| format!("buffer type {n} is out of range 0-4"));
        }
        match t.to_ascii_uppercase().as_str() {
            "DRAM" => Ok(BufferType::Dram),
            "L1" => Ok(BufferType::L1),
            "SYSTEM_MEMORY" | "SYSTEM" => Ok(BufferType::SystemMemory),
            "L1_SMALL" => Ok(BufferType::L1Small),
            "TRACE" => Ok(BufferType::Trace),
            _ => Err(format!(
                "unknown buffer type '{s}' (expected DRAM, L1, SYSTEM_MEMORY, L1_SMALL or TRACE)"
            )),
        }
    }
}

/// tt-metal's `TensorMemoryLayout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[repr(u8)]
pub enum Layout {
    #[default]
    Interleaved = 0,
    HeightSharded = 1,
    WidthSharded = 2,
    BlockSharded = 3,
}

impl Layout {
    pub const ALL: [Layout; 4] = [
        Layout::Interleaved,
        Layout::HeightSharded,
        Layout::WidthSharded,
        Layout::BlockSharded,
    ];

    pub fn from_u8(v: u8) -> Option<Layout> {
        Layout::ALL.get(v as usize).copied()
    }

    pub fn is_sharded(self) -> bool {
        self != Layout::Interleaved
    }

    pub fn name(self) -> &'static str {
        match self {
            Layout::Interleaved => "INTERLEAVED",
            Layout::HeightSharded => "HEIGHT_SHARDED",
            Layout::WidthSharded => "WIDTH_SHARDED",
            Layout::BlockSharded => "BLOCK_SHARDED",
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Layout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let t = t.strip_prefix("TensorMemoryLayout::").unwrap_or(t);
        match t.to_ascii_uppercase().as_str() {
            "INTERLEAVED" | "SINGLE_BANK" => Ok(Layout::Interleaved),
            "HEIGHT_SHARDED" | "HEIGHT" => Ok(Layout::HeightSharded),
            "WIDTH_SHARDED" | "WIDTH" => Ok(Layout::WidthSharded),
            "BLOCK_SHARDED" | "BLOCK" => Ok(Layout::BlockSharded),
            _ => Err(format!(
                "unknown layout '{s}' (expected interleaved, height_sharded, width_sharded or block_sharded)"
            )),
        }
    }
}

/// One recorded event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Nanoseconds since the Unix epoch.
    pub ts: u64,
    /// The process that produced the event.
    pub pid: Pid,
    pub kind: EventKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// `argv` is one interned string holding the arguments separated by NUL
    /// bytes (see [`split_argv`]).
    ProcessStart {
        ppid: Pid,
        argv: StringId,
    },
    /// `status`: exit code, or `-signal` when killed by a signal; `None` when unknown.
    ProcessExit {
        status: Option<i32>,
    },
    DeviceOpen {
        device: DeviceId,
        arch: Arch,
        config: Box<DeviceConfig>,
    },
    DeviceClose {
        device: DeviceId,
    },
    BufferAlloc {
        device: DeviceId,
        buffer: BufferId,
        buffer_type: BufferType,
        /// Device address, when the recorder knew it.
        address: Option<u64>,
        size: u64,
        page_size: Option<u64>,
        layout: Layout,
        num_cores: Option<u32>,
        /// Bytes tt-metal reserved in each bank (its `max_size_per_bank`),
        /// when the recorder knew it: the model then reserves exactly that.
        per_bank_size: Option<u64>,
        /// A readable name (e.g. `L1 tensor [1,1,32,256] bfloat16 TILE`);
        /// `StringId::EMPTY` when there is none.
        label: StringId,
        site: SiteId,
    },
    /// Frees carry nothing the matching alloc already said.
    BufferFree {
        device: DeviceId,
        buffer: BufferId,
        site: SiteId,
    },
    CbAlloc {
        device: DeviceId,
        address: u64,
        size: u64,
        cores: Option<u32>,
        globally_allocated: bool,
        site: SiteId,
    },
    CbFreeAll {
        device: DeviceId,
    },
    ProgramLoad {
        device: DeviceId,
        program: ProgramId,
        binary_size: u64,
        site: SiteId,
    },
    ProgramUnload {
        device: DeviceId,
        program: ProgramId,
    },
    TraceCapture {
        device: DeviceId,
        trace_id: TraceId,
        size: u64,
        /// Where the capture was made: a trace region left behind needs an owner too.
        site: SiteId,
    },
    TraceRelease {
        device: DeviceId,
        trace_id: TraceId,
    },
    OpBegin {
        name: StringId,
    },
    OpEnd,
    Marker {
        label: StringId,
    },
    /// tt-metal refused an allocation (`Out of Memory: ...`); `message` is
    /// tt-metal's text, so a replay can check the model says the same.
    AllocRefused {
        device: DeviceId,
        buffer_type: BufferType,
        size: u64,
        page_size: Option<u64>,
        layout: Layout,
        num_cores: Option<u32>,
        per_bank_size: Option<u64>,
        message: StringId,
        site: SiteId,
    },
}

/// The kind of an event without its payload; the numbers are the format's
/// on-disk kind codes and never change meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum EventTag {
    ProcessStart = 0,
    ProcessExit = 1,
    DeviceOpen = 2,
    DeviceClose = 3,
    BufferAlloc = 4,
    BufferFree = 5,
    CbAlloc = 6,
    CbFreeAll = 7,
    ProgramLoad = 8,
    ProgramUnload = 9,
    TraceCapture = 10,
    TraceRelease = 11,
    OpBegin = 12,
    OpEnd = 13,
    Marker = 14,
    AllocRefused = 15,
}

/// The kinds' codes as bytes, as a decoded block's kind column holds
/// them: names to match a column's bytes on.
pub mod tag_code {
    use super::EventTag;

    pub const ALLOC: u8 = EventTag::BufferAlloc as u8;
    pub const FREE: u8 = EventTag::BufferFree as u8;
    pub const CB_ALLOC: u8 = EventTag::CbAlloc as u8;
    pub const CB_FREE_ALL: u8 = EventTag::CbFreeAll as u8;
    pub const OP_BEGIN: u8 = EventTag::OpBegin as u8;
    pub const OP_END: u8 = EventTag::OpEnd as u8;
    pub const MARKER: u8 = EventTag::Marker as u8;
}

impl EventTag {
    pub const ALL: [EventTag; 16] = [
        EventTag::ProcessStart,
        EventTag::ProcessExit,
        EventTag::DeviceOpen,
        EventTag::DeviceClose,
        EventTag::BufferAlloc,
        EventTag::BufferFree,
        EventTag::CbAlloc,
        EventTag::CbFreeAll,
        EventTag::ProgramLoad,
        EventTag::ProgramUnload,
        EventTag::TraceCapture,
        EventTag::TraceRelease,
        EventTag::OpBegin,
        EventTag::OpEnd,
        EventTag::Marker,
        EventTag::AllocRefused,
    ];

    pub fn from_u8(v: u8) -> Option<EventTag> {
        EventTag::ALL.get(v as usize).copied()
    }

    /// snake_case name used in `ttalloc cat --jsonl` and `info --json`.
    pub fn name(self) -> &'static str {
        match self {
            EventTag::ProcessStart => "process_start",
            EventTag::ProcessExit => "process_exit",
            EventTag::DeviceOpen => "device_open",
            EventTag::DeviceClose => "device_close",
            EventTag::BufferAlloc => "buffer_alloc",
            EventTag::BufferFree => "buffer_free",
            EventTag::CbAlloc => "cb_alloc",
            EventTag::CbFreeAll => "cb_free_all",
            EventTag::ProgramLoad => "program_load",
            EventTag::ProgramUnload => "program_unload",
            EventTag::TraceCapture => "trace_capture",
            EventTag::TraceRelease => "trace_release",
            EventTag::OpBegin => "op_begin",
            EventTag::OpEnd => "op_end",
            EventTag::Marker => "marker",
            EventTag::AllocRefused => "alloc_refused",
        }
    }
}

impl fmt::Display for EventTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl EventKind {
    pub fn tag(&self) -> EventTag {
        match self {
            EventKind::ProcessStart { .. } => EventTag::ProcessStart,
            EventKind::ProcessExit { .. } => EventTag::ProcessExit,
            EventKind::DeviceOpen { .. } => EventTag::DeviceOpen,
            EventKind::DeviceClose { .. } => EventTag::DeviceClose,
            EventKind::BufferAlloc { .. } => EventTag::BufferAlloc,
            EventKind::BufferFree { .. } => EventTag::BufferFree,
            EventKind::CbAlloc { .. } => EventTag::CbAlloc,
            EventKind::CbFreeAll { .. } => EventTag::CbFreeAll,
            EventKind::ProgramLoad { .. } => EventTag::ProgramLoad,
            EventKind::ProgramUnload { .. } => EventTag::ProgramUnload,
            EventKind::TraceCapture { .. } => EventTag::TraceCapture,
            EventKind::TraceRelease { .. } => EventTag::TraceRelease,
            EventKind::OpBegin { .. } => EventTag::OpBegin,
            EventKind::OpEnd => EventTag::OpEnd,
            EventKind::Marker { .. } => EventTag::Marker,
            EventKind::AllocRefused { .. } => EventTag::AllocRefused,
        }
    }

    /// The device the event concerns, if any.
    pub fn device(&self) -> Option<DeviceId> {
        match *self {
            EventKind::DeviceOpen { device, .. }
            | EventKind::DeviceClose { device }
            | EventKind::BufferAlloc { device, .. }
            | EventKind::BufferFree { device, .. }
            | EventKind::CbAlloc { device, .. }
            | EventKind::CbFreeAll { device }
            | EventKind::ProgramLoad { device, .. }
            | EventKind::ProgramUnload { device, .. }
            | EventKind::TraceCapture { device, .. }
            | EventKind::TraceRelease { device, .. }
            | EventKind::AllocRefused { device, .. } => Some(device),
            _ => None,
        }
    }

    /// The call site the event carries, if its kind has one.
    pub fn site(&self) -> Option<SiteId> {
        match *self {
            EventKind::BufferAlloc { site, .. }
            | EventKind::BufferFree { site, .. }
            | EventKind::CbAlloc { site, .. }
            | EventKind::ProgramLoad { site, .. }
            | EventKind::TraceCapture { site, .. }
            | EventKind::AllocRefused { site, .. } => Some(site),
            _ => None,
        }
    }

    /// The call site the event carries, to rewrite it (e.g. when a
    /// recorder maps a client's local ids to the trace's).
    pub fn site_mut(&mut self) -> Option<&mut SiteId> {
        match self {
            EventKind::BufferAlloc { site, .. }
            | EventKind::BufferFree { site, .. }
            | EventKind::CbAlloc { site, .. }
            | EventKind::ProgramLoad { site, .. }
            | EventKind::TraceCapture { site, .. }
            | EventKind::AllocRefused { site, .. } => Some(site),
            _ => None,
        }
    }

    /// The interned string the event refers to, if its kind has one (every
    /// kind has at most one): an argv, an op name, a marker or buffer
    /// label, a refusal message.
    pub fn string(&self) -> Option<StringId> {
        match *self {
            EventKind::ProcessStart { argv: s, .. }
            | EventKind::OpBegin { name: s }
            | EventKind::Marker { label: s }
            | EventKind::BufferAlloc { label: s, .. }
            | EventKind::AllocRefused { message: s, .. } => Some(s),
            _ => None,
        }
    }

    /// [`EventKind::string`], to rewrite it.
    pub fn string_mut(&mut self) -> Option<&mut StringId> {
        match self {
            EventKind::ProcessStart { argv: s, .. }
            | EventKind::OpBegin { name: s }
            | EventKind::Marker { label: s }
            | EventKind::BufferAlloc { label: s, .. }
            | EventKind::AllocRefused { message: s, .. } => Some(s),
            _ => None,
        }
    }
}

/// Joins argv into the single NUL-separated string `ProcessStart` interns.
pub fn join_argv<S: AsRef<str>>(args: &[S]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push('\0');
        }
        out.push_str(a.as_ref());
    }
    out
}

/// Splits a `ProcessStart` argv string back into its arguments.
pub fn split_argv(joined: &str) -> Vec<&str> {
    if joined.is_empty() {
        Vec::new()
    } else {
        joined.split('\0').collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_type_parses_names_and_numbers() {
        for bt in BufferType::ALL {
            assert_eq!(bt.name().parse::<BufferType>().unwrap(), bt);
            assert_eq!((bt as u8).to_string().parse::<BufferType>().unwrap(), bt);
        }
        assert_eq!(
            "BufferType::L1_SMALL".parse::<BufferType>().unwrap(),
            BufferType::L1Small
        );
        assert!("5".parse::<BufferType>().is_err());
        assert!("HBM".parse::<BufferType>().is_err());
    }

    #[test]
    fn tags_are_dense_and_stable() {
        for (i, t) in EventTag::ALL.iter().enumerate() {
            assert_eq!(*t as usize, i);
            assert_eq!(EventTag::from_u8(i as u8), Some(*t));
        }
        assert_eq!(EventTag::from_u8(16), None);
    }

    #[test]
    fn argv_round_trips() {
        let args = ["python", "test.py", "--x=1 2"];
        assert_eq!(split_argv(&join_argv(&args)), args);
        assert!(split_argv(&join_argv::<&str>(&[])).is_empty());
    }
}
