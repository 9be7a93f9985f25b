//! `decode_free_ids` for a block whose devices are all below 8 (a host's
//! devices: nearly every trace), with AVX2: each device's counter (where
//! its next alloc goes; the ordinal after its previous free) is a 32-bit
//! lane of one register instead of an entry of a table in memory. The
//! table's counters were a chain through memory: an alloc or free of the
//! same device as the one before it loaded the counter the previous one
//! had just stored (a store-to-load forward, several cycles, on every
//! such event). A lane is moved on by a vector add that waits only on
//! the previous add; reading it (a permute and a move) is off that chain.

#[cfg(target_arch = "x86_64")]
use super::FAR;
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
pub(super) fn resolve(
    alloc_devices: &[u32],
    alloc_ids: &[u64],
    free_devices: &[u32],
    codes: &[u64],
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
unsafe fn resolve_avx2(
    alloc_devices: &[u32],
    alloc_ids: &[u64],
    free_devices: &[u32],
    codes: &[u64],
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
    let fits = |ds: &[u32]| ds.iter().fold(0u32, |m, &d| m.max(d)) < LANES;
    if !fits(alloc_devices) || !fits(free_devices) {
        return false;
    }
    let iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    // Lane `d` of `_mm256_permutevar8x32_epi32(v, lane(d))`, as a u32.
    let lane = |d: u32| _mm256_set1_epi32(d as i32);
    let at =
        |v: __m256i, sel: __m256i| _mm256_cvtsi256_si32(_mm256_permutevar8x32_epi32(v, sel)) as u32;
    // Allocs per device (a compare's all-ones lane is -1: subtracting it counts).
    let mut counts = _mm256_setzero_si256();
    for &d in alloc_devices {
        counts = _mm256_sub_epi32(counts, _mm256_cmpeq_epi32(iota, lane(d)));
    }
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
    // The allocs grouped by device, in event order: each goes to its
    // device's lane, which then moves one on.
    crate::decode::overwrite_len(ids, n_alloc);
    let ids = &mut ids[..n_alloc];
    // SAFETY: `start` is eight u32s, 32 bytes.
    let mut next = unsafe { _mm256_loadu_si256(start.as_ptr() as *const __m256i) };
    for (&d, &id) in alloc_devices.iter().zip(alloc_ids) {
        let sel = lane(d);
        let to = at(next, sel) as usize;
        debug_assert!(to < n_alloc);
        // SAFETY: device `d` (below 8) has `count[d]` allocs and its lane
        // runs from `start[d]` through them, below `start[d] + count[d]`,
        // at most `n_alloc` (the counts' sum) = `ids.len()`.
        unsafe { *ids.get_unchecked_mut(to) = id };
        next = _mm256_sub_epi32(next, _mm256_cmpeq_epi32(iota, sel));
    }
    // From here lane `d` is where the ordinal after device `d`'s previous
    // free sits in `ids` (its start, before the first free).
    // SAFETY: as above.
    let mut next = unsafe { _mm256_loadu_si256(start.as_ptr() as *const __m256i) };
    let (mut far_vals, mut prev_far) = (far.iter(), 0u64);
    for ((o, &c), &d) in out.iter_mut().zip(codes).zip(free_devices) {
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
    far_vals.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::super::tests::EncodedBlock;
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
        /// them, far values too few or too many): the lanes path declines
        /// whatever the tables reject, and agrees with what they accept.
        #[test]
        fn the_lanes_decline_what_the_tables_reject(
            ad in proptest::collection::vec(0u32..8, 0..20),
            fd in proptest::collection::vec(0u32..8, 0..20),
            codes in proptest::collection::vec(0u64..12, 0..20),
            far in proptest::collection::vec(0u64..100, 0..4),
        ) {
            let n = fd.len().min(codes.len());
            let (fd, codes) = (&fd[..n], &codes[..n]);
            let ai: Vec<u64> = (0..ad.len() as u64).map(|i| 1000 + i).collect();
            let (lanes, tables) = both(&ad, &ai, fd, codes, &far);
            match (lanes, tables) {
                (Some(l), Ok(t)) => prop_assert_eq!(l, t),
                (Some(_), Err(e)) => prop_assert!(false, "lanes took a block the tables reject: {}", e),
                (None, Ok(_)) => prop_assert!(!has_lanes()),
                (None, Err(_)) => {}
            }
        }
    }
}
