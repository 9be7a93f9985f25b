//! What a compact list's free array stores a block's address and size in
//! ([`Word`]): `u64` (any list), or `u32` (a list whose range ends below
//! `i32::MAX` bytes: every list of the Wormhole presets, DRAM banks of
//! 1 GiB included).
//!
//! Why `u32`: a window of [`WINDOW`] addresses (or sizes) is then 32 B,
//! two vectors, and a wide one a line; and SSE2 (baseline x86-64)
//! compares four 32-bit words at once, where it has no 64-bit compare:
//! the rank and the first fit of a window are two loads, two compares and
//! a mask each, not a chain of eight compares and conditional moves. Bytes,
//! not allocation units: a conversion is then a move, and a boundary off
//! the alignment grid needs no other array.

use super::free_array::{WIDE, WINDOW};
use super::FreeList;
use std::fmt::Debug;
use std::ops::{Add, AddAssign, BitOr, BitXor, Sub, SubAssign};

/// Runs `$body` with `$W` the free array's word type: `u32` when the
/// list's range ends below `i32::MAX` (`FreeArray::narrow`), else `u64`.
/// Either way the same generic code.
macro_rules! with_words {
    ($s:expr, $W:ident => $body:expr) => {
        if $s.free.narrow {
            type $W = u32;
            $body
        } else {
            type $W = u64;
            $body
        }
    };
}

impl FreeList {
    /// Empties the free array for a compact list's words: `u32` when the
    /// range ends below `i32::MAX`, else `u64`.
    pub(super) fn choose_words(&mut self) {
        self.free.narrow = self.fits_u32;
        with_words!(self, W => self.free.reset::<W>());
    }

    /// The whole range is one free block (the array is empty).
    pub(super) fn free_whole_range(&mut self) {
        let (base, size) = (self.base, self.size);
        with_words!(self, W => self.free.push::<W>(W::of_addr(base), W::of_size(size)));
    }
}

/// A free array's word: `u64` or `u32` (below `i32::MAX`: SSE2 compares
/// signed words; `FreeList::new` keeps `u32` words only for a range
/// ending below it).
pub(super) trait Word:
    'static
    + Copy
    + Ord
    + Debug
    + Add<Output = Self>
    + Sub<Output = Self>
    + BitXor<Output = Self>
    + BitOr<Output = Self>
    + AddAssign
    + SubAssign
{
    /// A pad's address: above every block's and every rank's probe.
    const PAD_ADDR: Self;
    /// A freed span may end at a pad's address: a `u64` range may end at
    /// `u64::MAX`, a `u32` one ends below `i32::MAX` (`FreeList::new`
    /// keeps `u32` words only then), the pad's. Only where it may must a
    /// free tell a pad from a block starting at the span's end.
    const PAD_MAY_BE_AN_END: bool;
    const ZERO: Self;
    fn from_bool(b: bool) -> Self;
    /// The word of a block's address.
    fn of_addr(addr: u64) -> Self;
    /// The word of a block's size.
    fn of_size(size: u64) -> Self;
    /// The word of a request (at least one byte). For `u32`, at most the
    /// range's size: the caller has checked it (a larger one fits nowhere).
    fn of_request(size: u64) -> Self;
    fn to_addr(self) -> u64;
    fn to_size(self) -> u64;
    /// The probe whose rank is the count of blocks starting below byte
    /// `addr` (any address, inside the range or not).
    fn probe(addr: u64) -> Self;
    /// How many of the window's blocks (`addrs`: their addresses) start
    /// below `probe`.
    #[inline(always)]
    fn window_rank(addrs: &[Self; WINDOW], probe: Self) -> usize {
        rank_portable(addrs, probe)
    }
    /// The first (bottom-up) or last slot of the window (`sizes`: its
    /// blocks' sizes) holding at least
    /// `alloc` (at least 1); [`WINDOW`] or more when none does (a plain
    /// index, not an `Option`: the caller's one test is against the length).
    #[inline(always)]
    fn window_fit(sizes: &[Self; WINDOW], alloc: Self, bottom_up: bool) -> usize {
        fit_portable(sizes, alloc, bottom_up)
    }
    /// Are arrays of up to [`WIDE`] blocks looked at as a wide window
    /// ([`Word::wide_rank`], [`Word::wide_fit`]: straight-line code)
    /// rather than by a binary search and a scan (loops whose exits
    /// mispredict)? Only where the words fill a line with a window.
    const HAS_WIDE: bool = false;
    /// [`Word::window_rank`] over [`WIDE`] slots.
    #[inline(always)]
    fn wide_rank(addrs: &[Self; WIDE], probe: Self) -> usize {
        rank_portable(addrs, probe)
    }
    /// [`Word::window_fit`] over [`WIDE`] slots ([`WIDE`] or more when
    /// none holds `alloc`).
    #[inline(always)]
    fn wide_fit(sizes: &[Self; WIDE], alloc: Self, bottom_up: bool) -> usize {
        fit_portable(sizes, alloc, bottom_up)
    }
}

/// [`Word::window_rank`] by a compare and an add per slot (pads never
/// count): straight-line code, no branch on the data.
#[inline(always)]
pub(super) fn rank_portable<W: Word, const N: usize>(addrs: &[W; N], probe: W) -> usize {
    addrs.iter().map(|&a| usize::from(a < probe)).sum()
}

/// [`Word::window_fit`] by a conditional move per slot, walking towards
/// the end that wins (pads, of no size, never fit).
#[inline(always)]
pub(super) fn fit_portable<W: Word, const N: usize>(
    sizes: &[W; N],
    alloc: W,
    bottom_up: bool,
) -> usize {
    let mut at = N;
    if bottom_up {
        for k in (0..N).rev() {
            at = std::hint::select_unpredictable(sizes[k] >= alloc, k, at);
        }
    } else {
        for (k, &s) in sizes.iter().enumerate() {
            at = std::hint::select_unpredictable(s >= alloc, k, at);
        }
    }
    at
}

impl Word for u64 {
    const PAD_ADDR: u64 = u64::MAX;
    const PAD_MAY_BE_AN_END: bool = true;
    const ZERO: u64 = 0;
    #[inline(always)]
    fn from_bool(b: bool) -> u64 {
        u64::from(b)
    }
    #[inline(always)]
    fn of_addr(addr: u64) -> u64 {
        addr
    }
    #[inline(always)]
    fn of_size(size: u64) -> u64 {
        size
    }
    #[inline(always)]
    fn of_request(size: u64) -> u64 {
        size
    }
    #[inline(always)]
    fn to_addr(self) -> u64 {
        self
    }
    #[inline(always)]
    fn to_size(self) -> u64 {
        self
    }
    #[inline(always)]
    fn probe(addr: u64) -> u64 {
        addr
    }
}

impl Word for u32 {
    /// `i32::MAX`, not `u32::MAX`: SSE2 compares signed words, and every
    /// address and size is below `i32::MAX`.
    const PAD_ADDR: u32 = i32::MAX as u32;
    const PAD_MAY_BE_AN_END: bool = false;
    const ZERO: u32 = 0;
    #[inline(always)]
    fn from_bool(b: bool) -> u32 {
        u32::from(b)
    }
    #[inline(always)]
    fn of_addr(addr: u64) -> u32 {
        debug_assert!(addr < i32::MAX as u64);
        addr as u32
    }
    #[inline(always)]
    fn of_size(size: u64) -> u32 {
        debug_assert!(size < i32::MAX as u64);
        size as u32
    }
    #[inline(always)]
    fn of_request(size: u64) -> u32 {
        debug_assert!(size < i32::MAX as u64);
        size as u32
    }
    #[inline(always)]
    fn to_addr(self) -> u64 {
        u64::from(self)
    }
    #[inline(always)]
    fn to_size(self) -> u64 {
        u64::from(self)
    }
    /// Clamped to `i32::MAX`: above every block, not above a pad.
    #[inline(always)]
    fn probe(addr: u64) -> u32 {
        addr.min(i32::MAX as u64) as u32
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn window_rank(addrs: &[u32; WINDOW], probe: u32) -> usize {
        debug_assert!(probe <= i32::MAX as u32);
        // The addresses are sorted and pads never count: the slots below
        // `probe` are a prefix, and the rank its length.
        let below = sse2::below(addrs, probe);
        ((!below).trailing_zeros() / 2) as usize
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn window_fit(sizes: &[u32; WINDOW], alloc: u32, bottom_up: bool) -> usize {
        debug_assert!(alloc >= 1 && alloc <= i32::MAX as u32);
        let fits = sse2::at_least(sizes, alloc);
        if bottom_up {
            // The lowest set bit's slot; `WINDOW` when none.
            ((fits | 1 << (2 * WINDOW)).trailing_zeros() / 2) as usize
        } else {
            // The highest set bit, one place up, less one: `usize::MAX`
            // when none (the log of a word never zero needs no test),
            // then its slot (still past the window when none).
            ((fits << 1 | 1).ilog2() as usize).wrapping_sub(1) / 2
        }
    }
    #[cfg(target_arch = "x86_64")]
    const HAS_WIDE: bool = true;
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn wide_rank(addrs: &[u32; WIDE], probe: u32) -> usize {
        debug_assert!(probe <= i32::MAX as u32);
        let (lo, hi) = halves(addrs);
        // Two bits per slot, the second window's above the first's: a
        // prefix again, of up to 32 bits.
        let below = sse2::below(lo, probe) | sse2::below(hi, probe) << (2 * WINDOW);
        ((!below).trailing_zeros() / 2) as usize
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn wide_fit(sizes: &[u32; WIDE], alloc: u32, bottom_up: bool) -> usize {
        debug_assert!(alloc >= 1 && alloc <= i32::MAX as u32);
        let (lo, hi) = halves(sizes);
        // In 64 bits: a sentinel above the 32 slot bits.
        let fits = u64::from(sse2::at_least(lo, alloc) | sse2::at_least(hi, alloc) << (2 * WINDOW));
        // As in `window_fit`, over twice the slots.
        if bottom_up {
            ((fits | 1 << (2 * WIDE)).trailing_zeros() / 2) as usize
        } else {
            ((fits << 1 | 1).ilog2() as usize).wrapping_sub(1) / 2
        }
    }
}

/// The two windows of a wide one.
#[inline(always)]
fn halves<W>(w: &[W; WIDE]) -> (&[W; WINDOW], &[W; WINDOW]) {
    let (lo, hi) = w.split_at(WINDOW);
    // Infallible: `WIDE` is two windows.
    (lo.try_into().unwrap(), hi.try_into().unwrap())
}

/// The window's compares, four slots to a vector. SSE2 is part of the
/// x86-64 baseline: no feature test.
#[cfg(target_arch = "x86_64")]
mod sse2 {
    use super::WINDOW;
    use std::arch::x86_64::*;

    /// A window of one column (addresses or sizes), four slots to a vector.
    #[inline(always)]
    fn load(w: &[u32; WINDOW]) -> [__m128i; 2] {
        let p = w.as_ptr().cast::<__m128i>();
        // SAFETY: the window is 32 B (8 `u32`), read as two unaligned 16 B
        // vectors; SSE2 is baseline on x86-64.
        unsafe { [_mm_loadu_si128(p), _mm_loadu_si128(p.add(1))] }
    }

    /// Eight lanes of all-ones or zero, as two bits per slot (slot `k`:
    /// bits `2k` and `2k + 1`): one pack and a byte mask, where a bit per
    /// slot took a second pack (and a zero register).
    #[inline(always)]
    fn mask(lo: __m128i, hi: __m128i) -> u32 {
        // SAFETY: SSE2 is baseline on x86-64.
        unsafe { _mm_movemask_epi8(_mm_packs_epi32(lo, hi)) as u32 }
    }

    /// Bits `2k`, `2k + 1`: address `k` of the window is below `probe`.
    /// Signed compares: every word is at most `i32::MAX`.
    #[inline(always)]
    pub(super) fn below(addrs: &[u32; WINDOW], probe: u32) -> u32 {
        let [a0, a1] = load(addrs);
        // SAFETY: SSE2 is baseline on x86-64.
        unsafe {
            let x = _mm_set1_epi32(probe as i32);
            mask(_mm_cmpgt_epi32(x, a0), _mm_cmpgt_epi32(x, a1))
        }
    }

    /// Bits `2k`, `2k + 1`: size `k` of the window is at least `alloc`
    /// (at least 1) bytes.
    #[inline(always)]
    pub(super) fn at_least(sizes: &[u32; WINDOW], alloc: u32) -> u32 {
        let [s0, s1] = load(sizes);
        // SAFETY: SSE2 is baseline on x86-64.
        unsafe {
            let x = _mm_set1_epi32(alloc as i32 - 1);
            mask(_mm_cmpgt_epi32(s0, x), _mm_cmpgt_epi32(s1, x))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A window's two columns as the free array keeps them: sorted
    /// addresses of blocks that never touch, and their sizes; then pads.
    fn window<const N: usize>(blocks: &[(u32, u32)]) -> ([u32; N], [u32; N]) {
        let (mut a, mut s) = ([u32::PAD_ADDR; N], [0; N]);
        let mut at = 0u32;
        for (k, &(gap, size)) in blocks.iter().take(N).enumerate() {
            at += gap;
            (a[k], s[k]) = (at, size);
            at += size + 1;
        }
        (a, s)
    }

    proptest! {
        /// The SSE2 rank and fits equal the portable ones, on windows of
        /// every fill and words up to `i32::MAX`.
        #[test]
        fn the_vector_window_matches_the_portable_one(
            blocks in prop::collection::vec((0u32..1 << 27, 1u32..1 << 27), 0..=WINDOW),
            probe in prop_oneof![0u32..1 << 31, Just(i32::MAX as u32), Just(0)],
            alloc in prop_oneof![1u32..1 << 27, Just(1), Just(i32::MAX as u32)],
        ) {
            let (a, sz) = window::<WINDOW>(&blocks);
            prop_assert_eq!(u32::window_rank(&a, probe), rank_portable(&a, probe));
            for k in 0..WINDOW {
                prop_assert_eq!(u32::window_rank(&a, a[k]), rank_portable(&a, a[k]));
                let s = sz[k].max(1);
                for bottom_up in [true, false] {
                    prop_assert_eq!(u32::window_fit(&sz, s, bottom_up).min(WINDOW), fit_portable(&sz, s, bottom_up));
                }
            }
            for bottom_up in [true, false] {
                prop_assert_eq!(u32::window_fit(&sz, alloc, bottom_up).min(WINDOW), fit_portable(&sz, alloc, bottom_up));
            }
        }

        /// The same over the wide window (two lines): blocks in either
        /// or both, up to the last slot; words up to near `i32::MAX`.
        #[test]
        fn the_vector_wide_window_matches_the_portable_one(
            blocks in prop::collection::vec((0u32..1 << 25, 1u32..1 << 25), 0..=WIDE),
            probe in prop_oneof![0u32..1 << 31, Just(i32::MAX as u32), Just(0)],
            alloc in prop_oneof![1u32..1 << 25, Just(1), Just(i32::MAX as u32)],
        ) {
            let (a, sz) = window::<WIDE>(&blocks);
            prop_assert_eq!(u32::wide_rank(&a, probe), rank_portable(&a, probe));
            for k in 0..WIDE {
                prop_assert_eq!(u32::wide_rank(&a, a[k]), rank_portable(&a, a[k]));
                let past = (a[k] + 1).min(i32::MAX as u32);
                prop_assert_eq!(u32::wide_rank(&a, past), rank_portable(&a, past));
                let s = sz[k].max(1);
                for bottom_up in [true, false] {
                    prop_assert_eq!(u32::wide_fit(&sz, s, bottom_up).min(WIDE), fit_portable(&sz, s, bottom_up));
                }
            }
            for bottom_up in [true, false] {
                prop_assert_eq!(u32::wide_fit(&sz, alloc, bottom_up).min(WIDE), fit_portable(&sz, alloc, bottom_up));
            }
        }

        /// A probe counts the blocks starting below any byte address,
        /// in the range or past it.
        #[test]
        fn a_probe_counts_blocks_below_any_address(
            addrs in prop::collection::vec(0u32..i32::MAX as u32, 1..8),
            addr in prop_oneof![0u64..1 << 20, 0u64..1 << 44, Just(u64::MAX)],
        ) {
            let probe = u32::probe(addr);
            let plain = addrs.iter().filter(|&&a| a.to_addr() < addr).count();
            prop_assert_eq!(addrs.iter().filter(|&&a| a < probe).count(), plain);
        }
    }
}
