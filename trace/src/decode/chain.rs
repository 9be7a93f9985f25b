//! Delta chains: packed columns of zigzag deltas (device chains, alloc
//! buffer ids) decoded straight into their running sums, in one pass
//! that unpacks, unzigzags and sums eight (32-bit) or four (64-bit) values
//! per step with AVX2 when the CPU has it. A chain unpacked first and
//! summed after made two passes, the second a serial add per value.
//!
//! Deltas of up to 4 bytes (every chain the writer makes, in practice) take
//! the vector pass: their unzigzagged values fit 32 bits, so the 64-bit
//! chain widens them with their sign. A near-constant 64-bit chain (alloc
//! buffer ids) is summed run by run. Wider ones, and near-constant 32-bit
//! chains, are unpacked whole and summed one by one.

use super::packed::{column_values, near_constant_runs, packed_as, reserve_exact, Packed};
use super::DecodeError;
use crate::varint::unzigzag;
use std::mem::MaybeUninit;

/// Decodes packed column `bytes` of `n` zigzag deltas into their running
/// sum from 0 (`out[i]` = the sum of deltas `0..=i`, as u32: wrapping),
/// through the scratch `vals` when it cannot be done in one pass. `out`
/// has room for one value more (callers push a slack slot).
pub(super) fn chain_u32(
    bytes: &[u8],
    n: usize,
    what: &str,
    vals: &mut Vec<u64>,
    out: &mut Vec<u32>,
) -> Result<(), DecodeError> {
    out.clear();
    reserve_exact(out, n);
    match packed_as(bytes, n, what)? {
        Packed::Planes { w, planes } if (1..=4).contains(&w) => {
            let spare = &mut out.spare_capacity_mut()[..n];
            match w {
                1 => sum_u32::<1>(planes, spare),
                2 => sum_u32::<2>(planes, spare),
                3 => sum_u32::<3>(planes, spare),
                _ => sum_u32::<4>(planes, spare),
            }
            // SAFETY: `sum_u32` wrote every one of the `n` values (room
            // reserved above).
            unsafe { out.set_len(n) };
        }
        _ => {
            column_values(bytes, n, what, vals)?;
            let mut d = 0u32;
            out.extend(vals.iter().map(|&v| {
                d = d.wrapping_add(unzigzag(v) as u32);
                d
            }));
        }
    }
    Ok(())
}

/// [`chain_u32`] for 64-bit sums (into `out`, the values unpacked in place
/// when it takes two passes). `out` has room for one value more.
pub(super) fn chain_u64(
    bytes: &[u8],
    n: usize,
    what: &str,
    out: &mut Vec<u64>,
) -> Result<(), DecodeError> {
    match packed_as(bytes, n, what)? {
        Packed::Planes { w, planes } if (1..=4).contains(&w) => {
            out.clear();
            reserve_exact(out, n);
            let spare = &mut out.spare_capacity_mut()[..n];
            match w {
                1 => sum_u64::<1>(planes, spare),
                2 => sum_u64::<2>(planes, spare),
                3 => sum_u64::<3>(planes, spare),
                _ => sum_u64::<4>(planes, spare),
            }
            // SAFETY: `sum_u64` wrote every one of the `n` values (room
            // reserved above).
            unsafe { out.set_len(n) };
        }
        Packed::NearConstant(rest) => {
            // (Buffer ids: +1 from one alloc to the next, but where
            // another process or thread allocated in between.)
            out.clear();
            reserve_exact(out, n);
            let mut sum = 0u64;
            near_constant_runs(rest, n, what, |common, run, exception| {
                let step = unzigzag(common) as u64;
                // Into the spare room (reserved above), in a loop the
                // compiler vectorises (an induction variable): an extend
                // by a mapped range was that only where it was inlined.
                // The sum runs in a local: the closure's captured `sum`
                // was loaded and stored for every value (the compiler
                // could not tell it from the stores into `out`), a chain
                // through memory and no vector loop.
                let at = out.len();
                let mut s = sum;
                for o in &mut out.spare_capacity_mut()[..run] {
                    s = s.wrapping_add(step);
                    o.write(s);
                }
                sum = s;
                // SAFETY: the loop wrote the `run` entries after `at`.
                unsafe { out.set_len(at + run) };
                if let Some(v) = exception {
                    sum = sum.wrapping_add(unzigzag(v) as u64);
                    out.push(sum);
                }
            })?;
        }
        _ => {
            column_values(bytes, n, what, out)?;
            let mut sum = 0u64;
            for v in out.iter_mut() {
                sum = sum.wrapping_add(unzigzag(*v) as u64);
                *v = sum;
            }
        }
    }
    Ok(())
}

/// Delta `i` of `W` byte planes of `n` bytes each, unzigzagged (`W` <= 4:
/// it fits 32 bits, signed).
#[inline(always)]
fn delta<const W: usize>(planes: &[u8], n: usize, i: usize) -> i32 {
    let mut v = 0u32;
    for j in 0..W {
        v |= (planes[j * n + i] as u32) << (8 * j);
    }
    ((v >> 1) as i32) ^ -((v & 1) as i32)
}

/// The running sums of the `out.len()` deltas in `planes` (`W` planes of
/// `out.len()` bytes), as u32.
fn sum_u32<const W: usize>(planes: &[u8], out: &mut [MaybeUninit<u32>]) {
    let n = out.len();
    assert_eq!(planes.len(), W * n);
    let (mut i, mut sum) = (0usize, 0u32);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above); the planes
        // hold `W * n` bytes (asserted above).
        (i, sum) = unsafe { avx2::sum_u32::<W>(planes, out) };
    }
    for (k, o) in out.iter_mut().enumerate().skip(i) {
        sum = sum.wrapping_add(delta::<W>(planes, n, k) as u32);
        o.write(sum);
    }
}

/// [`sum_u32`] as u64 (deltas widened with their sign).
fn sum_u64<const W: usize>(planes: &[u8], out: &mut [MaybeUninit<u64>]) {
    let n = out.len();
    assert_eq!(planes.len(), W * n);
    let (mut i, mut sum) = (0usize, 0u64);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: as in `sum_u32`.
        (i, sum) = unsafe { avx2::sum_u64::<W>(planes, out) };
    }
    for (k, o) in out.iter_mut().enumerate().skip(i) {
        sum = sum.wrapping_add(delta::<W>(planes, n, k) as i64 as u64);
        o.write(sum);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    /// Deltas `i..i + 8` of `W` planes of `n` bytes, unzigzagged, as eight
    /// 32-bit lanes.
    ///
    /// # Safety
    ///
    /// AVX2; `i + 8 <= n` and `planes` holds `W * n` bytes.
    #[inline(always)]
    unsafe fn deltas8<const W: usize>(planes: &[u8], n: usize, i: usize) -> __m256i {
        unsafe {
            let mut v = _mm256_setzero_si256();
            for j in 0..W {
                // SAFETY: bytes `j * n + i .. + 8` lie in plane `j` (`# Safety`).
                let bytes = _mm_loadl_epi64(planes.as_ptr().add(j * n + i) as *const __m128i);
                let lanes = _mm256_cvtepu8_epi32(bytes);
                v = _mm256_or_si256(v, _mm256_sll_epi32(lanes, _mm_cvtsi32_si128(8 * j as i32)));
            }
            let sign = _mm256_sub_epi32(
                _mm256_setzero_si256(),
                _mm256_and_si256(v, _mm256_set1_epi32(1)),
            );
            _mm256_xor_si256(_mm256_srli_epi32::<1>(v), sign)
        }
    }

    /// The running sums of the deltas of every whole group of eight (of
    /// `out.len()` = `n`): returns how many were written and the last sum.
    ///
    /// # Safety
    ///
    /// AVX2; `planes` holds `W * out.len()` bytes.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn sum_u32<const W: usize>(
        planes: &[u8],
        out: &mut [MaybeUninit<u32>],
    ) -> (usize, u32) {
        let n = out.len();
        let zero = _mm256_setzero_si256();
        let mut carry = zero;
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: `i + 8 <= n` (the loop's test); the caller's contract.
            let mut d = unsafe { deltas8::<W>(planes, n, i) };
            // Sums within each half (4 lanes), then the low half's total
            // (lane 3, to every lane of the high half by an in-half
            // shuffle and a half move: no lane permute, whose latency is
            // 8.5 cycles on Zen 3), then the sum before the group.
            d = _mm256_add_epi32(d, _mm256_slli_si256::<4>(d));
            d = _mm256_add_epi32(d, _mm256_slli_si256::<8>(d));
            let last = _mm256_shuffle_epi32::<0xFF>(d);
            d = _mm256_add_epi32(d, _mm256_permute2x128_si256::<0x08>(last, last));
            // SAFETY: values `i..i + 8` lie in `out` (`i + 8 <= n`).
            unsafe {
                _mm256_storeu_si256(
                    out.as_mut_ptr().add(i) as *mut __m256i,
                    _mm256_add_epi32(d, carry),
                )
            };
            // The group's total (lane 7) added to the carry: the chain from
            // one group to the next is that add (it went through a lane
            // permute, some 10 cycles a group).
            let last = _mm256_shuffle_epi32::<0xFF>(d);
            carry = _mm256_add_epi32(carry, _mm256_permute2x128_si256::<0x11>(last, last));
            i += 8;
        }
        (i, _mm256_cvtsi256_si32(carry) as u32)
    }

    /// [`sum_u32`] as u64 (deltas widened with their sign).
    ///
    /// # Safety
    ///
    /// As [`sum_u32`].
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn sum_u64<const W: usize>(
        planes: &[u8],
        out: &mut [MaybeUninit<u64>],
    ) -> (usize, u64) {
        let n = out.len();
        let zero = _mm256_setzero_si256();
        let mut carry = zero;
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: `i + 8 <= n` (the loop's test); the caller's contract.
            let d = unsafe { deltas8::<W>(planes, n, i) };
            for (k, half) in [_mm256_castsi256_si128(d), _mm256_extracti128_si256::<1>(d)]
                .into_iter()
                .enumerate()
            {
                let mut q = _mm256_cvtepi32_epi64(half);
                // Sums within each 128-bit half, the low half's total into
                // the high half, then the sum before these four (as in
                // `sum_u32`: in-half shuffles and half moves, and the
                // carry's chain one add).
                q = _mm256_add_epi64(q, _mm256_slli_si256::<8>(q));
                let last = _mm256_shuffle_epi32::<0xEE>(q);
                q = _mm256_add_epi64(q, _mm256_permute2x128_si256::<0x08>(last, last));
                // SAFETY: values `i + 4k .. + 4` lie in `out` (`i + 8 <= n`).
                unsafe {
                    _mm256_storeu_si256(
                        out.as_mut_ptr().add(i + 4 * k) as *mut __m256i,
                        _mm256_add_epi64(q, carry),
                    )
                };
                let last = _mm256_shuffle_epi32::<0xEE>(q);
                carry = _mm256_add_epi64(carry, _mm256_permute2x128_si256::<0x11>(last, last));
            }
            i += 8;
        }
        (i, _mm256_extract_epi64::<0>(carry) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::pack;
    use crate::varint::zigzag;
    use proptest::prelude::*;

    /// Deltas mostly small (widths 1 to 4), some of any size (wider
    /// columns: the two-pass path).
    fn delta() -> impl Strategy<Value = i64> {
        prop_oneof![
            8 => -5i64..5,
            2 => -40_000i64..40_000,
            1 => i32::MIN as i64..=i32::MAX as i64,
            1 => any::<i64>(),
        ]
    }

    proptest! {
        /// Both chains are the running sums of the deltas (wrapping),
        /// whatever the width, for lengths on and off a group of eight.
        #[test]
        fn chains_are_the_running_sums_of_their_deltas(
            deltas in proptest::collection::vec(delta(), 0..100),
            wide in any::<bool>(),
        ) {
            let deltas: Vec<i64> = if wide {
                deltas
            } else {
                deltas.iter().map(|&d| d.clamp(-100, 100)).collect()
            };
            let mut bytes = Vec::new();
            let zz: Vec<u64> = deltas.iter().map(|&d| zigzag(d)).collect();
            if !zz.is_empty() {
                pack(&zz, &mut bytes);
            }
            let n = deltas.len();
            let (mut s64, mut s32) = (0u64, 0u32);
            let want64: Vec<u64> =
                deltas.iter().map(|&d| { s64 = s64.wrapping_add(d as u64); s64 }).collect();
            let want32: Vec<u32> =
                deltas.iter().map(|&d| { s32 = s32.wrapping_add(d as u32); s32 }).collect();
            let (mut out64, mut out32, mut vals) = (vec![7u64; 3], vec![7u32; 3], Vec::new());
            chain_u64(&bytes, n, "test", &mut out64).unwrap();
            chain_u32(&bytes, n, "test", &mut vals, &mut out32).unwrap();
            prop_assert_eq!(out64, want64);
            prop_assert_eq!(out32, want32);
        }
    }

    proptest! {
        /// A near-constant chain (one delta but a few) is the same running
        /// sum.
        #[test]
        fn near_constant_chains_are_the_running_sums_of_their_deltas(
            n in 1usize..1500,
            common in prop_oneof![Just(1i64), -3i64..3, any::<i64>()],
            exceptions in proptest::collection::vec((any::<usize>(), any::<i64>()), 0..4),
        ) {
            let mut deltas = vec![common; n];
            for &(at, d) in &exceptions {
                deltas[at % n] = d;
            }
            let zz: Vec<u64> = deltas.iter().map(|&d| zigzag(d)).collect();
            let mut bytes = Vec::new();
            crate::codec::pack_near_constant(&zz, &mut bytes);
            let mut s = 0u64;
            let want: Vec<u64> =
                deltas.iter().map(|&d| { s = s.wrapping_add(d as u64); s }).collect();
            let (mut out64, mut out32, mut vals) = (Vec::new(), Vec::new(), Vec::new());
            chain_u64(&bytes, n, "test", &mut out64).unwrap();
            chain_u32(&bytes, n, "test", &mut vals, &mut out32).unwrap();
            let want32: Vec<u32> = want.iter().map(|&v| v as u32).collect();
            prop_assert_eq!(out64, want);
            prop_assert_eq!(out32, want32);
        }
    }

    #[test]
    fn a_chain_of_the_wrong_length_is_an_error() {
        let mut bytes = Vec::new();
        pack(&[2, 4, 6], &mut bytes);
        let (mut out, mut vals) = (Vec::new(), Vec::new());
        let err = chain_u32(&bytes, 4, "device", &mut vals, &mut out).unwrap_err();
        assert_eq!(err, "column device ends early");
        let err = chain_u64(&bytes, 2, "buffer", &mut Vec::new()).unwrap_err();
        assert_eq!(err, "column buffer has bytes left after the last event");
    }
}
