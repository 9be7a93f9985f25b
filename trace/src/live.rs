//! The writer's live-buffer map, from which every block's checkpoint (live
//! bytes per device and buffer type at the block's end) is taken. The same
//! rules are used by `summary` for peaks.

use crate::records::LiveRec;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use ttalloc_model::{BufferId, BufferType, DeviceId, Event, EventKind};

/// A fast hasher for integer keys (Fx-style multiply-rotate).
#[derive(Default, Clone, Copy)]
pub struct IntHasher(u64);

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    #[inline]
    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64);
    }
    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

pub type IntMap<K, V> = HashMap<K, V, BuildHasherDefault<IntHasher>>;

/// Live buffers and the bytes they hold per (device, buffer type).
///
/// Rules: `BufferAlloc` adds its size (an alloc of a buffer id that is still
/// live replaces it); `BufferFree` of a live buffer subtracts it (unknown
/// buffers are ignored); `DeviceClose` drops every buffer of that device, as
/// tt-metal's `deallocate_all` does. Sums wrap at 2^64 (so a free exactly
/// undoes its alloc even for absurd sizes). Circular buffers, programs and traces are
/// not buffers and are not counted.
#[derive(Default, Clone)]
pub struct LiveTracker {
    buffers: IntMap<(DeviceId, BufferId), (BufferType, u64)>,
    /// Indexed by device, then buffer type code.
    bytes: Vec<(DeviceId, [u64; 5])>,
}

impl LiveTracker {
    fn slot(&mut self, device: DeviceId) -> &mut [u64; 5] {
        let i = match self.bytes.iter().position(|(d, _)| *d == device) {
            Some(i) => i,
            None => {
                self.bytes.push((device, [0; 5]));
                self.bytes.len() - 1
            }
        };
        &mut self.bytes[i].1
    }

    /// Applies one event; returns the (device, buffer type) whose bytes grew, if any.
    #[inline]
    pub fn apply(&mut self, e: &Event) -> Option<(DeviceId, BufferType, u64)> {
        match e.kind {
            EventKind::BufferAlloc {
                device,
                buffer,
                buffer_type,
                size,
                ..
            } => Some((
                device,
                buffer_type,
                self.alloc(device, buffer, buffer_type, size),
            )),
            EventKind::BufferFree { device, buffer, .. } => {
                self.free(device, buffer);
                None
            }
            EventKind::DeviceClose { device } => {
                self.buffers.retain(|(d, _), _| *d != device);
                *self.slot(device) = [0; 5];
                None
            }
            _ => None,
        }
    }

    /// A `BufferAlloc`: the device's live bytes of that type after it.
    #[inline]
    pub fn alloc(&mut self, device: DeviceId, buffer: BufferId, bt: BufferType, size: u64) -> u64 {
        if let Some((old_bt, old)) = self.buffers.insert((device, buffer), (bt, size)) {
            let s = self.slot(device);
            s[old_bt as usize] = s[old_bt as usize].wrapping_sub(old);
        }
        let s = self.slot(device);
        s[bt as usize] = s[bt as usize].wrapping_add(size);
        s[bt as usize]
    }

    /// A `BufferFree` (of an unknown buffer: nothing).
    #[inline]
    pub fn free(&mut self, device: DeviceId, buffer: BufferId) {
        if let Some((bt, size)) = self.buffers.remove(&(device, buffer)) {
            let s = self.slot(device);
            s[bt as usize] = s[bt as usize].wrapping_sub(size);
        }
    }

    /// Non-zero live bytes, sorted by device then buffer type.
    pub fn snapshot(&self) -> Vec<LiveRec> {
        let mut out = Vec::new();
        for (d, per) in &self.bytes {
            for (bt, &b) in per.iter().enumerate() {
                if b > 0 {
                    out.push(LiveRec {
                        device: d.0,
                        buffer_type: bt as u8,
                        bytes: b,
                    });
                }
            }
        }
        out.sort_by_key(|r| (r.device, r.buffer_type));
        out
    }

    /// Number of live buffers.
    pub fn live_buffers(&self) -> usize {
        self.buffers.len()
    }

    /// Live bytes of one device and buffer type.
    pub fn bytes(&self, device: DeviceId, bt: BufferType) -> u64 {
        self.bytes
            .iter()
            .find(|(d, _)| *d == device)
            .map_or(0, |(_, s)| s[bt as usize])
    }
}
