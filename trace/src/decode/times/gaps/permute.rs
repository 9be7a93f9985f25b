//! A run's bases looked up in registers, for [`gaps`](super::gaps) with
//! AVX2: when every kind is one this version knows (below 16) and their
//! bases fit 32 bits (nearly every block), the sixteen bases are two
//! eight-entry tables of 32-bit lanes, and two permutes and a blend look
//! up eight events' bases where the gather path reads four from memory
//! (the gathers' latency was most of that loop's time, by `perf annotate`).

use std::arch::x86_64::*;

/// Kinds whose bases the two tables hold.
const KINDS: usize = 16;

/// The bases of the kinds below [`KINDS`], as two tables of eight 32-bit
/// lanes (kinds 0-7, 8-15).
pub(super) struct PermutedBases {
    low: __m256i,
    high: __m256i,
}

impl PermutedBases {
    /// The tables of `bases`, if every kind in `tags` is below [`KINDS`]
    /// and their bases fit 32 bits.
    ///
    /// # Safety
    ///
    /// The CPU has AVX2.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn of(bases: &[u64; 256], tags: &[u8]) -> Option<PermutedBases> {
        let known = &bases[..KINDS];
        if tags.iter().fold(0, |a, &t| a | t) as usize >= KINDS
            || known.iter().any(|&b| b >> 32 != 0)
        {
            return None;
        }
        let table = |from: usize| {
            let lanes: [u32; 8] = std::array::from_fn(|k| known[from + k] as u32);
            // SAFETY: `lanes` is 32 readable bytes.
            unsafe { _mm256_loadu_si256(lanes.as_ptr() as *const __m256i) }
        };
        Some(PermutedBases {
            low: table(0),
            high: table(8),
        })
    }

    /// The ticks of entries `i..i + 8` (unzigzagged code plus base), as
    /// two vectors of four.
    ///
    /// # Safety
    ///
    /// AVX2; `i + 8` is at most the lengths of `codes` and `tags`; the
    /// tables were made ([`PermutedBases::of`]) for these `tags`.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn gaps8(&self, codes: &[u32], tags: &[u8], i: usize) -> [__m256i; 2] {
        debug_assert!(i + 8 <= codes.len() && i + 8 <= tags.len());
        // SAFETY: entries `i..i + 8` lie in both slices (`# Safety`).
        unsafe {
            let kinds = _mm_loadl_epi64(tags.as_ptr().add(i) as *const __m128i);
            let idx = _mm256_cvtepu8_epi32(kinds);
            // Bits 0-2 of a kind pick its lane in both tables, bit 3 (moved
            // to the sign bit) which table.
            let low = _mm256_permutevar8x32_epi32(self.low, idx);
            let high = _mm256_permutevar8x32_epi32(self.high, idx);
            let pick = _mm256_castsi256_ps(_mm256_slli_epi32::<28>(idx));
            let b = _mm256_castps_si256(_mm256_blendv_ps(
                _mm256_castsi256_ps(low),
                _mm256_castsi256_ps(high),
                pick,
            ));
            // Codes unzigzagged as 32-bit lanes, then sign-extended (the
            // same as in 64 bits: `c >> 1` is below 2^31); bases
            // zero-extended.
            let c = _mm256_loadu_si256(codes.as_ptr().add(i) as *const __m256i);
            let sign = _mm256_sub_epi32(
                _mm256_setzero_si256(),
                _mm256_and_si256(c, _mm256_set1_epi32(1)),
            );
            let z = _mm256_xor_si256(_mm256_srli_epi32::<1>(c), sign);
            let (z_low, z_high) = (_mm256_castsi256_si128(z), _mm256_extracti128_si256::<1>(z));
            let (b_low, b_high) = (_mm256_castsi256_si128(b), _mm256_extracti128_si256::<1>(b));
            [
                _mm256_add_epi64(_mm256_cvtepi32_epi64(z_low), _mm256_cvtepu32_epi64(b_low)),
                _mm256_add_epi64(_mm256_cvtepi32_epi64(z_high), _mm256_cvtepu32_epi64(b_high)),
            ]
        }
    }
}
