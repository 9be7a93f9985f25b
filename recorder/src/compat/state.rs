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

use super::message::{Message, MsgType};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use ttalloc_model::{BufferId, BufferType, DeviceId, EventKind, Layout, ProgramId, SiteId};

/// How a client numbers buffer types.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Numbering {
    /// tt-metal's `BufferType`: 0 DRAM, 1 L1, 2 SYSTEM_MEMORY, 3 L1_SMALL, 4 TRACE.
    #[default]
    TtMetal,
    /// The Python demo client's: 0 DRAM, 1 L1, 2 L1_SMALL, 3 TRACE.
    PythonDemo,
}

impl Numbering {
    pub fn buffer_type(self, v: u8) -> Option<BufferType> {
        match self {
            Numbering::TtMetal => BufferType::from_u8(v),
            Numbering::PythonDemo => match v {
                0 => Some(BufferType::Dram),
                1 => Some(BufferType::L1),
                2 => Some(BufferType::L1Small),
                3 => Some(BufferType::Trace),
                _ => None,
            },
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Numbering::TtMetal => "tt-metal",
            Numbering::PythonDemo => "python-demo",
        }
    }
}

impl std::str::FromStr for Numbering {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "tt-metal" | "ttmetal" | "tt-metalium" => Ok(Numbering::TtMetal),
            "python-demo" | "python" | "demo" => Ok(Numbering::PythonDemo),
            _ => Err(format!(
                "unknown buffer-type numbering '{s}' (expected tt-metal or python-demo)"
            )),
        }
    }
}

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

/// Live buffers of one device by type number: (address, entry).
type ByType<'a> = BTreeMap<u8, Vec<(u64, &'a BufferEntry)>>;

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
        let owner = owner.into();
        let mut out = Outcome::default();
        let Some(kind) = msg.kind() else {
            out.rejected = true;
            return out;
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
            return out;
        }
        let key = (msg.device_id, msg.buffer_id);
        match kind {
            MsgType::Alloc => {
                let Some(bt) = self.numbering.buffer_type(msg.buffer_type) else {
                    out.lines.push(format!(
                        "⚠ [PID {owner}] Invalid buffer_type {} for buffer {} on device {} ({} numbering; see --compat-types)",
                        msg.buffer_type,
                        msg.buffer_id,
                        msg.device_id,
                        self.numbering.name()
                    ));
                    out.rejected = true;
                    return out;
                };
                if let Some(e) = self.buffers.get_mut(&key) {
                    e.refs = e.refs.saturating_add(1);
                    return out;
                }
                let local = self.local();
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
                        "⚠ [PID {owner}] Deallocation for unknown buffer {:#x} on device {} (allocated before tracking started)",
                        msg.buffer_id, msg.device_id
                    ));
                    let local = self.local();
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
                    return out;
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
                    return out;
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
        out
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

    /// What DUMP_REMAINING prints, in the original server's words.
    pub fn dump_remaining(&self) -> Vec<String> {
        let mut out = vec![
            "╔══════════════════════════════════════════════════════════════╗".to_owned(),
            "║           REMAINING ALLOCATED BUFFERS                       ║".to_owned(),
            "╚══════════════════════════════════════════════════════════════╝".to_owned(),
            format!("Total tracked allocations: {}", self.buffers.len()),
        ];
        if self.buffers.is_empty() {
            out.push("✓ No buffers remaining - perfect cleanup!".to_owned());
            return out;
        }
        let mut by_device: BTreeMap<i32, ByType<'_>> = BTreeMap::new();
        for (&(dev, addr), e) in &self.buffers {
            by_device
                .entry(dev)
                .or_default()
                .entry(e.buffer_type as u8)
                .or_default()
                .push((addr, e));
        }
        for (dev, types) in by_device {
            out.push(format!("Device {dev}:"));
            for (bt, mut bufs) in types {
                bufs.sort_by_key(|(a, _)| *a);
                let total = bufs.iter().fold(0u64, |t, (_, e)| t.saturating_add(e.size));
                let name = BufferType::from_u8(bt).map(|b| b.name()).unwrap_or("?");
                out.push(format!(
                    "  {name}: {} buffers, {} MB total",
                    bufs.len(),
                    fmt_g(total as f64 / (1024.0 * 1024.0))
                ));
                if bufs.len() <= 10 {
                    for (addr, e) in bufs {
                        out.push(format!(
                            "    - Buffer {addr:#x}: {} KB (PID {}, ref_count={})",
                            fmt_g(e.size as f64 / 1024.0),
                            e.owner.pid,
                            e.refs
                        ));
                    }
                }
            }
        }
        out.push(format!("Total remaining buffers: {}", self.buffers.len()));
        out
    }

    /// The original server's 10-second statistics block.
    pub fn statistics(&self) -> String {
        let mut s = String::from("\n📊 Current Statistics:\n");
        for (dev, c) in &self.devices {
            let total = [c.dram, c.l1, c.l1_small, c.trace]
                .into_iter()
                .fold(0u64, u64::saturating_add);
            if total > 0 || c.num_buffers > 0 {
                let _ = writeln!(s, "  Device {dev}:");
                let _ = writeln!(s, "    Buffers: {}", c.num_buffers);
                let _ = writeln!(
                    s,
                    "    DRAM: {} bytes ({} KB)",
                    c.dram,
                    fmt_g(c.dram as f64 / 1024.0)
                );
                let _ = writeln!(
                    s,
                    "    L1: {} bytes ({} KB)",
                    c.l1,
                    fmt_g(c.l1 as f64 / 1024.0)
                );
                let _ = writeln!(s, "    Total: {total} bytes");
            }
        }
        let _ = writeln!(s, "  Active allocations: {}", self.buffers.len());
        s
    }
}

/// Formats like C++ `std::cout << double` (`%g`, 6 significant digits).
pub fn fmt_g(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v == 0.0 { "0".into() } else { v.to_string() };
    }
    let exp = v.abs().log10().floor() as i32;
    if !(-4..6).contains(&exp) {
        let s = format!("{:.5e}", v);
        // 1.50000e7 -> 1.5e+07
        let (mant, e) = s.split_once('e').unwrap();
        let mant = mant.trim_end_matches('0').trim_end_matches('.');
        let e: i32 = e.parse().unwrap();
        return format!("{mant}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    }
    let decimals = (5 - exp).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Ids;
    impl IdSource for Ids {
        fn buffer_id(&mut self, local: u64) -> BufferId {
            BufferId(1000 + local)
        }
        fn program_id(&mut self, local: u64) -> ProgramId {
            ProgramId(2000 + local)
        }
    }

    fn msg(t: MsgType, device: i32, size: u64, bt: u8, id: u64) -> Message {
        Message {
            msg_type: t as u8,
            device_id: device,
            size,
            buffer_type: bt,
            process_id: 7,
            buffer_id: id,
            ..Default::default()
        }
    }

    fn query(r: &mut Registry, device: i32) -> (u64, u64, u64, u64) {
        let m = r
            .apply(&msg(MsgType::Query, device, 0, 0, 0), 7, &mut Ids)
            .reply
            .unwrap();
        assert_eq!(m.msg_type, MsgType::Response as u8);
        assert_eq!(m.device_id, device);
        (
            m.dram_allocated,
            m.l1_allocated,
            m.l1_small_allocated,
            m.trace_allocated,
        )
    }

    #[test]
    fn refcounted_keys_free_bytes_only_at_zero() {
        let mut r = Registry::new(Numbering::TtMetal);
        let a = r.apply(&msg(MsgType::Alloc, 0, 4096, 0, 0x100), 7, &mut Ids);
        assert!(matches!(
            a.events[..],
            [EventKind::BufferAlloc {
                address: Some(0x100),
                size: 4096,
                buffer_type: BufferType::Dram,
                ..
            }]
        ));
        // Same key again: no new event, count 2.
        assert!(r
            .apply(&msg(MsgType::Alloc, 0, 4096, 0, 0x100), 7, &mut Ids)
            .events
            .is_empty());
        // Same address on another device is another buffer.
        r.apply(&msg(MsgType::Alloc, 1, 512, 1, 0x100), 7, &mut Ids);
        assert_eq!(query(&mut r, 0), (4096, 0, 0, 0));
        assert_eq!(query(&mut r, 1), (0, 512, 0, 0));
        assert!(r
            .apply(&msg(MsgType::Free, 0, 0, 0, 0x100), 7, &mut Ids)
            .events
            .is_empty());
        assert_eq!(query(&mut r, 0), (4096, 0, 0, 0));
        let f = r.apply(&msg(MsgType::Free, 0, 0, 0, 0x100), 7, &mut Ids);
        let alloc_id = match a.events[0] {
            EventKind::BufferAlloc { buffer, .. } => buffer,
            _ => unreachable!(),
        };
        assert_eq!(
            f.events,
            [EventKind::BufferFree {
                device: DeviceId(0),
                buffer: alloc_id,
                site: SiteId::UNKNOWN
            }]
        );
        assert_eq!(query(&mut r, 0), (0, 0, 0, 0));
        assert_eq!(r.active_allocations(), 1);
    }

    #[test]
    fn unknown_free_is_a_free_of_a_never_allocated_id() {
        let mut r = Registry::new(Numbering::TtMetal);
        let a = r.apply(&msg(MsgType::Alloc, 0, 64, 1, 0x40), 7, &mut Ids);
        let f = r.apply(&msg(MsgType::Free, 0, 0, 0, 0x80), 7, &mut Ids);
        let (
            EventKind::BufferAlloc {
                buffer: allocated, ..
            },
            EventKind::BufferFree { buffer: freed, .. },
        ) = (&a.events[0], &f.events[0])
        else {
            panic!("{a:?} {f:?}")
        };
        assert_ne!(allocated, freed);
        assert_eq!(r.unknown_frees, 1);
        assert!(
            f.lines[0].contains("Deallocation for unknown buffer 0x80"),
            "{:?}",
            f.lines
        );
        assert_eq!(query(&mut r, 0), (0, 64, 0, 0));
    }

    #[test]
    fn numberings_differ_on_2_3_4() {
        for (numbering, v, want) in [
            (Numbering::TtMetal, 2, Some(BufferType::SystemMemory)),
            (Numbering::TtMetal, 3, Some(BufferType::L1Small)),
            (Numbering::TtMetal, 4, Some(BufferType::Trace)),
            (Numbering::PythonDemo, 2, Some(BufferType::L1Small)),
            (Numbering::PythonDemo, 3, Some(BufferType::Trace)),
            (Numbering::PythonDemo, 4, None),
        ] {
            assert_eq!(numbering.buffer_type(v), want, "{numbering:?} {v}");
        }
        let mut r = Registry::new(Numbering::PythonDemo);
        r.apply(&msg(MsgType::Alloc, 0, 100, 3, 1), 7, &mut Ids);
        r.apply(&msg(MsgType::Alloc, 0, 10, 2, 2), 7, &mut Ids);
        assert_eq!(query(&mut r, 0), (0, 0, 10, 100));
        let bad = r.apply(&msg(MsgType::Alloc, 0, 10, 4, 3), 7, &mut Ids);
        assert!(bad.rejected && bad.events.is_empty());
        assert!(bad.lines[0].contains("--compat-types"));
        let mut r = Registry::new(Numbering::TtMetal);
        r.apply(&msg(MsgType::Alloc, 0, 100, 3, 1), 7, &mut Ids);
        r.apply(&msg(MsgType::Alloc, 0, 10, 4, 2), 7, &mut Ids);
        assert_eq!(query(&mut r, 0), (0, 0, 100, 10));
        assert_eq!(
            "python-demo".parse::<Numbering>(),
            Ok(Numbering::PythonDemo)
        );
        assert!("x".parse::<Numbering>().is_err());
    }

    #[test]
    fn device_info_counts_devices_seen() {
        let mut r = Registry::new(Numbering::TtMetal);
        let info = |r: &mut Registry, d| {
            r.apply(&msg(MsgType::DeviceInfoQuery, d, 0, 0, 0), 7, &mut Ids)
                .reply
                .unwrap()
        };
        assert_eq!(info(&mut r, -1).num_devices, 0);
        r.apply(&msg(MsgType::Alloc, 3, 1, 0, 1), 7, &mut Ids);
        let all = info(&mut r, -1);
        assert_eq!((all.msg_type, all.num_devices, all.is_available), (7, 4, 1));
        // Details of one device are unknown: the monitor uses its defaults.
        let one = info(&mut r, 2);
        assert_eq!((one.msg_type, one.device_id, one.is_available), (7, 2, 0));
        assert_eq!((one.total_dram_size, one.num_devices), (0, 0));
    }

    #[test]
    fn cbs_and_kernels() {
        let mut r = Registry::new(Numbering::TtMetal);
        let a = r.apply(&msg(MsgType::CbAlloc, 0, 4096, 0, 0x19000), 7, &mut Ids);
        assert!(matches!(
            a.events[..],
            [EventKind::CbAlloc {
                address: 0x19000,
                size: 4096,
                ..
            }]
        ));
        r.apply(&msg(MsgType::CbAlloc, 0, 2048, 0, 0x1a000), 7, &mut Ids);
        assert!(r
            .apply(&msg(MsgType::CbFree, 0, 4096, 0, 0x19000), 7, &mut Ids)
            .events
            .is_empty());
        let last = r.apply(&msg(MsgType::CbFree, 0, 2048, 0, 0x1a000), 7, &mut Ids);
        assert_eq!(
            last.events,
            [EventKind::CbFreeAll {
                device: DeviceId(0)
            }]
        );
        assert_eq!(r.counters(0).cb, 0);

        let l = r.apply(&msg(MsgType::KernelLoad, 1, 900, 0, 5), 7, &mut Ids);
        let EventKind::ProgramLoad {
            program,
            binary_size: 900,
            device: DeviceId(1),
            ..
        } = l.events[0]
        else {
            panic!("{l:?}")
        };
        assert!(r
            .apply(&msg(MsgType::KernelLoad, 1, 900, 0, 5), 7, &mut Ids)
            .events
            .is_empty());
        assert_eq!(r.counters(1).kernel, 900);
        assert!(r
            .apply(&msg(MsgType::KernelUnload, 1, 900, 0, 5), 7, &mut Ids)
            .events
            .is_empty());
        let u = r.apply(&msg(MsgType::KernelUnload, 1, 900, 0, 5), 7, &mut Ids);
        assert_eq!(
            u.events,
            [EventKind::ProgramUnload {
                device: DeviceId(1),
                program
            }]
        );
    }

    #[test]
    fn dead_owner_entries_leave_the_registry() {
        let mut r = Registry::new(Numbering::TtMetal);
        r.apply(&msg(MsgType::Alloc, 0, 100, 0, 1), 7, &mut Ids);
        r.apply(&msg(MsgType::Alloc, 0, 50, 1, 2), 8, &mut Ids);
        assert_eq!(r.drop_owner(7), (1, 100));
        assert_eq!(query(&mut r, 0), (0, 50, 0, 0));
        assert_eq!(r.active_allocations(), 1);
        let stats = r.statistics();
        assert!(stats.contains("  Device 0:\n    Buffers: 1\n    DRAM: 0 bytes (0 KB)\n    L1: 50 bytes (0.0488281 KB)\n    Total: 50 bytes\n"), "{stats}");
        assert!(stats.ends_with("  Active allocations: 1\n"), "{stats}");
        let dump = r.dump_remaining().join("\n");
        assert!(dump.contains("Device 0:\n  L1: 1 buffers, 4.76837e-05 MB total\n    - Buffer 0x2: 0.0488281 KB (PID 8, ref_count=1)"), "{dump}");
    }

    #[test]
    fn g_format_matches_iostream() {
        for (v, s) in [
            (36.0, "36"),
            (22.5, "22.5"),
            (1234.5678, "1234.57"),
            (0.0488281, "0.0488281"),
            (1e7, "1e+07"),
            (123456.7, "123457"),
            (0.0, "0"),
            (0.0000476837, "4.76837e-05"),
            (0.0001, "0.0001"),
        ] {
            assert_eq!(fmt_g(v), s, "{v}");
        }
    }
}
