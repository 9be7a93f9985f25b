//! Allocations whose holder keeps their block: a [`BlockRef`] and the
//! block's generation, checked on every use, so the holder needs no
//! record of its own beyond what reports read (a device's live buffers:
//! `device/live_buffers.rs`). The block entry is the one record a free
//! reads: its address, size and generation sit in one 32-byte entry.

use super::{BlockRef, FreeList};

impl FreeList {
    /// The generation of block `b` (just allocated: what its holder keeps).
    #[inline(always)]
    pub(crate) fn generation_of(&self, b: BlockRef) -> u32 {
        self.blocks.get(b.0 as usize).map_or(0, |e| e.generation)
    }

    /// `(address, bytes reserved)` of the allocation in block `b`, if the
    /// block still holds the one of `generation`.
    #[inline]
    pub(crate) fn held(&self, b: BlockRef, generation: u32) -> Option<(u64, u64)> {
        let e = self.blocks.get(b.0 as usize)?;
        (e.allocated && e.generation == generation).then_some((e.addr, e.size))
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
        if self.compact {
            // `release_block`, on the entry in hand.
            e.generation = generation.wrapping_add(1);
            e.allocated = false;
            e.next = self.spare;
            self.spare = b.0;
            self.num_allocated -= 1;
            self.allocated_bytes -= size;
            // Freeing never adds blocks: a compact list stays compact.
            self.free_compact_span(addr, size);
        } else {
            self.free_block_bucketed(b.0);
        }
        Some(size)
    }

    /// Every allocation: its block, generation, address and bytes reserved
    /// (in block-table order, not address order).
    pub(crate) fn held_blocks(&self) -> impl Iterator<Item = (BlockRef, u32, u64, u64)> + '_ {
        self.blocks
            .iter()
            .enumerate()
            .filter(|(_, e)| e.allocated)
            .map(|(i, e)| (BlockRef(i as u32), e.generation, e.addr, e.size))
    }

    /// Asks for block `b`'s entry early (a prefetch; no state change).
    #[inline]
    pub(crate) fn prefetch_block(&self, b: BlockRef) {
        if let Some(e) = self.blocks.get(b.0 as usize) {
            prefetch_line(e as *const _ as *const u8);
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
