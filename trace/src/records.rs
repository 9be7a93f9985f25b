//! The rkyv archive types stored in frames (one per record kind) and their
//! conversions. Layouts are part of format major version 1: never reorder or
//! retype a field; new data goes into new record kinds or new block columns.

use rkyv::{Archive, Deserialize, Serialize};

pub const HEADER_MAGIC: [u8; 8] = *b"TTALLOC\0";

/// Frame 0 of every trace.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct HeaderRec {
    pub magic: [u8; 8],
    pub format_major: u16,
    pub format_minor: u16,
    pub ttalloc_version: String,
    pub argv: Vec<String>,
    pub start_time_ns: u64,
    pub hostname: String,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
pub struct FrameRec {
    pub function: u32,
    pub file: u32,
    pub line: u32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
pub struct NodeRec {
    pub parent: u32,
    pub frame: u32,
}

/// Intern-table entries defined since the previous intern record. `first_*`
/// are the ids of the first entry of each list (they must equal the number of
/// entries the reader already has).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct InternRec {
    pub first_string: u32,
    pub strings: Vec<String>,
    pub first_frame: u32,
    pub frames: Vec<FrameRec>,
    pub first_node: u32,
    pub nodes: Vec<NodeRec>,
}

/// Live bytes of one (device, buffer type) pair.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
pub struct LiveRec {
    pub device: u32,
    pub buffer_type: u8,
    pub bytes: u64,
}

/// One column of an event block (see `codec`).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct ColumnRec {
    pub id: u16,
    pub bytes: Vec<u8>,
}

/// An event block: its own index entry (so recovery needs no footer) and its columns.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct BlockRec {
    pub first_event: u64,
    pub count: u32,
    pub first_ts: u64,
    pub last_ts: u64,
    pub live: Vec<LiveRec>,
    pub columns: Vec<ColumnRec>,
}

/// An event block's timestamps (format 2.6: the time columns, TS_TICKS,
/// TS_UNIT and TS_BASE, in a frame of their own right after their block's,
/// so a reader that needs no time does not decompress them). Repeats the
/// block's first event and count so it cannot be paired with another block.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct TimesRec {
    pub first_event: u64,
    pub count: u32,
    pub columns: Vec<ColumnRec>,
}

/// Where a frame is in the file (compressed offset and length).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLocRec {
    pub offset: u64,
    pub len: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct BlockEntryRec {
    pub frame: FrameLocRec,
    pub first_event: u64,
    pub count: u32,
    pub first_ts: u64,
    pub last_ts: u64,
    pub live: Vec<LiveRec>,
}

/// The last data frame of a finished trace.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct FooterRec {
    pub total_events: u64,
    pub intern_frames: Vec<FrameLocRec>,
    pub blocks: Vec<BlockEntryRec>,
}
