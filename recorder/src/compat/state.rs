//! The allocation server's bookkeeping, reproduced: what it answers to
//! QUERY, what DUMP_REMAINING prints, and which trace events a message means.
//!
//! - Buffers are keyed by (device, buffer_id) — buffer_id is an address for
//!   the C++ client — with a reference count: an ALLOC at a live key only
//!   increments it, a FREE decrements it, and the buffer (and its bytes)
//!   leaves only at zero. The trace sees one `BufferAlloc` (first ALLOC) and
//!   one `BufferFree` (count back to zero), with a fresh ttalloc `BufferId`
//!   per compat buffer and the address kept.
//! - A FREE of an unknown key ("allocated before tracking started") becomes a
//!   `BufferFree` of a `BufferId` that was never allocated: the replayer
//!   counts exactly these as "Deallocation for unknown buffer".
//! - CB_ALLOC (8) / CB_FREE (9), sent by the later branch with the CB's
//!   address in buffer_id and its size: reference-counted per (device,
//!   address) like buffers; the first CB_ALLOC is a `CbAlloc` (cores unknown,
//!   not global). ttalloc (like tt-metal) frees CBs per device all at once:
//!   when the last live CB of a device is freed, a `CbFreeAll` is recorded.
//!   (The branch's client sends one CB_FREE per CB of the device when
//!   tt-metal drops them all, so this is that same moment.)
//! - KERNEL_LOAD (10) / KERNEL_UNLOAD (11), with the program's runtime id in
//!   buffer_id and the kernel binaries' size: reference-counted per (device,
//!   id); `ProgramLoad` on the first load, `ProgramUnload` when the count is
//!   back to zero.
//! - When a process is gone (connection closed, or `kill(pid, 0)` fails) its
//!   entries leave the registry, as the original's dead-process cleanup does,
//!   so QUERY answers match it; in the trace nothing is freed — the process
//!   exits with its buffers still allocated and the replayer reports them.

mod report;
#[cfg(test)]
mod tests;

use super::message::{Message, MsgType};
pub use super::numbering::Numbering;
use foldhash::HashMap;
pub use report::fmt_g;
use std::collections::BTreeMap;
use ttalloc_model::buffer_name::{self, BufferName};
use ttalloc_model::{BufferId, BufferType, DeviceId, EventKind, Layout, ProgramId, SiteId};

/// Who owns registry entries: the process id a message names (the original
/// server's `owner_pid`) and the connection it came on. A connection that
/// closes ends only its own entries: another connection of the same process
/// keeps its buffers (a process may open several).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Owner {
    pub pid: i32,
    /// The listener's connection number (0 when messages come from no connection).
    pub conn: u64,
}

impl From<i32> for Owner {
    fn from(pid: i32) -> Owner {
        Owner { pid, conn: 0 }
    }
}

impl std::fmt::Display for Owner {
    /// The original server's words name the process only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.pid)
    }
}

/// Hands out trace ids for a process's new buffers and programs.
pub trait IdSource {
    fn buffer_id(&mut self, local: u64) -> BufferId;
    fn program_id(&mut self, local: u64) -> ProgramId;
}

struct BufferEntry {
    id: BufferId,
    owner: Owner,
    size: u64,
    buffer_type: BufferType,
    refs: u32,
}

struct CountedEntry {
    owner: Owner,
    size: u64,
    refs: u32,
    program: Option<ProgramId>,
}

/// Per-device counters, as the original server keeps them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceCounters {
    pub num_buffers: u64,
    pub dram: u64,
    pub l1: u64,
    /// L1_SMALL, and SYSTEM_MEMORY (which the original server counts here).
    pub l1_small: u64,
    pub trace: u64,
    pub cb: u64,
    pub kernel: u64,
}

/// The result of one message.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Events to record for the sending process (in order).
    pub events: Vec<EventKind>,
    /// Message to send back.
    pub reply: Option<Message>,
    /// Warnings, in the original server's words.
    pub lines: Vec<String>,
    /// What DUMP_REMAINING prints.
    pub report: Vec<String>,
    /// A message the registry could not use (reported, connection kept).
    pub rejected: bool,
    /// A `Marker` to record (its label).
    pub marker: Option<String>,
}

impl Outcome {
    /// Empties it, keeping the vectors' memory.
    pub fn clear(&mut self) {
        self.events.clear();
        self.reply = None;
        self.lines.clear();
        self.report.clear();
        self.rejected = false;
        self.marker = None;
    }
}

#[derive(Default)]
pub struct Registry {
    numbering: Numbering,
    buffers: HashMap<(i32, u64), BufferEntry>,
    cbs: HashMap<(i32, u64), CountedEntry>,
    kernels: HashMap<(i32, u64), CountedEntry>,
    devices: BTreeMap<i32, DeviceCounters>,
    /// Allocates the locals passed to [`IdSource`]; unique over the registry.
    next_local: u64,
    pub unknown_frees: u64,
}

fn device_id(d: i32) -> Option<DeviceId> {
    u32::try_from(d).ok().map(DeviceId)
}

impl Registry {
    pub fn new(numbering: Numbering) -> Self {
        Registry {
            numbering,
            next_local: 1,
            ..Default::default()
        }
    }

    pub fn numbering(&self) -> Numbering {
        self.numbering
    }

    fn local(&mut self) -> u64 {
        let l = self.next_local;
        self.next_local += 1;
        l
    }

    /// A local id for a new buffer: marked as the compat listener's, so that
    /// replays name it by the address its alloc records, as the client does
    /// (`ttalloc_model::buffer_name`).
    fn buffer_local(&mut self) -> u64 {
        buffer_name::COMPAT_LOCAL | (self.local() & (buffer_name::COMPAT_LOCAL - 1))
    }

    /// A local id for a free of an address never allocated: it carries the
    /// address, which no alloc records (falls back to a fresh number when
    /// the address is too large to fit).
    fn unknown_free_local(&mut self, address: u64) -> u64 {
        if address <= buffer_name::COMPAT_ADDRESS_MASK {
            buffer_name::COMPAT_LOCAL | buffer_name::COMPAT_ADDRESS_LOCAL | address
        } else {
            self.buffer_local()
        }
    }

    pub fn counters(&self, device: i32) -> DeviceCounters {
        self.devices.get(&device).copied().unwrap_or_default()
    }

    /// Number of live (device, buffer_id) keys.
    pub fn active_allocations(&self) -> usize {
        self.buffers.len()
    }

    fn add_bytes(c: &mut DeviceCounters, bt: BufferType, size: u64, add: bool) {
        let slot = match bt {
            BufferType::Dram => &mut c.dram,
            BufferType::L1 => &mut c.l1,
            BufferType::SystemMemory | BufferType::L1Small => &mut c.l1_small,
            BufferType::Trace => &mut c.trace,
        };
        *slot = if add {
            slot.saturating_add(size)
        } else {
            slot.saturating_sub(size)
        };
    }

    /// Applies one validated message from process `owner`.
    pub fn apply(
        &mut self,
        msg: &Message,
        owner: impl Into<Owner>,
        ids: &mut dyn IdSource,
    ) -> Outcome {
        let mut out = Outcome::default();
        self.apply_into(msg, owner.into(), ids, &mut out);
        out
    }

    /// [`apply`](Self::apply) into a cleared `out` whose vectors the caller
    /// reuses from message to message (no allocation per message).
    pub fn apply_into(
        &mut self,
        msg: &Message,
        owner: Owner,
        ids: &mut dyn IdSource,
        out: &mut Outcome,
    ) {
        let Some(kind) = msg.kind() else {
            out.rejected = true;
            return;
        };
        let needs_device = !matches!(
            kind,
            MsgType::DeviceInfoQuery
                | MsgType::Query
                | MsgType::DumpRemaining
                | MsgType::DumpKernels
        );
        let device = device_id(msg.device_id);
        if needs_device && device.is_none() {
            out.lines.push(format!(
                "⚠ [PID {owner}] {kind:?} for invalid device {} ignored",
                msg.device_id
            ));
            out.rejected = true;
            return;
        }
        let key = (msg.device_id, msg.buffer_id);
        match kind {
            MsgType::Alloc => {
                let Some(bt) = self.numbering.buffer_type(msg.buffer_type) else {
                    out.lines.push(format!(
                        "⚠ Invalid buffer_type {} for {} on device {} ({} numbering; see --compat-types)",
                        msg.buffer_type,
                        BufferName::compat(owner.pid as u32, msg.buffer_id),
                        msg.device_id,
                        self.numbering.name()
                    ));
                    out.rejected = true;
                    return;
                };
                if let Some(e) = self.buffers.get_mut(&key) {
                    e.refs = e.refs.saturating_add(1);
                    return;
                }
                let local = self.buffer_local();
                let id = ids.buffer_id(local);
                self.buffers.insert(
                    key,
                    BufferEntry {
                        id,
                        owner,
                        size: msg.size,
                        buffer_type: bt,
                        refs: 1,
                    },
                );
                let c = self.devices.entry(msg.device_id).or_default();
                c.num_buffers += 1;
                Self::add_bytes(c, bt, msg.size, true);
                out.events.push(EventKind::BufferAlloc {
                    device: device.unwrap(),
                    buffer: id,
                    buffer_type: bt,
                    address: Some(msg.buffer_id),
                    size: msg.size,
                    page_size: None,
                    layout: Layout::Interleaved,
                    num_cores: None,
                    per_bank_size: None,
                    label: ttalloc_model::StringId::EMPTY,
                    site: SiteId::UNKNOWN,
                });
            }
            MsgType::Free => match self.buffers.get_mut(&key) {
                None => {
                    self.unknown_frees += 1;
                    out.lines.push(format!(
                        "⚠ Deallocation for unknown buffer: {} on device {} (allocated before tracking started)",
                        BufferName::compat(owner.pid as u32, msg.buffer_id),
                        msg.device_id
                    ));
                    let local = self.unknown_free_local(msg.buffer_id);
                    out.events.push(EventKind::BufferFree {
                        device: device.unwrap(),
                        buffer: ids.buffer_id(local),
                        site: SiteId::UNKNOWN,
                    });
                }
                Some(e) => {
                    e.refs -= 1;
                    if e.refs == 0 {
                        let e = self.buffers.remove(&key).unwrap();
                        let c = self.devices.entry(msg.device_id).or_default();
                        c.num_buffers = c.num_buffers.saturating_sub(1);
                        Self::add_bytes(c, e.buffer_type, e.size, false);
                        out.events.push(EventKind::BufferFree {
                            device: device.unwrap(),
                            buffer: e.id,
                            site: SiteId::UNKNOWN,
                        });
                    }
                }
            },
            MsgType::Query => {
                let c = if msg.device_id >= 0 {
                    self.counters(msg.device_id)
                } else {
                    DeviceCounters::default()
                };
                out.reply = Some(Message {
                    msg_type: MsgType::Response as u8,
                    device_id: msg.device_id,
                    dram_allocated: c.dram,
                    l1_allocated: c.l1,
                    l1_small_allocated: c.l1_small,
                    trace_allocated: c.trace,
                    ..Default::default()
                });
            }
            MsgType::DeviceInfoQuery => {
                out.reply = Some(self.device_info(msg.device_id));
            }
            MsgType::DumpRemaining => {
                out.report.extend(self.dump_remaining());
                out.marker = Some(format!(
                    "allocation-server DUMP_REMAINING: {} buffers tracked",
                    self.buffers.len()
                ));
            }
            MsgType::DumpKernels => {}
            MsgType::CbAlloc => {
                if let Some(e) = self.cbs.get_mut(&key) {
                    e.refs = e.refs.saturating_add(1);
                    return;
                }
                self.cbs.insert(
                    key,
                    CountedEntry {
                        owner,
                        size: msg.size,
                        refs: 1,
                        program: None,
                    },
                );
                let c = self.devices.entry(msg.device_id).or_default();
                c.cb = c.cb.saturating_add(msg.size);
                out.events.push(EventKind::CbAlloc {
                    device: device.unwrap(),
                    address: msg.buffer_id,
                    size: msg.size,
                    cores: None,
                    globally_allocated: false,
                    site: SiteId::UNKNOWN,
                });
            }
            MsgType::CbFree => match self.cbs.get_mut(&key) {
                None => out.lines.push(format!(
                    "⚠ [PID {owner}] CB free for unknown circular buffer {:#x} on device {}",
                    msg.buffer_id, msg.device_id
                )),
                Some(e) => {
                    e.refs -= 1;
                    if e.refs == 0 {
                        let e = self.cbs.remove(&key).unwrap();
                        let c = self.devices.entry(msg.device_id).or_default();
                        c.cb = c.cb.saturating_sub(e.size);
                        if !self.cbs.keys().any(|(d, _)| *d == msg.device_id) {
                            out.events.push(EventKind::CbFreeAll {
                                device: device.unwrap(),
                            });
                        }
                    }
                }
            },
            MsgType::KernelLoad => {
                if let Some(e) = self.kernels.get_mut(&key) {
                    e.refs = e.refs.saturating_add(1);
                    return;
                }
                let local = self.local();
                let program = ids.program_id(local);
                self.kernels.insert(
                    key,
                    CountedEntry {
                        owner,
                        size: msg.size,
                        refs: 1,
                        program: Some(program),
                    },
                );
                let c = self.devices.entry(msg.device_id).or_default();
                c.kernel = c.kernel.saturating_add(msg.size);
                out.events.push(EventKind::ProgramLoad {
                    device: device.unwrap(),
                    program,
                    binary_size: msg.size,
                    site: SiteId::UNKNOWN,
                });
            }
            MsgType::KernelUnload => match self.kernels.get_mut(&key) {
                None => out.lines.push(format!(
                    "⚠ [PID {owner}] Kernel unload for unknown kernel {} on device {}",
                    msg.buffer_id, msg.device_id
                )),
                Some(e) => {
                    e.refs -= 1;
                    if e.refs == 0 {
                        let e = self.kernels.remove(&key).unwrap();
                        let c = self.devices.entry(msg.device_id).or_default();
                        c.kernel = c.kernel.saturating_sub(e.size);
                        out.events.push(EventKind::ProgramUnload {
                            device: device.unwrap(),
                            program: e.program.unwrap(),
                        });
                    }
                }
            },
            MsgType::Response | MsgType::DeviceInfoResponse => out.rejected = true,
        }
    }

    /// DEVICE_INFO_RESPONSE. ttalloc has no device access: the device count
    /// (query for device -1) covers the ids clients used (0..=max seen); a
    /// single device's details are unknown, so it answers `is_available = 0`
    /// and `allocation_monitor_client` falls back to its default totals
    /// instead of dividing by zero-sized devices.
    fn device_info(&self, device: i32) -> Message {
        let count = self
            .devices
            .keys()
            .next_back()
            // i64: device i32::MAX makes 2^31 devices, which fits a u32.
            .map(|&d| (i64::from(d) + 1).clamp(0, i64::from(u32::MAX)) as u32)
            .unwrap_or(0);
        let mut r = Message {
            msg_type: MsgType::DeviceInfoResponse as u8,
            device_id: device,
            ..Default::default()
        };
        if device == -1 {
            r.num_devices = count;
            r.is_available = u32::from(count > 0);
        }
        r
    }

    /// Removes what one connection of a process owned (that connection
    /// closed); returns (buffers removed, bytes).
    pub fn drop_owner(&mut self, owner: impl Into<Owner>) -> (u64, u64) {
        let owner = owner.into();
        self.drop_where(|o| o == owner)
    }

    /// Removes what a dead process owned on any connection (the original's
    /// cleanup); returns (buffers removed, bytes).
    pub fn drop_process(&mut self, pid: i32) -> (u64, u64) {
        self.drop_where(|o| o.pid == pid)
    }

    fn drop_where(&mut self, owned: impl Fn(Owner) -> bool) -> (u64, u64) {
        let mut count = 0;
        let mut bytes = 0;
        let devices = &mut self.devices;
        self.buffers.retain(|&(dev, _), e| {
            if !owned(e.owner) {
                return true;
            }
            let c = devices.entry(dev).or_default();
            c.num_buffers = c.num_buffers.saturating_sub(1);
            Self::add_bytes(c, e.buffer_type, e.size, false);
            count += 1;
            bytes = u64::saturating_add(bytes, e.size);
            false
        });
        self.cbs.retain(|&(dev, _), e| {
            if !owned(e.owner) {
                return true;
            }
            let c = devices.entry(dev).or_default();
            c.cb = c.cb.saturating_sub(e.size);
            false
        });
        self.kernels.retain(|&(dev, _), e| {
            if !owned(e.owner) {
                return true;
            }
            let c = devices.entry(dev).or_default();
            c.kernel = c.kernel.saturating_sub(e.size);
            false
        });
        (count, bytes)
    }
}
