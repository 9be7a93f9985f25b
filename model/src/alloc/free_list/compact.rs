//! A free list with few blocks: its free blocks in one array sorted by
//! address, its allocated blocks in the block table, unlinked. The first
//! fit scans the free sizes — free blocks only, never an allocated one —
//! from the bottom or the top; a freed block finds its place in the array
//! by counting the free blocks below it, and its free neighbours are the
//! entries on either side when they touch it. So an operation touches the
//! array (a cache line or two: a replay's lists hold a few free blocks) and
//! one block entry, never a neighbour's. What needs every block in address
//! order (the block table, a switch to the bucketed index) sorts them.
//! The array itself, and its padding, is `free_array.rs`.

use super::free_array::{FreeArray, FreeBlock};
use super::words::Word;
use super::{Block, BlockRef, FreeList, Span, NIL};

impl FreeList {
    /// The compact list's free blocks.
    #[inline(always)]
    pub(super) fn free_len(&self) -> usize {
        self.free.len()
    }

    /// Compact first fit: allocates `alloc` bytes (a multiple of the
    /// alignment) in the first or last free block that holds them: from
    /// its bottom (bottom-up) or its top, so what is left of it is one
    /// free block, in its place in the array (none on an exact fit).
    #[inline(always)]
    pub(super) fn allocate_compact(
        &mut self,
        alloc: u64,
        bottom_up: bool,
    ) -> Option<(u64, BlockRef)> {
        let at = self.carve_fit_compact(alloc, bottom_up)?;
        let i = self.new_block(at, alloc, true);
        self.num_allocated += 1;
        self.allocated_bytes += alloc;
        Some((at, BlockRef(i)))
    }

    /// The free array's part of [`FreeList::allocate_compact`]: takes
    /// `alloc` bytes from the first (or last) free block that holds them
    /// and returns their address; the caller gives them a block entry
    /// and counts them.
    #[inline(always)]
    pub(super) fn carve_fit_compact(&mut self, alloc: u64, bottom_up: bool) -> Option<u64> {
        // One branch on the direction, then a walk and a carve of that
        // direction only: the direction is the request's data (DRAM and
        // L1 requests interleave), so it is tested once, not per step.
        if !self.free.narrow {
            return self.carve_fit_bytes(alloc, bottom_up);
        }
        self.carve_fit_narrow(alloc, bottom_up)
    }

    /// [`FreeList::carve_fit_compact`] of a list in `u32` words
    /// (`free.narrow`), `alloc` at most the range's size.
    #[inline(always)]
    pub(super) fn carve_fit_narrow(&mut self, alloc: u64, bottom_up: bool) -> Option<u64> {
        debug_assert!(self.free.narrow && alloc <= self.size);
        if bottom_up {
            self.free.carve_fit_in::<u32, true>(alloc)
        } else {
            self.free.carve_fit_in::<u32, false>(alloc)
        }
    }

    /// [`FreeList::carve_fit_compact`] in `u64` words, out of line: `u32`
    /// words are the common case, and a second copy of the carve in the
    /// replay's loop cost it registers (spills) more than the call.
    #[inline(never)]
    fn carve_fit_bytes(&mut self, alloc: u64, bottom_up: bool) -> Option<u64> {
        if bottom_up {
            self.free.carve_fit_in::<u64, true>(alloc)
        } else {
            self.free.carve_fit_in::<u64, false>(alloc)
        }
    }

    /// The free block starting at or before `address` (the only one that
    /// can contain it), by its place in the array.
    pub(super) fn compact_free_at_or_before(&self, address: u64) -> Option<usize> {
        let probe = address.checked_add(1)?;
        with_words!(self, W => self.free.rank(W::probe(probe))).checked_sub(1)
    }

    /// The `k`-th free block, in bytes.
    fn compact_free_block(&self, k: usize) -> (u64, u64) {
        with_words!(self, W => self.free.bytes::<W>(k))
    }

    /// Can `[address, address + alloc)` be carved from the `k`-th free
    /// block? Then at which offset.
    pub(super) fn compact_offset_in(&self, k: usize, address: u64, alloc: u64) -> Option<u64> {
        let (addr, size) = self.compact_free_block(k);
        (address >= addr && address + alloc <= addr + size).then(|| address - addr)
    }

    /// The allocated block starting at `address`: a scan of the block
    /// table (a compact list has few blocks; frees by [`BlockRef`] need none).
    pub(super) fn compact_find_allocated(&self, address: u64) -> Option<u32> {
        self.blocks
            .iter()
            .position(|b| b.allocated && b.addr == address)
            .map(|i| i as u32)
    }

    /// The block containing `address` (in range): the free block before
    /// it if it reaches that far, else the allocated block holding it.
    pub(super) fn compact_block_at(&self, address: u64) -> Option<Span> {
        if let Some(k) = self.compact_free_at_or_before(address) {
            let (addr, size) = self.compact_free_block(k);
            if address < addr + size {
                return Some(Span {
                    address: addr,
                    size,
                    allocated: false,
                });
            }
        }
        self.blocks
            .iter()
            .find(|b| b.allocated && b.addr <= address && address < b.addr + b.size)
            .map(|b| Span {
                address: b.addr,
                size: b.size,
                allocated: true,
            })
    }

    /// The lowest allocated address: the range's base unless a free block
    /// starts there, else the end of that free block (free blocks never
    /// touch, so an allocated block follows it).
    pub(super) fn compact_lowest_allocated(&self) -> Option<u64> {
        if self.num_allocated == 0 {
            return None;
        }
        // A conditional move, not a branch: whether a free block sits at
        // the base is data (every static circular buffer asks, ~30k
        // mispredicts in the 2M synthetic replay). With no free block the
        // first slot is a pad, at `u64::MAX`: not the base of a range
        // holding an allocation.
        Some(with_words!(self, W => self.free.lowest_allocated::<W>(self.base)))
    }

    /// Every block in address order.
    pub(super) fn compact_spans(&self) -> Vec<Span> {
        let mut spans: Vec<Span> = self
            .blocks
            .iter()
            .filter(|b| b.allocated)
            .map(|b| Span {
                address: b.addr,
                size: b.size,
                allocated: true,
            })
            .chain(
                self.compact_free_blocks()
                    .into_iter()
                    .map(|(addr, size)| Span {
                        address: addr,
                        size,
                        allocated: false,
                    }),
            )
            .collect();
        spans.sort_unstable_by_key(|s| s.address);
        spans
    }

    /// Carves `alloc` bytes at `offset` out of the `k`-th free block: the
    /// allocation gets a block entry, what is left below and above stays
    /// in the array.
    #[inline(always)]
    pub(super) fn carve_compact(&mut self, k: usize, alloc: u64, offset: u64) -> (u64, BlockRef) {
        let at = with_words!(self, W => self.free.carve_at::<W>(k, alloc, offset));
        let i = self.new_block(at, alloc, true);
        self.num_allocated += 1;
        self.allocated_bytes += alloc;
        (at, BlockRef(i))
    }

    /// Frees allocated block `i` (already marked free and uncounted): its
    /// entry goes, and its bytes join the free blocks right below and
    /// above it when they touch it.
    #[inline]
    pub(super) fn free_compact(&mut self, i: u32) {
        let Block { addr, size, .. } = self.blocks[i as usize];
        self.release_block(i);
        self.free_compact_span(addr, size);
    }

    /// Puts `[addr, addr + size)` (allocated until now, its block entry
    /// already released) in the free array, joined with the free blocks
    /// right below and above it when they touch it
    /// ([`FreeArray::free_span`](super::free_array::FreeArray::free_span)).
    #[inline(always)]
    pub(super) fn free_compact_span(&mut self, addr: u64, size: u64) {
        if !self.free.narrow {
            return self.free_span_bytes(addr, size);
        }
        self.free_narrow_span(addr, size);
    }

    /// [`FreeList::free_compact_span`] of a list in `u32` words.
    #[inline(always)]
    pub(super) fn free_narrow_span(&mut self, addr: u64, size: u64) {
        debug_assert!(self.free.narrow);
        self.free
            .free_span::<u32>(Word::of_addr(addr), Word::of_size(size));
    }

    /// [`FreeList::free_compact_span`] in `u64` words, out of line (as
    /// [`FreeList::carve_fit_compact`]'s).
    #[inline(never)]
    fn free_span_bytes(&mut self, addr: u64, size: u64) {
        self.free.free_span::<u64>(addr, size);
    }

    /// Leaves the linked list for the array (bucketed -> compact): free
    /// blocks move to the array and give up their entries.
    pub(super) fn fill_compact(&mut self) {
        self.clear_free_array();
        let mut i = self.head;
        while i != NIL {
            let b = self.blocks[i as usize];
            if !b.allocated {
                with_words!(self, W => self.free.push::<W>(
                    Word::of_addr(b.addr),
                    Word::of_size(b.size)
                ));
                self.release_block(i);
            }
            i = b.next;
        }
        self.head = NIL;
    }

    /// Links every block in address order (compact -> bucketed): the free
    /// blocks get entries; allocated ones keep theirs (their [`BlockRef`]s
    /// stay valid).
    pub(super) fn fill_list(&mut self) {
        let mut order: Vec<u32> = (0..self.blocks.len() as u32)
            .filter(|&i| self.blocks[i as usize].allocated)
            .collect();
        for (addr, size) in self.compact_free_blocks() {
            order.push(self.new_block(addr, size, false));
        }
        order.sort_unstable_by_key(|&i| self.blocks[i as usize].addr);
        let mut prev = NIL;
        for &i in &order {
            self.blocks[i as usize].prev = prev;
            self.blocks[i as usize].next = NIL;
            if prev != NIL {
                self.blocks[prev as usize].next = i;
            }
            prev = i;
        }
        self.head = order.first().copied().unwrap_or(NIL);
    }

    /// The blocks tile the range, free blocks never touch, and the
    /// counters and the (unused) bucket tables agree (for tests).
    pub(super) fn check_compact(&self) -> Result<(), String> {
        let mut at = self.base;
        let mut prev_free = false;
        let (mut allocated, mut n_alloc) = (0, 0);
        for s in self.compact_spans() {
            if s.address != at || s.size == 0 {
                return Err(format!(
                    "gap or empty block at {} (expected {at})",
                    s.address
                ));
            }
            if !s.allocated && prev_free {
                return Err(format!("two free blocks touch at {}", s.address));
            }
            if s.allocated {
                allocated += s.size;
                n_alloc += 1;
                if self.compact_find_allocated(s.address).is_none() {
                    return Err(format!("allocated block at {} not found", s.address));
                }
            }
            prev_free = !s.allocated;
            at = s.address + s.size;
        }
        if at != self.end() && self.size > 0 {
            return Err(format!("blocks end at {at}, range ends at {}", self.end()));
        }
        if allocated != self.allocated_bytes || n_alloc != self.num_allocated {
            return Err("allocated counters disagree".into());
        }
        self.check_buckets_empty()
    }
}

impl FreeList {
    /// The free blocks in bytes, in address order.
    pub(super) fn compact_free_blocks(&self) -> Vec<(u64, u64)> {
        with_words!(self, W => self.free.blocks::<W>().map(|f| f.bytes()).collect())
    }

    /// The largest free block in bytes, the lowest address winning ties.
    pub(super) fn compact_largest(&self) -> Option<(u64, u64)> {
        with_words!(self, W => self.free.largest::<W>().map(|f| f.bytes()))
    }

    /// Empties the free array.
    pub(super) fn clear_free_array(&mut self) {
        with_words!(self, W => self.free.clear::<W>());
    }
}

impl<W: Word> FreeBlock<W> {
    /// `(address, size)` in bytes.
    #[inline(always)]
    fn bytes(self) -> (u64, u64) {
        (self.addr.to_addr(), self.size.to_size())
    }
}

/// The compact list's operations on its free array, in the array's words.
impl FreeArray {
    /// [`FreeList::carve_fit_compact`] in one direction.
    #[inline(always)]
    fn carve_fit_in<W: Word, const BOTTOM_UP: bool>(&mut self, alloc: u64) -> Option<u64> {
        self.carve_fit::<W, BOTTOM_UP>(W::of_request(alloc))
            .map(W::to_addr)
    }

    /// The `k`-th free block in bytes.
    fn bytes<W: Word>(&self, k: usize) -> (u64, u64) {
        self.get::<W>(k).bytes()
    }

    /// [`FreeList::compact_lowest_allocated`] of a list holding an
    /// allocation.
    #[inline(always)]
    fn lowest_allocated<W: Word>(&self, base: u64) -> u64 {
        // A conditional move, not a branch: whether a free block sits at
        // the base is data. With no free block the first slot is a pad,
        // above every address: not the base.
        let f = self.first_slot::<W>();
        std::hint::select_unpredictable(
            f.addr == W::of_addr(base),
            (f.addr + f.size).to_addr(),
            base,
        )
    }

    /// [`FreeList::carve_compact`]'s part in the array: returns the address.
    #[inline(always)]
    fn carve_at<W: Word>(&mut self, k: usize, alloc: u64, offset: u64) -> u64 {
        let (addr, size) = self.bytes::<W>(k);
        let at = addr + offset;
        let rest = size - offset - alloc;
        let of_addr = |x| W::of_addr(x);
        let of_size = |x| W::of_size(x);
        // SAFETY: `bytes` checked that `k < len`; an insert or a removal
        // comes after the writes at `k`.
        unsafe {
            match (offset > 0, rest > 0) {
                (true, true) => {
                    self.set_size(k, of_size(offset));
                    self.insert(k + 1, of_addr(at + alloc), of_size(rest));
                }
                (true, false) => self.set_size(k, of_size(offset)),
                (false, true) => {
                    self.set_addr(k, of_addr(at + alloc));
                    self.set_size(k, of_size(rest));
                }
                (false, false) => self.remove::<W>(k),
            }
        }
        at
    }
}
