//! The free blocks of a compact list ([`FreeArray`]): one array sorted by
//! address, padded so that a short one is looked at as a window of
//! [`WINDOW`] slots whatever its length.
//!
//! Why the padding: a replay's arrays hold a few free blocks, and a loop
//! over "the entries there are" leaves at a different step each time: in
//! the 2M synthetic replay the rank's count and the first-fit scan
//! mispredicted their exit ~0.8 and ~0.7 times per operation (cachegrind's
//! branch simulation). Over a window of fixed width, with pads that never
//! count and never fit, both are straight-line code: compares and
//! conditional moves, no branch on the data.

/// Arrays up to this long are looked at as a window of this many slots
/// (ranked by a count, fitted by conditional moves); longer ones by a
/// binary search and a scan.
pub(super) const WINDOW: usize = 8;

/// One free block of a compact list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FreeBlock {
    pub(super) addr: u64,
    pub(super) size: u64,
}

/// What fills the slots past the free blocks: it starts above every
/// address (a rank never counts it) and holds no byte (no request fits
/// it: a fit asks for at least one byte).
const PAD: FreeBlock = FreeBlock {
    addr: u64::MAX,
    size: 0,
};

/// The free blocks of a compact list, in address order, never touching
/// (free neighbours merge). One array of entries (not one per field): a
/// few free blocks are one or two cache lines, an insert or removal is one
/// move.
#[derive(Clone, Debug)]
pub(super) struct FreeArray {
    /// The free blocks (`..len`), then pads: always at least [`WINDOW`]
    /// slots and at least one pad (an insert's room).
    slots: Vec<FreeBlock>,
    len: usize,
}

impl Default for FreeArray {
    fn default() -> FreeArray {
        FreeArray {
            slots: vec![PAD; WINDOW],
            len: 0,
        }
    }
}

impl FreeArray {
    #[inline(always)]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The free blocks, in address order.
    #[inline(always)]
    pub(super) fn blocks(&self) -> &[FreeBlock] {
        // SAFETY: `len < slots.len()` (the struct's invariant).
        unsafe { self.slots.get_unchecked(..self.len) }
    }

    #[inline(always)]
    pub(super) fn blocks_mut(&mut self) -> &mut [FreeBlock] {
        // SAFETY: as in `blocks`.
        unsafe { self.slots.get_unchecked_mut(..self.len) }
    }

    /// The first slot: the lowest free block, or a pad when there is none.
    #[inline(always)]
    pub(super) fn first_slot(&self) -> FreeBlock {
        // SAFETY: there are at least `WINDOW` slots (the invariant).
        unsafe { *self.slots.get_unchecked(0) }
    }

    /// The first [`WINDOW`] slots, when they hold every free block.
    #[inline(always)]
    fn window(&self) -> Option<&[FreeBlock; WINDOW]> {
        if self.len > WINDOW {
            return None;
        }
        // SAFETY: there are at least `WINDOW` slots (the invariant).
        Some(unsafe { &*self.slots.as_ptr().cast::<[FreeBlock; WINDOW]>() })
    }

    pub(super) fn clear(&mut self) {
        self.slots[..self.len].fill(PAD);
        self.len = 0;
    }

    /// Appends a block above every other.
    pub(super) fn push(&mut self, addr: u64, size: u64) {
        self.slots[self.len] = FreeBlock { addr, size };
        self.grow();
    }

    /// One more block is in the slots: keeps a pad after it.
    #[inline(always)]
    fn grow(&mut self) {
        self.len += 1;
        if self.len == self.slots.len() {
            self.slots.push(PAD);
        }
    }

    /// The first (bottom-up) or last free block of at least `alloc` bytes.
    /// Over the window: a conditional move per slot, walking towards the
    /// end that wins (pads never fit). A longer array: a scan that stops
    /// at the fit.
    #[inline(always)]
    pub(super) fn fit(&self, alloc: u64, bottom_up: bool) -> Option<usize> {
        let Some(w) = self.window() else {
            return self.fit_scan(alloc, bottom_up);
        };
        // Every request is of at least one byte (`FreeList::alloc_size`
        // rounds up to the alignment; a replay's reservations are whole
        // pages): a pad (0 B) never fits.
        debug_assert!(alloc >= 1);
        let mut at = WINDOW;
        if bottom_up {
            for k in (0..WINDOW).rev() {
                at = std::hint::select_unpredictable(w[k].size >= alloc, k, at);
            }
        } else {
            for (k, f) in w.iter().enumerate() {
                at = std::hint::select_unpredictable(f.size >= alloc, k, at);
            }
        }
        (at < WINDOW).then_some(at)
    }

    /// [`FreeArray::fit`] of an array longer than the window.
    #[inline(never)]
    fn fit_scan(&self, alloc: u64, bottom_up: bool) -> Option<usize> {
        let free = self.blocks();
        if bottom_up {
            free.iter().position(|f| f.size >= alloc)
        } else {
            free.iter().rposition(|f| f.size >= alloc)
        }
    }

    /// How many free blocks start below `addr` (where one starting at
    /// `addr` goes): a count over the window (a compare and an add per
    /// slot, pads never counting), a binary search over a longer array.
    #[inline(always)]
    pub(super) fn rank(&self, addr: u64) -> usize {
        if let Some(w) = self.window() {
            return w.iter().map(|f| usize::from(f.addr < addr)).sum();
        }
        rank_by_halving(self.blocks(), addr)
    }

    /// Puts a block at `k`, the entries from `k` on moving up one. A chain
    /// of swaps, not `Vec::insert`: a replay's arrays are a few entries, and
    /// its out-of-line call and `memmove` cost more than the moves.
    #[inline(always)]
    pub(super) fn insert(&mut self, k: usize, addr: u64, size: u64) {
        debug_assert!(k <= self.len);
        let mut carry = FreeBlock { addr, size };
        // Up to the first pad, which the last swap takes out.
        // SAFETY: `k <= len < slots.len()` (the invariant).
        for f in unsafe { self.slots.get_unchecked_mut(k..=self.len) } {
            std::mem::swap(&mut carry, f);
        }
        self.grow();
    }

    /// Takes out the entry at `k` (which must exist), the later ones
    /// moving down one (a chain of swaps, as in [`FreeArray::insert`]).
    #[inline(always)]
    pub(super) fn remove(&mut self, k: usize) {
        debug_assert!(k < self.len);
        if k >= self.len {
            return;
        }
        let mut carry = PAD;
        // SAFETY: `k < len < slots.len()`.
        for f in unsafe { self.slots.get_unchecked_mut(k..self.len) }
            .iter_mut()
            .rev()
        {
            std::mem::swap(&mut carry, f);
        }
        self.len -= 1;
    }

    /// The largest free block, the lowest address winning ties.
    pub(super) fn largest(&self) -> Option<(u64, u64)> {
        let mut best: Option<(u64, u64)> = None;
        for f in self.blocks() {
            if best.is_none_or(|(_, b)| f.size > b) {
                best = Some((f.addr, f.size));
            }
        }
        best
    }

    /// Puts `[addr, addr + size)` (allocated until now) among the free
    /// blocks, joined with the free blocks right below and above it when
    /// they touch it. Which neighbours touch is data (in the 2M synthetic
    /// replay: below only about half the frees, neither a fifth, above
    /// only and both the rest), so the cases share one write: the block
    /// that takes the span in is the one below if it touches, else the
    /// one above (it starts at the lower of the two addresses). What is
    /// left to branch on is "neither" (an insert) and "both" (the one
    /// above goes), each a single test of a word, not a chain of tests.
    #[inline(always)]
    pub(super) fn free_span(&mut self, addr: u64, size: u64) {
        let end = addr + size;
        let k = self.rank(addr);
        let len = self.len;
        debug_assert!(k <= len);
        // SAFETY: `k <= len < slots.len()` (`rank` counts free blocks; the
        // invariant). With no block below (`k == 0`), slot 0 is a block
        // starting above `addr` or a pad (at `u64::MAX`, above `addr`):
        // neither ends at `addr`, so the test needs no `k > 0`.
        let below = unsafe { *self.slots.get_unchecked(k.saturating_sub(1)) };
        // SAFETY: as above.
        let above = unsafe { *self.slots.get_unchecked(k) };
        // Zero when the neighbour touches the span. No overflow: a real
        // block ends inside the range, a pad has no size. A pad starts at
        // `u64::MAX`, where `end` may be (a range may end there): hence
        // the `k < len`.
        let off_below = (below.addr + below.size) ^ addr;
        let off_above = (above.addr ^ end) | u64::from(k >= len);
        // One test each (`min`, `|`): as `||`/`&&` of two compares, the
        // compiler split them into two data-driven branches.
        if off_below.min(off_above) != 0 {
            self.insert(k, addr, size);
            return;
        }
        let j = k - usize::from(off_below == 0);
        // SAFETY: `j` is `k - 1` (a block below touches, so `k > 0`) or
        // `k` (the block above touches, so `k < len`).
        let f = unsafe { self.slots.get_unchecked_mut(j) };
        f.addr = f.addr.min(addr);
        f.size += size;
        if (off_below | off_above) == 0 {
            f.size += above.size;
            self.remove(k);
        }
    }
}

/// [`FreeArray::rank`] of a longer array: the standard library's
/// `partition_point` halving, written out (it was not inlined, and its
/// call cost as much as the search), with no data-dependent branch.
/// In line too: a replay's free finds one array in ten longer than
/// [`WINDOW`], and the call cost ~15 of its ~55 instructions.
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A plain sorted vector of free blocks, the reference.
    fn reference_rank(v: &[FreeBlock], addr: u64) -> usize {
        v.iter().filter(|f| f.addr < addr).count()
    }

    proptest! {
        /// Blocks freed and carved at random keep the array equal to a
        /// plain vector merged by hand, and its rank and first fits
        /// (both directions, window or scan) equal plain scans.
        #[test]
        fn the_padded_array_matches_a_plain_vector(
            ops in prop::collection::vec((0u64..40, 1u64..6, any::<bool>(), 1u64..12), 1..200),
        ) {
            // 40 units of 16 B; `taken[u]`: unit `u` is allocated.
            let mut taken = [true; 40];
            let mut a = FreeArray::default();
            for (unit, len, bottom_up, want) in ops {
                let unit = unit as usize;
                let end = (unit + len as usize).min(40);
                if taken[unit..end].iter().all(|&t| t) {
                    // Free the run (it is allocated): the array merges it.
                    a.free_span(unit as u64 * 16, (end - unit) as u64 * 16);
                    taken[unit..end].fill(false);
                } else {
                    // Carve `want` units first fit, as the compact list does.
                    let alloc = want * 16;
                    let plain: Vec<FreeBlock> = a.blocks().to_vec();
                    let expect = if bottom_up {
                        plain.iter().position(|f| f.size >= alloc)
                    } else {
                        plain.iter().rposition(|f| f.size >= alloc)
                    };
                    prop_assert_eq!(a.fit(alloc, bottom_up), expect);
                    if let Some(k) = expect {
                        let f = plain[k];
                        let at = if bottom_up { f.addr } else { f.addr + f.size - alloc };
                        let fk = &mut a.blocks_mut()[k];
                        fk.size -= alloc;
                        if bottom_up { fk.addr += alloc; }
                        if fk.size == 0 { a.remove(k); }
                        let u = (at / 16) as usize;
                        taken[u..u + want as usize].fill(true);
                    }
                }
                // The array is the free runs of `taken`, in order.
                let mut runs = Vec::new();
                let mut u = 0;
                while u < 40 {
                    if taken[u] { u += 1; continue; }
                    let s = u;
                    while u < 40 && !taken[u] { u += 1; }
                    runs.push(FreeBlock { addr: s as u64 * 16, size: (u - s) as u64 * 16 });
                }
                prop_assert_eq!(a.blocks(), &runs[..]);
                prop_assert!(a.slots.len() > a.len && a.slots.len() >= WINDOW);
                prop_assert!(a.slots[a.len..].iter().all(|&f| f == PAD));
                for probe in [0u64, 1, 15, 16, 17, 320, 639, 640, u64::MAX] {
                    prop_assert_eq!(a.rank(probe), reference_rank(&runs, probe));
                }
            }
        }
    }
}
