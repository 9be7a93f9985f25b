//! Live accounting of what the recorded processes hold on each device, kept
//! by the writer thread in trace order. It feeds the `record` status line,
//! `serve`'s periodic statistics and the end-of-run summary ("what was left
//! behind"). It is not the replayer: no allocator model, just sums.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use ttalloc_model::hash::FastMap;
use ttalloc_model::units::plural;
use ttalloc_model::{
    BufferId, BufferType, DeviceId, Event, EventKind, EventTag, ProgramId, TraceId,
};

/// What one device holds right now.
///
/// Byte sums are kept exact in `u128` (sizes come from the recorded program:
/// two 2^63 B allocations must neither panic the writer thread nor wrap to a
/// wrong total) and read back saturated to `u64`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceStats {
    pub open: bool,
    /// Closed by a `DeviceClose` (not merely never seen opening): what it
    /// still holds outlived it.
    pub closed: bool,
    /// Buffers allocated and not freed.
    pub live_buffers: u64,
    /// Live bytes by buffer type, indexed by `BufferType as usize`.
    bytes: [u128; 5],
    /// Circular buffers allocated since the last free-all, and their bytes (per core).
    pub cbs: u64,
    cb_bytes: u128,
    pub programs: u64,
    program_bytes: u128,
    pub traces: u64,
    trace_bytes: u128,
}

/// A sum read back: exact when it fits, else `u64::MAX`.
fn saturated(sum: u128) -> u64 {
    u64::try_from(sum).unwrap_or(u64::MAX)
}

impl DeviceStats {
    /// Live bytes of one buffer type.
    pub fn bytes(&self, bt: BufferType) -> u64 {
        saturated(self.bytes[bt as usize])
    }
    /// Live bytes of every buffer type.
    pub fn total(&self) -> u64 {
        saturated(self.bytes.iter().sum())
    }
    pub fn dram(&self) -> u64 {
        self.bytes(BufferType::Dram)
    }
    /// L1 and L1_SMALL.
    pub fn l1(&self) -> u64 {
        saturated(self.bytes[BufferType::L1 as usize] + self.bytes[BufferType::L1Small as usize])
    }
    /// Bytes per core of the circular buffers allocated since the last free-all.
    pub fn cb_bytes(&self) -> u64 {
        saturated(self.cb_bytes)
    }
    pub fn program_bytes(&self) -> u64 {
        saturated(self.program_bytes)
    }
    pub fn trace_bytes(&self) -> u64 {
        saturated(self.trace_bytes)
    }
    /// Anything at all still held.
    pub fn holds_anything(&self) -> bool {
        self.live_buffers > 0 || self.cbs > 0 || self.programs > 0 || self.traces > 0
    }
}

/// A copy of the live state, cheap to hand to other threads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveSnapshot {
    pub events: u64,
    /// Events by kind, indexed by `EventTag as usize`.
    pub by_kind: [u64; EventTag::ALL.len()],
    /// Sources (connections) currently registered and not ended.
    pub sources_connected: u64,
    /// Sources seen since the start.
    pub sources_total: u64,
    pub devices: BTreeMap<DeviceId, DeviceStats>,
    /// Frees of buffers the accounting never saw allocated.
    pub unknown_frees: u64,
    /// Protocol errors (connections closed because of bad input).
    pub protocol_errors: u64,
}

impl LiveSnapshot {
    pub fn live_buffers(&self) -> u64 {
        self.devices.values().map(|d| d.live_buffers).sum()
    }
    pub fn dram(&self) -> u64 {
        saturated(
            self.devices
                .values()
                .map(|d| d.bytes[BufferType::Dram as usize])
                .sum(),
        )
    }
    pub fn l1(&self) -> u64 {
        let l1 = |d: &DeviceStats| {
            d.bytes[BufferType::L1 as usize] + d.bytes[BufferType::L1Small as usize]
        };
        saturated(self.devices.values().map(l1).sum())
    }

    /// The per-device statistics the original allocation server printed every
    /// 10 s, one line per device, then "Active allocations: N".
    pub fn server_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (dev, d) in &self.devices {
            out.push(format!(
                "Device {}: {}, DRAM {}, L1 {}, L1_SMALL {}, TRACE {}, CBs {}",
                dev,
                plural(d.live_buffers, "buffer"),
                human_bytes(d.dram()),
                human_bytes(d.bytes(BufferType::L1)),
                human_bytes(d.bytes(BufferType::L1Small)),
                human_bytes(saturated(
                    d.bytes[BufferType::Trace as usize] + d.trace_bytes
                )),
                human_bytes(d.cb_bytes()),
            ));
        }
        out.push(format!("Active allocations: {}", self.live_buffers()));
        out
    }

    /// One-line description of what is still held, or "nothing".
    pub fn left_behind(&self) -> String {
        let mut parts = Vec::new();
        for (dev, d) in &self.devices {
            if !d.holds_anything() {
                continue;
            }
            let mut s = format!("device {dev}: {}", plural(d.live_buffers, "buffer"));
            for bt in BufferType::ALL {
                let b = d.bytes(bt);
                if b > 0 {
                    let _ = write!(s, ", {} {}", human_bytes(b), bt);
                }
            }
            if d.cbs > 0 {
                let _ = write!(
                    s,
                    ", {} ({} per core)",
                    plural(d.cbs, "CB"),
                    human_bytes(d.cb_bytes())
                );
            }
            if d.programs > 0 {
                let _ = write!(
                    s,
                    ", {} ({})",
                    plural(d.programs, "program"),
                    human_bytes(d.program_bytes())
                );
            }
            if d.traces > 0 {
                let _ = write!(
                    s,
                    ", {} ({})",
                    plural(d.traces, "trace"),
                    human_bytes(d.trace_bytes())
                );
            }
            parts.push(s);
        }
        if parts.is_empty() {
            "nothing".into()
        } else {
            parts.join("; ")
        }
    }
}

/// Bytes as every command writes them (see `ttalloc_model::units`).
pub fn human_bytes(b: u64) -> String {
    ttalloc_model::units::bytes(b)
}

/// The writer thread's running sums (exact, in trace order).
#[derive(Default)]
pub struct Accounting {
    pub snap: LiveSnapshot,
    buffers: FastMap<BufferId, (DeviceId, BufferType, u64)>,
    programs: FastMap<(DeviceId, ProgramId), u64>,
    traces: FastMap<(DeviceId, TraceId), u64>,
}

impl Accounting {
    pub fn apply(&mut self, e: &Event) {
        let s = &mut self.snap;
        s.events += 1;
        s.by_kind[e.kind.tag() as usize] += 1;
        match e.kind {
            EventKind::DeviceOpen { device, .. } => {
                let d = s.devices.entry(device).or_default();
                d.open = true;
                d.closed = false;
            }
            EventKind::DeviceClose { device } => {
                // Circular buffers belong to programs, which die with the
                // device; buffers still live are what outlived it (kept).
                let d = s.devices.entry(device).or_default();
                d.open = false;
                d.closed = true;
                d.cbs = 0;
                d.cb_bytes = 0;
            }
            EventKind::BufferAlloc {
                device,
                buffer,
                buffer_type,
                size,
                ..
            } => {
                if let Some((od, obt, osz)) =
                    self.buffers.insert(buffer, (device, buffer_type, size))
                {
                    // Same id allocated twice: the replayer reports it; here the newer one wins.
                    let d = s.devices.entry(od).or_default();
                    d.live_buffers -= 1;
                    d.bytes[obt as usize] -= u128::from(osz);
                }
                let d = s.devices.entry(device).or_default();
                d.live_buffers += 1;
                d.bytes[buffer_type as usize] += u128::from(size);
            }
            EventKind::BufferFree { buffer, .. } => match self.buffers.remove(&buffer) {
                Some((dev, bt, size)) => {
                    let d = s.devices.entry(dev).or_default();
                    d.live_buffers -= 1;
                    d.bytes[bt as usize] -= u128::from(size);
                }
                None => s.unknown_frees += 1,
            },
            EventKind::CbAlloc { device, size, .. } => {
                let d = s.devices.entry(device).or_default();
                d.cbs += 1;
                d.cb_bytes += u128::from(size);
            }
            EventKind::CbFreeAll { device } => {
                let d = s.devices.entry(device).or_default();
                d.cbs = 0;
                d.cb_bytes = 0;
            }
            EventKind::ProgramLoad {
                device,
                program,
                binary_size,
                ..
            } => {
                let d = s.devices.entry(device).or_default();
                if let Some(old) = self.programs.insert((device, program), binary_size) {
                    d.programs -= 1;
                    d.program_bytes -= u128::from(old);
                }
                d.programs += 1;
                d.program_bytes += u128::from(binary_size);
            }
            EventKind::ProgramUnload { device, program } => {
                if let Some(size) = self.programs.remove(&(device, program)) {
                    let d = s.devices.entry(device).or_default();
                    d.programs -= 1;
                    d.program_bytes -= u128::from(size);
                }
            }
            EventKind::TraceCapture {
                device,
                trace_id,
                size,
                ..
            } => {
                let d = s.devices.entry(device).or_default();
                if let Some(old) = self.traces.insert((device, trace_id), size) {
                    d.traces -= 1;
                    d.trace_bytes -= u128::from(old);
                }
                d.traces += 1;
                d.trace_bytes += u128::from(size);
            }
            EventKind::TraceRelease { device, trace_id } => {
                if let Some(size) = self.traces.remove(&(device, trace_id)) {
                    let d = s.devices.entry(device).or_default();
                    d.traces -= 1;
                    d.trace_bytes -= u128::from(size);
                }
            }
            EventKind::ProcessStart { .. }
            | EventKind::ProcessExit { .. }
            | EventKind::OpBegin { .. }
            | EventKind::OpEnd
            | EventKind::Marker { .. } => {}
            // A refusal changes no live bytes, but its device was in use.
            EventKind::AllocRefused { device, .. } => {
                s.devices.entry(device).or_default();
            }
        }
    }

    /// Count of events of one kind.
    pub fn count(&self, tag: EventTag) -> u64 {
        self.snap.by_kind[tag as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ttalloc_model::{Layout, Pid, SiteId, StringId};

    fn alloc(buffer: u64, bt: BufferType, size: u64) -> Event {
        Event {
            ts: 0,
            pid: Pid(1),
            kind: EventKind::BufferAlloc {
                device: DeviceId(0),
                buffer: BufferId(buffer),
                buffer_type: bt,
                address: None,
                size,
                page_size: None,
                layout: Layout::Interleaved,
                num_cores: None,
                per_bank_size: None,
                label: StringId::EMPTY,
                site: SiteId(0),
            },
        }
    }

    #[test]
    fn sums_follow_allocs_frees_and_free_all() {
        let mut a = Accounting::default();
        a.apply(&alloc(1, BufferType::Dram, 36864));
        a.apply(&alloc(2, BufferType::L1, 22528));
        a.apply(&alloc(3, BufferType::Dram, 100));
        let free = |b| Event {
            ts: 0,
            pid: Pid(1),
            kind: EventKind::BufferFree {
                device: DeviceId(0),
                buffer: BufferId(b),
                site: SiteId(0),
            },
        };
        a.apply(&free(3));
        a.apply(&free(99));
        let cb = Event {
            ts: 0,
            pid: Pid(1),
            kind: EventKind::CbAlloc {
                device: DeviceId(0),
                address: 0,
                size: 4096,
                cores: None,
                globally_allocated: false,
                site: SiteId(0),
            },
        };
        a.apply(&cb);
        let d = &a.snap.devices[&DeviceId(0)];
        assert_eq!(
            (d.live_buffers, d.dram(), d.l1(), d.cbs),
            (2, 36864, 22528, 1)
        );
        a.apply(&Event {
            ts: 0,
            pid: Pid(1),
            kind: EventKind::CbFreeAll {
                device: DeviceId(0),
            },
        });
        assert_eq!(a.snap.devices[&DeviceId(0)].cbs, 0);
        assert_eq!(a.snap.unknown_frees, 1);
        assert_eq!(a.snap.events, 7);
        assert!(
            a.snap.left_behind().contains("device 0: 2 buffers"),
            "{}",
            a.snap.left_behind()
        );
        assert_eq!(
            a.snap.server_lines().last().unwrap(),
            "Active allocations: 2"
        );
    }

    /// A device close ends its programs and so their circular buffers, but
    /// not the buffers still live: those outlived the device and stay
    /// "left behind".
    #[test]
    fn device_close_drops_circular_buffers_not_buffers() {
        let mut a = Accounting::default();
        a.apply(&alloc(1, BufferType::L1, 16384));
        a.apply(&Event {
            ts: 0,
            pid: Pid(1),
            kind: EventKind::CbAlloc {
                device: DeviceId(0),
                address: 105824,
                size: 4096,
                cores: Some(64),
                globally_allocated: false,
                site: SiteId(0),
            },
        });
        a.apply(&Event {
            ts: 0,
            pid: Pid(1),
            kind: EventKind::DeviceClose {
                device: DeviceId(0),
            },
        });
        let d = &a.snap.devices[&DeviceId(0)];
        assert_eq!(
            (d.live_buffers, d.l1(), d.cbs, d.cb_bytes()),
            (1, 16384, 0, 0)
        );
        assert!(
            !a.snap.left_behind().contains("CB"),
            "{}",
            a.snap.left_behind()
        );
    }
}
