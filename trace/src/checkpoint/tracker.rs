//! The writer's view of allocator state: every object the replay model
//! would hold (buffers, circular buffers, program binaries, traces) and the
//! devices open, kept up to date event by event so a checkpoint is a copy of
//! a few maps. The rules are the replay engine's: buffers are keyed by id
//! whatever the device (an alloc of a live id replaces it, a free drops it);
//! programs and traces by (device, id); a CbFreeAll drops the device's
//! circular buffers; a DeviceClose drops the device and all it held.

use super::records::*;
use crate::live::IntMap;
use std::collections::BTreeMap;
use ttalloc_model::{DeviceId, Event, EventKind};

/// Fewest blocks between two checkpoints, and how many a trace gets before
/// the spacing starts growing with its length (so their number grows with
/// the logarithm of the length: about 32·(1 + ln(blocks / 128))).
const MIN_SPACING: u32 = 4;
const SPREAD: u32 = 32;

#[derive(Default)]
pub(crate) struct CheckpointTracker {
    devices: BTreeMap<u32, OpenDeviceRec>,
    /// Objects per device, to tell whether a device holds nothing: a
    /// list searched in order, as a trace has a few devices and this is
    /// updated for every alloc and free (a hash map's entry for each was
    /// about 4% of the writer thread's samples in a compat recording).
    held: Vec<(u32, u64)>,
    buffers: IntMap<u64, LiveObjectRec>,
    /// (device, tag, program or trace id).
    others: IntMap<(u32, u8, u64), LiveObjectRec>,
    cbs: IntMap<u32, Vec<LiveObjectRec>>,
    blocks_since: u32,
    /// Where each checkpoint written so far is (for the index record).
    pub(crate) written: Vec<CheckpointEntryRec>,
}

fn object(ord: u64, ts: u64, e: &Event, device: DeviceId, tag: u8) -> LiveObjectRec {
    LiveObjectRec {
        event: ord,
        ts,
        pid: e.pid.0,
        device: device.0,
        tag,
        ..LiveObjectRec::default()
    }
}

impl CheckpointTracker {
    fn hold(&mut self, device: u32, delta: i64) {
        let i = match self.held.iter().position(|&(d, _)| d == device) {
            Some(i) => i,
            None => {
                self.held.push((device, 0));
                self.held.len() - 1
            }
        };
        let n = &mut self.held[i].1;
        *n = n.saturating_add_signed(delta);
    }

    fn holds(&self, device: u32) -> u64 {
        self.held
            .iter()
            .find(|&&(d, _)| d == device)
            .map_or(0, |&(_, n)| n)
    }

    /// Applies the event of ordinal `ord`, at time `ts` (the writer's, at
    /// its clock tick).
    #[inline]
    pub(crate) fn apply(&mut self, ord: u64, ts: u64, e: &Event) {
        match &e.kind {
            EventKind::BufferAlloc {
                device,
                buffer,
                buffer_type,
                address,
                size,
                page_size,
                layout,
                num_cores,
                per_bank_size,
                label,
                site,
            } => {
                let mut o = object(ord, ts, e, *device, 4);
                o.buffer_type = *buffer_type as u8;
                o.layout = *layout as u8;
                o.id = buffer.get();
                o.size = *size;
                o.site = site.0;
                o.label = label.0;
                if let Some(a) = address {
                    o.flags |= HAS_ADDRESS;
                    o.address = *a;
                }
                if let Some(p) = page_size {
                    o.flags |= HAS_PAGE_SIZE;
                    o.page_size = *p;
                }
                if let Some(c) = num_cores {
                    o.flags |= HAS_CORES;
                    o.cores = *c;
                }
                if let Some(b) = per_bank_size {
                    o.flags |= HAS_PER_BANK;
                    o.per_bank_size = *b;
                }
                self.hold(device.0, 1);
                if let Some(old) = self.buffers.insert(buffer.get(), o) {
                    self.hold(old.device, -1);
                }
            }
            EventKind::BufferFree { buffer, .. } => {
                if let Some(old) = self.buffers.remove(&buffer.get()) {
                    self.hold(old.device, -1);
                }
            }
            EventKind::CbAlloc {
                device,
                address,
                size,
                cores,
                globally_allocated,
                site,
            } => {
                let mut o = object(ord, ts, e, *device, 6);
                o.address = *address;
                o.size = *size;
                o.site = site.0;
                o.flags = HAS_ADDRESS;
                if let Some(c) = cores {
                    o.flags |= HAS_CORES;
                    o.cores = *c;
                }
                if *globally_allocated {
                    o.flags |= GLOBALLY_ALLOCATED;
                }
                self.cbs.entry(device.0).or_default().push(o);
                self.hold(device.0, 1);
            }
            EventKind::CbFreeAll { device } => {
                if let Some(v) = self.cbs.remove(&device.0) {
                    self.hold(device.0, -(v.len() as i64));
                }
            }
            EventKind::ProgramLoad {
                device,
                program,
                binary_size,
                site,
            } => {
                let mut o = object(ord, ts, e, *device, 8);
                o.id = program.get();
                o.size = *binary_size;
                o.site = site.0;
                self.add_other(o);
            }
            EventKind::ProgramUnload { device, program } => {
                self.remove_other((device.0, 8, program.get()));
            }
            EventKind::TraceCapture {
                device,
                trace_id,
                size,
                site,
            } => {
                let mut o = object(ord, ts, e, *device, 10);
                o.id = trace_id.get() as u64;
                o.size = *size;
                o.site = site.0;
                self.add_other(o);
            }
            EventKind::TraceRelease { device, trace_id } => {
                self.remove_other((device.0, 10, trace_id.get() as u64));
            }
            EventKind::DeviceOpen {
                device,
                arch,
                config,
            } => {
                // The replay keeps the config of a device that already holds
                // memory; one that holds nothing is rebuilt.
                let busy = self.holds(device.0) > 0;
                if !(busy && self.devices.contains_key(&device.0)) {
                    let config = config
                        .known()
                        .into_iter()
                        .map(|(key, value)| ConfigEntryRec {
                            key: key.to_owned(),
                            value,
                        })
                        .collect();
                    self.devices.insert(
                        device.0,
                        OpenDeviceRec {
                            event: ord,
                            ts,
                            pid: e.pid.0,
                            device: device.0,
                            arch: *arch as u8,
                            config,
                        },
                    );
                }
            }
            EventKind::DeviceClose { device } => {
                let d = device.0;
                self.devices.remove(&d);
                let held = self.holds(d);
                self.held.retain(|&(x, _)| x != d);
                if held > 0 {
                    self.buffers.retain(|_, o| o.device != d);
                    self.others.retain(|k, _| k.0 != d);
                    self.cbs.remove(&d);
                }
            }
            _ => {}
        }
    }

    fn add_other(&mut self, o: LiveObjectRec) {
        self.hold(o.device, 1);
        if let Some(old) = self.others.insert((o.device, o.tag, o.id), o) {
            self.hold(old.device, -1);
        }
    }

    fn remove_other(&mut self, key: (u32, u8, u64)) {
        if let Some(old) = self.others.remove(&key) {
            self.hold(old.device, -1);
        }
    }

    /// Called after each sealed block: whether a checkpoint is due after it.
    pub(crate) fn due(&mut self, blocks: u32) -> bool {
        self.blocks_since += 1;
        if self.blocks_since >= MIN_SPACING.max(blocks / SPREAD) {
            self.blocks_since = 0;
            true
        } else {
            false
        }
    }

    /// The state now, after block `after_block` (its objects by ordinal).
    pub(crate) fn snapshot(&self, after_block: u32, next_event: u64) -> CheckpointRec {
        let mut objects: Vec<LiveObjectRec> = self
            .buffers
            .values()
            .chain(self.others.values())
            .chain(self.cbs.values().flatten())
            .copied()
            .collect();
        objects.sort_unstable_by_key(|o| o.event);
        CheckpointRec {
            after_block,
            next_event,
            devices: self.devices.values().cloned().collect(),
            objects,
        }
    }
}
