//! A free list with few blocks: its free blocks in one array sorted by
//! address, its allocated blocks in the block table, unlinked. The first
//! fit scans the free sizes — free blocks only, never an allocated one —
//! from the bottom or the top; a freed block finds its place in the array
//! by counting the free blocks below it, and its free neighbours are the
//! entries on either side when they touch it. So an operation touches the
//! array (a cache line or two: a replay's lists hold a few free blocks) and
//! one block entry, never a neighbour's. What needs every block in address
//! order (the block table, a switch to the bucketed index) sorts them.

use super::{Block, BlockRef, FreeList, Span, NIL};

/// Free arrays up to this long are ranked by a count, longer ones by a
/// binary search ([`FreeArray::rank`]).
const RANK_BY_COUNT: usize = 8;

/// One free block of a compact list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FreeBlock {
    addr: u64,
    size: u64,
}

/// The free blocks of a compact list, in address order, never touching
/// (free neighbours merge). One array of entries (not one per field): a
/// few free blocks are one or two cache lines, an insert or removal is one
/// move.
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

    pub(super) fn push(&mut self, addr: u64, size: u64) {
        self.free.push(FreeBlock { addr, size });
    }

    /// The first (bottom-up) or last free block of at least `alloc` bytes:
    /// a scan that stops at the fit. (A replay's fit is mostly the first
    /// or second block looked at; bit masks over chunks of 8 took ~44
    /// instructions per allocation with their iterator and bounds checks.)
    #[inline(always)]
    fn fit(&self, alloc: u64, bottom_up: bool) -> Option<usize> {
        if bottom_up {
            self.free.iter().position(|f| f.size >= alloc)
        } else {
            // Down by index, not `rposition`: its iterator kept an index
            // and a pointer and stepped both (8 instructions a step, not 5).
            let free = &self.free[..];
            let mut k = free.len();
            while k > 0 {
                k -= 1;
                // SAFETY: `k < free.len()`.
                if unsafe { free.get_unchecked(k) }.size >= alloc {
                    return Some(k);
                }
            }
            None
        }
    }

    /// How many free blocks start below `addr` (where one starting at
    /// `addr` goes): a count over a short array (a replay's lists hold a
    /// few free blocks: a compare and an add each, no branch on the data),
    /// a binary search over a longer one.
    #[inline(always)]
    fn rank(&self, addr: u64) -> usize {
        let free = &self.free[..];
        if free.len() <= RANK_BY_COUNT {
            return free.iter().map(|f| usize::from(f.addr < addr)).sum();
        }
        Self::rank_by_halving(free, addr)
    }

    /// [`FreeArray::rank`] of a longer array: the standard library's
    /// `partition_point` halving, written out (it was not inlined, and its
    /// call cost as much as the search), with no data-dependent branch.
    /// In line too: a replay's free finds one array in ten longer than
    /// [`RANK_BY_COUNT`], and the call cost ~15 of its ~55 instructions.
    #[inline(always)]
    fn rank_by_halving(free: &[FreeBlock], addr: u64) -> usize {
        let mut size = free.len();
        if size == 0 {
            return 0;
        }
        let mut base = 0;
        // Invariant: `base + size <= free.len()` and `size >= 1`.
        while size > 1 {
            let half = size / 2;
            let mid = base + half;
            // SAFETY: `mid = base + half < base + size <= free.len()`.
            let below = unsafe { free.get_unchecked(mid) }.addr < addr;
            base = std::hint::select_unpredictable(below, mid, base);
            size -= half;
        }
        // SAFETY: `base < base + size <= free.len()`.
        base + usize::from(unsafe { free.get_unchecked(base) }.addr < addr)
    }

    /// Puts a block at `k`, the entries from `k` on moving up one. A chain
    /// of swaps, not `Vec::insert`: a replay's arrays are a few entries, and
    /// its out-of-line call and `memmove` cost more than the moves.
    #[inline(always)]
    fn insert(&mut self, k: usize, addr: u64, size: u64) {
        debug_assert!(k <= self.free.len());
        let mut carry = FreeBlock { addr, size };
        for f in &mut self.free[k..] {
            std::mem::swap(&mut carry, f);
        }
        self.free.push(carry);
    }

    /// Takes out the entry at `k` (which must exist), the later ones
    /// moving down one (a chain of swaps, as in [`FreeArray::insert`]).
    #[inline(always)]
    fn remove(&mut self, k: usize) {
        debug_assert!(k < self.free.len());
        let Some(mut carry) = self.free.pop() else {
            return;
        };
        let n = self.free.len();
        for f in self.free[k.min(n)..].iter_mut().rev() {
            std::mem::swap(&mut carry, f);
        }
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

impl FreeList {
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
        if bottom_up {
            self.carve_fit_in::<true>(alloc)
        } else {
            self.carve_fit_in::<false>(alloc)
        }
    }

    /// [`FreeList::carve_fit_compact`] in one direction.
    #[inline(always)]
    fn carve_fit_in<const BOTTOM_UP: bool>(&mut self, alloc: u64) -> Option<u64> {
        let k = self.free.fit(alloc, BOTTOM_UP)?;
        debug_assert!(k < self.free.len());
        // SAFETY: `fit` returns the index of an entry.
        let f = unsafe { self.free.free.get_unchecked_mut(k) };
        let left = f.size - alloc;
        let at = if BOTTOM_UP {
            f.addr += alloc;
            f.addr - alloc
        } else {
            f.addr + left
        };
        f.size = left;
        if left == 0 {
            self.free.remove(k);
        }
        Some(at)
    }

    /// The free block starting at or before `address` (the only one that
    /// can contain it), by its place in the array.
    pub(super) fn compact_free_at_or_before(&self, address: u64) -> Option<usize> {
        self.free.rank(address.checked_add(1)?).checked_sub(1)
    }

    /// Can `[address, address + alloc)` be carved from the `k`-th free
    /// block? Then at which offset.
    pub(super) fn compact_offset_in(&self, k: usize, address: u64, alloc: u64) -> Option<u64> {
        let f = self.free.free[k];
        (address >= f.addr && address + alloc <= f.addr + f.size).then(|| address - f.addr)
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
            let f = self.free.free[k];
            if address < f.addr + f.size {
                return Some(Span {
                    address: f.addr,
                    size: f.size,
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
        match self.free.free.first() {
            Some(f) if f.addr == self.base => Some(f.addr + f.size),
            _ => Some(self.base),
        }
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
            .chain(self.free.free.iter().map(|f| Span {
                address: f.addr,
                size: f.size,
                allocated: false,
            }))
            .collect();
        spans.sort_unstable_by_key(|s| s.address);
        spans
    }

    /// Carves `alloc` bytes at `offset` out of the `k`-th free block: the
    /// allocation gets a block entry, what is left below and above stays
    /// in the array.
    #[inline(always)]
    pub(super) fn carve_compact(&mut self, k: usize, alloc: u64, offset: u64) -> (u64, BlockRef) {
        let f = self.free.free[k];
        let at = f.addr + offset;
        let rest = f.size - offset - alloc;
        let i = self.new_block(at, alloc, true);
        self.num_allocated += 1;
        self.allocated_bytes += alloc;
        match (offset > 0, rest > 0) {
            (true, true) => {
                self.free.free[k].size = offset;
                self.free.insert(k + 1, at + alloc, rest);
            }
            (true, false) => self.free.free[k].size = offset,
            (false, true) => {
                self.free.free[k] = FreeBlock {
                    addr: at + alloc,
                    size: rest,
                }
            }
            (false, false) => self.free.remove(k),
        }
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
    /// right below and above it when they touch it.
    #[inline(always)]
    pub(super) fn free_compact_span(&mut self, addr: u64, size: u64) {
        let end = addr + size;
        let k = self.free.rank(addr);
        let free = &mut self.free.free[..];
        debug_assert!(k <= free.len());
        // The free blocks right below and above: `k - 1` and `k`, if they touch it.
        // SAFETY: `rank` counts entries of the array, so `k <= free.len()`
        // (the checked split cost a compare and a branch per free).
        let (below, above) = unsafe { free.split_at_mut_unchecked(k) };
        match (below.last_mut(), above.first_mut()) {
            (Some(p), Some(n)) if p.addr + p.size == addr => {
                if n.addr == end {
                    p.size += size + n.size;
                    self.free.remove(k);
                } else {
                    p.size += size;
                }
            }
            (Some(p), None) if p.addr + p.size == addr => p.size += size,
            (_, Some(n)) if n.addr == end => {
                n.addr = addr;
                n.size += size;
            }
            _ => self.free.insert(k, addr, size),
        }
    }

    /// Leaves the linked list for the array (bucketed -> compact): free
    /// blocks move to the array and give up their entries.
    pub(super) fn fill_compact(&mut self) {
        self.free.clear();
        let mut i = self.head;
        while i != NIL {
            let b = self.blocks[i as usize];
            if !b.allocated {
                self.free.push(b.addr, b.size);
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
        for k in 0..self.free.len() {
            let FreeBlock { addr, size } = self.free.free[k];
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
