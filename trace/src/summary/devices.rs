//! A summary's devices and their live buffers, kept for a count per event:
//! a device is found by its id in a table (an index for the small ids
//! devices have), not a tree walk per alloc and free, and its live and peak
//! bytes per buffer type sit beside its counts. The rules are
//! [`crate::LiveTracker`]'s: an alloc of a live id replaces it, a free of
//! an unknown id does nothing, a close drops the device's buffers; sums
//! wrap at 2^64.

use super::DeviceSummary;
use crate::live::IntMap;
use std::collections::BTreeMap;
use ttalloc_model::{Arch, BufferType};

/// Device ids below this are found by indexing (tt-metal numbers devices
/// from 0; a mesh has tens).
const SMALL: u32 = 1024;
const TYPES: usize = BufferType::ALL.len();

#[derive(Default)]
pub(super) struct DeviceTable {
    /// Row + 1 of device `d` at `d` (0: none yet), for ids below `SMALL`.
    small: Vec<u32>,
    /// Rows of the other ids.
    large: IntMap<u32, u32>,
    rows: Vec<DeviceRow>,
    /// Live buffers: (device, buffer id) -> (buffer type, size).
    buffers: IntMap<(u32, u64), (u8, u64)>,
}

pub(super) struct DeviceRow {
    pub summary: DeviceSummary,
    /// Live bytes per buffer type.
    live: [u64; TYPES],
    /// Most live bytes per buffer type after any alloc of that type.
    peak: [u64; TYPES],
    /// Whether an alloc of that type was seen (its peak is reported).
    used: [bool; TYPES],
}

impl DeviceTable {
    /// The index of device `d`'s row, made on first use.
    #[inline]
    pub fn index(&mut self, d: u32) -> usize {
        let slot = if d < SMALL {
            if d as usize >= self.small.len() {
                self.small.resize(d as usize + 1, 0);
            }
            &mut self.small[d as usize]
        } else {
            self.large.entry(d).or_insert(0)
        };
        if *slot == 0 {
            self.rows.push(DeviceRow::new(d));
            *slot = self.rows.len() as u32;
        }
        *slot as usize - 1
    }

    /// The summary of row `i` (its counts).
    #[inline]
    pub fn summary(&mut self, i: usize) -> &mut DeviceSummary {
        &mut self.rows[i].summary
    }

    /// A buffer alloc on device `d` (row `i`): its bytes are live.
    #[inline]
    pub fn alloc(&mut self, i: usize, d: u32, buffer: u64, bt: BufferType, size: u64) {
        let old = self.buffers.insert((d, buffer), (bt as u8, size));
        let row = &mut self.rows[i];
        if let Some((old_bt, old)) = old {
            row.live[old_bt as usize] = row.live[old_bt as usize].wrapping_sub(old);
        }
        let t = bt as usize;
        row.live[t] = row.live[t].wrapping_add(size);
        row.peak[t] = row.peak[t].max(row.live[t]);
        row.used[t] = true;
    }

    /// A buffer free on device `d` (row `i`): its bytes, if it is live,
    /// are not.
    #[inline]
    pub fn free(&mut self, i: usize, d: u32, buffer: u64) {
        if let Some((bt, size)) = self.buffers.remove(&(d, buffer)) {
            let live = &mut self.rows[i].live[bt as usize];
            *live = live.wrapping_sub(size);
        }
    }

    /// A device close: its buffers are gone.
    pub fn close(&mut self, d: u32) {
        self.buffers.retain(|&(k, _), _| k != d);
        let i = self.index(d);
        self.rows[i].live = [0; TYPES];
    }

    /// The summaries by device id, peak and final live bytes filled in.
    pub fn into_summaries(self) -> BTreeMap<u32, DeviceSummary> {
        self.rows
            .into_iter()
            .map(|row| {
                let mut s = row.summary;
                for bt in BufferType::ALL {
                    let t = bt as usize;
                    if row.used[t] {
                        s.peak_live_bytes.insert(bt.name().to_string(), row.peak[t]);
                        if row.live[t] > 0 {
                            s.live_bytes_at_end
                                .insert(bt.name().to_string(), row.live[t]);
                        }
                    }
                }
                (s.device, s)
            })
            .collect()
    }
}

impl DeviceRow {
    fn new(device: u32) -> DeviceRow {
        DeviceRow {
            summary: DeviceSummary {
                device,
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
            },
            live: [0; TYPES],
            peak: [0; TYPES],
            used: [false; TYPES],
        }
    }
}
