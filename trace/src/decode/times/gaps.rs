//! The gaps of a run of coded timestamps, with AVX2 when the CPU has it (a
//! base per event looked up by its kind: in registers, else gathered), for
//! a pass over every event's time: made apart from the running sum that
//! follows, the per-event work does not wait on it.

use crate::varint::unzigzag;

#[cfg(target_arch = "x86_64")]
mod permute;

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

/// Events [`sum32_avx2`] sums: a chunk of coded times (`CHUNK`), one
/// 32-byte vector of kinds.
pub(super) const SUM_RUN: usize = 32;

/// Kinds whose bases [`BytePlanes`] holds (every kind this version knows;
/// a later one's chunk is summed by [`sum`]).
const PLANE_KINDS: usize = 16;

/// A block's bases of the kinds below [`PLANE_KINDS`], cut into byte
/// planes: plane `b` is byte `b` of each base, a 16-byte table (in both
/// halves of the register). One byte shuffle of 32 kinds then looks up
/// byte `b` of all their bases, and a sum of absolute differences adds
/// them up: a chunk's bases cost a few single-cycle instructions per
/// plane instead of eight gathers (whose latency held the chunk sums up:
/// most of their time, by `perf annotate`).
#[cfg(target_arch = "x86_64")]
pub(super) struct BytePlanes {
    planes: [std::arch::x86_64::__m256i; 8],
    /// Planes up to the highest byte any of the bases uses (the others
    /// add nothing).
    used: usize,
}

#[cfg(target_arch = "x86_64")]
impl BytePlanes {
    /// # Safety
    ///
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn new(bases: &[u64; 256]) -> BytePlanes {
        use std::arch::x86_64::*;
        let known = &bases[..PLANE_KINDS];
        let planes = std::array::from_fn(|b| {
            let table: [u8; PLANE_KINDS] = std::array::from_fn(|k| (known[k] >> (8 * b)) as u8);
            // SAFETY: `table` is 16 readable bytes.
            _mm256_broadcastsi128_si256(unsafe {
                _mm_loadu_si128(table.as_ptr() as *const __m128i)
            })
        });
        let all = known.iter().fold(0u64, |a, &b| a | b);
        let used = (64 - all.leading_zeros() as usize).div_ceil(8);
        BytePlanes { planes, used }
    }
}

/// [`sum`] of the first [`SUM_RUN`] events: their codes unzigzagged eight
/// at a time, their bases by [`BytePlanes`] (a chunk holding a kind past
/// those is summed by [`sum`]).
///
/// # Safety
///
/// The CPU has AVX2; `codes` and `tags` hold [`SUM_RUN`] entries at least;
/// `planes` are those of `bases`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn sum32_avx2(
    codes: &[u32],
    tags: &[u8],
    bases: &[u64; 256],
    planes: &BytePlanes,
) -> u64 {
    use std::arch::x86_64::*;
    debug_assert!(codes.len() >= SUM_RUN && tags.len() >= SUM_RUN);
    // SAFETY: the 32 kinds and codes read lie in `tags` and `codes`
    // (`# Safety`).
    unsafe {
        let kinds = _mm256_loadu_si256(tags.as_ptr() as *const __m256i);
        // A kind at 16 or past it would read its byte at `kind & 15` (or
        // 0 past 127): such chunks (none before a new kind) take `sum`.
        if _mm256_testz_si256(kinds, _mm256_set1_epi8(0xF0u8 as i8)) == 0 {
            return sum(&codes[..SUM_RUN], &tags[..SUM_RUN], bases);
        }
        let zero = _mm256_setzero_si256();
        // Bases: the planes' bytes summed in four 64-bit lanes, highest
        // plane first, each sum so far moved a byte up (Horner).
        let mut acc = zero;
        for plane in planes.planes[..planes.used].iter().rev() {
            let bytes = _mm256_shuffle_epi8(*plane, kinds);
            acc = _mm256_add_epi64(_mm256_slli_epi64::<8>(acc), _mm256_sad_epu8(bytes, zero));
        }
        // Codes: unzigzagged as 32-bit lanes, then sign-extended (the same
        // as in 64 bits: `c >> 1` is below 2^31).
        let one = _mm256_set1_epi32(1);
        for i in (0..SUM_RUN).step_by(8) {
            let c = _mm256_loadu_si256(codes.as_ptr().add(i) as *const __m256i);
            let sign = _mm256_sub_epi32(zero, _mm256_and_si256(c, one));
            let z = _mm256_xor_si256(_mm256_srli_epi32::<1>(c), sign);
            acc = _mm256_add_epi64(acc, _mm256_cvtepi32_epi64(_mm256_castsi256_si128(z)));
            acc = _mm256_add_epi64(acc, _mm256_cvtepi32_epi64(_mm256_extracti128_si256::<1>(z)));
        }
        let h = _mm_add_epi64(
            _mm256_castsi256_si128(acc),
            _mm256_extracti128_si256::<1>(acc),
        );
        (_mm_cvtsi128_si64(h) as u64).wrapping_add(_mm_extract_epi64::<1>(h) as u64)
    }
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
    // below 2^32 (one multiply less), any; and per way to look up bases.
    // SAFETY: the caller upholds `scaled_avx2`'s contract (the same); the
    // CPU has AVX2.
    unsafe {
        match permute::PermutedBases::of(bases, tags) {
            Some(p) => by_unit(codes, tags, bases, Some(&p), unit, out),
            None => by_unit(codes, tags, bases, None, unit, out),
        }
    }
}

/// [`gaps_avx2`] for the kind of `unit`.
///
/// # Safety
///
/// As [`scaled_avx2`] (`MUL` and `WIDE` are picked here).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn by_unit(
    codes: &[u32],
    tags: &[u8],
    bases: &[u64; 256],
    permuted: Option<&permute::PermutedBases>,
    unit: u64,
    out: &mut [u64],
) -> usize {
    // SAFETY: `unit` is 1 for `MUL` false, below 2^32 for `WIDE` false;
    // the rest is the caller's.
    unsafe {
        if unit == 1 {
            scaled_avx2::<false, false>(codes, tags, bases, permuted, unit, out)
        } else if unit >> 32 == 0 {
            scaled_avx2::<true, false>(codes, tags, bases, permuted, unit, out)
        } else {
            scaled_avx2::<true, true>(codes, tags, bases, permuted, unit, out)
        }
    }
}

/// [`gaps_avx2`], times `unit` if `MUL`, whose high half is read only if
/// `WIDE`. (AVX2 has no 64-bit multiply: `x * unit` is made of 32-bit
/// halves, `lo(x) * lo(unit) + ((hi(x) * lo(unit) + lo(x) * hi(unit)) << 32)`.)
///
/// # Safety
///
/// As [`gaps_avx2`]; `unit` is 1 unless `MUL`, below 2^32 unless `WIDE`;
/// `permuted` (if any) was made for `bases` and `tags`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn scaled_avx2<const MUL: bool, const WIDE: bool>(
    codes: &[u32],
    tags: &[u8],
    bases: &[u64; 256],
    permuted: Option<&permute::PermutedBases>,
    unit: u64,
    out: &mut [u64],
) -> usize {
    use std::arch::x86_64::*;
    let n = out.len();
    debug_assert!(codes.len() == n && tags.len() == n);
    debug_assert!((MUL || unit == 1) && (WIDE || unit >> 32 == 0));
    let unit_lo = _mm256_set1_epi64x(unit as u32 as i64);
    let unit_hi = _mm256_set1_epi64x((unit >> 32) as i64);
    let scale = |g: __m256i| {
        if MUL {
            let lo = _mm256_mul_epu32(g, unit_lo);
            let mut cross = _mm256_mul_epu32(_mm256_srli_epi64::<32>(g), unit_lo);
            if WIDE {
                cross = _mm256_add_epi64(cross, _mm256_mul_epu32(g, unit_hi));
            }
            _mm256_add_epi64(lo, _mm256_slli_epi64::<32>(cross))
        } else {
            g
        }
    };
    let mut i = 0;
    if let Some(p) = permuted {
        while i + 8 <= n {
            // SAFETY: entries `i..i + 8` lie in each slice (`i + 8 <= n`,
            // and they are `n` long: `# Safety`); `p` was made for `tags`.
            unsafe {
                let [g0, g1] = p.gaps8(codes, tags, i);
                let o = out.as_mut_ptr().add(i) as *mut __m256i;
                _mm256_storeu_si256(o, scale(g0));
                _mm256_storeu_si256(o.add(1), scale(g1));
            }
            i += 8;
        }
    }
    while i + 4 <= n {
        // SAFETY: entries `i..i + 4` lie in each slice (`i + 4 <= n`, and
        // they are `n` long: `# Safety`).
        unsafe {
            let g = gaps4(codes, tags, bases, i);
            _mm256_storeu_si256(out.as_mut_ptr().add(i) as *mut __m256i, scale(g));
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
            known in any::<bool>(),
            narrow in any::<bool>(),
        ) {
            // Bases of 64 bits, or of 32 (which registers can hold).
            let bases: [u64; 256] = std::array::from_fn(|k| {
                let b = seed.wrapping_mul(k as u64 + 1).rotate_left(k as u32);
                if narrow { b >> 32 } else { b }
            });
            let (codes, mut tags): (Vec<u32>, Vec<u8>) = events.into_iter().unzip();
            if known {
                // Only the kinds this version knows (bases looked up in
                // registers when they fit 32 bits; any later kind, or a
                // wider base, takes the gathers).
                tags.iter_mut().for_each(|t| *t &= 15);
            }
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
        }

        /// A chunk's sum by byte planes is the plain sum, for bases of any
        /// width (small, past 32 bits, wrapped below 0: every plane used)
        /// and chunks with a kind past the planes' (summed plainly).
        #[test]
        fn a_chunk_s_sum_by_byte_planes_is_the_plain_sum(
            codes in proptest::collection::vec(any::<u32>(), SUM_RUN),
            tags in proptest::collection::vec(
                prop_oneof![9 => 0..PLANE_KINDS as u8, 1 => any::<u8>()],
                SUM_RUN,
            ),
            seed in any::<u64>(),
            width in 0u32..=64,
        ) {
            let bases: [u64; 256] = std::array::from_fn(|k| {
                let b = seed.wrapping_mul(k as u64 * 2 + 1).rotate_left(k as u32);
                b.checked_shr(64 - width).unwrap_or(0)
            });
            // The same chunk with a base below 0 (every plane in use).
            let mut wrapped = bases;
            wrapped[(seed % PLANE_KINDS as u64) as usize] = (-7i64) as u64;
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                for bases in [bases, wrapped] {
                    // SAFETY: the CPU has AVX2 (checked above); both
                    // vectors hold `SUM_RUN` entries.
                    let planes = unsafe { BytePlanes::new(&bases) };
                    let got = unsafe { sum32_avx2(&codes, &tags, &bases, &planes) };
                    prop_assert_eq!(got, sum(&codes, &tags, &bases));
                }
            }
        }
    }
}
