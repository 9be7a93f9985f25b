//! How a [`FreeArray`]'s slots are laid out: pairs of lines, a line of
//! addresses then a line of the same slots' sizes, and the words of a
//! slot found from its index.

use super::{FreeArray, FreeBlock, WIDE, WINDOW};
use crate::alloc::free_list::words::Word;

/// The columns' storage: 64 B lines, so that a window of a column is in
/// one cache line (`u32` words: half of one).
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub(super) struct Line([u64; 8]);

/// Slots of `W` words per line: the slots of a pair of lines.
pub(super) const fn per_line<W>() -> usize {
    size_of::<Line>() / size_of::<W>()
}

// The windows of a list that has them are in the first pair of lines.
const _: () = assert!(WINDOW <= per_line::<u64>() && WIDE <= per_line::<u32>());

/// Where slot `k`'s address is, in words of `W` from the first line (its
/// size is a line further).
#[inline(always)]
pub(super) const fn addr_word<W>(k: usize) -> usize {
    // `k / p * 2 * p + k % p`, as `p` (a power of two) divides the first
    // term: a mask and an add.
    let p = per_line::<W>();
    k + (k & !(p - 1))
}

/// Moves the `WINDOW` words at `from` to `to` (they may overlap): a fixed
/// move, pads and all.
///
/// # Safety
/// Both windows are in one allocation, writable.
#[inline(always)]
pub(super) unsafe fn move_window<W: Word>(base: *mut W, from: usize, to: usize) {
    // SAFETY: both windows are in the allocation (the caller's contract);
    // the read is complete before the write, so an overlap is no matter.
    unsafe {
        let moved = base.add(from).cast::<[W; WINDOW]>().read();
        base.add(to).cast::<[W; WINDOW]>().write(moved);
    }
}

/// Makes a pair of lines pads.
fn pads<W: Word>(pair: &mut [Line]) {
    let p = per_line::<W>();
    // SAFETY: `W` is `u32` or `u64` (no padding, any bits valid), its size
    // divides a line's and its alignment is at most a line's: two lines
    // are `2 * p` words.
    let words = unsafe { std::slice::from_raw_parts_mut(pair.as_mut_ptr().cast::<W>(), 2 * p) };
    words[..p].fill(W::PAD_ADDR);
    words[p..].fill(W::ZERO);
}

impl FreeArray {
    /// How many slots there are.
    #[inline(always)]
    pub(super) fn slot_count<W: Word>(&self) -> usize {
        self.lines.len() / 2 * per_line::<W>()
    }

    /// The first line's words (the addresses of the first pair).
    #[inline(always)]
    pub(super) fn words<W: Word>(&self) -> *const W {
        self.lines.as_ptr().cast()
    }

    #[inline(always)]
    pub(super) fn words_mut<W: Word>(&mut self) -> *mut W {
        self.lines.as_mut_ptr().cast()
    }

    /// One more pair of lines of pads.
    #[cold]
    #[inline(never)]
    pub(super) fn add_line<W: Word>(&mut self) {
        self.lines.extend([Line([0; 8]); 2]);
        let n = self.lines.len();
        pads::<W>(&mut self.lines[n - 2..]);
    }

    /// Makes every slot a pad.
    pub(super) fn fill_pads<W: Word>(&mut self) {
        for pair in self.lines.chunks_exact_mut(2) {
            pads::<W>(pair);
        }
    }

    /// The block (or pad) whose address is word `i` ([`addr_word`]).
    ///
    /// # Safety
    /// `i` is a slot's address word.
    #[inline(always)]
    pub(super) unsafe fn pair_at<W: Word>(&self, i: usize) -> FreeBlock<W> {
        // SAFETY: the caller's contract: its size is a line further
        // (`addr_word`), in the lines, which are `W` words (`pads`).
        unsafe {
            let p = self.words::<W>().add(i);
            FreeBlock {
                addr: *p,
                size: *p.add(per_line::<W>()),
            }
        }
    }

    /// Writes the block (or pad) whose address is word `i`.
    ///
    /// # Safety
    /// As for [`FreeArray::pair_at`].
    #[inline(always)]
    pub(super) unsafe fn write_pair<W: Word>(&mut self, i: usize, addr: W, size: W) {
        // SAFETY: as in `pair_at`.
        unsafe {
            let p = self.words_mut::<W>().add(i);
            p.write(addr);
            p.add(per_line::<W>()).write(size);
        }
    }

    /// Slot `k`'s address.
    ///
    /// # Safety
    /// `k` is a slot (below [`FreeArray::slot_count`]).
    #[inline(always)]
    pub(super) unsafe fn addr_at<W: Word>(&self, k: usize) -> W {
        // SAFETY: slot `k` exists (the caller's contract): its address is
        // in the lines (`addr_word`), which are `W` words (`pads`).
        unsafe { *self.words::<W>().add(addr_word::<W>(k)) }
    }

    /// Slot `k`'s size.
    ///
    /// # Safety
    /// As for [`FreeArray::addr_at`].
    #[inline(always)]
    pub(super) unsafe fn size_at<W: Word>(&self, k: usize) -> W {
        // SAFETY: as in `addr_at`: the size is a line after the address.
        unsafe { *self.words::<W>().add(addr_word::<W>(k) + per_line::<W>()) }
    }

    /// Writes slot `k` (a block or a pad).
    ///
    /// # Safety
    /// `k` is a slot (below [`FreeArray::slot_count`]).
    #[inline(always)]
    pub(super) unsafe fn write_slot<W: Word>(&mut self, k: usize, addr: W, size: W) {
        debug_assert!(k < self.slot_count::<W>());
        // SAFETY: as in `addr_at`, and `size_at`.
        unsafe {
            let p = self.words_mut::<W>().add(addr_word::<W>(k));
            p.write(addr);
            p.add(per_line::<W>()).write(size);
        }
    }

    /// The first [`WINDOW`] addresses (`SIZES`: sizes), when they are
    /// of every free block.
    #[inline(always)]
    pub(super) fn window<W: Word, const SIZES: bool>(&self) -> Option<&[W; WINDOW]> {
        if self.len > WINDOW {
            return None;
        }
        // SAFETY: there are at least `WIDE` slots (the invariant): a pair
        // of lines, whose first `WINDOW` slots' addresses and sizes are
        // each `WINDOW` words in a row (`addr_word`, `per_line`).
        Some(unsafe {
            &*self
                .words::<W>()
                .add(usize::from(SIZES) * per_line::<W>())
                .cast()
        })
    }

    /// The first [`WIDE`] addresses (`SIZES`: sizes) of an array longer
    /// than [`WINDOW`], when they are of every free block and its words
    /// have a wide view ([`Word::HAS_WIDE`]).
    #[inline(always)]
    pub(super) fn wide<W: Word, const SIZES: bool>(&self) -> Option<&[W; WIDE]> {
        debug_assert!(self.len > WINDOW);
        if !W::HAS_WIDE || self.len > WIDE || per_line::<W>() < WIDE {
            return None;
        }
        // SAFETY: as in `window`: the first pair of lines holds `WIDE`
        // slots (tested), their addresses and sizes each in a row.
        Some(unsafe {
            &*self
                .words::<W>()
                .add(usize::from(SIZES) * per_line::<W>())
                .cast()
        })
    }

    /// Slot `k` (a block or a pad).
    ///
    /// # Safety
    /// `k` is a slot (below [`FreeArray::slot_count`]).
    #[inline(always)]
    pub(super) unsafe fn slot_any<W: Word>(&self, k: usize) -> FreeBlock<W> {
        // SAFETY: the caller's contract.
        unsafe {
            FreeBlock {
                addr: self.addr_at(k),
                size: self.size_at(k),
            }
        }
    }

    /// [`FreeArray::rank`] of a longer array: the standard library's
    /// `partition_point` halving, written out (it was not inlined, and its
    /// call cost as much as the search), with no data-dependent branch.
    /// In line too: a replay's free finds one array in ten longer than
    /// [`WINDOW`], and the call cost ~15 of its ~55 instructions.
    #[inline(always)]
    pub(super) fn rank_by_halving<W: Word>(&self, addr: W) -> usize {
        let mut size = self.len;
        if size == 0 {
            return 0;
        }
        let mut base = 0;
        // Invariant: `base + size <= len` and `size >= 1`.
        while size > 1 {
            let half = size / 2;
            let mid = base + half;
            // SAFETY: `mid = base + half < base + size <= len`.
            let below = unsafe { self.addr_at::<W>(mid) } < addr;
            base = std::hint::select_unpredictable(below, mid, base);
            size -= half;
        }
        // SAFETY: `base < base + size <= len`.
        base + usize::from(unsafe { self.addr_at::<W>(base) } < addr)
    }
}
