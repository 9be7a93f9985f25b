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
}

pub(super) struct DeviceRow {
    pub summary: DeviceSummary,
    /// Its live buffers: buffer id -> (buffer type, size). A map per
    /// device, keyed by the id alone: one keyed by (device, id) hashed
    /// two words and took 90 instructions an alloc or free.
    buffers: IntMap<u64, (u8, u64)>,
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
        match self.small.get(d as usize) {
            Some(&row) if row != 0 => row as usize - 1,
            _ => self.index_slow(d),
        }
    }

    /// [`DeviceTable::index`] of a device with a large id or no row yet.
    #[inline(never)]
    fn index_slow(&mut self, d: u32) -> usize {
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
    pub fn alloc(&mut self, i: usize, buffer: u64, bt: BufferType, size: u64) {
        let row = &mut self.rows[i];
        let old = row.buffers.insert(buffer, (bt as u8, size));
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
    pub fn free(&mut self, i: usize, buffer: u64) {
        let row = &mut self.rows[i];
        if let Some((bt, size)) = row.buffers.remove(&buffer) {
            let live = &mut row.live[bt as usize];
            *live = live.wrapping_sub(size);
        }
    }

    /// A device close: its buffers are gone.
    pub fn close(&mut self, d: u32) {
        let i = self.index(d);
        let row = &mut self.rows[i];
        row.buffers.clear();
        row.live = [0; TYPES];
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
            buffers: IntMap::default(),
            live: [0; TYPES],
            peak: [0; TYPES],
            used: [false; TYPES],
        }
    }
}
