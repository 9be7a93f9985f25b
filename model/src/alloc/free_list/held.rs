//! Allocations whose holder keeps their block: a [`BlockRef`] and the
//! block's generation, checked on every use, so the holder needs no
//! record of its own beyond what reports read (a device's live buffers:
//! `device/live_buffers.rs`). The block entry is the one record a free
//! reads: its address, size and generation sit in one 32-byte entry.

use super::{Block, BlockRef, FreeList, NIL};

/// What a holder keeps with an allocation, in its block's entry (a
/// device: the buffer's id, requested size and bank count). The free list
/// never reads it; it is the allocation's while the block is allocated
/// and held (the block's `held` flag: an allocation made without one, a
/// program binary say, clears it: whatever older payload is left there
/// is not its own).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Payload {
    pub(crate) owner: u64,
    pub(crate) size: u64,
    pub(crate) banks: u32,
}

impl Payload {
    pub(crate) const NONE: Payload = Payload {
        owner: 0,
        size: 0,
        banks: 0,
    };
}

impl FreeList {
    /// Keeps `payload` with the allocation in block `b` (just allocated)
    /// and returns the block's generation, what its holder keeps.
    #[inline(always)]
    pub(crate) fn hold(&mut self, b: BlockRef, owner: u64, size: u64, banks: u32) -> u32 {
        match self.blocks.get_mut(b.0 as usize) {
            Some(e) => {
                // Field by field: a whole-payload store went through the stack.
                e.payload.owner = owner;
                e.payload.size = size;
                e.payload.banks = banks;
                e.held = true;
                e.generation
            }
            None => 0,
        }
    }

    /// Allocates `alloc` bytes (already rounded: [`FreeList::alloc_size`])
    /// first fit, keeping `owner`, `size` and `banks` with it (as
    /// [`FreeList::hold`] does): the address, the block and its
    /// generation. A compact list writes the block's entry once, payload
    /// and all; a bucketed one places, then holds.
    #[inline(always)]
    pub(crate) fn allocate_held(
        &mut self,
        alloc: u64,
        bottom_up: bool,
        owner: u64,
        size: u64,
        banks: u32,
    ) -> Option<(u64, BlockRef, u32)> {
        // One test for the common case, a compact list in `u32` words:
        // they hold requests up to the range's size (a larger one fits
        // nowhere). Any other list takes the call.
        if !self.free.narrow {
            return self.allocate_held_slow(alloc, bottom_up, owner, size, banks);
        }
        if alloc > self.size {
            return None;
        }
        let at = self.carve_fit_narrow(alloc, bottom_up)?;
        Some(self.hold_new(at, alloc, owner, size, banks))
    }

    /// [`FreeList::allocate_held`] of a list in `u64` words or bucketed
    /// (out of the common path's inlined code).
    #[inline(never)]
    fn allocate_held_slow(
        &mut self,
        alloc: u64,
        bottom_up: bool,
        owner: u64,
        size: u64,
        banks: u32,
    ) -> Option<(u64, BlockRef, u32)> {
        if !self.compact {
            return self.allocate_held_bucketed(alloc, bottom_up, owner, size, banks);
        }
        // No free block is larger than the range: a request larger than
        // it fits nowhere, with no check of its own.
        let at = self.carve_fit_compact(alloc, bottom_up)?;
        Some(self.hold_new(at, alloc, owner, size, banks))
    }

    /// Gives the `alloc` bytes at `at` (just carved from a compact list's
    /// free array) a block entry holding the payload: the address, the
    /// block and its generation.
    #[inline(always)]
    fn hold_new(
        &mut self,
        at: u64,
        alloc: u64,
        owner: u64,
        size: u64,
        banks: u32,
    ) -> (u64, BlockRef, u32) {
        // The spare entry, or a blank one pushed (its `next` ends the
        // chain): either way the entry is written below, on one path, so
        // neighbouring fields (`allocated`, `held`) go in one store.
        let base = self.blocks.as_ptr();
        let (i, e) = match self.blocks.get_mut(self.spare as usize) {
            Some(e) => (self.spare, e),
            None => push_blank(&mut self.blocks),
        };
        self.spare = e.next;
        // The next allocation reads the new spare entry's `next`. It is
        // often an entry freed long ago and out of L1 (the 2M synthetic
        // replay: ~170k D1 read misses at the read above, a stall on the
        // next allocation from this list): ask for it now. A wrapping
        // address: the chain's end (`NIL`) points past the table, and a
        // prefetch of any address is harmless.
        prefetch_line(base.wrapping_add(e.next as usize).cast());
        // Field by field: the entry keeps its generation; a compact list
        // never reads an allocated entry's links.
        e.addr = at;
        e.size = alloc;
        e.allocated = true;
        e.held = true;
        e.payload.owner = owner;
        e.payload.size = size;
        e.payload.banks = banks;
        let generation = e.generation;
        self.num_allocated += 1;
        self.allocated_bytes += alloc;
        // `rebalance` of a list known to be compact.
        if self.num_allocated + self.free_len() > self.compact_limit {
            self.leave_compact();
        }
        (at, BlockRef(i), generation)
    }

    /// [`FreeList::allocate_held`] of a bucketed list (out of the compact
    /// path's inlined code).
    #[inline(never)]
    fn allocate_held_bucketed(
        &mut self,
        alloc: u64,
        bottom_up: bool,
        owner: u64,
        size: u64,
        banks: u32,
    ) -> Option<(u64, BlockRef, u32)> {
        if alloc > self.size {
            return None;
        }
        let (at, b) = self.allocate_bucketed(alloc, bottom_up)?;
        self.rebalance();
        Some((at, b, self.hold(b, owner, size, banks)))
    }

    /// `(address, bytes reserved, payload)` of the allocation in block
    /// `b`, if the block still holds the one of `generation`.
    #[inline]
    pub(crate) fn held(&self, b: BlockRef, generation: u32) -> Option<(u64, u64, &Payload)> {
        let e = self.blocks.get(b.0 as usize)?;
        (e.allocated && e.generation == generation).then_some((e.addr, e.size, &e.payload))
    }

    /// Frees the allocation in block `b` if it is still the one of
    /// `generation` (then returns its bytes reserved); `None`, and no
    /// change, for a stale pair.
    #[inline(always)]
    pub(crate) fn free_held(&mut self, b: BlockRef, generation: u32) -> Option<u64> {
        let e = self.blocks.get_mut(b.0 as usize)?;
        if !e.allocated || e.generation != generation {
            return None;
        }
        let (addr, size) = (e.addr, e.size);
        // The common case in line (a compact list in `u32` words), any
        // other list by a call.
        if self.free.narrow {
            // `release_block`, on the entry in hand.
            e.generation = generation.wrapping_add(1);
            e.allocated = false;
            e.next = self.spare;
            self.spare = b.0;
            self.allocated_bytes -= size;
            // Freeing never adds blocks: a compact list stays compact.
            self.free_narrow_span(addr, size);
            // Counted apart from the bytes: side by side, the two were
            // made one vector subtraction (six instructions, not two).
            self.num_allocated -= 1;
        } else {
            self.free_block_bucketed(b.0);
        }
        Some(size)
    }

    /// Every allocation kept with a payload: its address, bytes reserved
    /// and payload (in block-table order, not address order).
    pub(crate) fn held_blocks(&self) -> impl Iterator<Item = (u64, u64, &Payload)> + '_ {
        self.blocks
            .iter()
            .filter(|e| e.allocated && e.held)
            .map(|e| (e.addr, e.size, &e.payload))
    }

    /// Asks for block `b`'s entry early (a prefetch; no state change).
    #[inline]
    pub(crate) fn prefetch_block(&self, b: BlockRef) {
        if let Some(e) = self.blocks.get(b.0 as usize) {
            prefetch_line(e as *const _ as *const u8);
        }
    }
}

/// Pushes an unused entry whose `next` ends the spare chain (`NIL`), for
/// an allocation when the chain is empty: its index and the entry.
#[cold]
#[inline(never)]
fn push_blank(blocks: &mut Vec<Block>) -> (u32, &mut Block) {
    blocks.push(Block {
        addr: 0,
        size: 0,
        prev: NIL,
        next: NIL,
        generation: 0,
        allocated: false,
        held: false,
        payload: Payload::NONE,
    });
    let i = blocks.len() - 1;
    (i as u32, &mut blocks[i])
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
