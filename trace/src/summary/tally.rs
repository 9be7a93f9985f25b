//! The counts behind a [`super::TraceSummary`], taken from decoded columns
//! block by block: no `Event` is built for buffer allocs, frees, op scopes
//! and markers (nearly every event), and processes are looked up once per
//! run of events of the same process, not per event.

use super::devices::DeviceTable;
use super::{DeviceSummary, ProcessSummary, RefusalSummary, MAX_REFUSALS};
use crate::BlockColumns;
use std::collections::BTreeMap;
use ttalloc_model::event::split_argv;
use ttalloc_model::{Event, EventKind, EventTag, InternTables, StringId};

use ttalloc_model::tag_code::{ALLOC, CB_ALLOC, CB_FREE_ALL, FREE, MARKER, OP_BEGIN, OP_END};

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
    devices: DeviceTable,
    pub refusals: Vec<RefusalSummary>,
    /// Whether live bytes are followed (each buffer's bytes looked up on
    /// its free: most of a tally's work).
    live_bytes: bool,
}

impl Tally {
    pub fn new() -> Self {
        Tally {
            first_ts: u64::MAX,
            live_bytes: true,
            ..Tally::default()
        }
    }

    /// A tally of nothing yet, following live bytes if `other` does.
    pub fn counting_like(other: &Tally) -> Self {
        Tally {
            live_bytes: other.live_bytes,
            ..Tally::new()
        }
    }

    /// A tally that follows no live bytes: its devices' peak and final
    /// live bytes stay empty.
    pub fn without_live_bytes() -> Self {
        Tally {
            live_bytes: false,
            ..Tally::new()
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
        let mut cbs = 0usize;
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
                    let i = self.devices.index(a.device.0);
                    let d = self.devices.summary(i);
                    d.buffer_allocs += 1;
                    d.labelled_allocs += (a.label != StringId::EMPTY) as u64;
                    if self.live_bytes {
                        self.devices.alloc(i, a.buffer.0, a.buffer_type, a.size);
                    }
                }
                FREE => {
                    let Some(f) = frees.next() else { continue };
                    let i = self.devices.index(f.device.0);
                    self.devices.summary(i).buffer_frees += 1;
                    if self.live_bytes {
                        self.devices.free(i, f.buffer.0);
                    }
                }
                OP_BEGIN | OP_END | MARKER => {}
                // A circular buffer counts for nothing but its device's row
                // (and its process's run, above): no event is made of it.
                CB_ALLOC | CB_FREE_ALL => {
                    let Some(cb) = c.cbs.get(cbs) else { continue };
                    cbs += 1;
                    self.devices.index(cb.device.0);
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
            let i = self.devices.index(d.0);
            let ds = self.devices.summary(i);
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
        // What LiveTracker::apply does with an event held whole.
        if !self.live_bytes {
            return;
        }
        match e.kind {
            EventKind::BufferAlloc {
                device,
                buffer,
                buffer_type,
                size,
                ..
            } => {
                let i = self.devices.index(device.0);
                self.devices.alloc(i, buffer.0, buffer_type, size);
            }
            EventKind::BufferFree { device, buffer, .. } => {
                let i = self.devices.index(device.0);
                self.devices.free(i, buffer.0);
            }
            EventKind::DeviceClose { device } => self.devices.close(device.0),
            _ => {}
        }
    }

    /// The device summaries by id, peak and final live bytes filled in.
    pub fn finish_devices(&mut self) -> BTreeMap<u32, DeviceSummary> {
        std::mem::take(&mut self.devices).into_summaries()
    }
}

/// The greatest common divisor (`gcd(0, x) = x`).
fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}
