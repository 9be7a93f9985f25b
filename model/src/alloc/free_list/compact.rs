//! The index of a free list with few blocks: its free blocks in one array
//! sorted by address (addresses, sizes and block numbers side by side). The
//! first fit scans the sizes — free blocks only, never an allocated one —
//! from the bottom or the top; a freed block finds its place (and its free
//! neighbours) by a binary search on the addresses. A replay's lists hold
//! a few free blocks each, so an operation touches a cache line or two.

use super::{BlockRef, FreeList, NIL};

/// The free blocks of a compact list, in address order.
#[derive(Clone, Debug, Default)]
pub(super) struct FreeArray {
    addr: Vec<u64>,
    size: Vec<u64>,
    block: Vec<u32>,
}

impl FreeArray {
    pub(super) fn len(&self) -> usize {
        self.addr.len()
    }

    pub(super) fn clear(&mut self) {
        self.addr.clear();
        self.size.clear();
        self.block.clear();
    }

    pub(super) fn push(&mut self, addr: u64, size: u64, block: u32) {
        self.addr.push(addr);
        self.size.push(size);
        self.block.push(block);
    }

    /// The first (bottom-up) or last free block of at least `alloc` bytes.
    #[inline]
    fn fit(&self, alloc: u64, bottom_up: bool) -> Option<usize> {
        if bottom_up {
            self.size.iter().position(|&s| s >= alloc)
        } else {
            self.size.iter().rposition(|&s| s >= alloc)
        }
    }

    /// How many free blocks start below `addr` (where one starting at `addr` goes).
    #[inline]
    fn rank(&self, addr: u64) -> usize {
        self.addr.partition_point(|&a| a < addr)
    }

    #[inline]
    fn set(&mut self, k: usize, addr: u64, size: u64, block: u32) {
        self.addr[k] = addr;
        self.size[k] = size;
        self.block[k] = block;
    }

    #[inline]
    fn insert(&mut self, k: usize, addr: u64, size: u64, block: u32) {
        self.addr.insert(k, addr);
        self.size.insert(k, size);
        self.block.insert(k, block);
    }

    #[inline]
    fn remove(&mut self, k: usize) {
        self.addr.remove(k);
        self.size.remove(k);
        self.block.remove(k);
    }

    /// The largest free block, the lowest address winning ties.
    pub(super) fn largest(&self) -> Option<(u64, u64)> {
        let mut best: Option<(u64, u64)> = None;
        for (&a, &s) in self.addr.iter().zip(&self.size) {
            if best.is_none_or(|(_, b)| s > b) {
                best = Some((a, s));
            }
        }
        best
    }
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
            self.free.size[k] - alloc
        };
        Some(self.carve_compact(k, alloc, offset))
    }

    /// The free block that would contain `address` (the last one starting
    /// at or before it) and its place in the array.
    pub(super) fn compact_block_for(&self, address: u64) -> Option<(usize, u32)> {
        let k = self.free.rank(address.checked_add(1)?).checked_sub(1)?;
        Some((k, self.free.block[k]))
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
        let i = self.free.block[k];
        let (cur, rest) = self.split(i, alloc, offset);
        if offset > 0 {
            // The bottom part stays free as block `i`, at the same place.
            self.free.size[k] = offset;
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
                self.free.size[k - 1] = self.blocks[p as usize].size;
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
        if expect.addr != self.free.addr
            || expect.size != self.free.size
            || expect.block != self.free.block
        {
            return Err("the compact array disagrees with the free blocks".into());
        }
        self.check_buckets_empty()
    }
}
