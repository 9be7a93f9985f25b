//! The index of a free list with few blocks: its free blocks in one array
//! sorted by address (address, size and block number of each). The
//! first fit scans the sizes — free blocks only, never an allocated one —
//! from the bottom or the top; a freed block finds its place (and its free
//! neighbours) by a binary search on the addresses. A replay's lists hold
//! a few free blocks each, so an operation touches a cache line or two.

use super::{BlockRef, FreeList, NIL};

/// One free block of a compact list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FreeBlock {
    addr: u64,
    size: u64,
    block: u32,
}

/// The free blocks of a compact list, in address order. One array of
/// entries (not one per field): a list of a few free blocks is one or two
/// cache lines, and an insert or removal is one move.
#[derive(Clone, Debug, Default)]
pub(super) struct FreeArray {
    free: Vec<FreeBlock>,
}

impl FreeArray {
    pub(super) fn len(&self) -> usize {
        self.free.len()
    }

    pub(super) fn clear(&mut self) {
        self.free.clear();
    }

    pub(super) fn push(&mut self, addr: u64, size: u64, block: u32) {
        self.free.push(FreeBlock { addr, size, block });
    }

    /// The first (bottom-up) or last free block of at least `alloc` bytes.
    /// Without a branch per block: where the fit lies is as good as random
    /// to a branch predictor, so the sizes of 64 blocks at a time become
    /// a bit mask (a few instructions per block) and the mask gives the index.
    #[inline]
    fn fit(&self, alloc: u64, bottom_up: bool) -> Option<usize> {
        if bottom_up {
            for (c, chunk) in self.free.chunks(64).enumerate() {
                let m = fit_mask(chunk, alloc);
                if m != 0 {
                    return Some(c * 64 + m.trailing_zeros() as usize);
                }
            }
        } else {
            let mut end = self.free.len();
            for chunk in self.free.rchunks(64) {
                let start = end - chunk.len();
                let m = fit_mask(chunk, alloc);
                if m != 0 {
                    return Some(start + 63 - m.leading_zeros() as usize);
                }
                end = start;
            }
        }
        None
    }

    /// How many free blocks start below `addr` (where one starting at
    /// `addr` goes): a branch-free count over a few blocks, a binary search
    /// over many.
    #[inline]
    fn rank(&self, addr: u64) -> usize {
        if self.free.len() <= 16 {
            self.free.iter().map(|f| usize::from(f.addr < addr)).sum()
        } else {
            self.free.partition_point(|f| f.addr < addr)
        }
    }

    #[inline]
    fn set(&mut self, k: usize, addr: u64, size: u64, block: u32) {
        self.free[k] = FreeBlock { addr, size, block };
    }

    #[inline]
    fn insert(&mut self, k: usize, addr: u64, size: u64, block: u32) {
        self.free.insert(k, FreeBlock { addr, size, block });
    }

    #[inline]
    fn remove(&mut self, k: usize) {
        self.free.remove(k);
    }

    /// The largest free block, the lowest address winning ties.
    pub(super) fn largest(&self) -> Option<(u64, u64)> {
        let mut best: Option<(u64, u64)> = None;
        for f in &self.free {
            if best.is_none_or(|(_, b)| f.size > b) {
                best = Some((f.addr, f.size));
            }
        }
        best
    }
}

/// Bit `j` set when block `j` of a chunk (at most 64) holds `alloc` bytes.
#[inline(always)]
fn fit_mask(chunk: &[FreeBlock], alloc: u64) -> u64 {
    let mut m = 0u64;
    for (j, f) in chunk.iter().enumerate() {
        m |= u64::from(f.size >= alloc) << j;
    }
    m
}

impl FreeList {
    /// Compact first fit: allocates `alloc` bytes (a multiple of the
    /// alignment) in the first or last free block that holds them.
    #[inline]
    pub(super) fn allocate_compact(
        &mut self,
        alloc: u64,
        bottom_up: bool,
    ) -> Option<(u64, BlockRef)> {
        let k = self.free.fit(alloc, bottom_up)?;
        let offset = if bottom_up {
            0
        } else {
            self.free.free[k].size - alloc
        };
        Some(self.carve_compact(k, alloc, offset))
    }

    /// The free block that would contain `address` (the last one starting
    /// at or before it) and its place in the array.
    pub(super) fn compact_block_for(&self, address: u64) -> Option<(usize, u32)> {
        let k = self.free.rank(address.checked_add(1)?).checked_sub(1)?;
        Some((k, self.free.free[k].block))
    }

    /// The first block of the run that holds `address`: the last free block
    /// starting at or before it, else the head. Between two free blocks
    /// every block is allocated, and a compact list has few blocks.
    pub(super) fn compact_walk_from(&self, address: u64) -> u32 {
        self.compact_block_for(address)
            .map_or(self.head, |(_, i)| i)
    }

    /// The allocated block starting at `address`.
    pub(super) fn compact_find_allocated(&self, address: u64) -> Option<u32> {
        let mut i = self.compact_walk_from(address);
        while i != NIL {
            let blk = &self.blocks[i as usize];
            if blk.addr >= address {
                return (blk.addr == address && blk.allocated).then_some(i);
            }
            i = blk.next;
        }
        None
    }

    /// Carves `alloc` bytes at `offset` out of the `k`-th free block.
    #[inline]
    pub(super) fn carve_compact(&mut self, k: usize, alloc: u64, offset: u64) -> (u64, BlockRef) {
        let i = self.free.free[k].block;
        let (cur, rest) = self.split(i, alloc, offset);
        if offset > 0 {
            // The bottom part stays free as block `i`, at the same place.
            self.free.free[k].size = offset;
            if rest != NIL {
                let r = &self.blocks[rest as usize];
                self.free.insert(k + 1, r.addr, r.size, rest);
            }
        } else if rest != NIL {
            let r = &self.blocks[rest as usize];
            self.free.set(k, r.addr, r.size, rest);
        } else {
            self.free.remove(k);
        }
        (self.blocks[cur as usize].addr, BlockRef(cur))
    }

    /// Frees allocated block `i` (already marked free and counted), merging
    /// it with free neighbours, and updates the array.
    #[inline]
    pub(super) fn free_compact(&mut self, i: u32) {
        let addr = self.blocks[i as usize].addr;
        // Free blocks below `i`: the previous one, if free, is the last of them.
        let k = self.free.rank(addr);
        let p = self.blocks[i as usize].prev;
        let n = self.blocks[i as usize].next;
        let prev_free = p != NIL && !self.blocks[p as usize].allocated;
        let next_free = n != NIL && !self.blocks[n as usize].allocated;
        match (prev_free, next_free) {
            (true, next_free) => {
                self.merge_into(p, i);
                if next_free {
                    self.merge_into(p, n);
                    self.free.remove(k);
                }
                self.free.free[k - 1].size = self.blocks[p as usize].size;
            }
            (false, true) => {
                self.merge_into(i, n);
                self.free.set(k, addr, self.blocks[i as usize].size, i);
            }
            (false, false) => {
                self.free.insert(k, addr, self.blocks[i as usize].size, i);
            }
        }
    }

    /// Builds the array from the block list (the list becomes compact).
    pub(super) fn fill_compact(&mut self) {
        self.free.clear();
        let mut i = self.head;
        while i != NIL {
            let b = self.blocks[i as usize];
            if !b.allocated {
                self.free.push(b.addr, b.size, i);
            }
            i = b.next;
        }
    }

    /// The array holds exactly the list's free blocks (for tests).
    pub(super) fn check_compact(&self) -> Result<(), String> {
        let mut expect = FreeArray::default();
        let mut i = self.head;
        while i != NIL {
            let b = &self.blocks[i as usize];
            if !b.allocated {
                expect.push(b.addr, b.size, i);
            } else if self.compact_find_allocated(b.addr) != Some(i) {
                return Err(format!(
                    "allocated block at {} not found by address",
                    b.addr
                ));
            }
            i = b.next;
        }
        if expect.free != self.free.free {
            return Err("the compact array disagrees with the free blocks".into());
        }
        self.check_buckets_empty()
    }
}
