//! The rkyv archives of format 2.2's allocator-state checkpoints (FORMAT.md
//! §4.5). Layouts are part of the format: never reorder or retype a field.

use crate::records::FrameLocRec;
use rkyv::{Archive, Deserialize, Serialize};

/// Record kind 6: what was allocated, and on which open devices, after a block.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct CheckpointRec {
    /// Index of the block it follows.
    pub after_block: u32,
    /// Ordinal of the first event after it (the block's first event + count).
    pub next_event: u64,
    /// Open devices, by device id.
    pub devices: Vec<OpenDeviceRec>,
    /// Live objects, by the ordinal of the event that made them.
    pub objects: Vec<LiveObjectRec>,
}

/// The DeviceOpen that opened a device still open.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct OpenDeviceRec {
    pub event: u64,
    pub ts: u64,
    pub pid: u32,
    pub device: u32,
    pub arch: u8,
    pub config: Vec<ConfigEntryRec>,
}

/// One known device config field (FORMAT.md §5.3).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct ConfigEntryRec {
    pub key: String,
    pub value: u64,
}

/// The event that made a live object: a BufferAlloc (tag 4), CbAlloc (6),
/// ProgramLoad (8) or TraceCapture (10), with its ordinal.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Default)]
pub struct LiveObjectRec {
    pub event: u64,
    pub ts: u64,
    pub pid: u32,
    pub device: u32,
    pub tag: u8,
    pub buffer_type: u8,
    pub layout: u8,
    /// Bit 0 address present, 1 page size present, 2 num_cores present,
    /// 3 per_bank_size present, 4 globally allocated (CbAlloc).
    pub flags: u8,
    /// Buffer, program or trace id (0 for a circular buffer).
    pub id: u64,
    pub address: u64,
    /// Size, binary size (ProgramLoad) or trace size.
    pub size: u64,
    pub page_size: u64,
    pub per_bank_size: u64,
    /// num_cores (BufferAlloc) or cores (CbAlloc).
    pub cores: u32,
    pub site: u32,
    pub label: u32,
}

/// Record kind 7, the data frame right before the footer: where every
/// checkpoint is.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct CheckpointIndexRec {
    pub entries: Vec<CheckpointEntryRec>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct CheckpointEntryRec {
    pub frame: FrameLocRec,
    pub after_block: u32,
    pub next_event: u64,
    /// Live objects it holds.
    pub objects: u32,
}

pub const HAS_ADDRESS: u8 = 1;
pub const HAS_PAGE_SIZE: u8 = 2;
pub const HAS_CORES: u8 = 4;
pub const HAS_PER_BANK: u8 = 8;
pub const GLOBALLY_ALLOCATED: u8 = 16;
pub const KNOWN_FLAGS: u8 = 31;
