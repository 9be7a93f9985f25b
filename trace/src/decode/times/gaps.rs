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
            prop_assert_eq!(out, want);
        }
    }
}
