//! The device's live buffers. A buffer in a bank manager is held by its
//! free-list block: the [`Handle`] names the bank manager, the block and
//! the block's generation (`free_list/held.rs`), so freeing by handle
//! reads one block entry — address, size, generation — and keeps no other
//! record up to date. What only reports read (the id, the requested size,
//! the bank count) is the block's payload, in the same 64-byte entry,
//! written at the allocation. Host (SYSTEM_MEMORY) buffers, placed
//! nowhere, have records of their own.
//!
//! An id index is kept only for the buffers allocated by id
//! (`Device::allocate` / `Device::deallocate`), so a replay that keeps its
//! own id table (`Device::allocate_placed` / `Device::discard_placed`)
//! does no hash operation in the model. The handles of indexed buffers
//! stay in the index (the placed API never gives them out), so a free by
//! handle never has an id to forget: only [`LiveBuffers::remove_id`]
//! takes ids out of the index.

use super::Live;
use crate::alloc::bank::BankManager;
use crate::alloc::free_list::{BlockRef, Payload};
use crate::event::BufferType;
use crate::hash::FastMap;
use crate::ids::BufferId;

/// Where the device keeps a live buffer. Stale handles (the buffer was
/// freed since) are recognised and ignored: each block counts the times
/// it was freed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Handle {
    /// The bank manager (or [`HOST`]) above [`INDEX_BITS`], the block
    /// (or host record) below.
    slot: u32,
    generation: u32,
}

/// Where a buffer landed, and the handle that frees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Placed {
    pub placement: crate::alloc::bank::Placement,
    pub handle: Handle,
}

/// The bank-manager number of a host (SYSTEM_MEMORY) buffer: none.
pub(super) const HOST: u8 = 4;

/// Bits of [`Handle::slot`] for the block or record: a free list's blocks
/// are at least one alignment unit each and stay far below 2^29.
const INDEX_BITS: u32 = 29;
const INDEX_MASK: u32 = (1 << INDEX_BITS) - 1;

impl Handle {
    #[inline(always)]
    fn new(manager: u8, index: u32, generation: u32) -> Handle {
        debug_assert!(
            index <= INDEX_MASK,
            "block index {index} past the handle's bits"
        );
        Handle {
            slot: (u32::from(manager) << INDEX_BITS) | (index & INDEX_MASK),
            generation,
        }
    }

    /// The handle of a buffer that got `block` of bank manager `manager`
    /// with its payload held already ([`FreeList::allocate_held`], not
    /// indexed by id).
    ///
    /// [`FreeList::allocate_held`]: crate::alloc::free_list::FreeList::allocate_held
    #[inline(always)]
    pub(super) fn held(manager: usize, block: BlockRef, generation: u32) -> Handle {
        Handle::new((manager & 3) as u8, block.index(), generation)
    }

    #[inline(always)]
    fn manager(self) -> usize {
        (self.slot >> INDEX_BITS) as usize
    }

    #[inline(always)]
    fn index(self) -> u32 {
        self.slot & INDEX_MASK
    }
}

/// A host buffer's record.
#[derive(Clone, Copy, Debug)]
struct HostRecord {
    buffer: BufferId,
    size: u64,
    generation: u32,
    occupied: bool,
    /// While vacant: the next vacant record ([`NO_RECORD`] at the end).
    next_vacant: u32,
}

/// The end of the host records' vacant chain.
const NO_RECORD: u32 = u32::MAX;

/// A live buffer as reports see it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Entry {
    pub(super) buffer: BufferId,
    pub(super) live: Live,
}

/// A buffer taken out: its bank manager ([`HOST`] for a host buffer) and
/// bytes per bank (a host buffer's size).
#[derive(Clone, Copy, Debug)]
pub(super) struct Removed {
    pub(super) manager: u8,
    pub(super) per_bank: u64,
}

/// The live buffers: no count of their own (`Device::num_live_buffers`
/// counts the allocated blocks).
#[derive(Clone, Debug)]
pub(super) struct LiveBuffers {
    host: Vec<HostRecord>,
    /// The first vacant host record ([`NO_RECORD`]: none; a new one is pushed).
    host_vacant: u32,
    by_id: FastMap<BufferId, Handle>,
}

impl Default for LiveBuffers {
    fn default() -> LiveBuffers {
        LiveBuffers {
            host: Vec::new(),
            host_vacant: NO_RECORD,
            by_id: FastMap::default(),
        }
    }
}

impl LiveBuffers {
    /// Is an id allocated *by id* live?
    pub(super) fn contains_id(&self, buffer: BufferId) -> bool {
        self.by_id.contains_key(&buffer)
    }

    /// A live buffer allocated by id.
    pub(super) fn by_id(&self, managers: &[BankManager; 4], buffer: BufferId) -> Option<Entry> {
        self.get(managers, *self.by_id.get(&buffer)?)
    }

    /// A live buffer by handle.
    pub(super) fn get(&self, managers: &[BankManager; 4], handle: Handle) -> Option<Entry> {
        let i = handle.index();
        if handle.manager() == HOST as usize {
            let r = self.host.get(i as usize)?;
            return (r.occupied && r.generation == handle.generation).then(|| host_entry(r));
        }
        let m = managers.get(handle.manager())?;
        let (address, per_bank, p) = m.free_list().held(BlockRef::at(i), handle.generation)?;
        Some(device_entry(m, address, per_bank, p))
    }

    /// Asks for the block entry of `handle` early (a prefetch; no state change).
    #[inline]
    pub(super) fn prefetch(&self, managers: &[BankManager; 4], handle: Handle) {
        if let Some(m) = managers.get(handle.manager()) {
            m.free_list().prefetch_block(BlockRef::at(handle.index()));
        }
    }

    /// Keeps a buffer that got `block` of bank manager `manager` (a
    /// device buffer: `live` is its placement there): `indexed` for one
    /// allocated by id (the caller checked the id is new, and indexes it),
    /// else one the caller tracks by its own ids.
    #[inline(always)]
    pub(super) fn insert(
        &mut self,
        managers: &mut [BankManager; 4],
        buffer: BufferId,
        live: Live,
        manager: usize,
        block: BlockRef,
        indexed: bool,
    ) -> Handle {
        let manager = manager & 3;
        let generation =
            managers[manager]
                .free_list_mut()
                .hold(block, buffer.0, live.size, live.num_banks);
        let handle = Handle::new(manager as u8, block.index(), generation);
        if indexed {
            self.by_id.insert(buffer, handle);
        }
        handle
    }

    /// Keeps a host buffer of `size` bytes (`indexed` as in [`LiveBuffers::insert`]).
    pub(super) fn insert_host(&mut self, buffer: BufferId, size: u64, indexed: bool) -> Handle {
        let handle = self.new_host(buffer, size);
        if indexed {
            self.by_id.insert(buffer, handle);
        }
        handle
    }

    fn new_host(&mut self, buffer: BufferId, size: u64) -> Handle {
        let record = |generation| HostRecord {
            buffer,
            size,
            generation,
            occupied: true,
            next_vacant: NO_RECORD,
        };
        match self.host.get_mut(self.host_vacant as usize) {
            Some(r) => {
                let at = self.host_vacant;
                self.host_vacant = r.next_vacant;
                *r = record(r.generation);
                Handle::new(HOST, at, r.generation)
            }
            None => {
                self.host.push(record(0));
                Handle::new(HOST, (self.host.len() - 1) as u32, 0)
            }
        }
    }

    /// Keeps a buffer allocated by id, placed by `place` (a device
    /// buffer's placement, bank manager and block; `None` for a host
    /// buffer of `host_size` bytes), unless the id is live already (then
    /// `Ok(None)`, and `place` is not called): one hash operation.
    pub(super) fn insert_new_id<E>(
        &mut self,
        managers: &mut [BankManager; 4],
        buffer: BufferId,
        host_size: u64,
        place: impl FnOnce(&mut [BankManager; 4]) -> Result<Option<(Live, usize, BlockRef)>, E>,
    ) -> Result<Option<Handle>, E> {
        // Checked, then indexed: the handle is known only once placed.
        if self.by_id.contains_key(&buffer) {
            return Ok(None);
        }
        let handle = match place(managers)? {
            Some((live, manager, block)) => {
                self.insert(managers, buffer, live, manager, block, true)
            }
            None => self.insert_host(buffer, host_size, true),
        };
        Ok(Some(handle))
    }

    /// Takes a buffer out by handle and gives its memory back; `None`
    /// for a stale or foreign handle. A device buffer's free reads its
    /// block entry only. The id index is not looked at: an indexed
    /// buffer's handle is the index's own (see the module's comment).
    #[inline(always)]
    pub(super) fn remove(
        &mut self,
        managers: &mut [BankManager; 4],
        handle: Handle,
    ) -> Option<Removed> {
        let Some(m) = managers.get_mut(handle.manager()) else {
            return self.remove_host(handle);
        };
        let block = BlockRef::at(handle.index());
        let per_bank = m.free_held(block, handle.generation)?;
        Some(Removed {
            manager: handle.manager() as u8,
            per_bank,
        })
    }

    #[inline(never)]
    fn remove_host(&mut self, handle: Handle) -> Option<Removed> {
        if handle.manager() != HOST as usize {
            return None;
        }
        let at = handle.index();
        let r = self.host.get_mut(at as usize)?;
        if !r.occupied || r.generation != handle.generation {
            return None;
        }
        r.occupied = false;
        r.generation = r.generation.wrapping_add(1);
        r.next_vacant = self.host_vacant;
        self.host_vacant = at;
        Some(Removed {
            manager: HOST,
            per_bank: r.size,
        })
    }

    /// [`LiveBuffers::remove`], with the buffer as reports see it.
    #[inline]
    pub(super) fn remove_entry(
        &mut self,
        managers: &mut [BankManager; 4],
        handle: Handle,
    ) -> Option<(Removed, Entry)> {
        let entry = self.get(managers, handle)?;
        self.remove(managers, handle).map(|r| (r, entry))
    }

    /// Takes a buffer allocated by id out (the one way out of the id index).
    #[inline]
    pub(super) fn remove_id(
        &mut self,
        managers: &mut [BankManager; 4],
        buffer: BufferId,
    ) -> Option<(Removed, Entry)> {
        let handle = self.by_id.remove(&buffer)?;
        self.remove_entry(managers, handle)
    }

    /// Every live buffer: the bank managers' by block, then host buffers.
    pub(super) fn iter<'a>(
        &'a self,
        managers: &'a [BankManager; 4],
    ) -> impl Iterator<Item = Entry> + 'a {
        let device = managers.iter().flat_map(move |m| {
            m.free_list()
                .held_blocks()
                .map(move |(address, per_bank, p)| device_entry(m, address, per_bank, p))
        });
        let host = self.host.iter().filter(|r| r.occupied).map(host_entry);
        device.chain(host)
    }

    /// Forgets every buffer; the caller frees the bank managers'
    /// (`deallocate_all`), which makes their handles stale.
    pub(super) fn clear(&mut self) {
        // Chained from the highest record down, so the lowest are reused first.
        self.host_vacant = NO_RECORD;
        for (i, r) in self.host.iter_mut().enumerate().rev() {
            if r.occupied {
                r.occupied = false;
                r.generation = r.generation.wrapping_add(1);
            }
            r.next_vacant = self.host_vacant;
            self.host_vacant = i as u32;
        }
        self.by_id.clear();
    }
}

fn host_entry(r: &HostRecord) -> Entry {
    Entry {
        buffer: r.buffer,
        live: Live {
            buffer_type: BufferType::SystemMemory,
            address: 0,
            size: r.size,
            per_bank: r.size,
            num_banks: 1,
        },
    }
}

/// A device buffer as reports see it, from its block and payload.
fn device_entry(m: &BankManager, address: u64, per_bank: u64, p: &Payload) -> Entry {
    Entry {
        buffer: BufferId(p.owner),
        live: Live {
            buffer_type: m.buffer_type(),
            address,
            size: p.size,
            per_bank,
            num_banks: p.banks,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_keeps_its_manager_and_block_apart() {
        let h = Handle::new(3, INDEX_MASK, 7);
        assert_eq!((h.manager(), h.index(), h.generation), (3, INDEX_MASK, 7));
        let h = Handle::new(HOST, 0, 0);
        assert_eq!((h.manager(), h.index()), (HOST as usize, 0));
    }
}
