//! tt-metal's first-fit free list (`FreeListOpt` with `SearchPolicy::FIRST`)
//! over one address range, with the same arithmetic:
//!
//! - a request is rounded to `align(max(size, min_allocation))`, where
//!   `align(x) = ceil(x / alignment) * alignment` (`Algorithm::align`);
//! - bottom-up takes the lowest-address free block that fits and carves from
//!   its bottom; top-down takes the highest-address free block that fits and
//!   carves from its top (`offset = block_size - alloc_size`);
//! - freeing merges with the previous and the next block when they are free;
//!   freeing an address that is not allocated is ignored;
//! - the range is *not* rounded down to the alignment (tt-metal keeps
//!   `max_size_bytes` as given), so a top-down carve from an unaligned tail
//!   yields an unaligned address exactly as tt-metal would.
//!
//! Speed: blocks (free and allocated) form a doubly linked list in address
//! order, so coalescing is O(1). The address range is cut into at most 2^14
//! buckets of at least 1 KiB (1 KiB per bucket for a Wormhole L1 bank, 2048
//! units = 64 KiB for a 1 GiB DRAM bank); each bucket knows the first
//! block starting in it, and a [`MaxTree`] over the buckets holds the
//! largest free block starting in each. Finding the first fit is one walk
//! down the tree (≤ 4 cache lines) plus a scan of the few blocks starting in
//! one bucket; finding a block by address is a scan of its bucket; an update
//! is a walk up the tree. So every operation costs O(log16(buckets) + blocks
//! per bucket): it depends on the size of the address range, not on how many
//! blocks are live (a 64 KiB DRAM bucket holds at most 32 starts of
//! tile-page buffers, 2 KiB per bank; only runs of tiny DRAM buffers pack
//! more, up to its unit count).
//!
//! Why 2^14 and not more: a replay keeps four free lists per device, and
//! with 2^18 buckets a DRAM list alone held 2 MB of bucket heads and tree
//! leaves that operations touch at random — 8 devices kept 20 MB resident
//! for it, and paid in cache misses. With 2^14 a device's tables take a few
//! hundred KB
//! (`replayer/benches/ratios.sh`: replay CPU -12 %, peak RSS -20 MB on the
//! synthetic trace). Why at least 1 KiB: an L1 bank in 2^14 buckets of 128 B
//! spread its tables over 128 KB although its buffers (tile pages, 2 KiB per
//! bank and up) start at most once per 1 KiB bucket; 16x smaller tables made
//! the model's replay of the synthetic stream ~14 % cheaper
//! (`model/benches/alloc_throughput.rs`, stream figures).

use super::error::ConfigError;
use super::maxtree::MaxTree;
use bucket_bits::BucketBits;

mod bucket_bits;
mod inspect;
#[cfg(test)]
mod tests;

const NIL: u32 = u32::MAX;
/// log2 of the largest number of address buckets.
const BUCKET_BITS: u32 = 14;
/// The smallest bucket, in bytes (see `FreeList::new`).
const MIN_BUCKET_BYTES: u64 = 1024;

#[derive(Clone, Copy, Debug)]
struct Block {
    addr: u64,
    size: u64,
    prev: u32,
    next: u32,
    allocated: bool,
}

/// Which block of a [`FreeList`] an allocation got: given back to
/// [`FreeList::deallocate_block`], it frees the allocation without looking
/// its address up. Valid while the allocation is live (an allocated block
/// never moves, splits or merges); a stale one is only a slower free.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockRef(u32);

impl BlockRef {
    /// Refers to no block (host buffers, tests): a free with it looks the address up.
    pub const NONE: BlockRef = BlockRef(NIL);
}

/// One block of the free list, as the memory view shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub address: u64,
    pub size: u64,
    pub allocated: bool,
}

/// A first-fit free list over `[base, base + size)`.
#[derive(Clone, Debug)]
pub struct FreeList {
    base: u64,
    size: u64,
    alignment: u64,
    /// `log2(alignment)` when it is a power of two: shifts instead of divisions.
    align_shift: Option<u32>,
    min_allocation: u64,
    blocks: Vec<Block>,
    spare: Vec<u32>,
    head: u32,
    num_allocated: usize,
    allocated_bytes: u64,
    free_blocks: usize,
    /// Set once a block boundary off the alignment grid exists (unaligned
    /// range end or an `allocate_at` at an unaligned address): the largest
    /// free block must then be found by a scan rather than from the tree.
    off_grid: bool,
    tree: MaxTree,
    bucket_first: Vec<u32>,
    /// Buckets in which some block (free or allocated) starts: finds the
    /// block containing an address in O(1) however far back it starts.
    starts: BucketBits,
    bucket_shift: u32,
    /// Bytes per bucket (`alignment << bucket_shift`).
    bucket_bytes: u64,
}

impl FreeList {
    /// A free list over `[base, base + size)`. tt-metal passes the alignment
    /// as the minimum allocation too.
    pub fn new(
        base: u64,
        size: u64,
        alignment: u64,
        min_allocation: u64,
    ) -> Result<FreeList, ConfigError> {
        if alignment == 0 {
            return Err(ConfigError::new("alignment must be at least 1 B"));
        }
        if base.checked_add(size).is_none() {
            return Err(ConfigError::new(format!(
                "address range {base} + {size} B overflows 64 bits"
            )));
        }
        let units = size.div_ceil(alignment);
        if units > i32::MAX as u64 {
            return Err(ConfigError::new(format!(
                "a {size} B range at {alignment} B alignment has more than 2^31 allocation units"
            )));
        }
        let bits = 64 - units.max(1).saturating_sub(1).leading_zeros();
        // Buckets of at least MIN_BUCKET_BYTES (when that is a power-of-two
        // number of units): a small range (an L1 bank) gets fewer, denser
        // tables instead of buckets much smaller than a tile page.
        let min_shift = (MIN_BUCKET_BYTES / alignment).max(1).ilog2();
        let bucket_shift = bits.saturating_sub(BUCKET_BITS).max(min_shift);
        let buckets = (units >> bucket_shift) as usize + 1;
        let mut fl = FreeList {
            base,
            size,
            alignment,
            align_shift: alignment
                .is_power_of_two()
                .then(|| alignment.trailing_zeros()),
            min_allocation: min_allocation.max(1),
            blocks: Vec::new(),
            spare: Vec::new(),
            head: NIL,
            num_allocated: 0,
            allocated_bytes: 0,
            free_blocks: 0,
            off_grid: !size.is_multiple_of(alignment),
            tree: MaxTree::new(buckets),
            bucket_first: vec![NIL; buckets],
            starts: BucketBits::new(buckets),
            bucket_shift,
            bucket_bytes: alignment << bucket_shift,
        };
        fl.init();
        Ok(fl)
    }

    fn init(&mut self) {
        self.blocks.clear();
        self.spare.clear();
        self.num_allocated = 0;
        self.allocated_bytes = 0;
        self.head = NIL;
        self.free_blocks = 0;
        self.off_grid = !self.size.is_multiple_of(self.alignment);
        if self.size > 0 {
            let i = self.new_block(self.base, self.size);
            self.head = i;
            self.add_start(i);
            self.free_blocks = 1;
            self.refresh_bucket(0);
        }
    }

    pub fn base(&self) -> u64 {
        self.base
    }
    /// Bytes managed (tt-metal's `max_size_bytes`, the "bank size").
    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn end(&self) -> u64 {
        self.base + self.size
    }
    pub fn alignment(&self) -> u64 {
        self.alignment
    }
    pub fn min_allocation(&self) -> u64 {
        self.min_allocation
    }
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated_bytes
    }
    pub fn free_bytes(&self) -> u64 {
        self.size - self.allocated_bytes
    }
    pub fn num_allocated(&self) -> usize {
        self.num_allocated
    }
    pub fn num_free_blocks(&self) -> usize {
        self.free_blocks
    }

    /// What a request of `size` bytes reserves: `align(max(size, min_allocation))`.
    #[inline]
    pub fn alloc_size(&self, size: u64) -> u64 {
        let s = size.max(self.min_allocation);
        match self.align_shift {
            Some(sh) => s.saturating_add(self.alignment - 1) >> sh << sh,
            None => s.div_ceil(self.alignment).saturating_mul(self.alignment),
        }
    }

    /// `floor(x / alignment)`.
    #[inline(always)]
    fn div_align(&self, x: u64) -> u64 {
        match self.align_shift {
            Some(sh) => x >> sh,
            None => x / self.alignment,
        }
    }

    #[inline]
    fn units(&self, bytes: u64) -> u32 {
        // Exact for fit tests: a block of `s` bytes fits a request of `a`
        // bytes (a multiple of the alignment) iff floor(s / align) >= a / align.
        self.div_align(bytes).min(i32::MAX as u64) as u32
    }

    #[inline]
    fn bucket_of(&self, addr: u64) -> usize {
        (self.div_align(addr - self.base) >> self.bucket_shift) as usize
    }

    #[inline]
    fn bucket_end(&self, b: usize) -> u64 {
        // Saturating: with a huge alignment the last bucket may end past 2^64.
        self.base
            .saturating_add((b as u64 + 1).saturating_mul(self.bucket_bytes))
    }

    fn new_block(&mut self, addr: u64, size: u64) -> u32 {
        let b = Block {
            addr,
            size,
            prev: NIL,
            next: NIL,
            allocated: false,
        };
        if let Some(i) = self.spare.pop() {
            self.blocks[i as usize] = b;
            i
        } else {
            self.blocks.push(b);
            (self.blocks.len() - 1) as u32
        }
    }

    #[inline]
    fn link_after(&mut self, p: u32, n: u32) {
        let next = self.blocks[p as usize].next;
        self.blocks[n as usize].prev = p;
        self.blocks[n as usize].next = next;
        if next != NIL {
            self.blocks[next as usize].prev = n;
        }
        self.blocks[p as usize].next = n;
    }

    #[inline]
    fn unlink(&mut self, i: u32) {
        let Block { prev, next, .. } = self.blocks[i as usize];
        if prev != NIL {
            self.blocks[prev as usize].next = next;
        } else {
            self.head = next;
        }
        if next != NIL {
            self.blocks[next as usize].prev = prev;
        }
        self.spare.push(i);
    }

    /// Block `i` now starts where it starts: make it its bucket's first block if it is lowest.
    #[inline]
    fn add_start(&mut self, i: u32) {
        let addr = self.blocks[i as usize].addr;
        let b = self.bucket_of(addr);
        let f = self.bucket_first[b];
        if f == NIL {
            self.bucket_first[b] = i;
            self.starts.insert(b);
        } else if self.blocks[f as usize].addr > addr {
            self.bucket_first[b] = i;
        }
    }

    /// Block `i` (still linked) is going away.
    #[inline]
    fn remove_start(&mut self, i: u32) {
        let addr = self.blocks[i as usize].addr;
        let b = self.bucket_of(addr);
        if self.bucket_first[b] == i {
            let n = self.blocks[i as usize].next;
            if n != NIL && self.blocks[n as usize].addr < self.bucket_end(b) {
                self.bucket_first[b] = n;
            } else {
                self.bucket_first[b] = NIL;
                self.starts.remove(b);
            }
        }
    }

    /// Recomputes the largest free block starting in bucket `b`.
    #[inline]
    fn refresh_bucket(&mut self, b: usize) {
        let end = self.bucket_end(b);
        let mut i = self.bucket_first[b];
        let mut m = 0u32;
        while i != NIL {
            let blk = &self.blocks[i as usize];
            if blk.addr >= end {
                break;
            }
            if !blk.allocated {
                m = m.max(self.units(blk.size));
            }
            i = blk.next;
        }
        self.tree.set(b, m);
    }

    /// A free block of `units` now starts in bucket `b` (nothing there shrank).
    #[inline]
    fn raise_bucket(&mut self, b: usize, units: u32) {
        if units > self.tree.get(b) {
            self.tree.set(b, units);
        }
    }

    /// The first-fit block in bucket `b` for `alloc` bytes.
    #[inline]
    fn pick_in_bucket(&self, b: usize, alloc: u64, bottom_up: bool) -> u32 {
        let end = self.bucket_end(b);
        let mut i = self.bucket_first[b];
        let mut chosen = NIL;
        while i != NIL {
            let blk = &self.blocks[i as usize];
            if blk.addr >= end {
                break;
            }
            if !blk.allocated && blk.size >= alloc {
                chosen = i;
                if bottom_up {
                    break;
                }
            }
            i = blk.next;
        }
        chosen
    }

    /// Allocates `size` bytes (rounded as tt-metal rounds) and returns the
    /// absolute address, or `None` when no free block fits.
    #[inline]
    pub fn allocate(&mut self, size: u64, bottom_up: bool) -> Option<u64> {
        self.allocate_block(size, bottom_up)
            .map(|(address, _)| address)
    }

    /// [`FreeList::allocate`], with the block the allocation got.
    #[inline]
    pub fn allocate_block(&mut self, size: u64, bottom_up: bool) -> Option<(u64, BlockRef)> {
        let alloc = self.alloc_size(size);
        if alloc > self.size {
            return None;
        }
        // `alloc <= size` and the range has < 2^31 units: this fits.
        let units = self.div_align(alloc) as u32;
        let b = if bottom_up {
            self.tree.first(units)
        } else {
            self.tree.last(units)
        }?;
        let i = self.pick_in_bucket(b, alloc, bottom_up);
        debug_assert!(i != NIL, "tree said bucket {b} fits {alloc} B");
        let blk = self.blocks[i as usize];
        let offset = if bottom_up { 0 } else { blk.size - alloc };
        Some(self.allocate_in_block(i, alloc, offset))
    }

    /// Allocates `size` bytes at exactly `address` when `[address, address +
    /// alloc_size)` lies inside one free block (tt-metal's
    /// `allocate_at_address`). Returns `None` otherwise.
    pub fn allocate_at(&mut self, address: u64, size: u64) -> Option<u64> {
        self.allocate_block_at(address, size).map(|(a, _)| a)
    }

    /// [`FreeList::allocate_at`], with the block the allocation got.
    pub fn allocate_block_at(&mut self, address: u64, size: u64) -> Option<(u64, BlockRef)> {
        let alloc = self.alloc_size(size);
        if address < self.base || address.checked_add(alloc)? > self.end() {
            return None;
        }
        let b = self.bucket_of(address);
        // The block containing `address` is the last block starting at or before it.
        let end = self.bucket_end(b);
        let mut i = self.bucket_first[b];
        let mut found = NIL;
        while i != NIL {
            let blk = &self.blocks[i as usize];
            if blk.addr > address || blk.addr >= end {
                break;
            }
            found = i;
            i = blk.next;
        }
        if found == NIL {
            // It starts in an earlier bucket; to be usable it must be free
            // (and hold at least one unit), so it is the last such free block.
            let pb = self.tree.last_at_or_before(b.checked_sub(1)?, 1)?;
            let pend = self.bucket_end(pb);
            let mut i = self.bucket_first[pb];
            while i != NIL {
                let blk = &self.blocks[i as usize];
                if blk.addr >= pend {
                    break;
                }
                if !blk.allocated {
                    found = i;
                }
                i = blk.next;
            }
        }
        if found == NIL {
            return None;
        }
        let blk = self.blocks[found as usize];
        if blk.allocated || address < blk.addr || address + alloc > blk.addr + blk.size {
            return None;
        }
        if !(address - self.base).is_multiple_of(self.alignment) {
            self.off_grid = true;
        }
        Some(self.allocate_in_block(found, alloc, address - blk.addr))
    }

    /// Allocates `alloc` bytes at `offset` in free block `i`; returns the
    /// address and the allocated block.
    fn allocate_in_block(&mut self, i: u32, alloc: u64, offset: u64) -> (u64, BlockRef) {
        let Block {
            addr: orig_addr,
            size: orig_size,
            ..
        } = self.blocks[i as usize];
        let mut cur = i;
        self.free_blocks -= 1;
        if offset > 0 {
            // The bottom part stays free under the old index.
            self.blocks[i as usize].size = offset;
            let r = self.new_block(orig_addr + offset, orig_size - offset);
            self.link_after(i, r);
            self.add_start(r);
            self.free_blocks += 1;
            cur = r;
        }
        let Block { addr, size, .. } = self.blocks[cur as usize];
        if size > alloc {
            let r = self.new_block(addr + alloc, size - alloc);
            self.link_after(cur, r);
            self.add_start(r);
            self.blocks[cur as usize].size = alloc;
            self.free_blocks += 1;
        }
        self.blocks[cur as usize].allocated = true;
        self.num_allocated += 1;
        self.allocated_bytes += alloc;

        // Only two leaves can change: the right remainder's bucket gains a
        // free block (a raise, done first so that the lowering below stops
        // early at a shared ancestor), and the original block's bucket lost
        // or shrank its block (a rescan). The allocated block's own start
        // never counted as free, so its bucket is untouched.
        if size > alloc {
            let rest = self.blocks[self.blocks[cur as usize].next as usize].size;
            self.raise_bucket(self.bucket_of(addr + alloc), self.units(rest));
        }
        // The rescan is needed only when the original block was its
        // bucket's largest: another, larger free block there is untouched.
        let home = self.bucket_of(orig_addr);
        if self.tree.get(home) == self.units(orig_size) {
            self.refresh_bucket(home);
        }
        (addr, BlockRef(cur))
    }

    /// The allocated block starting at `address`: blocks starting in its
    /// bucket are scanned in address order (no separate address index — the
    /// bucket's blocks are touched by the free anyway).
    #[inline]
    fn find_allocated(&self, address: u64) -> Option<u32> {
        if address < self.base || address >= self.end() {
            return None;
        }
        let b = self.bucket_of(address);
        let end = self.bucket_end(b);
        let mut i = self.bucket_first[b];
        while i != NIL {
            let blk = &self.blocks[i as usize];
            if blk.addr > address || blk.addr >= end {
                return None;
            }
            if blk.addr == address {
                return blk.allocated.then_some(i);
            }
            i = blk.next;
        }
        None
    }

    /// Frees the block allocated at `address` and returns its size; `None`
    /// (and no change) when nothing is allocated there, as in tt-metal.
    #[inline]
    pub fn deallocate(&mut self, address: u64) -> Option<u64> {
        let i = self.find_allocated(address)?;
        Some(self.free_block(i))
    }

    /// Frees the allocation at `address` that got block `block`: no lookup
    /// when the block still holds it; otherwise (a stale or foreign
    /// reference) as [`FreeList::deallocate`] does.
    #[inline]
    pub fn deallocate_block(&mut self, block: BlockRef, address: u64) -> Option<u64> {
        match self.blocks.get(block.0 as usize) {
            Some(b) if b.allocated && b.addr == address => Some(self.free_block(block.0)),
            _ => self.deallocate(address),
        }
    }

    /// Frees allocated block `i`, merging it with free neighbours; returns its size.
    #[inline]
    fn free_block(&mut self, i: u32) -> u64 {
        self.num_allocated -= 1;
        let size = self.blocks[i as usize].size;
        self.allocated_bytes -= size;
        self.blocks[i as usize].allocated = false;
        self.free_blocks += 1;
        let mut cur = i;
        let p = self.blocks[cur as usize].prev;
        if p != NIL && !self.blocks[p as usize].allocated {
            self.remove_start(cur);
            self.blocks[p as usize].size += self.blocks[cur as usize].size;
            self.unlink(cur);
            self.free_blocks -= 1;
            cur = p;
        }
        let n = self.blocks[cur as usize].next;
        let mut lost = usize::MAX;
        let mut lost_units = 0;
        if n != NIL && !self.blocks[n as usize].allocated {
            lost = self.bucket_of(self.blocks[n as usize].addr);
            lost_units = self.units(self.blocks[n as usize].size);
            self.remove_start(n);
            self.blocks[cur as usize].size += self.blocks[n as usize].size;
            self.unlink(n);
            self.free_blocks -= 1;
        }
        // The merged block only grew: raise its bucket (first, so that the
        // lowering below stops early). The next block's bucket lost a free
        // block start: rescan it, unless the merged block starts there too
        // (then the larger merged block already dominates it) or the lost
        // block was not its bucket's largest.
        let Block {
            addr: start,
            size: merged,
            ..
        } = self.blocks[cur as usize];
        let home = self.bucket_of(start);
        self.raise_bucket(home, self.units(merged));
        if lost != usize::MAX && lost != home && self.tree.get(lost) == lost_units {
            self.refresh_bucket(lost);
        }
        size
    }

    /// Frees everything (tt-metal's `deallocate_all` / `clear`).
    /// Costs O(blocks), not O(buckets): only the buckets where a block
    /// starts hold anything to reset.
    pub fn deallocate_all(&mut self) {
        let mut i = self.head;
        while i != NIL {
            let blk = self.blocks[i as usize];
            let b = self.bucket_of(blk.addr);
            if self.bucket_first[b] != NIL {
                self.bucket_first[b] = NIL;
                self.starts.remove(b);
                self.tree.set(b, 0);
            }
            i = blk.next;
        }
        self.init();
    }
}
