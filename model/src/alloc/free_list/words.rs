//! What a compact list's free array stores a block's address and size in
//! ([`Word`]): `u64` (any list), or `u32` (a list whose range ends below
//! `i32::MAX` bytes: every list of the Wormhole presets, DRAM banks of
//! 1 GiB included).
//!
//! Why `u32`: a slot is then 8 B, not 16, so the window of [`WINDOW`]
//! slots is one 64 B line instead of two or three, and SSE2 (baseline
//! x86-64) compares four 32-bit words at once, where it has no 64-bit
//! compare: the rank and the first fit of a window are two compares and a
//! mask each, not a chain of eight compares and conditional moves. Bytes,
//! not allocation units: a conversion is then a move, and a boundary off
//! the alignment grid needs no other array.

use super::free_array::{FreeBlock, WIDE, WINDOW};
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
    Copy
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
    /// How many of the window's blocks start below `probe`.
    #[inline(always)]
    fn window_rank(w: &[FreeBlock<Self>; WINDOW], probe: Self) -> usize {
        rank_portable(w, probe)
    }
    /// The first (bottom-up) or last slot of the window holding at least
    /// `alloc` (at least 1); [`WINDOW`] or more when none does (a plain
    /// index, not an `Option`: the caller's one test is against the length).
    #[inline(always)]
    fn window_fit(w: &[FreeBlock<Self>; WINDOW], alloc: Self, bottom_up: bool) -> usize {
        fit_portable(w, alloc, bottom_up)
    }
    /// Are arrays of up to [`WIDE`] blocks looked at as a wide window
    /// ([`Word::wide_rank`], [`Word::wide_fit`]: straight-line code)
    /// rather than by a binary search and a scan (loops whose exits
    /// mispredict)? Only where the words fill a line with a window.
    const HAS_WIDE: bool = false;
    /// [`Word::window_rank`] over [`WIDE`] slots.
    #[inline(always)]
    fn wide_rank(w: &[FreeBlock<Self>; WIDE], probe: Self) -> usize {
        rank_portable(w, probe)
    }
    /// [`Word::window_fit`] over [`WIDE`] slots ([`WIDE`] or more when
    /// none holds `alloc`).
    #[inline(always)]
    fn wide_fit(w: &[FreeBlock<Self>; WIDE], alloc: Self, bottom_up: bool) -> usize {
        fit_portable(w, alloc, bottom_up)
    }
}

/// [`Word::window_rank`] by a compare and an add per slot (pads never
/// count): straight-line code, no branch on the data.
#[inline(always)]
pub(super) fn rank_portable<W: Word, const N: usize>(w: &[FreeBlock<W>; N], probe: W) -> usize {
    w.iter().map(|f| usize::from(f.addr < probe)).sum()
}

/// [`Word::window_fit`] by a conditional move per slot, walking towards
/// the end that wins (pads, of no size, never fit).
#[inline(always)]
pub(super) fn fit_portable<W: Word, const N: usize>(
    w: &[FreeBlock<W>; N],
    alloc: W,
    bottom_up: bool,
) -> usize {
    let mut at = N;
    if bottom_up {
        for k in (0..N).rev() {
            at = std::hint::select_unpredictable(w[k].size >= alloc, k, at);
        }
    } else {
        for (k, f) in w.iter().enumerate() {
            at = std::hint::select_unpredictable(f.size >= alloc, k, at);
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
    fn window_rank(w: &[FreeBlock<u32>; WINDOW], probe: u32) -> usize {
        debug_assert!(probe <= i32::MAX as u32);
        // The addresses are sorted and pads never count: the slots below
        // `probe` are a prefix, and the rank its length.
        let below = sse2::addrs_below(w, probe);
        ((!below).trailing_zeros() / 2) as usize
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn window_fit(w: &[FreeBlock<u32>; WINDOW], alloc: u32, bottom_up: bool) -> usize {
        debug_assert!(alloc >= 1 && alloc <= i32::MAX as u32);
        let fits = sse2::sizes_at_least(w, alloc);
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
    fn wide_rank(w: &[FreeBlock<u32>; WIDE], probe: u32) -> usize {
        debug_assert!(probe <= i32::MAX as u32);
        let (lo, hi) = halves(w);
        // Two bits per slot, the second window's above the first's: a
        // prefix again, of up to 32 bits.
        let below = sse2::addrs_below(lo, probe) | sse2::addrs_below(hi, probe) << (2 * WINDOW);
        ((!below).trailing_zeros() / 2) as usize
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn wide_fit(w: &[FreeBlock<u32>; WIDE], alloc: u32, bottom_up: bool) -> usize {
        debug_assert!(alloc >= 1 && alloc <= i32::MAX as u32);
        let (lo, hi) = halves(w);
        // In 64 bits: a sentinel above the 32 slot bits.
        let fits = u64::from(
            sse2::sizes_at_least(lo, alloc) | sse2::sizes_at_least(hi, alloc) << (2 * WINDOW),
        );
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
fn halves<W>(w: &[FreeBlock<W>; WIDE]) -> (&[FreeBlock<W>; WINDOW], &[FreeBlock<W>; WINDOW]) {
    let (lo, hi) = w.split_at(WINDOW);
    // Infallible: `WIDE` is two windows.
    (lo.try_into().unwrap(), hi.try_into().unwrap())
}

/// The window's compares, four slots to a vector. SSE2 is part of the
/// x86-64 baseline: no feature test.
#[cfg(target_arch = "x86_64")]
mod sse2 {
    use super::{FreeBlock, WINDOW};
    use std::arch::x86_64::*;

    /// The window's addresses (`addr` words) and sizes, four slots each.
    #[inline(always)]
    fn split(w: &[FreeBlock<u32>; WINDOW]) -> ([__m128i; 2], [__m128i; 2]) {
        let p = w.as_ptr().cast::<__m128i>();
        // SAFETY: the window is 64 B (8 slots of two `u32`), read as four
        // unaligned 16 B vectors; SSE2 is baseline on x86-64.
        unsafe {
            let v = [
                _mm_castsi128_ps(_mm_loadu_si128(p)),
                _mm_castsi128_ps(_mm_loadu_si128(p.add(1))),
                _mm_castsi128_ps(_mm_loadu_si128(p.add(2))),
                _mm_castsi128_ps(_mm_loadu_si128(p.add(3))),
            ];
            // Even words are addresses, odd ones sizes (`FreeBlock` is
            // `repr(C)`, `addr` first).
            let a0 = _mm_castps_si128(_mm_shuffle_ps::<0b10_00_10_00>(v[0], v[1]));
            let a1 = _mm_castps_si128(_mm_shuffle_ps::<0b10_00_10_00>(v[2], v[3]));
            let s0 = _mm_castps_si128(_mm_shuffle_ps::<0b11_01_11_01>(v[0], v[1]));
            let s1 = _mm_castps_si128(_mm_shuffle_ps::<0b11_01_11_01>(v[2], v[3]));
            ([a0, a1], [s0, s1])
        }
    }

    /// Eight lanes of all-ones or zero, as two bits per slot (slot `k`:
    /// bits `2k` and `2k + 1`): one pack and a byte mask, where a bit per
    /// slot took a second pack (and a zero register).
    #[inline(always)]
    fn mask(lo: __m128i, hi: __m128i) -> u32 {
        // SAFETY: SSE2 is baseline on x86-64.
        unsafe { _mm_movemask_epi8(_mm_packs_epi32(lo, hi)) as u32 }
    }

    /// Bits `2k`, `2k + 1`: slot `k` starts below `probe`. Signed compares: every
    /// word is at most `i32::MAX`.
    #[inline(always)]
    pub(super) fn addrs_below(w: &[FreeBlock<u32>; WINDOW], probe: u32) -> u32 {
        let ([a0, a1], _) = split(w);
        // SAFETY: SSE2 is baseline on x86-64.
        unsafe {
            let x = _mm_set1_epi32(probe as i32);
            mask(_mm_cmpgt_epi32(x, a0), _mm_cmpgt_epi32(x, a1))
        }
    }

    /// Bits `2k`, `2k + 1`: slot `k` holds at least `alloc` (at least 1)
    /// bytes.
    #[inline(always)]
    pub(super) fn sizes_at_least(w: &[FreeBlock<u32>; WINDOW], alloc: u32) -> u32 {
        let (_, [s0, s1]) = split(w);
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

    /// A window as the free array keeps one: sorted addresses that never
    /// touch, then pads.
    fn window<const N: usize>(blocks: &[(u32, u32)]) -> [FreeBlock<u32>; N] {
        let mut w = [FreeBlock {
            addr: u32::PAD_ADDR,
            size: 0,
        }; N];
        let mut at = 0u32;
        for (k, &(gap, size)) in blocks.iter().take(N).enumerate() {
            at += gap;
            w[k] = FreeBlock { addr: at, size };
            at += size + 1;
        }
        w
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
            let w = window::<WINDOW>(&blocks);
            prop_assert_eq!(u32::window_rank(&w, probe), rank_portable(&w, probe));
            for k in 0..WINDOW {
                prop_assert_eq!(u32::window_rank(&w, w[k].addr), rank_portable(&w, w[k].addr));
                let s = w[k].size.max(1);
                for bottom_up in [true, false] {
                    prop_assert_eq!(u32::window_fit(&w, s, bottom_up).min(WINDOW), fit_portable(&w, s, bottom_up));
                }
            }
            for bottom_up in [true, false] {
                prop_assert_eq!(u32::window_fit(&w, alloc, bottom_up).min(WINDOW), fit_portable(&w, alloc, bottom_up));
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
            let w = window::<WIDE>(&blocks);
            prop_assert_eq!(u32::wide_rank(&w, probe), rank_portable(&w, probe));
            for k in 0..WIDE {
                prop_assert_eq!(u32::wide_rank(&w, w[k].addr), rank_portable(&w, w[k].addr));
                let past = (w[k].addr + 1).min(i32::MAX as u32);
                prop_assert_eq!(u32::wide_rank(&w, past), rank_portable(&w, past));
                let s = w[k].size.max(1);
                for bottom_up in [true, false] {
                    prop_assert_eq!(u32::wide_fit(&w, s, bottom_up).min(WIDE), fit_portable(&w, s, bottom_up));
                }
            }
            for bottom_up in [true, false] {
                prop_assert_eq!(u32::wide_fit(&w, alloc, bottom_up).min(WIDE), fit_portable(&w, alloc, bottom_up));
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
