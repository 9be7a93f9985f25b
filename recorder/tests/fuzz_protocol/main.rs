//! Hostile-input tests of the native protocol decoder (`recorder/PROTOCOL.md`).
//!
//! Properties, for any bytes a peer can send:
//! - decoding never panics;
//! - an error names the byte offset of the frame it is about, and that offset
//!   is the start of a frame inside what was received;
//! - every frame before the first bad one decodes exactly as it would have
//!   without the damage (nothing good before the damage is lost);
//! - decoding one frame never makes a single allocation much larger than the
//!   frame itself (a count or length field cannot reserve gigabytes).

use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::cell::Cell;
use ttalloc_model::{
    Arch, BufferId, BufferType, DeviceConfig, DeviceId, Event, EventKind, Frame, FrameId, Layout,
    Pid, ProgramId, SiteId, StackNode, StringId, TraceId,
};
use ttalloc_recorder::protocol::{
    frame_type, Decoder, Encoder, FrameHeader, Item, ProtocolError, HEADER_LEN, LOCAL_ID_LIMIT,
    MAX_PAYLOAD,
};

mod alloc_watch;
mod fields;
mod generators;
mod properties;
mod stream;
