//! A FREE_DEV_NEAR or FREE_BY_DEV value as the reader holds it: a `u64`
//! unpacked from the column, or, where the column is a single byte plane
//! (every value below 256: nearly every block, since ordinals change by
//! a few and devices by none), the plane's byte itself. The byte planes
//! are read in place: no pass unpacks them into 8-byte values that the
//! next pass reads back (two block-long arrays of 8 bytes per free,
//! written and read, for one byte each).

/// A free's code: its value is `wide()`.
pub(crate) trait Code: Copy {
    fn wide(self) -> u64;

    /// `unzigzag(c) as u32` of codes `i..i + 8`, in 32-bit lanes.
    ///
    /// # Safety
    ///
    /// AVX2; codes `i..i + 8` exist.
    #[cfg(target_arch = "x86_64")]
    unsafe fn changes8(codes: &[Self], i: usize) -> std::arch::x86_64::__m256i;

    /// `(c - 1) as u32` of codes `i..i + 8`, in 32-bit lanes, or `None`
    /// where one of them is `FAR` (0) or has `c - 1` of 2^32 or more.
    ///
    /// # Safety
    ///
    /// AVX2; codes `i..i + 8` exist.
    #[cfg(target_arch = "x86_64")]
    unsafe fn less_one8(codes: &[Self], i: usize) -> Option<std::arch::x86_64::__m256i>;
}

impl Code for u64 {
    #[inline(always)]
    fn wide(self) -> u64 {
        self
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn changes8(codes: &[u64], i: usize) -> std::arch::x86_64::__m256i {
        use std::arch::x86_64::*;
        debug_assert!(i + 8 <= codes.len());
        // unzigzag in 64 bits (bit 32 of a code is bit 31 of its value),
        // then the low halves of each lane into the low four 32-bit lanes.
        let (zero, one64) = (_mm256_setzero_si256(), _mm256_set1_epi64x(1));
        let low_halves = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
        let unzigzag4 = |c: __m256i| {
            let sign = _mm256_sub_epi64(zero, _mm256_and_si256(c, one64));
            _mm256_permutevar8x32_epi32(
                _mm256_xor_si256(_mm256_srli_epi64::<1>(c), sign),
                low_halves,
            )
        };
        // SAFETY: codes `i..i + 8` exist (the caller's contract).
        let (c0, c1) = unsafe {
            let p = codes.as_ptr().add(i) as *const __m256i;
            (_mm256_loadu_si256(p), _mm256_loadu_si256(p.add(1)))
        };
        _mm256_blend_epi32::<0b1111_0000>(unzigzag4(c0), unzigzag4(c1))
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn less_one8(codes: &[u64], i: usize) -> Option<std::arch::x86_64::__m256i> {
        use std::arch::x86_64::*;
        debug_assert!(i + 8 <= codes.len());
        let one = _mm256_set1_epi64x(1);
        // SAFETY: codes `i..i + 8` exist (the caller's contract).
        let (lo, hi) = unsafe {
            let c = codes.as_ptr().add(i) as *const __m256i;
            (
                _mm256_sub_epi64(_mm256_loadu_si256(c), one),
                _mm256_sub_epi64(_mm256_loadu_si256(c.add(1)), one),
            )
        };
        // Each code minus 1: the low halves in order, and the high ones,
        // which are 0 unless the code is FAR (0, so all ones) or its
        // change of ordinal is 2^31 or more in size.
        let (lo_ps, hi_ps) = (_mm256_castsi256_ps(lo), _mm256_castsi256_ps(hi));
        let highs = _mm256_castps_si256(_mm256_shuffle_ps::<0b11_01_11_01>(lo_ps, hi_ps));
        if _mm256_testz_si256(highs, highs) == 0 {
            return None;
        }
        let lows = _mm256_castps_si256(_mm256_shuffle_ps::<0b10_00_10_00>(lo_ps, hi_ps));
        Some(_mm256_permute4x64_epi64::<0b11_01_10_00>(lows))
    }
}

impl Code for u8 {
    #[inline(always)]
    fn wide(self) -> u64 {
        self as u64
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn changes8(codes: &[u8], i: usize) -> std::arch::x86_64::__m256i {
        use std::arch::x86_64::*;
        // SAFETY: codes `i..i + 8` exist (the caller's contract).
        let x = unsafe { widen8(codes, i) };
        // unzigzag in 32 bits: (x >> 1) ^ -(x & 1).
        _mm256_xor_si256(
            _mm256_srli_epi32::<1>(x),
            _mm256_sub_epi32(
                _mm256_setzero_si256(),
                _mm256_and_si256(x, _mm256_set1_epi32(1)),
            ),
        )
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn less_one8(codes: &[u8], i: usize) -> Option<std::arch::x86_64::__m256i> {
        use std::arch::x86_64::*;
        // SAFETY: codes `i..i + 8` exist (the caller's contract).
        let x = unsafe { widen8(codes, i) };
        // A byte less one is below 2^31 unless it is FAR (0).
        let far = _mm256_cmpeq_epi32(x, _mm256_setzero_si256());
        if _mm256_testz_si256(far, far) == 0 {
            return None;
        }
        Some(_mm256_sub_epi32(x, _mm256_set1_epi32(1)))
    }
}

/// Bytes `i..i + 8` of `codes` in 32-bit lanes.
///
/// # Safety
///
/// AVX2; bytes `i..i + 8` exist.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn widen8(codes: &[u8], i: usize) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    debug_assert!(i + 8 <= codes.len());
    // SAFETY: the 8 bytes at `i` exist (the caller's contract); the load
    // is unaligned.
    unsafe { _mm256_cvtepu8_epi32(_mm_loadl_epi64(codes.as_ptr().add(i) as *const __m128i)) }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{picked_frees, EncodedBlock};
    use super::super::{
        count_far, count_far_bytes, decode_free_devices, decode_free_devices_bytes,
        decode_free_ids, decode_free_ids_bytes, FreeIdScratch,
    };
    use proptest::prelude::*;
    use ttalloc_model::EventTag::{BufferAlloc as A, BufferFree as F, OpEnd as E};

    fn wide(codes: &[u8]) -> Vec<u64> {
        codes.iter().map(|&c| c as u64).collect()
    }

    proptest! {
        /// Byte codes give the devices their `u64` values give: blocks
        /// of any mix, changes of either sign (zigzag bytes up to 255).
        #[test]
        fn byte_codes_give_the_same_free_devices(
            events in proptest::collection::vec((0u8..3, 0u32..12, any::<u8>()), 0..300),
        ) {
            let tags: Vec<u8> = events.iter().map(|e| [A, F, E][e.0 as usize] as u8).collect();
            let alloc_devices: Vec<u32> =
                events.iter().filter(|e| e.0 == 0).map(|e| e.1).collect();
            let codes: Vec<u8> = events.iter().filter(|e| e.0 == 1).map(|e| e.2).collect();
            let mut words = Vec::new();
            crate::decode::kind_words(&tags, &mut words);
            let (mut want, mut got) = (Vec::new(), vec![9; 5]);
            let w = decode_free_devices(&words, &alloc_devices, &wide(&codes), &mut want);
            let g = decode_free_devices_bytes(&words, &alloc_devices, &codes, &mut got);
            prop_assert_eq!(w.is_ok(), g.is_ok());
            if w.is_ok() {
                prop_assert_eq!(got, want);
            }
        }

        /// FAR counts agree, across the byte counters' chunks of 255.
        #[test]
        fn byte_codes_count_the_same_far_frees(
            codes in proptest::collection::vec(prop_oneof![1 => Just(0u8), 3 => any::<u8>()], 0..1200),
        ) {
            prop_assert_eq!(count_far_bytes(&codes), count_far(&wide(&codes)));
        }

        /// Writer-coded blocks whose codes fit a byte (devices 0–9: the
        /// lanes path for most, the tables for the others): the same ids.
        #[test]
        fn byte_codes_resolve_the_writer_s_frees(
            allocs in proptest::collection::vec((0u32..10, 0u64..40), 0..120),
            frees in proptest::collection::vec((0u32..10, 0u64..48), 0..120),
            low in any::<bool>(),
        ) {
            let dev = |d: u32| if low { d % 8 } else { d };
            let EncodedBlock { alloc_devices: ad, alloc_ids: ai, free_devices: fd, codes, far } =
                EncodedBlock::encode(&allocs, &frees, dev);
            prop_assume!(codes.iter().all(|&c| c < 256));
            let bytes: Vec<u8> = codes.iter().map(|&c| c as u8).collect();
            let (mut s, mut wide, mut out) = (FreeIdScratch::default(), Vec::new(), Vec::new());
            decode_free_ids_bytes(&ad, &ai, &fd, &bytes, &far, &mut s, &mut wide, &mut out).unwrap();
            prop_assert_eq!(out, frees.iter().map(|f| f.1).collect::<Vec<_>>());
        }

        /// The lanes path takes a writer-coded block (devices below 8,
        /// a far free every `far_every`, none when 0) with byte codes
        /// exactly where it takes it with `u64` ones, and resolves the
        /// same ids (a decline would hide behind the tables' fallback).
        #[test]
        fn the_lanes_take_byte_codes_as_wide_ones(
            devices in proptest::collection::vec(0u32..8, 1..120),
            picks in proptest::collection::vec(any::<prop::sample::Index>(), 8..120),
            far_every in 0usize..12,
        ) {
            let (allocs, frees) = picked_frees(&devices, &picks, far_every);
            let EncodedBlock { alloc_devices: ad, alloc_ids: ai, free_devices: fd, codes, far } =
                EncodedBlock::encode(&allocs, &frees, |d| d);
            prop_assume!(codes.iter().all(|&c| c < 256));
            let bytes: Vec<u8> = codes.iter().map(|&c| c as u8).collect();
            let n = codes.len();
            let (mut ids, mut want, mut got) = (Vec::new(), vec![0; n], vec![0; n]);
            let took_wide = super::super::lanes::resolve(&ad, &ai, &fd, &codes, &far, &mut ids, &mut want);
            let took_bytes = super::super::lanes::resolve(&ad, &ai, &fd, &bytes, &far, &mut ids, &mut got);
            prop_assert_eq!(took_bytes, took_wide);
            if took_wide {
                prop_assert_eq!(got, want);
            }
        }

        /// Any byte codes (FAR, steps back, past a device's allocs; far
        /// values too few or too many): byte codes and `u64` ones accept
        /// the same blocks, with the same ids.
        #[test]
        fn byte_codes_agree_with_wide_ones(
            ad in proptest::collection::vec(0u32..9, 0..40),
            fd in proptest::collection::vec(0u32..9, 0..40),
            codes in proptest::collection::vec(prop_oneof![6 => 1u8..6, 1 => Just(0u8), 1 => any::<u8>()], 0..40),
            far in proptest::collection::vec(0u64..100, 0..4),
        ) {
            let n = fd.len().min(codes.len());
            let (fd, codes) = (&fd[..n], &codes[..n]);
            let ai: Vec<u64> = (0..ad.len() as u64).map(|i| 1000 + i).collect();
            let mut s = FreeIdScratch::default();
            let (mut want, mut got, mut wide_codes) = (Vec::new(), Vec::new(), Vec::new());
            let w = decode_free_ids(&ad, &ai, fd, &wide(codes), &far, &mut s, &mut want);
            let g = decode_free_ids_bytes(&ad, &ai, fd, codes, &far, &mut s, &mut wide_codes, &mut got);
            prop_assert_eq!(&w, &g);
            if w.is_ok() {
                prop_assert_eq!(got, want);
            }
        }
    }
}
