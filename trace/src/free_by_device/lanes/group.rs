//! The allocs of a block whose devices are all below [`LANES`], grouped
//! by device for `resolve_avx2`: counted per device, then each put at
//! its device's next place, in event order.

use super::LANES;
use std::arch::x86_64::*;

/// The allocs of each device below [`LANES`] (lane `d`: device `d`'s);
/// a device past them is counted in no lane.
///
/// Eight devices at a time, each compared with every lane's device into
/// a sum of its own: one running sum of every device's compare (the way
/// this was done before) made a chain of an add per alloc.
///
/// # Safety
///
/// The CPU has AVX2.
#[inline(always)]
pub(super) unsafe fn alloc_counts(devices: &[u32]) -> __m256i {
    let zero = _mm256_setzero_si256();
    // Lane `j` of `by[d]`: how many of the devices at `j` mod 8 are `d`
    // (less: a compare's all-ones lane is -1).
    let mut by = [zero; LANES as usize];
    let mut eights = devices.chunks_exact(LANES as usize);
    for e in &mut eights {
        // SAFETY: `e` is eight u32s, 32 bytes.
        let v = unsafe { _mm256_loadu_si256(e.as_ptr() as *const __m256i) };
        for (d, b) in by.iter_mut().enumerate() {
            *b = _mm256_sub_epi32(*b, _mm256_cmpeq_epi32(v, _mm256_set1_epi32(d as i32)));
        }
    }
    // Each `by[d]`'s lanes summed into lane `d`: pairs added within each
    // half twice, then the two halves added.
    let [b0, b1, b2, b3, b4, b5, b6, b7] = by;
    let low = _mm256_hadd_epi32(_mm256_hadd_epi32(b0, b1), _mm256_hadd_epi32(b2, b3));
    let high = _mm256_hadd_epi32(_mm256_hadd_epi32(b4, b5), _mm256_hadd_epi32(b6, b7));
    let mut counts = _mm256_add_epi32(
        _mm256_permute2x128_si256::<0x20>(low, high),
        _mm256_permute2x128_si256::<0x31>(low, high),
    );
    let iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for &d in eights.remainder() {
        counts = _mm256_sub_epi32(
            counts,
            _mm256_cmpeq_epi32(iota, _mm256_set1_epi32(d as i32)),
        );
    }
    counts
}

/// Puts each alloc's id (`alloc_ids`, as many as `devices`) into `ids`
/// at its device's place: device `d`'s allocs, in event order, from
/// `start[d]` on. Each goes to its device's lane, which then moves one
/// on.
///
/// (Eight allocs at a time, as `eight` does for frees, came out no
/// faster here: the permute it saves per alloc is paid back in the
/// compares that find the earlier allocs of each device among the eight
/// and each device's count in them.)
///
/// # Safety
///
/// The CPU has AVX2; every device is below [`LANES`]; `start[d]` is the
/// number of allocs of the devices below `d`, and `ids` holds them all.
#[inline(always)]
pub(super) unsafe fn group(devices: &[u32], alloc_ids: &[u64], start: &[u32; 8], ids: &mut [u64]) {
    debug_assert!(devices.len() == alloc_ids.len() && ids.len() == devices.len());
    let iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    // SAFETY: `start` is eight u32s, 32 bytes.
    let mut next = unsafe { _mm256_loadu_si256(start.as_ptr() as *const __m256i) };
    for (&d, &id) in devices.iter().zip(alloc_ids) {
        let sel = _mm256_set1_epi32(d as i32);
        let to = _mm256_cvtsi256_si32(_mm256_permutevar8x32_epi32(next, sel)) as u32 as usize;
        debug_assert!(to < ids.len());
        // SAFETY: device `d` (below 8) has its allocs from `start[d]`
        // on, within `ids` (`# Safety`); its lane runs through them.
        unsafe { *ids.get_unchecked_mut(to) = id };
        next = _mm256_sub_epi32(next, _mm256_cmpeq_epi32(iota, sel));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Each lane counts its device's allocs, and no lane a device past
        /// them, for any number of devices (whole eights and a rest).
        #[test]
        fn alloc_counts_are_each_device_s_allocs(
            devices in proptest::collection::vec(prop_oneof![8 => 0u32..8, 1 => any::<u32>()], 0..60),
        ) {
            prop_assume!(std::arch::is_x86_feature_detected!("avx2"));
            // SAFETY: the CPU has AVX2 (assumed above).
            let counts = unsafe { alloc_counts(&devices) };
            let mut got = [0u32; 8];
            // SAFETY: `got` is eight u32s, 32 bytes.
            unsafe { _mm256_storeu_si256(got.as_mut_ptr() as *mut __m256i, counts) };
            let want: [u32; 8] =
                std::array::from_fn(|d| devices.iter().filter(|&&x| x == d as u32).count() as u32);
            prop_assert_eq!(got, want);
        }
    }
}
