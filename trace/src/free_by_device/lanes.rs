//! `decode_free_ids` for a block whose devices are all below 8 (a host's
//! devices: nearly every trace), with AVX2: each device's counter (where
//! its next alloc goes; the ordinal after its previous free) is a 32-bit
//! lane of one register instead of an entry of a table in memory. The
//! table's counters were a chain through memory: an alloc or free of the
//! same device as the one before it loaded the counter the previous one
//! had just stored (a store-to-load forward, several cycles, on every
//! such event). A lane is moved on by a vector add that waits only on
//! the previous add; reading it (a permute and a move) is off that chain.

use super::code::Code;
#[cfg(target_arch = "x86_64")]
use super::FAR;
#[cfg(target_arch = "x86_64")]
mod group;
#[cfg(target_arch = "x86_64")]
use crate::varint::unzigzag;

/// Devices below this many have a lane.
pub(super) const LANES: u32 = 8;

/// Resolves the ids of the frees into `out` (as long as `codes`) as
/// `decode_free_ids` does, with AVX2 when the CPU has it and every alloc
/// and free device is below [`LANES`]; returns false, `out` and `ids`
/// unspecified, when it did not (no AVX2, a device not below `LANES`, or
/// a malformed block: the caller's portable path then resolves the ids
/// or names the error).
/// `alloc_devices` and `alloc_ids` are as long as each other, and so are
/// `free_devices`, `codes` and `out`.
pub(super) fn resolve<C: Code>(
    alloc_devices: &[u32],
    alloc_ids: &[u64],
    free_devices: &[u32],
    codes: &[C],
    far: &[u64],
    ids: &mut Vec<u64>,
    out: &mut [u64],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe {
                resolve_avx2(alloc_devices, alloc_ids, free_devices, codes, far, ids, out)
            };
        }
    }
    let _ = (alloc_devices, alloc_ids, free_devices, codes, far, ids, out);
    false
}

/// [`resolve`] with AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn resolve_avx2<C: Code>(
    alloc_devices: &[u32],
    alloc_ids: &[u64],
    free_devices: &[u32],
    codes: &[C],
    far: &[u64],
    ids: &mut Vec<u64>,
    out: &mut [u64],
) -> bool {
    use std::arch::x86_64::*;
    let n_alloc = alloc_ids.len();
    if alloc_devices.len() != n_alloc || free_devices.len() != codes.len() {
        return false;
    }
    if codes.len() != out.len() || n_alloc >= u32::MAX as usize {
        return false;
    }
    let iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    // Lane `d` of `_mm256_permutevar8x32_epi32(v, lane(d))`, as a u32.
    let lane = |d: u32| _mm256_set1_epi32(d as i32);
    let at =
        |v: __m256i, sel: __m256i| _mm256_cvtsi256_si32(_mm256_permutevar8x32_epi32(v, sel)) as u32;
    // SAFETY: the CPU has AVX2 (this function's contract).
    let Some(counts) = (unsafe { group::alloc_counts(alloc_devices) }) else {
        return false;
    };
    let mut count = [0u32; LANES as usize];
    // SAFETY: `count` is eight u32s, 32 bytes.
    unsafe { _mm256_storeu_si256(count.as_mut_ptr() as *mut __m256i, counts) };
    let mut start = [0u32; LANES as usize];
    let mut sum = 0u32;
    for (s, &c) in start.iter_mut().zip(&count) {
        *s = sum;
        // (At most `n_alloc` in all, below u32::MAX: checked above.)
        sum += c;
    }
    // Every alloc is counted in its device's lane (none is past them):
    // `group`'s bounds rest on this sum.
    if sum as usize != n_alloc {
        return false;
    }
    crate::decode::overwrite_len(ids, n_alloc);
    let ids = &mut ids[..n_alloc];
    // SAFETY: the CPU has AVX2; every alloc's device is below 8 (their
    // counts sum to `n_alloc`, checked above), `start` are the counts'
    // running sums, and `ids` holds `n_alloc`.
    unsafe { group::group(alloc_devices, alloc_ids, &start, ids) };
    // From here lane `d` is where the ordinal after device `d`'s previous
    // free sits in `ids` (its start, before the first free).
    // SAFETY: as above.
    let mut next = unsafe { _mm256_loadu_si256(start.as_ptr() as *const __m256i) };
    // SAFETY: `start` and `count` are eight u32s, 32 bytes each.
    let bounds = unsafe {
        (
            _mm256_loadu_si256(start.as_ptr() as *const __m256i),
            _mm256_loadu_si256(count.as_ptr() as *const __m256i),
        )
    };
    let (mut far_vals, mut prev_far) = (far.iter(), 0u64);
    let n_free = out.len();
    // Eight frees at a time where their ordinals fit 31 bits (see `eight`).
    let by_eight = n_alloc < 1 << 31;
    let mut i = 0;
    while i < n_free {
        let end = if by_eight && i + 8 <= n_free {
            // SAFETY: frees `i..i + 8` exist (`codes`, `free_devices` and
            // `out` are as long as each other, checked above); `ids` holds
            // each device's allocs at `start..start + count` (grouped
            // above); `n_alloc` is below 2^31.
            match unsafe { eight(i, codes, free_devices, ids, out, &mut next, bounds) } {
                Eight::Done => {
                    i += 8;
                    continue;
                }
                Eight::Bad => return false,
                Eight::Declined => i + 8,
            }
        } else {
            n_free
        };
        // One free at a time: the tail, and any eight holding a far free
        // or a change of ordinal beyond 31 bits.
        for ((o, &c), &d) in out[i..end]
            .iter_mut()
            .zip(&codes[i..end])
            .zip(&free_devices[i..end])
        {
            if d >= LANES {
                return false;
            }
            let c = c.wide();
            if c == FAR {
                let Some(&v) = far_vals.next() else {
                    return false;
                };
                prev_far = prev_far.wrapping_add(unzigzag(v) as u64);
                *o = prev_far;
                continue;
            }
            let sel = lane(d);
            let delta = unzigzag(c.wrapping_sub(1)) as u64;
            let from = at(next, sel) as u64;
            // The lane moves to the ordinal after this one, `from + delta + 1`
            // (exact in 32 bits once the ordinal is checked below), by an add
            // that does not wait for `from`.
            let step = _mm256_set1_epi32((delta as u32).wrapping_add(1) as i32);
            next = _mm256_add_epi32(next, _mm256_and_si256(_mm256_cmpeq_epi32(iota, sel), step));
            let k = (d & (LANES - 1)) as usize;
            let to = from.wrapping_add(delta);
            // One unsigned compare: an ordinal below 0 wraps past the count too.
            if to.wrapping_sub(start[k] as u64) >= count[k] as u64 {
                return false;
            }
            // SAFETY: `to` lies in device `d`'s `start..start + count` (checked
            // just above), below `ids.len()` (see where the ids were grouped).
            *o = unsafe { *ids.get_unchecked(to as usize) };
        }
        i = end;
    }
    far_vals.next().is_none()
}

/// What [`eight`] did with its eight frees.
#[cfg(target_arch = "x86_64")]
enum Eight {
    /// Resolved into `out`; the lanes moved on.
    Done,
    /// One names an ordinal outside its device's allocs (a malformed
    /// block), or a device past the lanes.
    Bad,
    /// One is far, or changes its ordinal by 2^31 or more: nothing done.
    Declined,
}

/// Frees `i..i + 8` resolved at once, as the one-at-a-time loop of
/// `resolve_avx2` does: that loop's cost was a chain per free from the
/// lane through a permute, a move to a scalar register and the `ids`
/// load (32 instructions a free). Here a free's ordinal is its lane plus
/// the steps of the earlier frees of its device among the eight (a
/// prefix sum by device: seven shifted compares), checked and loaded
/// eight at a time. In 32 bits this is exact: every ordinal reached
/// before a bad one is at most `n_alloc`, below 2^31, and each change is
/// below 2^31 in size (else `Declined`), so no sum wraps into a device's
/// range; a bad ordinal is found here as the loop finds it (it stops at
/// the first, this at any of the eight: both say the block is bad).
///
/// # Safety
///
/// The CPU has AVX2; frees `i..i + 8` exist in `codes`, `devices` and
/// `out`; `bounds` are each device's start and count in `ids` (in range
/// of it). (A device past the lanes is `Bad`, found before any load.)
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn eight<C: Code>(
    i: usize,
    codes: &[C],
    devices: &[u32],
    ids: &[u64],
    out: &mut [u64],
    next: &mut std::arch::x86_64::__m256i,
    (start, count): (std::arch::x86_64::__m256i, std::arch::x86_64::__m256i),
) -> Eight {
    use std::arch::x86_64::*;
    debug_assert!(i + 8 <= codes.len() && i + 8 <= devices.len() && i + 8 <= out.len());
    // SAFETY (every block below): the caller's contract; loads and stores
    // are of frees `i..i + 8` and of ids inside their devices' ranges.
    unsafe {
        // Each code minus 1, unless one is FAR or its change of ordinal
        // is 2^31 or more in size.
        let Some(x) = C::less_one8(codes, i) else {
            return Eight::Declined;
        };
        // unzigzag in 32 bits: (x >> 1) ^ -(x & 1).
        let delta = _mm256_xor_si256(
            _mm256_srli_epi32::<1>(x),
            _mm256_sub_epi32(
                _mm256_setzero_si256(),
                _mm256_and_si256(x, _mm256_set1_epi32(1)),
            ),
        );
        let step = _mm256_add_epi32(delta, _mm256_set1_epi32(1));
        let d = _mm256_loadu_si256(devices.as_ptr().add(i) as *const __m256i);
        // Each free's device and step turned within each half of the
        // vectors (in-half shuffles: on Zen 3 two issue a cycle, a lane
        // permute such as vpermd once in two): lane `p` of a half meets
        // the half's lane `(p + t) % 4` in turn `t`.
        // 0xE4 keeps each lane; 0x39, 0x4E and 0x93 take the one 1, 2
        // and 3 lanes on (within the half, wrapping).
        let turned = [
            (d, step),
            (
                _mm256_shuffle_epi32::<0x39>(d),
                _mm256_shuffle_epi32::<0x39>(step),
            ),
            (
                _mm256_shuffle_epi32::<0x4E>(d),
                _mm256_shuffle_epi32::<0x4E>(step),
            ),
            (
                _mm256_shuffle_epi32::<0x93>(d),
                _mm256_shuffle_epi32::<0x93>(step),
            ),
        ];
        // The steps of the earlier frees of the same device: in its own
        // half, free `p` meets free `q < p` in the turns that wrap
        // (`p + t >= 4`); a free of the high half meets each of the low
        // half's in the turns of the low half compared with the high half's
        // devices, the sum of which is then moved up a half. (Shifting the
        // frees up 1 to 7 lanes instead took 12 byte shifts and two
        // two-half permutes, and its own compares.)
        let wrapped = [
            _mm256_setr_epi32(0, 0, 0, -1, 0, 0, 0, -1),
            _mm256_setr_epi32(0, 0, -1, -1, 0, 0, -1, -1),
            _mm256_setr_epi32(0, -1, -1, -1, 0, -1, -1, -1),
        ];
        let d_high = _mm256_permute2x128_si256::<0x11>(d, d);
        let same_device = |a: __m256i, (d, step): (__m256i, __m256i)| {
            _mm256_and_si256(_mm256_cmpeq_epi32(a, d), step)
        };
        let in_half = _mm256_add_epi32(
            _mm256_and_si256(same_device(d, turned[1]), wrapped[0]),
            _mm256_add_epi32(
                _mm256_and_si256(same_device(d, turned[2]), wrapped[1]),
                _mm256_and_si256(same_device(d, turned[3]), wrapped[2]),
            ),
        );
        // (Its high half compares the low half with later frees: dropped
        // by the move up.)
        let low_to_high = _mm256_add_epi32(
            _mm256_add_epi32(
                same_device(d_high, turned[0]),
                same_device(d_high, turned[1]),
            ),
            _mm256_add_epi32(
                same_device(d_high, turned[2]),
                same_device(d_high, turned[3]),
            ),
        );
        let before = _mm256_add_epi32(
            in_half,
            _mm256_permute2x128_si256::<0x08>(low_to_high, low_to_high),
        );
        let from = _mm256_add_epi32(_mm256_permutevar8x32_epi32(*next, d), before);
        let to = _mm256_add_epi32(from, delta);
        // Bad where `to - start >= count` (unsigned): max(off, count) == off.
        let off = _mm256_sub_epi32(to, _mm256_permutevar8x32_epi32(start, d));
        let n = _mm256_permutevar8x32_epi32(count, d);
        let bad = _mm256_cmpeq_epi32(_mm256_max_epu32(off, n), off);
        // A device past the lanes (its lane above was another's) is bad
        // too: checked here, not by a pass over the devices first (which
        // read them back from L2 once more).
        let bad = _mm256_or_si256(
            bad,
            _mm256_andnot_si256(_mm256_set1_epi32(LANES as i32 - 1), d),
        );
        if _mm256_testz_si256(bad, bad) == 0 {
            return Eight::Bad;
        }
        // Each device's lane moves to the ordinal after its last free
        // here: the lane plus the steps of the device's frees among the
        // eight. A sum of terms that do not wait for the lane, so the
        // lane's chain from one eight to the next is one add (it was a
        // permute, three adds and eight blends, each waiting on the one
        // before: on Zen 3 some 30 cycles per eight frees). Lane `k`
        // meets every free's device and step by turning the frees within
        // each half (an in-half shuffle); the lanes of the other half meet
        // them by the same turns compared with that half's lane numbers
        // (`iota_swapped`), their sum then swapped into place (one two-half
        // permute per eight). Broadcasting each free's device and step,
        // which the compiler did with lane-crossing shuffles (vpermq,
        // vpbroadcastd from a register: one in every 1 to 1.4 cycles
        // here), made each eight 14% longer (llvm-mca, Zen 3); turning the
        // frees with their halves swapped instead took eight `vpermq`s
        // (LLVM made each shuffle of a swapped vector one).
        let iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let iota_swapped = _mm256_setr_epi32(4, 5, 6, 7, 0, 1, 2, 3);
        macro_rules! steps_of {
            ($lanes:expr) => {{
                let lanes = $lanes;
                let term = |(d, step): (__m256i, __m256i)| {
                    _mm256_and_si256(_mm256_cmpeq_epi32(lanes, d), step)
                };
                _mm256_add_epi32(
                    _mm256_add_epi32(term(turned[0]), term(turned[1])),
                    _mm256_add_epi32(term(turned[2]), term(turned[3])),
                )
            }};
        }
        let (own, other) = (steps_of!(iota), steps_of!(iota_swapped));
        let moved = _mm256_add_epi32(own, _mm256_permute2x128_si256::<0x01>(other, other));
        *next = _mm256_add_epi32(*next, moved);
        let mut at = [0u32; 8];
        _mm256_storeu_si256(at.as_mut_ptr() as *mut __m256i, to);
        let o = out.as_mut_ptr().add(i);
        for (j, &t) in at.iter().enumerate() {
            *o.add(j) = *ids.get_unchecked(t as usize);
        }
    }
    Eight::Done
}

#[cfg(test)]
mod tests {
    use super::super::tests::{picked_frees, EncodedBlock};
    use super::super::{by_tables, FreeIdScratch};
    use super::*;
    use proptest::prelude::*;

    /// Runs both paths; `None` when the lanes path declined.
    fn both(
        ad: &[u32],
        ai: &[u64],
        fd: &[u32],
        codes: &[u64],
        far: &[u64],
    ) -> (Option<Vec<u64>>, Result<Vec<u64>, String>) {
        let mut lanes_out = vec![0; codes.len()];
        let mut ids = vec![5; 2];
        let took = resolve(ad, ai, fd, codes, far, &mut ids, &mut lanes_out);
        let mut tables_out = vec![0; codes.len()];
        let mut s = FreeIdScratch::default();
        let tables = by_tables(ad, ai, fd, codes, far, &mut s, &mut tables_out);
        (took.then_some(lanes_out), tables.map(|()| tables_out))
    }

    /// The lanes path agrees with the tables: the same ids for a block
    /// both accept; no block the tables reject; a decline of one they
    /// accept only where the lanes path is unavailable or a free's device
    /// is past the lanes (`fd`).
    fn agree(
        (lanes, tables): (Option<Vec<u64>>, Result<Vec<u64>, String>),
        fd: &[u32],
    ) -> Result<(), TestCaseError> {
        match (lanes, tables) {
            (Some(l), Ok(t)) => prop_assert_eq!(l, t),
            (Some(_), Err(e)) => prop_assert!(false, "lanes took a block the tables reject: {}", e),
            (None, Ok(_)) => prop_assert!(!has_lanes() || fd.iter().any(|&d| d >= LANES)),
            (None, Err(_)) => {}
        }
        Ok(())
    }

    #[cfg(target_arch = "x86_64")]
    fn has_lanes() -> bool {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    fn has_lanes() -> bool {
        false
    }

    proptest! {
        /// Whatever the writer codes (devices 0–9: most below `LANES`,
        /// some not), the lanes path resolves what the tables do, and
        /// takes every block whose devices fit it.
        #[test]
        fn the_lanes_resolve_what_the_tables_do(
            allocs in proptest::collection::vec((0u32..10, 0u64..40), 0..80),
            frees in proptest::collection::vec((0u32..10, 0u64..48), 0..80),
            low in any::<bool>(),
        ) {
            // Half the cases keep every device below `LANES`.
            let dev = |d: u32| if low { d % LANES } else { d };
            let EncodedBlock { alloc_devices: ad, alloc_ids: ai, free_devices: fd, codes, far } =
                EncodedBlock::encode(&allocs, &frees, dev);
            let (lanes, tables) = both(&ad, &ai, &fd, &codes, &far);
            let tables = tables.unwrap();
            prop_assert_eq!(&tables, &frees.iter().map(|f| f.1).collect::<Vec<_>>());
            if let Some(lanes) = lanes {
                prop_assert_eq!(lanes, tables);
            } else {
                prop_assert!(!has_lanes() || !low);
            }
        }

        /// Malformed blocks (ordinals past a device's allocs or before
        /// them, far values too few or too many, frees of a device past
        /// the lanes with every alloc's below them): the lanes path
        /// declines whatever the tables reject, and agrees with what they
        /// accept.
        #[test]
        fn the_lanes_decline_what_the_tables_reject(
            ad in proptest::collection::vec(0u32..8, 0..20),
            fd in proptest::collection::vec(prop_oneof![12 => 0u32..8, 1 => 8u32..10], 0..20),
            codes in proptest::collection::vec(0u64..12, 0..20),
            far in proptest::collection::vec(0u64..100, 0..4),
        ) {
            let n = fd.len().min(codes.len());
            let (fd, codes) = (&fd[..n], &codes[..n]);
            let ai: Vec<u64> = (0..ad.len() as u64).map(|i| 1000 + i).collect();
            agree(both(&ad, &ai, fd, codes, &far), fd)?;
        }

        /// Eight frees at a time on blocks the writer coded: frees of the
        /// block's own allocs on their devices (in any order, some twice),
        /// with a far one every `far_every` frees (none when 0): every
        /// block is taken, and resolves to the buffers freed.
        #[test]
        fn eight_at_a_time_resolves_the_writer_s_frees(
            devices in proptest::collection::vec(0u32..5, 1..120),
            picks in proptest::collection::vec(any::<prop::sample::Index>(), 8..120),
            far_every in 0usize..12,
        ) {
            let (allocs, frees) = picked_frees(&devices, &picks, far_every);
            let EncodedBlock { alloc_devices: ad, alloc_ids: ai, free_devices: fd, codes, far } =
                EncodedBlock::encode(&allocs, &frees, |d| d);
            let (lanes, tables) = both(&ad, &ai, &fd, &codes, &far);
            let want: Vec<u64> = frees.iter().map(|f| f.1).collect();
            prop_assert_eq!(tables.unwrap(), want.clone());
            if has_lanes() {
                prop_assert_eq!(lanes, Some(want));
            }
        }

        /// A free of a block the writer coded moved to a device past the
        /// lanes (`d + LANES`: it has no allocs, and its lane would be
        /// `d`'s): the lanes path declines the block.
        #[test]
        fn a_free_of_a_device_past_the_lanes_is_declined(
            devices in proptest::collection::vec(0u32..5, 1..120),
            picks in proptest::collection::vec(any::<prop::sample::Index>(), 8..120),
            far_every in 0usize..12,
            moved in any::<prop::sample::Index>(),
        ) {
            let (allocs, frees) = picked_frees(&devices, &picks, far_every);
            let EncodedBlock { alloc_devices: ad, alloc_ids: ai, free_devices: mut fd, codes, far } =
                EncodedBlock::encode(&allocs, &frees, |d| d);
            prop_assume!(!fd.is_empty());
            let k = moved.index(fd.len());
            fd[k] += LANES;
            let (lanes, tables) = both(&ad, &ai, &fd, &codes, &far);
            prop_assert_eq!(lanes, None);
            agree((None, tables), &fd)?;
        }

        /// Eight frees at a time: runs of frees long enough for it, codes
        /// that step back, far ones, and changes of ordinal of 2^31 and
        /// more (which that path leaves to the one-at-a-time loop, and which
        /// in 32 bits would wrap): the lanes agree with the tables on
        /// every block, accepted or not (some frees of devices past the lanes).
        #[test]
        fn eight_at_a_time_agrees_with_the_tables(
            ad in proptest::collection::vec(0u32..8, 0..60),
            fd in proptest::collection::vec(prop_oneof![12 => 0u32..4, 1 => 8u32..10], 8..40),
            codes in proptest::collection::vec(prop_oneof![
                8 => 1u64..6,
                1 => Just(0u64),
                1 => 0u64..40,
                1 => (1u64 << 32) - 3..(1u64 << 32) + 3,
                1 => any::<u64>(),
            ], 8..40),
            far in proptest::collection::vec(0u64..100, 0..4),
        ) {
            let n = fd.len().min(codes.len());
            let (fd, codes) = (&fd[..n], &codes[..n]);
            let ai: Vec<u64> = (0..ad.len() as u64).map(|i| 1000 + i).collect();
            agree(both(&ad, &ai, fd, codes, &far), fd)?;
        }
    }
}
