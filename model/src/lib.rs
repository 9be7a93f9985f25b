//! ttalloc's pure domain: the vocabulary of recorded events (typed ids, buffer
//! types, device configs, interned call sites) and the simulated tt-metal
//! device allocator that replays them. Nothing in this crate does I/O.

pub mod alloc;
pub mod buffer_name;
pub mod config;
pub mod event;
pub mod hash;
pub mod ids;
pub mod site;
pub mod units;

pub use alloc::{
    AllocError, AllocRequest, BlockView, CbClash, ConfigError, Device, OutOfMemory, Owner,
    Placement, Released, Statistics,
};
pub use config::{Arch, DeviceConfig};
pub use event::{tag_code, BufferType, Event, EventKind, EventTag, Layout};
pub use ids::{BufferId, DeviceId, FrameId, Pid, ProgramId, SiteId, StringId, TraceId};
pub use site::{Frame, InternTables, ResolvedFrame, StackNode};
