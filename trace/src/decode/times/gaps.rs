//! The gaps of a run of coded timestamps, four at a time with AVX2 when the
//! CPU has it (a base per event is a gather by its kind), for a pass over
//! every event's time: made apart from the running sum that follows, the
//! per-event work does not wait on it.

use crate::varint::unzigzag;

/// `out[i] = unzigzag(codes[i]) + bases[tags[i]]` (wrapping: ticks) for
/// every `i` below the three lengths.
#[inline]
pub(super) fn gaps(codes: &[u64], tags: &[u8], bases: &[u64; 256], out: &mut [u64]) {
    let n = codes.len().min(tags.len()).min(out.len());
    let (codes, tags, out) = (&codes[..n], &tags[..n], &mut out[..n]);
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above); the three
        // slices are `n` long.
        done = unsafe { gaps_avx2(codes, tags, bases, out) };
    }
    for ((o, &c), &t) in out.iter_mut().zip(codes).zip(tags).skip(done) {
        *o = (unzigzag(c) as u64).wrapping_add(bases[t as usize]);
    }
}

/// The sum of the gaps [`gaps`] would write (wrapping), over the first
/// `min(codes.len(), tags.len())` events: a chunk's ticks.
#[inline(always)]
pub(super) fn sum(codes: &[u64], tags: &[u8], bases: &[u64; 256]) -> u64 {
    codes.iter().zip(tags).fold(0u64, |s, (&c, &t)| {
        s.wrapping_add(unzigzag(c) as u64)
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
pub(super) unsafe fn sum_avx2(codes: &[u64], tags: &[u8], bases: &[u64; 256]) -> u64 {
    use std::arch::x86_64::*;
    let n = codes.len().min(tags.len());
    let (codes, tags) = (&codes[..n], &tags[..n]);
    let one = _mm256_set1_epi64x(1);
    // The four gaps from entry `i` on.
    let gaps4 = |i: usize| {
        // SAFETY: callers pass `i + 4 <= n`: entries `i..i + 4` lie in
        // both slices; a kind code is below 256, the bases' length, so
        // every lane of the gather reads a base.
        unsafe {
            let c = _mm256_loadu_si256(codes.as_ptr().add(i) as *const __m256i);
            let sign = _mm256_sub_epi64(_mm256_setzero_si256(), _mm256_and_si256(c, one));
            let z = _mm256_xor_si256(_mm256_srli_epi64::<1>(c), sign);
            let kinds = (tags.as_ptr().add(i) as *const i32).read_unaligned();
            let idx = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(kinds));
            let b = _mm256_i32gather_epi64::<8>(bases.as_ptr() as *const i64, idx);
            _mm256_add_epi64(z, b)
        }
    };
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

/// [`gaps`] of every whole group of four; returns how many were written.
///
/// # Safety
///
/// AVX2; `codes`, `tags` and `out` are equally long.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn gaps_avx2(codes: &[u64], tags: &[u8], bases: &[u64; 256], out: &mut [u64]) -> usize {
    use std::arch::x86_64::*;
    let n = out.len();
    debug_assert!(codes.len() == n && tags.len() == n);
    let one = _mm256_set1_epi64x(1);
    let mut i = 0;
    while i + 4 <= n {
        // SAFETY: entries `i..i + 4` lie in each slice (`i + 4 <= n`, and
        // they are `n` long: `# Safety`); a kind code is below 256, the
        // bases' length, so every lane of the gather reads a base.
        unsafe {
            let c = _mm256_loadu_si256(codes.as_ptr().add(i) as *const __m256i);
            let sign = _mm256_sub_epi64(_mm256_setzero_si256(), _mm256_and_si256(c, one));
            let z = _mm256_xor_si256(_mm256_srli_epi64::<1>(c), sign);
            let kinds = (tags.as_ptr().add(i) as *const i32).read_unaligned();
            let idx = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(kinds));
            let b = _mm256_i32gather_epi64::<8>(bases.as_ptr() as *const i64, idx);
            _mm256_storeu_si256(
                out.as_mut_ptr().add(i) as *mut __m256i,
                _mm256_add_epi64(z, b),
            );
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
            events in proptest::collection::vec((any::<u64>(), any::<u8>()), 0..40),
            seed in any::<u64>(),
        ) {
            let bases: [u64; 256] =
                std::array::from_fn(|k| seed.wrapping_mul(k as u64 + 1).rotate_left(k as u32));
            let (codes, tags): (Vec<u64>, Vec<u8>) = events.into_iter().unzip();
            let want: Vec<u64> = codes
                .iter()
                .zip(&tags)
                .map(|(&c, &t)| (unzigzag(c) as u64).wrapping_add(bases[t as usize]))
                .collect();
            let mut out = vec![0; codes.len()];
            gaps(&codes, &tags, &bases, &mut out);
            prop_assert_eq!(&out, &want);
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
