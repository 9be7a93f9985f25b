//! The device's live buffers: one slot per buffer in a dense table, with
//! the free-list block each holds. A caller that keeps the [`Handle`] of a
//! buffer frees it with no lookup at all (`Device::allocate_placed` /
//! `Device::deallocate_placed`); an id index is kept only for the buffers
//! allocated by id (`Device::allocate` / `Device::deallocate`), so a replay
//! that keeps its own id table does one hash operation per event, not two.
//!
//! A buffer's record is one 64-byte entry, one cache line: what a free
//! reads (the generation, the bank manager, the address, the bytes per
//! bank and the free-list block: a [`Slot`]) in its first half, what only
//! reports read (the id, the requested size, the bank count) after it. In
//! a replay the record of a freed buffer was last touched at its
//! allocation, so a free costs one cache miss (or none, after
//! [`LiveBuffers::prefetch`]), and an allocation writes one line. Vacant
//! records are chained through their entries (the last freed is reused
//! first), so taking or giving one back touches no other table.

use super::Live;
use crate::alloc::bank::Placement;
use crate::alloc::free_list::BlockRef;
use crate::event::BufferType;
use crate::hash::FastMap;
use crate::ids::BufferId;

/// Where the device keeps a live buffer. Stale handles (the buffer was
/// freed since) are recognised and ignored: each slot counts its reuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Handle {
    slot: u32,
    generation: u32,
}

/// Where a buffer landed, and the handle that frees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Placed {
    pub placement: Placement,
    pub handle: Handle,
}

/// `Slot::manager` of a host (SYSTEM_MEMORY) buffer: no bank manager.
pub(super) const HOST: u8 = u8::MAX;

/// What freeing a live buffer needs (the hot part of a slot).
#[derive(Clone, Copy, Debug)]
#[repr(C, align(32))]
pub(super) struct Slot {
    pub(super) address: u64,
    /// Bytes reserved per bank: the size of its free-list block (the
    /// requested size for a host buffer).
    pub(super) per_bank: u64,
    /// The free-list block it holds (`BlockRef::NONE` for host buffers).
    pub(super) block: BlockRef,
    generation: u32,
    /// Index of its bank manager in `Device::managers`, or [`HOST`].
    pub(super) manager: u8,
    pub(super) buffer_type: BufferType,
    occupied: bool,
    /// Allocated by id: `by_id` holds it.
    indexed: bool,
}

/// A buffer's whole record, one cache line: the hot [`Slot`] first, then
/// what only reports read, and the chain of vacant records.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Record {
    slot: Slot,
    buffer: BufferId,
    size: u64,
    num_banks: u32,
    /// While vacant: the next vacant record ([`NO_RECORD`] at the end).
    next_vacant: u32,
}

/// The end of the vacant chain.
const NO_RECORD: u32 = u32::MAX;

/// A live buffer as reports see it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Entry {
    pub(super) buffer: BufferId,
    pub(super) live: Live,
}

#[derive(Clone, Debug)]
pub(super) struct LiveBuffers {
    records: Vec<Record>,
    /// The first vacant record ([`NO_RECORD`]: none; a new one is pushed).
    /// Its slot holds the generation its next buffer gets, so filling it
    /// writes the record without reading another table first.
    vacant: u32,
    by_id: FastMap<BufferId, u32>,
    len: usize,
}

impl Default for LiveBuffers {
    fn default() -> LiveBuffers {
        LiveBuffers {
            records: Vec::new(),
            vacant: NO_RECORD,
            by_id: FastMap::default(),
            len: 0,
        }
    }
}

/// A hint that the line at `p` will be read soon.
#[inline(always)]
fn prefetch_line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it never faults, whatever the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

impl LiveBuffers {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Is an id allocated *by id* live?
    pub(super) fn contains_id(&self, buffer: BufferId) -> bool {
        self.by_id.contains_key(&buffer)
    }

    fn entry(&self, at: usize) -> Entry {
        let r = &self.records[at];
        Entry {
            buffer: r.buffer,
            live: Live {
                buffer_type: r.slot.buffer_type,
                address: r.slot.address,
                size: r.size,
                per_bank: r.slot.per_bank,
                num_banks: r.num_banks,
            },
        }
    }

    /// A live buffer allocated by id.
    pub(super) fn by_id(&self, buffer: BufferId) -> Option<Entry> {
        self.by_id.get(&buffer).map(|&s| self.entry(s as usize))
    }

    /// A live buffer by handle.
    pub(super) fn get(&self, handle: Handle) -> Option<Entry> {
        let s = &self.records.get(handle.slot as usize)?.slot;
        (s.occupied && s.generation == handle.generation).then(|| self.entry(handle.slot as usize))
    }

    /// Asks for the record of `handle` early (a prefetch; no state change).
    #[inline]
    pub(super) fn prefetch(&self, handle: Handle) {
        if let Some(r) = self.records.get(handle.slot as usize) {
            prefetch_line(r as *const Record as *const u8);
        }
    }

    /// The handle the next [`LiveBuffers::insert`] returns.
    #[inline(always)]
    fn next_handle(&self) -> Handle {
        match self.records.get(self.vacant as usize) {
            Some(r) => Handle {
                slot: self.vacant,
                generation: r.slot.generation,
            },
            None => Handle {
                slot: self.records.len() as u32,
                generation: 0,
            },
        }
    }

    /// Keeps a buffer placed in bank manager `manager` ([`HOST`] for a host
    /// buffer): `indexed` for one allocated by id (the caller checked the
    /// id is new), else one the caller tracks by its own ids.
    #[inline(always)]
    pub(super) fn insert(
        &mut self,
        buffer: BufferId,
        live: Live,
        manager: u8,
        block: BlockRef,
        indexed: bool,
    ) -> Handle {
        self.len += 1;
        let handle = self.next_handle();
        let slot = Slot {
            address: live.address,
            per_bank: live.per_bank,
            block,
            generation: handle.generation,
            manager,
            buffer_type: live.buffer_type,
            occupied: true,
            indexed,
        };
        match self.records.get_mut(handle.slot as usize) {
            Some(r) => {
                // Field by field: a whole-record store went through the stack.
                self.vacant = r.next_vacant;
                r.slot = slot;
                r.buffer = buffer;
                r.size = live.size;
                r.num_banks = live.num_banks;
            }
            None => self.records.push(Record {
                slot,
                buffer,
                size: live.size,
                num_banks: live.num_banks,
                next_vacant: NO_RECORD,
            }),
        }
        if indexed {
            self.by_id.insert(buffer, handle.slot);
        }
        handle
    }

    /// Keeps a buffer allocated by id, placed by `place` (its live record,
    /// bank manager and block) unless the id is live already (then
    /// `Ok(None)`, and `place` is not called): one hash operation.
    #[inline]
    pub(super) fn insert_new_id<E>(
        &mut self,
        buffer: BufferId,
        place: impl FnOnce() -> Result<(Live, u8, BlockRef), E>,
    ) -> Result<Option<Handle>, E> {
        let std::collections::hash_map::Entry::Vacant(v) = self.by_id.entry(buffer) else {
            return Ok(None);
        };
        let (live, manager, block) = place()?;
        // The id goes in now, while the entry is held; `insert` must not index it again.
        let at = match self.records.get(self.vacant as usize) {
            Some(_) => self.vacant,
            None => self.records.len() as u32,
        };
        v.insert(at);
        let handle = self.insert(buffer, live, manager, block, false);
        debug_assert_eq!(handle.slot, at);
        self.records[at as usize].slot.indexed = true;
        Ok(Some(handle))
    }

    /// Takes a buffer out by handle; `None` for a stale or foreign handle.
    /// Reads only the record's hot part (and the id, if indexed).
    #[inline(always)]
    pub(super) fn remove(&mut self, handle: Handle) -> Option<Slot> {
        let r = self.records.get_mut(handle.slot as usize)?;
        // Read the slot whole before writing it: a load of bytes just
        // written by a narrower store cannot be forwarded and stalls.
        let out = r.slot;
        if !out.occupied || out.generation != handle.generation {
            return None;
        }
        r.slot.occupied = false;
        r.slot.indexed = false;
        r.slot.generation = out.generation.wrapping_add(1);
        r.next_vacant = self.vacant;
        self.vacant = handle.slot;
        self.len -= 1;
        if out.indexed {
            let buffer = r.buffer;
            self.by_id.remove(&buffer);
        }
        Some(out)
    }

    /// [`LiveBuffers::remove`], with the buffer as reports see it.
    #[inline]
    pub(super) fn remove_entry(&mut self, handle: Handle) -> Option<(Slot, Entry)> {
        let entry = self.get(handle)?;
        self.remove(handle).map(|s| (s, entry))
    }

    /// Takes a buffer allocated by id out.
    #[inline]
    pub(super) fn remove_id(&mut self, buffer: BufferId) -> Option<(Slot, Entry)> {
        let at = *self.by_id.get(&buffer)?;
        let handle = Handle {
            slot: at,
            generation: self.records[at as usize].slot.generation,
        };
        self.remove_entry(handle)
    }

    /// Every live buffer, in slot order.
    pub(super) fn iter(&self) -> impl Iterator<Item = Entry> + '_ {
        self.records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.slot.occupied)
            .map(|(i, _)| self.entry(i))
    }

    /// Forgets every buffer (handles given out so far go stale).
    pub(super) fn clear(&mut self) {
        // Chained from the highest record down, so the lowest are reused first.
        self.vacant = NO_RECORD;
        for (i, r) in self.records.iter_mut().enumerate().rev() {
            if r.slot.occupied {
                r.slot.occupied = false;
                r.slot.indexed = false;
                r.slot.generation = r.slot.generation.wrapping_add(1);
            }
            r.next_vacant = self.vacant;
            self.vacant = i as u32;
        }
        self.by_id.clear();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_one_cache_line_with_its_slot_first() {
        assert_eq!(std::mem::size_of::<Slot>(), 32);
        assert_eq!(std::mem::size_of::<Record>(), 64);
        assert_eq!(std::mem::align_of::<Record>(), 64);
        assert_eq!(std::mem::offset_of!(Record, slot), 0);
    }
}
