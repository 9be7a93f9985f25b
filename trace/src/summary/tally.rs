//! The counts behind a [`super::TraceSummary`], taken from decoded columns
//! block by block: no `Event` is built for buffer allocs, frees, op scopes
//! and markers (nearly every event), and processes are looked up once per
//! run of events of the same process, not per event.

use super::{DeviceSummary, ProcessSummary, RefusalSummary, MAX_REFUSALS};
use crate::live::{IntMap, LiveTracker};
use crate::BlockColumns;
use std::collections::BTreeMap;
use ttalloc_model::event::split_argv;
use ttalloc_model::{
    Arch, BufferType, DeviceId, Event, EventKind, EventTag, InternTables, StringId,
};

const ALLOC: u8 = EventTag::BufferAlloc as u8;
const FREE: u8 = EventTag::BufferFree as u8;
const OP_BEGIN: u8 = EventTag::OpBegin as u8;
const OP_END: u8 = EventTag::OpEnd as u8;
const MARKER: u8 = EventTag::Marker as u8;
const CB_ALLOC: u8 = EventTag::CbAlloc as u8;
const CB_FREE_ALL: u8 = EventTag::CbFreeAll as u8;

#[derive(Default)]
pub(super) struct Tally {
    pub events: u64,
    pub by_kind: [u64; EventTag::ALL.len()],
    pub first_ts: u64,
    pub last_ts: u64,
    /// The greatest common divisor of the blocks' clock ticks (0 before
    /// a block with events).
    pub clock_tick_ns: u64,
    pub processes: BTreeMap<u32, ProcessSummary>,
    pub devices: BTreeMap<u32, DeviceSummary>,
    pub refusals: Vec<RefusalSummary>,
    peaks: IntMap<(u32, u8), u64>,
    live: LiveTracker,
}

fn device_entry(devices: &mut BTreeMap<u32, DeviceSummary>, d: u32) -> &mut DeviceSummary {
    devices.entry(d).or_insert_with(|| DeviceSummary {
        device: d,
        arch: Arch::Unknown,
        config: None,
        opens: 0,
        closes: 0,
        buffer_allocs: 0,
        buffer_frees: 0,
        allocs_refused: 0,
        labelled_allocs: 0,
        peak_live_bytes: BTreeMap::new(),
        live_bytes_at_end: BTreeMap::new(),
    })
}

impl Tally {
    pub fn new() -> Self {
        Tally {
            first_ts: u64::MAX,
            ..Tally::default()
        }
    }

    /// Counts one decoded block, its events in order.
    pub fn block(&mut self, c: &BlockColumns, t: &InternTables) {
        if !c.tags.is_empty() {
            self.clock_tick_ns = gcd(self.clock_tick_ns, c.clock_tick_ns);
        }
        let mut allocs = c.allocs.iter();
        let mut frees = c.frees.iter();
        let mut others = c.others.iter();
        let mut cbs = (0..c.cbs.len()).map_while(|i| c.cb_event(i));
        // The current run of one process's events: (pid, events).
        let mut run: Option<(u32, u64)> = None;
        let heads = c.timestamps().zip(c.pids());
        for (p, (&tag, (ts, pid))) in c.tags.iter().zip(heads).enumerate() {
            if tag as usize >= EventTag::ALL.len() {
                continue; // a kind newer than this reader: not an event here
            }
            self.events += 1;
            self.by_kind[tag as usize] += 1;
            self.first_ts = self.first_ts.min(ts);
            self.last_ts = self.last_ts.max(ts);
            let pid = pid.0;
            match &mut run {
                Some((q, n)) if *q == pid => *n += 1,
                _ => {
                    self.close_run(run);
                    run = Some((pid, 1));
                }
            }
            match tag {
                ALLOC => {
                    let Some(a) = allocs.next() else { continue };
                    let d = device_entry(&mut self.devices, a.device.0);
                    d.buffer_allocs += 1;
                    d.labelled_allocs += (a.label != StringId::EMPTY) as u64;
                    let now = self.live.alloc(a.device, a.buffer, a.buffer_type, a.size);
                    self.peak(a.device, a.buffer_type, now);
                }
                FREE => {
                    let Some(f) = frees.next() else { continue };
                    device_entry(&mut self.devices, f.device.0).buffer_frees += 1;
                    self.live.free(f.device, f.buffer);
                }
                OP_BEGIN | OP_END | MARKER => {}
                CB_ALLOC | CB_FREE_ALL => {
                    let Some((_, e)) = cbs.next() else { continue };
                    self.other(p as u64 + c.first_event, &e, t);
                }
                _ => {
                    let Some((_, e)) = others.next() else {
                        continue;
                    };
                    self.other(p as u64 + c.first_event, e, t);
                }
            }
        }
        self.close_run(run);
    }

    fn close_run(&mut self, run: Option<(u32, u64)>) {
        if let Some((pid, n)) = run {
            self.process(pid).events += n;
        }
    }

    fn process(&mut self, pid: u32) -> &mut ProcessSummary {
        self.processes.entry(pid).or_insert_with(|| ProcessSummary {
            pid,
            ppid: None,
            argv: Vec::new(),
            exit_status: None,
            exited: false,
            events: 0,
        })
    }

    fn peak(&mut self, device: DeviceId, bt: BufferType, now: u64) {
        let peak = self.peaks.entry((device.0, bt as u8)).or_default();
        *peak = (*peak).max(now);
    }

    /// An event of a rarer kind (stored whole in the columns).
    fn other(&mut self, ordinal: u64, e: &Event, t: &InternTables) {
        let p = self.process(e.pid.0);
        match &e.kind {
            EventKind::ProcessStart { ppid, argv } => {
                p.ppid = Some(ppid.0);
                p.argv = split_argv(t.string(*argv))
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
            }
            EventKind::ProcessExit { status } => {
                p.exited = true;
                p.exit_status = *status;
            }
            EventKind::AllocRefused {
                device,
                buffer_type,
                size,
                message,
                ..
            } if self.refusals.len() < MAX_REFUSALS => self.refusals.push(RefusalSummary {
                ordinal,
                device: device.0,
                buffer_type: buffer_type.name().to_string(),
                size: *size,
                message: t.string(*message).to_string(),
            }),
            _ => {}
        }
        if let Some(d) = e.kind.device() {
            let ds = device_entry(&mut self.devices, d.0);
            match &e.kind {
                EventKind::DeviceOpen { arch, config, .. } => {
                    ds.opens += 1;
                    ds.arch = *arch;
                    ds.config = Some((**config).clone());
                }
                EventKind::DeviceClose { .. } => ds.closes += 1,
                EventKind::AllocRefused { .. } => ds.allocs_refused += 1,
                _ => {}
            }
        }
        if let Some((d, bt, now)) = self.live.apply(e) {
            self.peak(d, bt, now);
        }
    }

    /// Peak and final live bytes into the device summaries.
    pub fn finish_devices(&mut self) {
        let mut peaks: Vec<_> = self.peaks.iter().map(|(&k, &v)| (k, v)).collect();
        peaks.sort_unstable();
        for ((d, bt), peak) in peaks {
            let Some(bt) = BufferType::from_u8(bt) else {
                continue;
            };
            if let Some(ds) = self.devices.get_mut(&d) {
                ds.peak_live_bytes.insert(bt.name().to_string(), peak);
                let now = self.live.bytes(DeviceId(d), bt);
                if now > 0 {
                    ds.live_bytes_at_end.insert(bt.name().to_string(), now);
                }
            }
        }
    }
}

/// The greatest common divisor (`gcd(0, x) = x`).
fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}
