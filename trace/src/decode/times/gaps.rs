//! The gaps of a run of coded timestamps, four at a time with AVX2 when the
//! CPU has it (a base per event is a gather by its kind), for a pass over
//! every event's time: made apart from the running sum that follows, the
//! per-event work does not wait on it.

use crate::varint::unzigzag;

/// `out[i] = (unzigzag(codes[i]) + bases[tags[i]]) * unit` (wrapping: each
/// event's gap in ns) for every `i` below the three lengths. Scaled here,
/// four at a time, so that the running sum after is one add per event.
#[inline]
pub(super) fn gaps(codes: &[u32], tags: &[u8], bases: &[u64; 256], unit: u64, out: &mut [u64]) {
    let n = codes.len().min(tags.len()).min(out.len());
    let (codes, tags, out) = (&codes[..n], &tags[..n], &mut out[..n]);
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above); the three
        // slices are `n` long.
        done = unsafe { gaps_avx2(codes, tags, bases, unit, out) };
    }
    for ((o, &c), &t) in out.iter_mut().zip(codes).zip(tags).skip(done) {
        *o = (unzigzag(c as u64) as u64)
            .wrapping_add(bases[t as usize])
            .wrapping_mul(unit);
    }
}

/// The sum of the gaps [`gaps`] would write (wrapping), over the first
/// `min(codes.len(), tags.len())` events: a chunk's ticks.
#[inline(always)]
pub(super) fn sum(codes: &[u32], tags: &[u8], bases: &[u64; 256]) -> u64 {
    codes.iter().zip(tags).fold(0u64, |s, (&c, &t)| {
        s.wrapping_add(unzigzag(c as u64) as u64)
            .wrapping_add(bases[t as usize])
    })
}

/// [`sum`] four gaps at a time (the bases gathered by kind), in two
/// accumulators so that consecutive gathers do not wait on each other.
///
/// # Safety
///
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn sum_avx2(codes: &[u32], tags: &[u8], bases: &[u64; 256]) -> u64 {
    use std::arch::x86_64::*;
    let n = codes.len().min(tags.len());
    let (codes, tags) = (&codes[..n], &tags[..n]);
    // The four gaps from entry `i` on.
    // SAFETY (of each call): callers pass `i + 4 <= n`.
    let gaps4 = |i: usize| unsafe { gaps4(codes, tags, bases, i) };
    let (mut a0, mut a1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    let mut i = 0;
    while i + 8 <= n {
        a0 = _mm256_add_epi64(a0, gaps4(i));
        a1 = _mm256_add_epi64(a1, gaps4(i + 4));
        i += 8;
    }
    if i + 4 <= n {
        a0 = _mm256_add_epi64(a0, gaps4(i));
        i += 4;
    }
    let a = _mm256_add_epi64(a0, a1);
    let h = _mm_add_epi64(_mm256_castsi256_si128(a), _mm256_extracti128_si256::<1>(a));
    let lanes = (_mm_cvtsi128_si64(h) as u64).wrapping_add(_mm_extract_epi64::<1>(h) as u64);
    lanes.wrapping_add(sum(&codes[i..], &tags[i..], bases))
}

/// The four gaps (in ticks) of entries `i..i + 4`.
///
/// # Safety
///
/// AVX2; `i + 4` is at most the lengths of `codes` and `tags`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn gaps4(
    codes: &[u32],
    tags: &[u8],
    bases: &[u64; 256],
    i: usize,
) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    debug_assert!(i + 4 <= codes.len() && i + 4 <= tags.len());
    // SAFETY: entries `i..i + 4` lie in both slices (`# Safety`); a kind
    // code is below 256, the bases' length, so every lane of the gather
    // reads a base.
    unsafe {
        // Four 32-bit codes, unzigzagged as 32-bit lanes and then
        // sign-extended: the same as in 64 bits (`c >> 1` is below 2^31),
        // with one widening instead of two.
        let c = _mm_loadu_si128(codes.as_ptr().add(i) as *const __m128i);
        let sign = _mm_sub_epi32(_mm_setzero_si128(), _mm_and_si128(c, _mm_set1_epi32(1)));
        let z = _mm256_cvtepi32_epi64(_mm_xor_si128(_mm_srli_epi32::<1>(c), sign));
        let kinds = (tags.as_ptr().add(i) as *const i32).read_unaligned();
        let idx = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(kinds));
        let b = _mm256_i32gather_epi64::<8>(bases.as_ptr() as *const i64, idx);
        _mm256_add_epi64(z, b)
    }
}

/// [`gaps`] of every whole group of four; returns how many were written.
///
/// # Safety
///
/// AVX2; `codes`, `tags` and `out` are equally long.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn gaps_avx2(
    codes: &[u32],
    tags: &[u8],
    bases: &[u64; 256],
    unit: u64,
    out: &mut [u64],
) -> usize {
    // A loop per kind of unit: 1 ns (no tick column: nothing to scale),
    // below 2^32 (one multiply less), any.
    // SAFETY: the caller upholds `scaled_avx2`'s contract (the same).
    unsafe {
        if unit == 1 {
            scaled_avx2::<false, false>(codes, tags, bases, unit, out)
        } else if unit >> 32 == 0 {
            scaled_avx2::<true, false>(codes, tags, bases, unit, out)
        } else {
            scaled_avx2::<true, true>(codes, tags, bases, unit, out)
        }
    }
}

/// [`gaps_avx2`], times `unit` if `MUL`, whose high half is read only if
/// `WIDE`. (AVX2 has no 64-bit multiply: `x * unit` is made of 32-bit
/// halves, `lo(x) * lo(unit) + ((hi(x) * lo(unit) + lo(x) * hi(unit)) << 32)`.)
///
/// # Safety
///
/// As [`gaps_avx2`]; `unit` is 1 unless `MUL`, below 2^32 unless `WIDE`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn scaled_avx2<const MUL: bool, const WIDE: bool>(
    codes: &[u32],
    tags: &[u8],
    bases: &[u64; 256],
    unit: u64,
    out: &mut [u64],
) -> usize {
    use std::arch::x86_64::*;
    let n = out.len();
    debug_assert!(codes.len() == n && tags.len() == n);
    debug_assert!((MUL || unit == 1) && (WIDE || unit >> 32 == 0));
    let unit_lo = _mm256_set1_epi64x(unit as u32 as i64);
    let unit_hi = _mm256_set1_epi64x((unit >> 32) as i64);
    let mut i = 0;
    while i + 4 <= n {
        // SAFETY: entries `i..i + 4` lie in each slice (`i + 4 <= n`, and
        // they are `n` long: `# Safety`).
        unsafe {
            let g = gaps4(codes, tags, bases, i);
            let ns = if MUL {
                let lo = _mm256_mul_epu32(g, unit_lo);
                let mut cross = _mm256_mul_epu32(_mm256_srli_epi64::<32>(g), unit_lo);
                if WIDE {
                    cross = _mm256_add_epi64(cross, _mm256_mul_epu32(g, unit_hi));
                }
                _mm256_add_epi64(lo, _mm256_slli_epi64::<32>(cross))
            } else {
                g
            };
            _mm256_storeu_si256(out.as_mut_ptr().add(i) as *mut __m256i, ns);
        }
        i += 4;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn gaps_are_each_code_unzigzagged_plus_its_kind_s_base(
            events in proptest::collection::vec((any::<u32>(), any::<u8>()), 0..40),
            seed in any::<u64>(),
        ) {
            let bases: [u64; 256] =
                std::array::from_fn(|k| seed.wrapping_mul(k as u64 + 1).rotate_left(k as u32));
            let (codes, tags): (Vec<u32>, Vec<u8>) = events.into_iter().unzip();
            let want: Vec<u64> = codes
                .iter()
                .zip(&tags)
                .map(|(&c, &t)| (unzigzag(c as u64) as u64).wrapping_add(bases[t as usize]))
                .collect();
            // Units of 1 ns, within 32 bits, and past them.
            for unit in [1, seed >> 40 | 2, seed | (1 << 63)] {
                let mut out = vec![0; codes.len()];
                gaps(&codes, &tags, &bases, unit, &mut out);
                let scaled: Vec<u64> = want.iter().map(|&g| g.wrapping_mul(unit)).collect();
                prop_assert_eq!(&out, &scaled, "unit {}", unit);
            }
            let total = want.iter().fold(0u64, |s, &g| s.wrapping_add(g));
            prop_assert_eq!(sum(&codes, &tags, &bases), total);
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2 (checked just above).
                prop_assert_eq!(unsafe { sum_avx2(&codes, &tags, &bases) }, total);
            }
        }
    }
}
