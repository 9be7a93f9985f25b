//! The device's live buffers: one slot per buffer in a dense table, with
//! the free-list block each holds. A caller that keeps the [`Handle`] of a
//! buffer frees it with no lookup at all (`Device::allocate_placed` /
//! `Device::deallocate_placed`); an id index is kept only for the buffers
//! allocated by id (`Device::allocate` / `Device::deallocate`), so a replay
//! that keeps its own id table does one hash operation per event, not two.

use super::Live;
use crate::alloc::bank::Placement;
use crate::alloc::free_list::BlockRef;
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

#[derive(Clone, Copy, Debug)]
pub(super) struct Slot {
    pub(super) buffer: BufferId,
    pub(super) live: Live,
    /// The free-list block it holds (`BlockRef::NONE` for host buffers).
    pub(super) block: BlockRef,
    generation: u32,
    occupied: bool,
    /// Allocated by id: `by_id` holds it.
    indexed: bool,
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

/// Puts a buffer in a vacant slot (or a new one) and returns its handle.
#[inline]
fn fill(
    slots: &mut Vec<Slot>,
    vacant: &mut Vec<u32>,
    buffer: BufferId,
    live: Live,
    block: BlockRef,
    indexed: bool,
) -> Handle {
    let entry = Slot {
        buffer,
        live,
        block,
        generation: 0,
        occupied: true,
        indexed,
    };
    let slot = match vacant.pop() {
        Some(s) => {
            let e = &mut slots[s as usize];
            *e = Slot {
                generation: e.generation,
                ..entry
            };
            s
        }
        None => {
            slots.push(entry);
            (slots.len() - 1) as u32
        }
    };
    Handle {
        slot,
        generation: slots[slot as usize].generation,
    }
}

#[derive(Clone, Debug, Default)]
pub(super) struct LiveBuffers {
    slots: Vec<Slot>,
    vacant: Vec<u32>,
    by_id: FastMap<BufferId, u32>,
    len: usize,
}

impl LiveBuffers {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Is an id allocated *by id* live?
    pub(super) fn contains_id(&self, buffer: BufferId) -> bool {
        self.by_id.contains_key(&buffer)
    }

    /// The slot of a buffer allocated by id.
    pub(super) fn by_id(&self, buffer: BufferId) -> Option<&Slot> {
        self.by_id.get(&buffer).map(|&s| &self.slots[s as usize])
    }

    /// A live buffer by handle.
    pub(super) fn get(&self, handle: Handle) -> Option<&Slot> {
        self.slots
            .get(handle.slot as usize)
            .filter(|e| e.occupied && e.generation == handle.generation)
    }

    /// Asks for the slot of `handle` early (a prefetch; no state change).
    #[inline]
    pub(super) fn prefetch(&self, handle: Handle) {
        if let Some(s) = self.slots.get(handle.slot as usize) {
            prefetch_line(s as *const Slot as *const u8);
        }
    }

    /// Keeps a buffer: `indexed` for one allocated by id (the caller
    /// checked the id is new), else one the caller tracks by its own ids.
    #[inline]
    pub(super) fn insert(
        &mut self,
        buffer: BufferId,
        live: Live,
        block: BlockRef,
        indexed: bool,
    ) -> Handle {
        self.len += 1;
        let handle = fill(
            &mut self.slots,
            &mut self.vacant,
            buffer,
            live,
            block,
            indexed,
        );
        if indexed {
            self.by_id.insert(buffer, handle.slot);
        }
        handle
    }

    /// Keeps a buffer allocated by id, placed by `place` unless the id is
    /// live already (then `Ok(None)`, and `place` is not called): one hash
    /// operation.
    #[inline]
    pub(super) fn insert_new_id<E>(
        &mut self,
        buffer: BufferId,
        place: impl FnOnce() -> Result<(Live, BlockRef), E>,
    ) -> Result<Option<Handle>, E> {
        let std::collections::hash_map::Entry::Vacant(v) = self.by_id.entry(buffer) else {
            return Ok(None);
        };
        let (live, block) = place()?;
        self.len += 1;
        let handle = fill(&mut self.slots, &mut self.vacant, buffer, live, block, true);
        v.insert(handle.slot);
        Ok(Some(handle))
    }

    /// Takes a buffer out by handle; `None` for a stale or foreign handle.
    #[inline]
    pub(super) fn remove(&mut self, handle: Handle) -> Option<Slot> {
        let e = self.slots.get_mut(handle.slot as usize)?;
        // Read the slot whole before writing it: a load of bytes just
        // written by a narrower store cannot be forwarded and stalls.
        let out = *e;
        if !out.occupied || out.generation != handle.generation {
            return None;
        }
        e.occupied = false;
        e.generation = out.generation.wrapping_add(1);
        self.vacant.push(handle.slot);
        self.len -= 1;
        if out.indexed {
            self.by_id.remove(&out.buffer);
        }
        Some(out)
    }

    /// Takes a buffer allocated by id out.
    #[inline]
    pub(super) fn remove_id(&mut self, buffer: BufferId) -> Option<Slot> {
        let slot = self.by_id.remove(&buffer)?;
        let e = &mut self.slots[slot as usize];
        e.indexed = false;
        let handle = Handle {
            slot,
            generation: e.generation,
        };
        self.remove(handle)
    }

    /// Every live buffer, in slot order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Slot> + '_ {
        self.slots.iter().filter(|e| e.occupied)
    }

    /// Forgets every buffer (handles given out so far go stale).
    pub(super) fn clear(&mut self) {
        self.vacant.clear();
        for (i, e) in self.slots.iter_mut().enumerate() {
            if e.occupied {
                e.occupied = false;
                e.generation = e.generation.wrapping_add(1);
            }
            self.vacant.push(i as u32);
        }
        // Reuse the lowest slots first.
        self.vacant.reverse();
        self.by_id.clear();
        self.len = 0;
    }
}
