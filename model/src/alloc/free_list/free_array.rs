//! The free blocks of a compact list ([`FreeArray`]): sorted by address,
//! their addresses and sizes in two columns (`free_array/slots.rs`),
//! padded so that a short one is looked at as a window of [`WINDOW`]
//! slots whatever its length.
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
use slots::{addr_word, move_window, per_line, Line};

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

/// One free block of a compact list, in words of `W` (`words.rs`): what
/// the array's two columns hold at one slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FreeBlock<W> {
    pub(super) addr: W,
    pub(super) size: W,
}

/// The free blocks of a compact list, in address order, never touching
/// (free neighbours merge). Two columns, slot for slot: the addresses and
/// the sizes. A rank reads addresses only and a fit sizes only, each a
/// window of whole vectors with no shuffle to pull its words out of
/// (address, size) pairs; an insert or removal moves a window of each.
/// Its words are one [`Word`] type at a time (`narrow`: `u32`), which
/// every method names (`W`); what holds it keeps to that one.
#[derive(Clone, Debug)]
pub(super) struct FreeArray {
    /// The slots, in pairs of lines: a line of addresses, then a line of
    /// the same slots' sizes. The first pair holds the first
    /// [`per_line`] slots (`u32`: 16, `u64`: 8), so a window's sizes are
    /// a fixed line past its addresses. Addresses: the free blocks'
    /// (`..len`), then pads (`W::PAD_ADDR`: above every address, a rank
    /// never counts them); a pad's size is none (no request fits it: a
    /// fit asks for at least one byte). Always at least [`WIDE`] slots (a
    /// window's fixed moves reach `WINDOW` slots past any of its entries)
    /// and at least one pad (an insert's room). One allocation: the array
    /// is in every list of a device, and a second vector made the lists
    /// larger (+447k D1 misses in the 2M synthetic replay, cachegrind).
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
        while self.slot_count::<W>() < WIDE {
            self.add_line::<W>();
        }
        self.clear::<W>();
    }
}

impl FreeArray {
    #[inline(always)]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The free blocks, in address order.
    pub(super) fn blocks<W: Word>(&self) -> impl Iterator<Item = FreeBlock<W>> + '_ {
        // SAFETY: `k < len`.
        (0..self.len).map(|k| unsafe { self.slot(k) })
    }

    /// Takes `alloc` (at least 1) from the first (`BOTTOM_UP`) or last
    /// free block that holds it: from its bottom (bottom-up) or its top,
    /// what is left of it staying in its place (none: it goes). Returns
    /// the address taken, `None` when no block holds `alloc`.
    #[inline(always)]
    pub(super) fn carve_fit<W: Word, const BOTTOM_UP: bool>(&mut self, alloc: W) -> Option<W> {
        let k = self.fit(alloc, BOTTOM_UP);
        if k >= self.len {
            return None;
        }
        let i = addr_word::<W>(k);
        // SAFETY: `k < len`, tested above: a block's slot.
        let f = unsafe { self.pair_at::<W>(i) };
        let left = f.size - alloc;
        let (at, rest_at) = if BOTTOM_UP {
            (f.addr, f.addr + alloc)
        } else {
            (f.addr + left, f.addr)
        };
        // SAFETY: as above.
        unsafe { self.write_pair(i, rest_at, left) };
        if left == W::ZERO {
            self.remove::<W>(k);
        }
        Some(at)
    }

    /// The block (or pad) at slot `k`.
    ///
    /// # Safety
    /// `k` is at most `len` (a block or the first pad).
    #[inline(always)]
    pub(super) unsafe fn slot<W: Word>(&self, k: usize) -> FreeBlock<W> {
        debug_assert!(k <= self.len);
        // SAFETY: `k <= len < slots` (the caller's contract, the invariant).
        unsafe {
            FreeBlock {
                addr: self.addr_at(k),
                size: self.size_at(k),
            }
        }
    }

    /// Writes the address of the free block at `k`.
    ///
    /// # Safety
    /// `k` is below `len`.
    #[inline(always)]
    pub(super) unsafe fn set_addr<W: Word>(&mut self, k: usize, addr: W) {
        debug_assert!(k < self.len);
        // SAFETY: `k < len < slots` (the caller's contract, the invariant).
        unsafe { self.words_mut::<W>().add(addr_word::<W>(k)).write(addr) };
    }

    /// Writes the size of the free block at `k`.
    ///
    /// # Safety
    /// `k` is below `len`.
    #[inline(always)]
    pub(super) unsafe fn set_size<W: Word>(&mut self, k: usize, size: W) {
        debug_assert!(k < self.len);
        // SAFETY: as in `set_addr`; the size is a line after the address.
        unsafe {
            let at = addr_word::<W>(k) + per_line::<W>();
            self.words_mut::<W>().add(at).write(size);
        }
    }

    /// The `k`-th free block (checked: `k` below `len`).
    pub(super) fn get<W: Word>(&self, k: usize) -> FreeBlock<W> {
        assert!(k < self.len, "free block {k} of {}", self.len);
        // SAFETY: `k < len`, checked.
        unsafe { self.slot(k) }
    }

    /// The first slot: the lowest free block, or a pad when there is none.
    #[inline(always)]
    pub(super) fn first_slot<W: Word>(&self) -> FreeBlock<W> {
        // SAFETY: `0 <= len`.
        unsafe { self.slot(0) }
    }

    /// Empties the array: every slot becomes a pad (of `W` words).
    pub(super) fn clear<W: Word>(&mut self) {
        self.fill_pads::<W>();
        self.len = 0;
    }

    /// Appends a block above every other.
    pub(super) fn push<W: Word>(&mut self, addr: W, size: W) {
        // SAFETY: `len < slots` (the invariant).
        unsafe { self.write_slot(self.len, addr, size) };
        self.grow::<W>();
    }

    /// One more block is in the slots: keeps a pad after it.
    #[inline(always)]
    fn grow<W: Word>(&mut self) {
        self.len += 1;
        if self.len == self.slot_count::<W>() {
            self.add_line::<W>();
        }
    }

    /// The first (bottom-up) or last free block of at least `alloc`
    /// (at least 1), or an index at or past `len` when none holds it. Over
    /// the window of sizes: see [`Word::window_fit`]; a longer array: the
    /// wide window's ([`Word::wide_fit`]), else a scan that stops at the fit.
    #[inline(always)]
    pub(super) fn fit<W: Word>(&self, alloc: W, bottom_up: bool) -> usize {
        let Some(w) = self.window::<W, true>() else {
            if let Some(w) = self.wide::<W, true>() {
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
        // SAFETY: `k < len`.
        let fits = |&k: &usize| unsafe { self.size_at::<W>(k) } >= alloc;
        if bottom_up {
            (0..self.len).find(fits)
        } else {
            (0..self.len).rev().find(fits)
        }
    }

    /// How many free blocks start below `addr` (where one starting at
    /// `addr` goes): over the window of addresses [`Word::window_rank`]
    /// (pads never count), else over the wide one ([`Word::wide_rank`]),
    /// else a binary search.
    #[inline(always)]
    pub(super) fn rank<W: Word>(&self, addr: W) -> usize {
        if let Some(w) = self.window::<W, false>() {
            return W::window_rank(w, addr);
        }
        if let Some(w) = self.wide::<W, false>() {
            return W::wide_rank(w, addr);
        }
        self.rank_by_halving::<W>(addr)
    }

    /// Puts a block at `k`, the entries from `k` on moving up one. In a
    /// window (`u32` words) a move of a fixed [`WINDOW`] slots per column,
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
            debug_assert!(per_line::<W>() >= WIDE);
            // SAFETY: `k <= len < WINDOW`, and the first pair of lines
            // holds `WIDE` slots (a list with `HAS_WIDE` words, `u32`:
            // `per_line`; the invariant): slots `k..=k + WINDOW` are
            // there, their addresses and sizes each in a row.
            unsafe {
                let p = self.words_mut::<W>();
                move_window(p, k, k + 1);
                move_window(p, per_line::<W>() + k, per_line::<W>() + k + 1);
                self.write_pair(k, addr, size);
            }
            self.grow::<W>();
            return;
        }
        // Up to the first pad, which the last step takes out.
        let mut carry = FreeBlock { addr, size };
        for i in k..=len {
            // SAFETY: `i <= len < slots` (the invariant).
            unsafe {
                let f = self.slot_any::<W>(i);
                self.write_slot(i, carry.addr, carry.size);
                carry = f;
            }
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
            debug_assert!(per_line::<W>() >= WIDE);
            // SAFETY: `k < len <= WINDOW`, and the first pair of lines
            // holds `WIDE` slots (as in `insert`): slots `k..=k + WINDOW`
            // are there. Slot `k + WINDOW` is at or past `len`: a pad
            // comes down last.
            unsafe {
                let p = self.words_mut::<W>();
                move_window(p, k + 1, k);
                move_window(p, per_line::<W>() + k + 1, per_line::<W>() + k);
            }
            self.len -= 1;
            return;
        }
        for i in k..len {
            // SAFETY: `i < len < slots`: slots `i` and `i + 1` are there.
            unsafe {
                let f = self.slot_any::<W>(i + 1);
                self.write_slot(i, f.addr, f.size);
            }
        }
        self.len -= 1;
    }

    /// The largest free block, the lowest address winning ties.
    pub(super) fn largest<W: Word>(&self) -> Option<FreeBlock<W>> {
        let mut best: Option<FreeBlock<W>> = None;
        for f in self.blocks::<W>() {
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
        // Zero when the neighbour touches the span. No overflow: a real
        // block ends inside the range, a pad has no size. A pad starts at
        // `W::PAD_ADDR`, where a `u64` list's `end` may be (its range may
        // end there): hence the `k < len` for those (a compare, a flag
        // and an or per free the `u32` lists skip).
        debug_assert!(W::PAD_MAY_BE_AN_END || end != W::PAD_ADDR);
        let offsets = |below: FreeBlock<W>, above: FreeBlock<W>| {
            let off_below = (below.addr + below.size) ^ addr;
            let off_above = (above.addr ^ end) | W::from_bool(W::PAD_MAY_BE_AN_END & (k >= len));
            (off_below, off_above)
        };
        // With no block below (`k == 0`), slot 0 is a block starting above
        // `addr` or a pad (above `addr`): neither ends at `addr`, so the
        // test needs no `k > 0`.
        let below_k = k.saturating_sub(1);
        if W::HAS_WIDE && len < WINDOW {
            // SAFETY: `k <= len` (`rank` counts free blocks) `< WINDOW`: in
            // the first pair of lines, where slot `k`'s address is word `k`
            // (`addr_word`).
            let (below, above) = unsafe { (self.pair_at::<W>(below_k), self.pair_at::<W>(k)) };
            let (off_below, off_above) = offsets(below, above);
            let joins = (off_below == W::ZERO, off_above == W::ZERO);
            self.join_in_window::<W>(k, FreeBlock { addr, size }, below, above, joins);
            return;
        }
        // SAFETY: `k <= len`, as above.
        let (below, above) = unsafe { (self.slot::<W>(below_k), self.slot::<W>(k)) };
        let (off_below, off_above) = offsets(below, above);
        // One test each (`min`, `|`): as `||`/`&&` of two compares, the
        // compiler split them into two data-driven branches.
        if off_below.min(off_above) != W::ZERO {
            self.insert::<W>(k, addr, size);
            return;
        }
        let j = k - usize::from(off_below == W::ZERO);
        let both = (off_below | off_above) == W::ZERO;
        // SAFETY: `j` is `k - 1` (a block below touches, so `k > 0`) or
        // `k` (the block above touches, so `k < len`): below `len`.
        unsafe {
            let f = self.slot::<W>(j);
            self.set_addr(j, f.addr.min(addr));
            self.set_size(j, f.size + size + if both { above.size } else { W::ZERO });
        }
        if both {
            self.remove::<W>(k);
        }
    }

    /// [`FreeArray::free_span`] in a window (`len < WINDOW`), its four
    /// cases (`joins`: the span touches the block below, above) as one
    /// move per column and one write, no branch: the block that takes the
    /// span in goes at `w` (the one below if it touches, else `k`), and
    /// the slots from `k` on (from `k + 1` when the one above joins) move
    /// to just after it, up one for an insert, down one when both join.
    /// Branches on "neither" and "both" mispredicted ~218k times per 570k
    /// frees in the 2M synthetic replay (cachegrind): which neighbours
    /// touch is data.
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
        let taken_addr = pick(joins_below, below.addr, span.addr);
        let taken_size = span.size
            + pick(joins_below, below.size, W::ZERO)
            + pick(joins_above, above.size, W::ZERO);
        // SAFETY: `k <= len < WINDOW`, and `joins_below` only with a block
        // below (`k > 0`: see `free_span`), so `w + 1 <= len + 1 <= WINDOW`
        // and `from <= k + 1 <= WINDOW`: both windows end within the first
        // `WIDE` (`2 * WINDOW`) slots, the first pair of lines' (`u32`
        // words, `per_line`), their addresses and sizes each in a row; so
        // does slot `w`. `joins_above` only with a block above (`k < len`),
        // so slots read past `len` are pads; the one left past the moved
        // window is at or past `WINDOW`, a pad too.
        unsafe {
            debug_assert!(per_line::<W>() >= WIDE);
            let p = self.words_mut::<W>();
            move_window(p, from, w + 1);
            move_window(p, per_line::<W>() + from, per_line::<W>() + w + 1);
            self.write_pair(w, taken_addr, taken_size);
        }
        self.len = self.len + 1 - usize::from(joins_below) - usize::from(joins_above);
    }
}

mod slots;
#[cfg(test)]
mod tests;
