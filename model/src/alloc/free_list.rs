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
//! Speed: what finds the first fit and the neighbours of a freed block
//! depends on how many blocks there are, like a hash table that grows its
//! table:
//!
//! - **Compact** (at most `COMPACT_MAX_BLOCKS` blocks, the common case in
//!   a replay: tens of live buffers per list; `compact.rs`): the free
//!   blocks sit in one sorted array of addresses and sizes, the allocated
//!   ones unlinked in the block table. The first fit is a scan of the free
//!   sizes, which never steps over an allocated block; a free finds its
//!   place and its free neighbours in the array. No tables that grow with
//!   the address range, no links to repair: an operation touches the array
//!   and one block entry, and they stay hot.
//! - **Bucketed** (more blocks; `buckets.rs`): blocks (free and allocated)
//!   form a doubly linked list in address order, so coalescing is O(1);
//!   the address range is cut into at most 2^14 buckets of at least 1 KiB;
//!   each bucket knows the first block starting in it, and a `MaxTree`
//!   over the buckets holds the largest free block starting in each.
//!   Finding the first fit is one walk down the tree plus a scan of one
//!   bucket, so every operation costs O(log16(buckets) + blocks per
//!   bucket) however many blocks are live.
//!
//! A list switches to the buckets when it holds more than
//! `COMPACT_MAX_BLOCKS` blocks and back when it holds fewer than a quarter
//! of that, so a switch (O(blocks)) is paid for by many operations between
//! two switches. Both place exactly alike: the free blocks and the first-fit
//! rule are the same, only the search differs (property tests compare them).

use super::error::ConfigError;
use buckets::Buckets;
use free_array::FreeArray;
pub(crate) use held::Payload;

#[macro_use]
mod words;
mod block_table;
mod bucket_bits;
mod buckets;
mod compact;
mod free_array;
mod held;
mod inspect;
#[cfg(test)]
mod tests;

const NIL: u32 = u32::MAX;

/// The most blocks (free and allocated) a list keeps in compact mode; it
/// returns to it below a quarter of this. A compact operation costs a scan
/// of up to half this many free blocks and one move of the array; the
/// buckets cost ~70 ns per operation whatever the count
/// (`model/benches/alloc_throughput.rs`).
const COMPACT_MAX_BLOCKS: usize = 128;

/// One block (a line: its holder's [`Payload`] shares it). `repr(C)`
/// for `allocated` and `held` side by side: every allocating path writes
/// both, and two neighbouring bytes go in one store.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Block {
    addr: u64,
    size: u64,
    prev: u32,
    next: u32,
    /// Counts the times the entry stopped holding an allocation, so a
    /// holder's (block, generation) pair goes stale when it is freed
    /// (see `held.rs`). Kept when the entry is reused, and by `init`.
    generation: u32,
    allocated: bool,
    /// The allocation has a payload: written by every path that
    /// allocates the block, true only by [`FreeList::hold`] and
    /// [`FreeList::allocate_held`].
    held: bool,
    /// What the allocation's holder keeps with it (`held.rs`).
    payload: Payload,
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

    /// The block at index `i` of the block table (a holder's handle keeps the index).
    #[inline(always)]
    pub(crate) fn at(i: u32) -> BlockRef {
        BlockRef(i)
    }

    #[inline(always)]
    pub(crate) fn index(self) -> u32 {
        self.0
    }
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
    /// The first unused entry of `blocks` (`NIL`: none); unused entries
    /// are chained through their `next` (the last released is reused
    /// first), so taking or giving one back touches no other table.
    spare: u32,
    head: u32,
    num_allocated: usize,
    allocated_bytes: u64,
    /// Free blocks, counted in bucketed mode only: a compact list's are
    /// its free array's length ([`FreeList::num_free_blocks`]).
    free_blocks: usize,
    /// Set once a block boundary off the alignment grid exists (unaligned
    /// range end or an `allocate_at` at an unaligned address): the largest
    /// free block must then be found by a scan rather than from the tree.
    off_grid: bool,
    /// Compact mode: `free` is the index; else `buckets` is.
    compact: bool,
    /// Blocks above which the list leaves compact mode.
    compact_limit: usize,
    /// A compact list's free blocks, in `u32` words when `fits_u32`
    /// (`free.narrow`, `words.rs`), else in `u64` words.
    free: FreeArray,
    /// The range ends below `i32::MAX`: `u32` words hold its addresses.
    fits_u32: bool,
    buckets: Buckets,
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
        let mut fl = FreeList {
            base,
            size,
            alignment,
            align_shift: alignment
                .is_power_of_two()
                .then(|| alignment.trailing_zeros()),
            min_allocation: min_allocation.max(1),
            blocks: Vec::new(),
            spare: NIL,
            head: NIL,
            num_allocated: 0,
            allocated_bytes: 0,
            free_blocks: 0,
            off_grid: !size.is_multiple_of(alignment),
            compact: true,
            compact_limit: COMPACT_MAX_BLOCKS,
            free: FreeArray::new::<u64>(),
            fits_u32: base + size < i32::MAX as u64,
            buckets: Buckets::new(units, alignment),
        };
        fl.init();
        Ok(fl)
    }

    /// Sets the most blocks kept in compact mode (0: always bucketed;
    /// `usize::MAX`: always compact) and switches now if needed. For tests
    /// and benchmarks: placement is the same either way.
    #[doc(hidden)]
    pub fn set_compact_limit(&mut self, limit: usize) {
        self.compact_limit = limit;
        self.rebalance();
    }

    /// Is the list in compact mode? (For tests and benchmarks.)
    #[doc(hidden)]
    pub fn is_compact(&self) -> bool {
        self.compact
    }

    fn init(&mut self) {
        // Every entry goes back to the spare chain (the lowest first),
        // keeping its generation: a holder of a block freed here must
        // not take a later allocation in the same entry for its own.
        self.spare = NIL;
        for (i, b) in self.blocks.iter_mut().enumerate().rev() {
            if b.allocated {
                b.allocated = false;
                b.generation = b.generation.wrapping_add(1);
            }
            b.next = self.spare;
            self.spare = i as u32;
        }
        self.num_allocated = 0;
        self.allocated_bytes = 0;
        self.head = NIL;
        self.free_blocks = 0;
        self.off_grid = !self.size.is_multiple_of(self.alignment);
        self.compact = true;
        self.choose_words();
        if self.size > 0 {
            self.free_blocks = 1;
            self.free_whole_range();
        }
        self.rebalance();
    }

    /// Blocks, free and allocated.
    #[inline]
    fn num_blocks(&self) -> usize {
        self.num_allocated + self.num_free_blocks()
    }

    /// Switches between compact and bucketed mode when the block count
    /// crossed a limit (with hysteresis: see `COMPACT_MAX_BLOCKS`).
    #[inline(always)]
    fn rebalance(&mut self) {
        if self.compact {
            if self.num_blocks() > self.compact_limit {
                self.leave_compact();
            }
        } else if self.num_blocks() < self.compact_limit / 4 {
            self.enter_compact();
        }
    }

    #[cold]
    #[inline(never)]
    fn leave_compact(&mut self) {
        self.free_blocks = self.free_len();
        self.fill_list();
        self.fill_buckets();
        // Unused while bucketed; `free.narrow` marks a compact list only.
        self.free.reset::<u64>();
        self.free.narrow = false;
        self.compact = false;
    }

    #[cold]
    #[inline(never)]
    fn enter_compact(&mut self) {
        self.clear_buckets();
        self.choose_words();
        self.fill_compact();
        self.compact = true;
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
        if self.compact {
            self.free_len()
        } else {
            self.free_blocks
        }
    }

    /// What a request of `size` bytes reserves: `align(max(size, min_allocation))`.
    #[inline(always)]
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
        self.allocate_sized(size, bottom_up)
            .map(|(address, block, _)| (address, block))
    }

    /// [`FreeList::allocate_block`], with the bytes reserved
    /// ([`FreeList::alloc_size`]).
    #[inline(always)]
    pub(crate) fn allocate_sized(
        &mut self,
        size: u64,
        bottom_up: bool,
    ) -> Option<(u64, BlockRef, u64)> {
        let alloc = self.alloc_size(size);
        if alloc > self.size {
            return None;
        }
        let placed = if self.compact {
            self.allocate_compact(alloc, bottom_up)?
        } else {
            self.allocate_bucketed(alloc, bottom_up)?
        };
        self.rebalance();
        Some((placed.0, placed.1, alloc))
    }

    /// Bucketed first fit (kept out of the compact path's inlined code).
    #[inline(never)]
    fn allocate_bucketed(&mut self, alloc: u64, bottom_up: bool) -> Option<(u64, BlockRef)> {
        let i = self.bucketed_fit(alloc, bottom_up)?;
        let blk = self.blocks[i as usize];
        let offset = if bottom_up { 0 } else { blk.size - alloc };
        Some(self.carve_bucketed(i, alloc, offset))
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
        let placed = if self.compact {
            let k = self.compact_free_at_or_before(address)?;
            let offset = self.compact_offset_in(k, address, alloc)?;
            self.note_grid(address);
            self.carve_compact(k, alloc, offset)
        } else {
            let found = self.bucketed_block_for(address);
            if found == NIL {
                return None;
            }
            let blk = self.blocks[found as usize];
            if blk.allocated || address < blk.addr || address + alloc > blk.addr + blk.size {
                return None;
            }
            self.note_grid(address);
            self.carve_bucketed(found, alloc, address - blk.addr)
        };
        self.rebalance();
        Some(placed)
    }

    /// A block boundary at `address` may lie off the alignment grid.
    fn note_grid(&mut self, address: u64) {
        if !(address - self.base).is_multiple_of(self.alignment) {
            self.off_grid = true;
        }
    }

    /// The allocated block starting at `address`.
    #[inline]
    fn find_allocated(&self, address: u64) -> Option<u32> {
        if address < self.base || address >= self.end() {
            return None;
        }
        if self.compact {
            self.compact_find_allocated(address)
        } else {
            self.bucketed_find_allocated(address)
        }
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

    /// [`FreeList::free_block`] of a bucketed list or one in `u64` words
    /// (kept out of the compact path's inlined code).
    #[inline(never)]
    fn free_block_bucketed(&mut self, i: u32) {
        self.free_block(i);
    }

    /// Frees allocated block `i`, merging it with free neighbours; returns its size.
    #[inline]
    fn free_block(&mut self, i: u32) -> u64 {
        self.num_allocated -= 1;
        let size = self.blocks[i as usize].size;
        self.allocated_bytes -= size;
        let b = &mut self.blocks[i as usize];
        b.allocated = false;
        b.generation = b.generation.wrapping_add(1);
        if self.compact {
            self.free_compact(i);
        } else {
            self.free_blocks += 1;
            self.free_bucketed(i);
        }
        self.rebalance();
        size
    }

    /// Frees everything (tt-metal's `deallocate_all` / `clear`).
    /// Costs O(blocks), not O(buckets): only the buckets where a block
    /// starts hold anything to reset.
    pub fn deallocate_all(&mut self) {
        if !self.compact {
            self.clear_buckets();
        }
        self.init();
    }
}
