//! The native wire protocol (`recorder/PROTOCOL.md` is the normative text).
//!
//! Little-endian, length-prefixed frames over a stream socket. Every frame
//! starts with a 12-byte header `{u32 len, u16 type, u16 flags, u32 count}`;
//! the first frame is a HELLO, then any number of STRINGS / FRAMES / STACKS
//! (intern definitions, ids implicit and sequential per connection) and
//! EVENTS frames, then a GOODBYE. Every field is validated: a peer can never
//! make the recorder panic or record an event that refers to nothing.

mod cursor;
mod decoder;
mod device_config;
mod encoder;
mod event_decode;
mod ext;
#[cfg(test)]
mod tests;

use cursor::Cursor;
pub use decoder::Decoder;
pub use device_config::{DEVICE_CONFIG_FIELDS, DEVICE_CONFIG_KEYS};
pub use encoder::{encode_event, Encoder};
pub use ext::{ALLOC_REFUSED, BUFFER_ALLOC2};
use std::fmt;
use ttalloc_model::{Event, EventTag, Frame, StackNode};

/// "TTAL" read as a little-endian u32.
pub const MAGIC: u32 = u32::from_le_bytes(*b"TTAL");
pub const VERSION_MAJOR: u16 = 1;
/// 1.1 added ALLOC_REFUSED and BUFFER_ALLOC2 (see `protocol/ext.rs`).
pub const VERSION_MINOR: u16 = 1;
pub const HEADER_LEN: usize = 12;
/// Largest payload accepted in one frame (bounds the recorder's memory per connection).
pub const MAX_PAYLOAD: u32 = 1 << 20;
/// Buffer and program ids a client sends must be below this (the recorder
/// prefixes them with the connection number to make them unique in the trace).
pub const LOCAL_ID_LIMIT: u64 = 1 << 40;
/// Size of the common event header `{u8 kind, u8 flags, u16 reserved, u32 device, u64 ts}`.
pub const EVENT_HEADER_LEN: usize = 16;

pub mod frame_type {
    pub const HELLO: u16 = 1;
    pub const STRINGS: u16 = 2;
    pub const FRAMES: u16 = 3;
    pub const STACKS: u16 = 4;
    pub const EVENTS: u16 = 5;
    pub const GOODBYE: u16 = 6;

    /// The frame type's name in `PROTOCOL.md` (for error messages).
    pub fn name(t: u16) -> &'static str {
        match t {
            HELLO => "HELLO",
            STRINGS => "STRINGS",
            FRAMES => "FRAMES",
            STACKS => "STACKS",
            EVENTS => "EVENTS",
            GOODBYE => "GOODBYE",
            _ => "unknown",
        }
    }
}

/// Event flag bits (meaning depends on the kind).
pub mod flags {
    pub const ALLOC_HAS_ADDRESS: u8 = 1;
    pub const ALLOC_HAS_PAGE_SIZE: u8 = 2;
    pub const ALLOC_HAS_NUM_CORES: u8 = 4;
    pub const CB_HAS_CORES: u8 = 1;
    pub const CB_GLOBALLY_ALLOCATED: u8 = 2;
    pub const GOODBYE_HAS_STATUS: u32 = 1;
}

/// Body length (after the 16-byte event header) of each client-sendable kind;
/// `None` for kinds a client may not send (process start/exit come from
/// HELLO/GOODBYE).
pub fn body_len(tag: EventTag) -> Option<usize> {
    Some(match tag {
        EventTag::ProcessStart | EventTag::ProcessExit => return None,
        EventTag::DeviceOpen => 8 + 8 * DEVICE_CONFIG_FIELDS,
        EventTag::DeviceClose | EventTag::CbFreeAll | EventTag::OpEnd => 0,
        EventTag::BufferAlloc => 44,
        EventTag::BufferFree => 12,
        EventTag::CbAlloc => 24,
        EventTag::ProgramLoad => 20,
        EventTag::ProgramUnload => 8,
        EventTag::TraceCapture => 16,
        EventTag::TraceRelease | EventTag::OpBegin | EventTag::Marker => 4,
        EventTag::AllocRefused => ext::ALLOC_REFUSED_LEN,
    })
}

/// The device-config fields carried by DEVICE_OPEN, in wire order (bit i of
/// the presence mask = field i). Fixed by protocol version 1.
/// A protocol violation, with the byte offset in the connection's stream
/// where the offending frame starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError {
    pub offset: u64,
    pub message: String,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "protocol error at byte offset {}: {}",
            self.offset, self.message
        )
    }
}

impl std::error::Error for ProtocolError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub len: u32,
    pub frame_type: u16,
    pub flags: u16,
    pub count: u32,
}

impl FrameHeader {
    pub fn parse(b: &[u8; HEADER_LEN]) -> FrameHeader {
        FrameHeader {
            len: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            frame_type: u16::from_le_bytes([b[4], b[5]]),
            flags: u16::from_le_bytes([b[6], b[7]]),
            count: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
        }
    }
}

/// What a HELLO says about the connecting process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    pub version_major: u16,
    pub version_minor: u16,
    pub pid: u32,
    pub ppid: u32,
    pub ts: u64,
    pub client_name: String,
    pub client_version: String,
    pub argv: Vec<String>,
}

/// One decoded frame. Ids in definitions and events are the connection's
/// local ids (validated: every reference is to something already defined).
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Hello(Hello),
    Strings(Vec<String>),
    Frames(Vec<Frame>),
    Stacks(Vec<StackNode>),
    Events(Vec<Event>),
    Goodbye(Option<i32>),
}
