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
//!
//! Its words are `u64` or, for a range below 2^31 B, `u32`: `words.rs`.

use super::words::Word;

/// Arrays up to this long are looked at as a window of this many slots
/// (ranked by a count, fitted by conditional moves or vector compares:
/// `words.rs`); longer ones as a wide window ([`WIDE`]) or by a binary
/// search and a scan.
pub(super) const WINDOW: usize = 8;

/// Arrays longer than a window and up to this long, in words with a wide
/// view ([`Word::HAS_WIDE`]: `u32`), are looked at as two windows (two
/// lines), not searched: in the 2M synthetic replay one fit and one free
/// in ten found an array of 9 to 15 blocks, and the binary search and
/// the scan's exit mispredicted ~108k times (cachegrind).
pub(super) const WIDE: usize = 2 * WINDOW;

/// One free block of a compact list, in words of `W` (`words.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub(super) struct FreeBlock<W> {
    pub(super) addr: W,
    pub(super) size: W,
}

impl<W: Word> FreeBlock<W> {
    /// What fills the slots past the free blocks: it starts above every
    /// address (a rank never counts it) and holds nothing (no request
    /// fits it: a fit asks for at least one byte).
    const PAD: FreeBlock<W> = FreeBlock {
        addr: W::PAD_ADDR,
        size: W::ZERO,
    };
}

/// The slots' storage: 64 B lines, so that a window of 8-byte slots is
/// exactly one cache line.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Line([u64; 8]);

/// The free blocks of a compact list, in address order, never touching
/// (free neighbours merge). One array of entries (not one per field): a
/// few free blocks are one or two cache lines, an insert or removal is one
/// move. Its words are one [`Word`] type at a time (`narrow`: `u32`),
/// which every method names (`W`); what holds it keeps to that one.
#[derive(Clone, Debug)]
pub(super) struct FreeArray {
    /// The slots: the free blocks (`..len`), then pads; always at least
    /// [`WIDE`] slots (a window's fixed moves reach `WINDOW` slots past
    /// any of its entries) and at least one pad (an insert's room).
    lines: Vec<Line>,
    len: usize,
    /// A compact list in `u32` words (the common, in-line case; else
    /// `u64` words, or a bucketed list). Kept here, by the array's length,
    /// because every operation reads both.
    pub(super) narrow: bool,
}

impl FreeArray {
    /// An empty array of `W` words.
    pub(super) fn new<W: Word>() -> FreeArray {
        let mut a = FreeArray {
            lines: Vec::new(),
            len: 0,
            narrow: false,
        };
        a.reset::<W>();
        a
    }

    /// Empties the array for words of `W` (whatever it held: every slot
    /// becomes a `W` pad).
    pub(super) fn reset<W: Word>(&mut self) {
        self.len = 0;
        while self.lines.len() * per_line::<W>() < WIDE {
            self.lines.push(Line([0; 8]));
        }
        self.slots_mut::<W>().fill(FreeBlock::PAD);
    }
}

/// Slots of `W` words per line.
const fn per_line<W>() -> usize {
    size_of::<Line>() / size_of::<FreeBlock<W>>()
}

impl FreeArray {
    #[inline(always)]
    fn slots<W: Word>(&self) -> &[FreeBlock<W>] {
        // SAFETY: `FreeBlock<W>` is two `u32` or two `u64` (`repr(C)`, no
        // padding, any bits valid), its size divides a line's and its
        // alignment is at most a line's: the lines are that many slots.
        unsafe {
            std::slice::from_raw_parts(
                self.lines.as_ptr().cast(),
                self.lines.len() * per_line::<W>(),
            )
        }
    }

    #[inline(always)]
    fn slots_mut<W: Word>(&mut self) -> &mut [FreeBlock<W>] {
        // SAFETY: as in `slots`.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.lines.as_mut_ptr().cast(),
                self.lines.len() * per_line::<W>(),
            )
        }
    }

    /// One more line of pads.
    #[cold]
    #[inline(never)]
    fn add_line<W: Word>(&mut self) {
        self.lines.push(Line([0; 8]));
        let n = self.slots::<W>().len();
        self.slots_mut::<W>()[n - per_line::<W>()..].fill(FreeBlock::PAD);
    }

    #[inline(always)]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The free blocks, in address order.
    #[inline(always)]
    pub(super) fn blocks<W: Word>(&self) -> &[FreeBlock<W>] {
        // SAFETY: `len < slots.len()` (the struct's invariant).
        unsafe { self.slots::<W>().get_unchecked(..self.len) }
    }

    #[inline(always)]
    pub(super) fn blocks_mut<W: Word>(&mut self) -> &mut [FreeBlock<W>] {
        let len = self.len;
        // SAFETY: as in `blocks`.
        unsafe { self.slots_mut::<W>().get_unchecked_mut(..len) }
    }

    /// The first slot: the lowest free block, or a pad when there is none.
    #[inline(always)]
    pub(super) fn first_slot<W: Word>(&self) -> FreeBlock<W> {
        // SAFETY: there are at least `WIDE` slots (the invariant).
        unsafe { *self.slots::<W>().get_unchecked(0) }
    }

    /// The first [`WINDOW`] slots, when they hold every free block.
    #[inline(always)]
    fn window<W: Word>(&self) -> Option<&[FreeBlock<W>; WINDOW]> {
        if self.len > WINDOW {
            return None;
        }
        // SAFETY: there are at least `WIDE` slots (the invariant).
        Some(unsafe { &*self.lines.as_ptr().cast::<[FreeBlock<W>; WINDOW]>() })
    }

    /// The first [`WIDE`] slots of an array longer than [`WINDOW`], when
    /// they hold every free block and its words have a wide view
    /// ([`Word::HAS_WIDE`]).
    #[inline(always)]
    fn wide<W: Word>(&self) -> Option<&[FreeBlock<W>; WIDE]> {
        debug_assert!(self.len > WINDOW);
        if !W::HAS_WIDE || self.len > WIDE {
            return None;
        }
        // SAFETY: there are at least `WIDE` slots (the invariant).
        Some(unsafe { &*self.lines.as_ptr().cast::<[FreeBlock<W>; WIDE]>() })
    }

    pub(super) fn clear<W: Word>(&mut self) {
        let len = self.len;
        self.slots_mut::<W>()[..len].fill(FreeBlock::PAD);
        self.len = 0;
    }

    /// Appends a block above every other.
    pub(super) fn push<W: Word>(&mut self, addr: W, size: W) {
        let len = self.len;
        self.slots_mut::<W>()[len] = FreeBlock { addr, size };
        self.grow::<W>();
    }

    /// One more block is in the slots: keeps a pad after it.
    #[inline(always)]
    fn grow<W: Word>(&mut self) {
        self.len += 1;
        if self.len == self.lines.len() * per_line::<W>() {
            self.add_line::<W>();
        }
    }

    /// The first (bottom-up) or last free block of at least `alloc`
    /// (at least 1), or an index at or past `len` when none holds it. Over
    /// the window: see [`Word::window_fit`]; a longer array: the wide
    /// window's ([`Word::wide_fit`]), else a scan that stops at the fit.
    #[inline(always)]
    pub(super) fn fit<W: Word>(&self, alloc: W, bottom_up: bool) -> usize {
        let Some(w) = self.window::<W>() else {
            if let Some(w) = self.wide::<W>() {
                return W::wide_fit(w, alloc, bottom_up);
            }
            return self.fit_scan::<W>(alloc, bottom_up).unwrap_or(usize::MAX);
        };
        // Every request is of at least one byte (`FreeList::alloc_size`
        // rounds up to the alignment; a replay's reservations are whole
        // pages): a pad (0 B) never fits.
        debug_assert!(alloc > W::ZERO);
        W::window_fit(w, alloc, bottom_up)
    }

    /// [`FreeArray::fit`] of an array longer than the window.
    #[inline(never)]
    fn fit_scan<W: Word>(&self, alloc: W, bottom_up: bool) -> Option<usize> {
        let free = self.blocks::<W>();
        if bottom_up {
            free.iter().position(|f| f.size >= alloc)
        } else {
            free.iter().rposition(|f| f.size >= alloc)
        }
    }

    /// How many free blocks start below `addr` (where one starting at
    /// `addr` goes): over the window [`Word::window_rank`] (pads never
    /// count), else over the wide one ([`Word::wide_rank`]), else a binary
    /// search.
    #[inline(always)]
    pub(super) fn rank<W: Word>(&self, addr: W) -> usize {
        if let Some(w) = self.window::<W>() {
            return W::window_rank(w, addr);
        }
        if let Some(w) = self.wide::<W>() {
            return W::wide_rank(w, addr);
        }
        rank_by_halving(self.blocks::<W>(), addr)
    }

    /// Puts a block at `k`, the entries from `k` on moving up one. In a
    /// window (`u32` words: one line) a move of a fixed [`WINDOW`] slots,
    /// pads and all: a loop of as many steps as there are entries past
    /// `k` mispredicted its exit (with `remove`'s, ~180k times in the 2M
    /// synthetic replay, cachegrind). Else a chain of swaps, not
    /// `Vec::insert`: a replay's arrays are a few entries, and its
    /// out-of-line call and `memmove` cost more than the moves.
    #[inline(always)]
    pub(super) fn insert<W: Word>(&mut self, k: usize, addr: W, size: W) {
        debug_assert!(k <= self.len);
        let len = self.len;
        if W::HAS_WIDE && len < WINDOW {
            // SAFETY: `k <= len < WINDOW`, and there are at least `WIDE`
            // slots (the invariant): slots `k..=k + WINDOW` exist.
            unsafe {
                let p = self.slots_mut::<W>().as_mut_ptr().add(k);
                let moved = p.cast::<[FreeBlock<W>; WINDOW]>().read();
                p.add(1).cast::<[FreeBlock<W>; WINDOW]>().write(moved);
                p.write(FreeBlock { addr, size });
            }
            self.grow::<W>();
            return;
        }
        let mut carry = FreeBlock { addr, size };
        // Up to the first pad, which the last swap takes out.
        // SAFETY: `k <= len < slots.len()` (the invariant).
        for f in unsafe { self.slots_mut::<W>().get_unchecked_mut(k..=len) } {
            std::mem::swap(&mut carry, f);
        }
        self.grow::<W>();
    }

    /// Takes out the entry at `k` (which must exist), the later ones
    /// moving down one (a fixed move in a window, else a chain of swaps,
    /// as in [`FreeArray::insert`]).
    #[inline(always)]
    pub(super) fn remove<W: Word>(&mut self, k: usize) {
        debug_assert!(k < self.len);
        let len = self.len;
        if k >= len {
            return;
        }
        if W::HAS_WIDE && len <= WINDOW {
            // SAFETY: `k < len <= WINDOW`, and there are at least `WIDE`
            // slots (the invariant): slots `k..=k + WINDOW` exist. Slot
            // `k + WINDOW` is at or past `len`: a pad comes down last.
            unsafe {
                let p = self.slots_mut::<W>().as_mut_ptr().add(k);
                let moved = p.add(1).cast::<[FreeBlock<W>; WINDOW]>().read();
                p.cast::<[FreeBlock<W>; WINDOW]>().write(moved);
            }
            self.len -= 1;
            return;
        }
        let mut carry = FreeBlock::<W>::PAD;
        // SAFETY: `k < len < slots.len()`.
        for f in unsafe { self.slots_mut::<W>().get_unchecked_mut(k..len) }
            .iter_mut()
            .rev()
        {
            std::mem::swap(&mut carry, f);
        }
        self.len -= 1;
    }

    /// The largest free block, the lowest address winning ties.
    pub(super) fn largest<W: Word>(&self) -> Option<FreeBlock<W>> {
        let mut best: Option<FreeBlock<W>> = None;
        for &f in self.blocks::<W>() {
            if best.is_none_or(|b| f.size > b.size) {
                best = Some(f);
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
    pub(super) fn free_span<W: Word>(&mut self, addr: W, size: W) {
        let end = addr + size;
        let k = self.rank::<W>(addr);
        let len = self.len;
        debug_assert!(k <= len);
        let slots = self.slots::<W>();
        // SAFETY: `k <= len < slots.len()` (`rank` counts free blocks; the
        // invariant). With no block below (`k == 0`), slot 0 is a block
        // starting above `addr` or a pad (above `addr`): neither ends at
        // `addr`, so the test needs no `k > 0`.
        let below = unsafe { *slots.get_unchecked(k.saturating_sub(1)) };
        // SAFETY: as above.
        let above = unsafe { *slots.get_unchecked(k) };
        // Zero when the neighbour touches the span. No overflow: a real
        // block ends inside the range, a pad has no size. A pad starts at
        // `W::PAD_ADDR`, where a `u64` list's `end` may be (its range may
        // end there): hence the `k < len` for those (a compare, a flag
        // and an or per free the `u32` lists skip).
        debug_assert!(W::PAD_MAY_BE_AN_END || end != W::PAD_ADDR);
        let off_below = (below.addr + below.size) ^ addr;
        let off_above = (above.addr ^ end) | W::from_bool(W::PAD_MAY_BE_AN_END & (k >= len));
        if W::HAS_WIDE && len < WINDOW {
            let joins = (off_below == W::ZERO, off_above == W::ZERO);
            self.join_in_window::<W>(k, FreeBlock { addr, size }, below, above, joins);
            return;
        }
        // One test each (`min`, `|`): as `||`/`&&` of two compares, the
        // compiler split them into two data-driven branches.
        if off_below.min(off_above) != W::ZERO {
            self.insert::<W>(k, addr, size);
            return;
        }
        let j = k - usize::from(off_below == W::ZERO);
        // SAFETY: `j` is `k - 1` (a block below touches, so `k > 0`) or
        // `k` (the block above touches, so `k < len`).
        let f = unsafe { self.slots_mut::<W>().get_unchecked_mut(j) };
        f.addr = f.addr.min(addr);
        f.size += size;
        if (off_below | off_above) == W::ZERO {
            f.size += above.size;
            self.remove::<W>(k);
        }
    }

    /// [`FreeArray::free_span`] in a window (`len < WINDOW`), its four
    /// cases (`joins`: the span touches the block below, above) as one
    /// move and one write, no branch: the block that takes the span in
    /// goes at `w` (the one below if it touches, else `k`), and the slots
    /// from `k` on (from `k + 1` when the one above joins) move to just
    /// after it, up one for an insert, down one when both join. Branches
    /// on "neither" and "both" mispredicted ~218k times per 570k frees in
    /// the 2M synthetic replay (cachegrind): which neighbours touch is data.
    #[inline(always)]
    fn join_in_window<W: Word>(
        &mut self,
        k: usize,
        span: FreeBlock<W>,
        below: FreeBlock<W>,
        above: FreeBlock<W>,
        (joins_below, joins_above): (bool, bool),
    ) {
        debug_assert!(W::HAS_WIDE && self.len < WINDOW && k <= self.len);
        let pick = std::hint::select_unpredictable;
        let w = k - usize::from(joins_below);
        let from = k + usize::from(joins_above);
        let taken = FreeBlock {
            addr: pick(joins_below, below.addr, span.addr),
            size: span.size
                + pick(joins_below, below.size, W::ZERO)
                + pick(joins_above, above.size, W::ZERO),
        };
        // SAFETY: `k <= len < WINDOW`, and `joins_below` only with a block
        // below (`k > 0`: see `free_span`, as for its `j`), so
        // `w + 1 <= len + 1 <= WINDOW` and `from <= k + 1 <= WINDOW`: both
        // windows end within the first `WIDE` (`2 * WINDOW`) slots, which
        // exist (the invariant). `joins_above` only with a block above
        // (`k < len`), so slots read past `len` are pads; the one left
        // past the moved window is at or past `WINDOW`, a pad too.
        unsafe {
            let p = self.slots_mut::<W>().as_mut_ptr();
            let moved = p.add(from).cast::<[FreeBlock<W>; WINDOW]>().read();
            p.add(w + 1).cast::<[FreeBlock<W>; WINDOW]>().write(moved);
            p.add(w).write(taken);
        }
        self.len = self.len + 1 - usize::from(joins_below) - usize::from(joins_above);
    }
}

/// [`FreeArray::rank`] of a longer array: the standard library's
/// `partition_point` halving, written out (it was not inlined, and its
/// call cost as much as the search), with no data-dependent branch.
/// In line too: a replay's free finds one array in ten longer than
/// [`WINDOW`], and the call cost ~15 of its ~55 instructions.
#[inline(always)]
fn rank_by_halving<W: Word>(free: &[FreeBlock<W>], addr: W) -> usize {
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
    fn reference_rank<W: Word>(v: &[FreeBlock<W>], addr: W) -> usize {
        v.iter().filter(|f| f.addr < addr).count()
    }

    /// Blocks freed and carved at random (`ops`) keep the array equal to
    /// a plain vector merged by hand, and its rank and first fits (both
    /// directions, window or scan) equal plain scans. Over 40 units of
    /// `unit` words each, from word `base`.
    fn matches_a_plain_vector<W: Word>(
        ops: &[(u64, u64, bool, u64)],
        word: impl Fn(u64) -> W,
        base: u64,
        unit: u64,
    ) -> Result<(), TestCaseError> {
        let at_word = |x: u64| word(base + x);
        // `taken[u]`: unit `u` is allocated.
        let mut taken = [true; 40];
        let mut a = FreeArray::new::<W>();
        for &(u, len, bottom_up, want) in ops {
            let u = u as usize;
            let end = (u + len as usize).min(40);
            if taken[u..end].iter().all(|&t| t) {
                // Free the run (it is allocated): the array merges it.
                a.free_span(at_word(u as u64 * unit), word((end - u) as u64 * unit));
                taken[u..end].fill(false);
            } else {
                // Carve `want` units first fit, as the compact list does.
                let alloc = word(want * unit);
                let plain: Vec<FreeBlock<W>> = a.blocks::<W>().to_vec();
                let expect = if bottom_up {
                    plain.iter().position(|f| f.size >= alloc)
                } else {
                    plain.iter().rposition(|f| f.size >= alloc)
                };
                let got = a.fit(alloc, bottom_up);
                prop_assert_eq!((got < a.len()).then_some(got), expect);
                if let Some(k) = expect {
                    let f = plain[k];
                    let at = if bottom_up {
                        f.addr
                    } else {
                        f.addr + f.size - alloc
                    };
                    let fk = &mut a.blocks_mut::<W>()[k];
                    fk.size -= alloc;
                    if bottom_up {
                        fk.addr += alloc;
                    }
                    if fk.size == W::ZERO {
                        a.remove::<W>(k);
                    }
                    let first = (0..40).find(|&x| at_word(x * unit) == at).unwrap() as usize;
                    taken[first..first + want as usize].fill(true);
                }
            }
            // The array is the free runs of `taken`, in order.
            let mut runs = Vec::new();
            let mut x = 0;
            while x < 40 {
                if taken[x] {
                    x += 1;
                    continue;
                }
                let s = x;
                while x < 40 && !taken[x] {
                    x += 1;
                }
                runs.push(FreeBlock {
                    addr: at_word(s as u64 * unit),
                    size: word((x - s) as u64 * unit),
                });
            }
            prop_assert_eq!(a.blocks::<W>(), &runs[..]);
            let slots = a.slots::<W>();
            prop_assert!(slots.len() > a.len && slots.len() >= WIDE);
            prop_assert!(slots[a.len..].iter().all(|&f| f == FreeBlock::PAD));
            prop_assert_eq!(a.lines.as_ptr() as usize % 64, 0);
            for probe in [
                0,
                1,
                unit - 1,
                unit,
                unit + 1,
                20 * unit,
                40 * unit - 1,
                40 * unit,
            ] {
                prop_assert_eq!(
                    a.rank(at_word(probe)),
                    reference_rank(&runs, at_word(probe))
                );
            }
            prop_assert_eq!(a.rank(W::PAD_ADDR), runs.len());
        }
        Ok(())
    }

    proptest! {
        /// In `u64` and `u32` words (its SSE2 window), units of 16 B and
        /// of 2^25 B (words near `i32::MAX`).
        #[test]
        fn the_padded_array_matches_a_plain_vector(
            ops in prop::collection::vec((0u64..40, 1u64..6, any::<bool>(), 1u64..12), 1..200),
        ) {
            matches_a_plain_vector::<u64>(&ops, |x| x, 0, 16)?;
            // A range ending at `u64::MAX`, a pad's address: the top
            // block's end is where a pad starts, and they must not merge.
            matches_a_plain_vector::<u64>(&ops, |x| x, u64::MAX - 40 * 16, 16)?;
            matches_a_plain_vector::<u32>(&ops, |x| x as u32, 0, 1)?;
            // Units far apart: words up to near `i32::MAX`.
            matches_a_plain_vector::<u32>(&ops, |x| x as u32, 0, 1 << 25)?;
        }
    }
}
