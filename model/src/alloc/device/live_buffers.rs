//! The device's live buffers: one slot per buffer in a dense table, with
//! the free-list block each holds. A caller that keeps the [`Handle`] of a
//! buffer frees it with no lookup at all (`Device::allocate_placed` /
//! `Device::deallocate_placed`); an id index is kept only for the buffers
//! allocated by id (`Device::allocate` / `Device::deallocate`), so a replay
//! that keeps its own id table does one hash operation per event, not two.
//!
//! A slot is split by temperature. What a free reads (the generation, the
//! bank manager, the address, the bytes per bank and the free-list block)
//! sits in one 32-byte [`Slot`], two to a cache line and never across
//! one: in a replay the slot of a freed buffer was last touched at its
//! allocation, so a free costs one cache miss (or none, after
//! [`LiveBuffers::prefetch`]). What only reports read (the id, the
//! requested size, the bank count) sits in a parallel table that a free of
//! a device buffer never touches.

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

impl Slot {
    /// A slot never filled yet.
    const VACANT: Slot = Slot {
        address: 0,
        per_bank: 0,
        block: BlockRef::NONE,
        generation: 0,
        manager: HOST,
        buffer_type: BufferType::SystemMemory,
        occupied: false,
        indexed: false,
    };
}

/// What only reports read (the cold part of a slot).
#[derive(Clone, Copy, Debug)]
struct Info {
    buffer: BufferId,
    size: u64,
    num_banks: u32,
}

/// A live buffer as reports see it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Entry {
    pub(super) buffer: BufferId,
    pub(super) live: Live,
}

#[derive(Clone, Debug, Default)]
pub(super) struct LiveBuffers {
    slots: Vec<Slot>,
    info: Vec<Info>,
    /// Vacant slots with the generation their next buffer gets: filling
    /// one writes the slot without reading it first.
    vacant: Vec<Handle>,
    by_id: FastMap<BufferId, u32>,
    len: usize,
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

    fn entry(&self, slot: usize) -> Entry {
        let (s, i) = (&self.slots[slot], &self.info[slot]);
        Entry {
            buffer: i.buffer,
            live: Live {
                buffer_type: s.buffer_type,
                address: s.address,
                size: i.size,
                per_bank: s.per_bank,
                num_banks: i.num_banks,
            },
        }
    }

    /// A live buffer allocated by id.
    pub(super) fn by_id(&self, buffer: BufferId) -> Option<Entry> {
        self.by_id.get(&buffer).map(|&s| self.entry(s as usize))
    }

    /// A live buffer by handle.
    pub(super) fn get(&self, handle: Handle) -> Option<Entry> {
        let s = self.slots.get(handle.slot as usize)?;
        (s.occupied && s.generation == handle.generation).then(|| self.entry(handle.slot as usize))
    }

    /// Asks for the slot of `handle` early (a prefetch; no state change).
    #[inline]
    pub(super) fn prefetch(&self, handle: Handle) {
        if let Some(s) = self.slots.get(handle.slot as usize) {
            prefetch_line(s as *const Slot as *const u8);
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
        let info = Info {
            buffer,
            size: live.size,
            num_banks: live.num_banks,
        };
        let handle = match self.vacant.pop() {
            Some(h) => h,
            None => {
                self.slots.push(Slot::VACANT);
                self.info.push(info);
                Handle {
                    slot: (self.slots.len() - 1) as u32,
                    generation: 0,
                }
            }
        };
        self.slots[handle.slot as usize] = Slot {
            address: live.address,
            per_bank: live.per_bank,
            block,
            generation: handle.generation,
            manager,
            buffer_type: live.buffer_type,
            occupied: true,
            indexed,
        };
        self.info[handle.slot as usize] = info;
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
        let at = self
            .vacant
            .last()
            .map_or(self.slots.len() as u32, |h| h.slot);
        v.insert(at);
        let handle = self.insert(buffer, live, manager, block, false);
        debug_assert_eq!(handle.slot, at);
        self.slots[at as usize].indexed = true;
        Ok(Some(handle))
    }

    /// Takes a buffer out by handle; `None` for a stale or foreign handle.
    /// Reads only the slot's hot part (and the id, if indexed).
    #[inline(always)]
    pub(super) fn remove(&mut self, handle: Handle) -> Option<Slot> {
        let e = self.slots.get_mut(handle.slot as usize)?;
        // Read the slot whole before writing it: a load of bytes just
        // written by a narrower store cannot be forwarded and stalls.
        let out = *e;
        if !out.occupied || out.generation != handle.generation {
            return None;
        }
        e.occupied = false;
        e.indexed = false;
        e.generation = out.generation.wrapping_add(1);
        self.vacant.push(Handle {
            slot: handle.slot,
            generation: e.generation,
        });
        self.len -= 1;
        if out.indexed {
            self.by_id.remove(&self.info[handle.slot as usize].buffer);
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
            generation: self.slots[at as usize].generation,
        };
        self.remove_entry(handle)
    }

    /// Every live buffer, in slot order.
    pub(super) fn iter(&self) -> impl Iterator<Item = Entry> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.occupied)
            .map(|(i, _)| self.entry(i))
    }

    /// Forgets every buffer (handles given out so far go stale).
    pub(super) fn clear(&mut self) {
        self.vacant.clear();
        for (i, e) in self.slots.iter_mut().enumerate() {
            if e.occupied {
                e.occupied = false;
                e.indexed = false;
                e.generation = e.generation.wrapping_add(1);
            }
            self.vacant.push(Handle {
                slot: i as u32,
                generation: e.generation,
            });
        }
        // Reuse the lowest slots first.
        self.vacant.reverse();
        self.by_id.clear();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_half_a_cache_line_and_never_straddles_one() {
        assert_eq!(std::mem::size_of::<Slot>(), 32);
        assert_eq!(std::mem::align_of::<Slot>(), 32);
    }
}
