//! The bucketed index of a free list with many blocks: the address range
//! cut into at most 2^14 buckets of at least 1 KiB (1 KiB per bucket for a
//! Wormhole L1 bank, 2048 units = 64 KiB for a 1 GiB DRAM bank). Each
//! bucket knows the first block starting in it, and a [`MaxTree`] over the
//! buckets holds the largest free block starting in each. Finding the first
//! fit is one walk down the tree (≤ 4 cache lines) plus a scan of the few
//! blocks starting in one bucket; finding a block by address is a scan of
//! its bucket; an update is a walk up the tree. So every operation costs
//! O(log16(buckets) + blocks per bucket): it depends on the size of the
//! address range, not on how many blocks are live (a 64 KiB DRAM bucket
//! holds at most 32 starts of tile-page buffers, 2 KiB per bank; only runs
//! of tiny DRAM buffers pack more, up to its unit count).
//!
//! Why 2^14 and not more: a replay keeps four free lists per device, and
//! with 2^18 buckets a DRAM list alone held 2 MB of bucket heads and tree
//! leaves that operations touch at random — 8 devices kept 20 MB resident
//! for it, and paid in cache misses. With 2^14 a device's tables take a few
//! hundred KB (`replayer/benches/ratios.sh`: replay CPU -12 %, peak RSS
//! -20 MB on the synthetic trace). Why at least 1 KiB: an L1 bank in 2^14
//! buckets of 128 B spread its tables over 128 KB although its buffers (tile
//! pages, 2 KiB per bank and up) start at most once per 1 KiB bucket; 16x
//! smaller tables made the model's replay of the synthetic stream ~14 %
//! cheaper. The tables are allocated the first time a list needs them: a
//! list that stays compact never has them.

use super::bucket_bits::BucketBits;
use super::{Block, BlockRef, FreeList, NIL};
use crate::alloc::maxtree::MaxTree;

/// log2 of the largest number of address buckets.
const BUCKET_BITS: u32 = 14;
/// The smallest bucket, in bytes.
const MIN_BUCKET_BYTES: u64 = 1024;

#[derive(Clone, Debug)]
pub(super) struct Buckets {
    /// Buckets over the range (the tables below hold them once allocated).
    count: usize,
    tree: MaxTree,
    first: Vec<u32>,
    /// Buckets in which some block (free or allocated) starts: finds the
    /// block containing an address in O(1) however far back it starts.
    starts: BucketBits,
    shift: u32,
    /// Bytes per bucket (`alignment << shift`).
    bytes: u64,
}

impl Buckets {
    /// The geometry for a range of `units` allocation units of `alignment`
    /// bytes; no tables yet.
    pub(super) fn new(units: u64, alignment: u64) -> Buckets {
        let bits = 64 - units.max(1).saturating_sub(1).leading_zeros();
        // Buckets of at least MIN_BUCKET_BYTES (when that is a power-of-two
        // number of units): a small range (an L1 bank) gets fewer, denser
        // tables instead of buckets much smaller than a tile page.
        let min_shift = (MIN_BUCKET_BYTES / alignment).max(1).ilog2();
        let shift = bits.saturating_sub(BUCKET_BITS).max(min_shift);
        Buckets {
            count: (units >> shift) as usize + 1,
            tree: MaxTree::new(1),
            first: Vec::new(),
            starts: BucketBits::new(1),
            shift,
            bytes: alignment << shift,
        }
    }

    fn ensure_tables(&mut self) {
        if self.first.len() != self.count {
            self.tree = MaxTree::new(self.count);
            self.first = vec![NIL; self.count];
            self.starts = BucketBits::new(self.count);
        }
    }
}

impl FreeList {
    #[inline]
    pub(super) fn bucket_of(&self, addr: u64) -> usize {
        (self.div_align(addr - self.base) >> self.buckets.shift) as usize
    }

    #[inline]
    fn bucket_end(&self, b: usize) -> u64 {
        // Saturating: with a huge alignment the last bucket may end past 2^64.
        self.base
            .saturating_add((b as u64 + 1).saturating_mul(self.buckets.bytes))
    }

    /// Block `i` now starts where it starts: make it its bucket's first block if it is lowest.
    #[inline]
    fn add_start(&mut self, i: u32) {
        let addr = self.blocks[i as usize].addr;
        let b = self.bucket_of(addr);
        let f = self.buckets.first[b];
        if f == NIL {
            self.buckets.first[b] = i;
            self.buckets.starts.insert(b);
        } else if self.blocks[f as usize].addr > addr {
            self.buckets.first[b] = i;
        }
    }

    /// Block `i` (still linked) is going away.
    #[inline]
    fn remove_start(&mut self, i: u32) {
        let addr = self.blocks[i as usize].addr;
        let b = self.bucket_of(addr);
        if self.buckets.first[b] == i {
            let n = self.blocks[i as usize].next;
            if n != NIL && self.blocks[n as usize].addr < self.bucket_end(b) {
                self.buckets.first[b] = n;
            } else {
                self.buckets.first[b] = NIL;
                self.buckets.starts.remove(b);
            }
        }
    }

    /// Recomputes the largest free block starting in bucket `b`.
    #[inline]
    fn refresh_bucket(&mut self, b: usize) {
        let end = self.bucket_end(b);
        let mut i = self.buckets.first[b];
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
        self.buckets.tree.set(b, m);
    }

    /// A free block of `units` now starts in bucket `b` (nothing there shrank).
    #[inline]
    fn raise_bucket(&mut self, b: usize, units: u32) {
        if units > self.buckets.tree.get(b) {
            self.buckets.tree.set(b, units);
        }
    }

    /// The first-fit block in bucket `b` for `alloc` bytes.
    #[inline]
    fn pick_in_bucket(&self, b: usize, alloc: u64, bottom_up: bool) -> u32 {
        let end = self.bucket_end(b);
        let mut i = self.buckets.first[b];
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

    /// The first-fit free block for `alloc` bytes (a multiple of the
    /// alignment, at most the range's size) in the given direction.
    #[inline]
    pub(super) fn bucketed_fit(&self, alloc: u64, bottom_up: bool) -> Option<u32> {
        // `alloc <= size` and the range has < 2^31 units: this fits.
        let units = self.div_align(alloc) as u32;
        let b = if bottom_up {
            self.buckets.tree.first(units)
        } else {
            self.buckets.tree.last(units)
        }?;
        let i = self.pick_in_bucket(b, alloc, bottom_up);
        debug_assert!(i != NIL, "tree said bucket {b} fits {alloc} B");
        Some(i)
    }

    /// The block (free or allocated) that would contain `address` if it is
    /// free: the last block starting at or before it in its bucket, else the
    /// last free block of an earlier bucket. `NIL` when there is none.
    pub(super) fn bucketed_block_for(&self, address: u64) -> u32 {
        let b = self.bucket_of(address);
        let end = self.bucket_end(b);
        let mut i = self.buckets.first[b];
        let mut found = NIL;
        while i != NIL {
            let blk = &self.blocks[i as usize];
            if blk.addr > address || blk.addr >= end {
                break;
            }
            found = i;
            i = blk.next;
        }
        if found != NIL {
            return found;
        }
        // It starts in an earlier bucket; to be usable it must be free
        // (and hold at least one unit), so it is the last such free block.
        let Some(pb) = b
            .checked_sub(1)
            .and_then(|before| self.buckets.tree.last_at_or_before(before, 1))
        else {
            return NIL;
        };
        let pend = self.bucket_end(pb);
        let mut i = self.buckets.first[pb];
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
        found
    }

    /// The allocated block starting at `address`: blocks starting in its
    /// bucket are scanned in address order.
    #[inline]
    pub(super) fn bucketed_find_allocated(&self, address: u64) -> Option<u32> {
        let b = self.bucket_of(address);
        let end = self.bucket_end(b);
        let mut i = self.buckets.first[b];
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

    /// The first block of the last bucket at or before `address`'s holding
    /// a block start at or before `address` (for `block_at`).
    pub(super) fn bucketed_first_at_or_before(&self, address: u64) -> Option<u32> {
        let mut b = self.bucket_of(address);
        loop {
            b = self.buckets.starts.last_at_or_before(b)?;
            let f = self.buckets.first[b];
            if f != NIL && self.blocks[f as usize].addr <= address {
                return Some(f);
            }
            b = b.checked_sub(1)?;
        }
    }

    /// Carves `alloc` bytes at `offset` out of free block `i` and updates
    /// the buckets.
    pub(super) fn carve_bucketed(&mut self, i: u32, alloc: u64, offset: u64) -> (u64, BlockRef) {
        let Block {
            addr: orig_addr,
            size: orig_size,
            ..
        } = self.blocks[i as usize];
        let (cur, rest) = self.split(i, alloc, offset);
        if offset > 0 {
            // `cur` is a new block: it starts in its bucket now.
            self.add_start(cur);
        }
        // Only two leaves can change: the right remainder's bucket gains a
        // free block (a raise, done first so that the lowering below stops
        // early at a shared ancestor), and the original block's bucket lost
        // or shrank its block (a rescan). The allocated block's own start
        // never counted as free, so its bucket is untouched.
        if rest != NIL {
            self.add_start(rest);
            let Block { addr, size, .. } = self.blocks[rest as usize];
            self.raise_bucket(self.bucket_of(addr), self.units(size));
        }
        // The rescan is needed only when the original block was its
        // bucket's largest: another, larger free block there is untouched.
        let home = self.bucket_of(orig_addr);
        if self.buckets.tree.get(home) == self.units(orig_size) {
            self.refresh_bucket(home);
        }
        (self.blocks[cur as usize].addr, BlockRef(cur))
    }

    /// Frees allocated block `i` (already marked free and counted), merging
    /// it with free neighbours, and updates the buckets.
    pub(super) fn free_bucketed(&mut self, i: u32) {
        let mut cur = i;
        let p = self.blocks[cur as usize].prev;
        if p != NIL && !self.blocks[p as usize].allocated {
            self.remove_start(cur);
            self.merge_into(p, cur);
            cur = p;
        }
        let n = self.blocks[cur as usize].next;
        let mut lost = usize::MAX;
        let mut lost_units = 0;
        if n != NIL && !self.blocks[n as usize].allocated {
            lost = self.bucket_of(self.blocks[n as usize].addr);
            lost_units = self.units(self.blocks[n as usize].size);
            self.remove_start(n);
            self.merge_into(cur, n);
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
        if lost != usize::MAX && lost != home && self.buckets.tree.get(lost) == lost_units {
            self.refresh_bucket(lost);
        }
    }

    /// Builds the buckets from the block list (the list leaves compact mode).
    pub(super) fn fill_buckets(&mut self) {
        self.buckets.ensure_tables();
        let mut i = self.head;
        while i != NIL {
            self.add_start(i);
            let Block {
                addr,
                size,
                allocated,
                next,
                ..
            } = self.blocks[i as usize];
            if !allocated {
                self.raise_bucket(self.bucket_of(addr), self.units(size));
            }
            i = next;
        }
    }

    /// Empties the buckets the blocks start in: O(blocks), not O(buckets).
    pub(super) fn clear_buckets(&mut self) {
        let mut i = self.head;
        while i != NIL {
            let blk = self.blocks[i as usize];
            let b = self.bucket_of(blk.addr);
            if self.buckets.first[b] != NIL {
                self.buckets.first[b] = NIL;
                self.buckets.starts.remove(b);
                self.buckets.tree.set(b, 0);
            }
            i = blk.next;
        }
    }

    /// The largest free block's size in units and the block, from the tree
    /// (only when every block boundary is on the alignment grid).
    pub(super) fn bucketed_largest(&self) -> Option<u32> {
        let units = self.buckets.tree.max();
        let b = self.buckets.tree.first(units)?;
        let want = units as u64 * self.alignment;
        let end = self.bucket_end(b);
        let mut i = self.buckets.first[b];
        while i != NIL {
            let blk = &self.blocks[i as usize];
            if blk.addr >= end {
                break;
            }
            if !blk.allocated && blk.size == want {
                return Some(i);
            }
            i = blk.next;
        }
        None
    }

    /// The bucket tables agree with the block list (for tests).
    pub(super) fn check_buckets(&self) -> Result<(), String> {
        let n = self.buckets.first.len();
        if n != self.buckets.count {
            return Err("bucketed list without bucket tables".into());
        }
        let mut leaf = vec![0u32; n];
        let mut first = vec![NIL; n];
        let mut i = self.head;
        while i != NIL {
            let b = &self.blocks[i as usize];
            let bk = self.bucket_of(b.addr);
            if first[bk] == NIL {
                first[bk] = i;
            }
            if !b.allocated {
                leaf[bk] = leaf[bk].max(self.units(b.size));
            }
            if b.allocated && self.bucketed_find_allocated(b.addr) != Some(i) {
                return Err(format!(
                    "allocated block at {} not found by address",
                    b.addr
                ));
            }
            i = b.next;
        }
        if first != self.buckets.first {
            return Err("bucket heads disagree".into());
        }
        for (b, &f) in first.iter().enumerate() {
            if self.buckets.starts.contains(b) != (f != NIL) {
                return Err(format!("bucket bitmap disagrees at bucket {b}"));
            }
        }
        self.buckets.tree.check()?;
        for (b, &v) in leaf.iter().enumerate() {
            if self.buckets.tree.get(b) != v {
                return Err(format!(
                    "tree leaf {b} is {} but should be {v}",
                    self.buckets.tree.get(b)
                ));
            }
        }
        Ok(())
    }

    /// Unused bucket tables are empty (for tests, in compact mode).
    pub(super) fn check_buckets_empty(&self) -> Result<(), String> {
        if self.buckets.first.iter().any(|&f| f != NIL) || self.buckets.tree.max() != 0 {
            return Err("a compact list left entries in its bucket tables".into());
        }
        Ok(())
    }
}
