//! Hostile-input tests of the allocation-server compatibility codec
//! (`compat::message`) and its server state machine (`compat::state`).
//!
//! Properties:
//! - the 112-byte stream decoder never panics, whatever the bytes and however
//!   they are split; its error names the byte offset of the first byte that
//!   does not fit, and every whole message before that byte is delivered
//!   unchanged; once failed it stays failed;
//! - the registry (what QUERY answers, what DUMP_REMAINING prints, which trace
//!   events a message means) never panics on any sequence of well-framed
//!   messages, field values at their extremes included, and with ordinary
//!   values its counters and events agree with a reference model.

mod registry;
mod stream;

use proptest::prelude::*;
use std::collections::HashMap;
use ttalloc_model::{BufferId, BufferType, DeviceId, EventKind, ProgramId};
use ttalloc_recorder::compat::state::IdSource;
use ttalloc_recorder::compat::{
    Message, MsgType, Numbering, Registry, StreamDecoder, MESSAGE_SIZE,
};

const REQUESTS: [MsgType; 10] = [
    MsgType::Alloc,
    MsgType::Free,
    MsgType::Query,
    MsgType::DumpRemaining,
    MsgType::DeviceInfoQuery,
    MsgType::CbAlloc,
    MsgType::CbFree,
    MsgType::KernelLoad,
    MsgType::KernelUnload,
    MsgType::DumpKernels,
];

fn edge_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => any::<u64>(),
        1 => Just(0u64),
        1 => Just(u64::MAX),
        1 => Just(u64::MAX / 2 + 1),
    ]
}

fn edge_i32() -> impl Strategy<Value = i32> {
    prop_oneof![
        3 => any::<i32>(),
        2 => 0..4i32,
        1 => Just(-1i32),
        1 => Just(i32::MAX),
        1 => Just(i32::MIN),
    ]
}

/// A request as a client sends it: header fields anything, the response and
/// device-info fields zero.
fn request() -> impl Strategy<Value = Message> {
    (
        0..REQUESTS.len(),
        edge_i32(),
        edge_u64(),
        any::<u8>(),
        edge_i32(),
        edge_u64(),
        edge_u64(),
    )
        .prop_map(
            |(t, device_id, size, buffer_type, process_id, buffer_id, timestamp)| Message {
                msg_type: REQUESTS[t] as u8,
                device_id,
                size,
                buffer_type,
                process_id,
                buffer_id,
                timestamp,
                ..Default::default()
            },
        )
}
