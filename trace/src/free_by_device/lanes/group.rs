//! The allocs of a block whose devices are all below [`LANES`], grouped
//! by device for `resolve_avx2`: counted per device, then each put at
//! its device's next place, in event order.

use super::LANES;
use std::arch::x86_64::*;

/// The allocs of each device (lane `d`: device `d`'s), or `None` when a
/// device is past the [`LANES`].
///
/// Eight devices at a time, each turned into a 4-bit count at its
/// device's nibble of a 32-bit lane (1 shifted left by 4 times the
/// device) and added up, so each lane holds eight nibble counters; the
/// devices are or-ed together to find one past the lanes. Some six ops
/// per eight allocs: each device compared with every lane's device took
/// 17. Before they can reach 16 the nibbles are added into byte counters
/// (the even devices' and the odd ones'), and those into the counts
/// before they can reach 256.
///
/// # Safety
///
/// The CPU has AVX2.
#[inline(always)]
pub(super) unsafe fn alloc_counts(devices: &[u32]) -> Option<__m256i> {
    // Eights per nibble round (a nibble counts 15), and nibble rounds per
    // byte round (17 * 15 = 255: a byte counts 255).
    const EIGHTS: usize = 15;
    const NIBBLE_ROUNDS: usize = 17;
    let mut counts = [0u32; LANES as usize];
    let zero = _mm256_setzero_si256();
    let (one, seven) = (_mm256_set1_epi32(1), _mm256_set1_epi32(LANES as i32 - 1));
    let low_nibbles = _mm256_set1_epi8(0x0F);
    let mut all = zero;
    let mut eights = devices.chunks_exact(LANES as usize);
    let mut more = true;
    while more {
        // Byte `j` of each lane: device `2 j`'s count (`even`), `2 j + 1`'s (`odd`).
        let (mut even, mut odd) = (zero, zero);
        for _ in 0..NIBBLE_ROUNDS {
            let mut nibbles = zero;
            let mut taken = 0;
            for e in (&mut eights).take(EIGHTS) {
                // SAFETY: `e` is eight u32s, 32 bytes.
                let v = unsafe { _mm256_loadu_si256(e.as_ptr() as *const __m256i) };
                all = _mm256_or_si256(all, v);
                let shift = _mm256_slli_epi32::<2>(_mm256_and_si256(v, seven));
                nibbles = _mm256_add_epi32(nibbles, _mm256_sllv_epi32(one, shift));
                taken += 1;
            }
            even = _mm256_add_epi8(even, _mm256_and_si256(nibbles, low_nibbles));
            let high = _mm256_srli_epi32::<4>(nibbles);
            odd = _mm256_add_epi8(odd, _mm256_and_si256(high, low_nibbles));
            if taken < EIGHTS {
                more = false;
                break;
            }
        }
        let (mut e, mut o) = ([0u8; 32], [0u8; 32]);
        // SAFETY: `e` and `o` are 32 bytes each.
        unsafe {
            _mm256_storeu_si256(e.as_mut_ptr() as *mut __m256i, even);
            _mm256_storeu_si256(o.as_mut_ptr() as *mut __m256i, odd);
        }
        for (k, (&e, &o)) in e.iter().zip(&o).enumerate() {
            counts[2 * (k % 4)] += e as u32;
            counts[2 * (k % 4) + 1] += o as u32;
        }
    }
    // (The nibbles were counted by each device's low three bits.)
    if _mm256_testz_si256(all, _mm256_set1_epi32(!(LANES as i32 - 1))) == 0 {
        return None;
    }
    for &d in eights.remainder() {
        *counts.get_mut(d as usize)? += 1;
    }
    // SAFETY: `counts` is eight u32s, 32 bytes.
    Some(unsafe { _mm256_loadu_si256(counts.as_ptr() as *const __m256i) })
}

/// Puts each alloc's id (`alloc_ids`, as many as `devices`) into `ids`
/// at its device's place: device `d`'s allocs, in event order, from
/// `start[d]` on.
///
/// Eight allocs at a time, as `eight` places frees: an alloc's place is
/// its device's lane plus the earlier allocs of its device among the
/// eight, and each lane moves on by its device's allocs among them, both
/// counted by compares of the devices turned within the halves of the
/// vector (in-half shuffles). One alloc at a time, each took a lane
/// permute (vpermd: on Zen 3 one issues in two cycles, and the loop ran
/// at some 3.5 cycles an alloc); eight take one.
///
/// # Safety
///
/// The CPU has AVX2; every device is below [`LANES`]; `start[d]` is the
/// number of allocs of the devices below `d`, and `ids` holds them all.
#[inline(always)]
pub(super) unsafe fn group(devices: &[u32], alloc_ids: &[u64], start: &[u32; 8], ids: &mut [u64]) {
    debug_assert!(devices.len() == alloc_ids.len() && ids.len() == devices.len());
    let iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let iota_swapped = _mm256_setr_epi32(4, 5, 6, 7, 0, 1, 2, 3);
    // Lane `p` of a half meets the half's lane `(p + t) % 4` in turn `t`
    // (1 to 3 here); an earlier one in the turns that wrap.
    let wrapped = [
        _mm256_setr_epi32(0, 0, 0, -1, 0, 0, 0, -1),
        _mm256_setr_epi32(0, 0, -1, -1, 0, 0, -1, -1),
        _mm256_setr_epi32(0, -1, -1, -1, 0, -1, -1, -1),
    ];
    // SAFETY: `start` is eight u32s, 32 bytes.
    let mut next = unsafe { _mm256_loadu_si256(start.as_ptr() as *const __m256i) };
    let eights = devices.len() / 8 * 8;
    for k in (0..eights).step_by(8) {
        // SAFETY: allocs `k..k + 8` exist (`k + 8 <= eights`).
        let d = unsafe { _mm256_loadu_si256(devices.as_ptr().add(k) as *const __m256i) };
        let turned = [
            d,
            _mm256_shuffle_epi32::<0x39>(d),
            _mm256_shuffle_epi32::<0x4E>(d),
            _mm256_shuffle_epi32::<0x93>(d),
        ];
        // Compares give -1 where they match: these sums are negative.
        let eq = _mm256_cmpeq_epi32;
        let sum4 = |a: __m256i, b: __m256i, c: __m256i, e: __m256i| {
            _mm256_add_epi32(_mm256_add_epi32(a, b), _mm256_add_epi32(c, e))
        };
        // The earlier allocs of each one's device: in its own half, and
        // (for the high half) the low half's, compared in the low half
        // with the high half's devices and moved up a half.
        let in_half = _mm256_add_epi32(
            _mm256_and_si256(eq(d, turned[1]), wrapped[0]),
            _mm256_add_epi32(
                _mm256_and_si256(eq(d, turned[2]), wrapped[1]),
                _mm256_and_si256(eq(d, turned[3]), wrapped[2]),
            ),
        );
        let d_high = _mm256_permute2x128_si256::<0x11>(d, d);
        let low_to_high = sum4(
            eq(d_high, turned[0]),
            eq(d_high, turned[1]),
            eq(d_high, turned[2]),
            eq(d_high, turned[3]),
        );
        let earlier = _mm256_add_epi32(
            in_half,
            _mm256_permute2x128_si256::<0x08>(low_to_high, low_to_high),
        );
        let to = _mm256_sub_epi32(_mm256_permutevar8x32_epi32(next, d), earlier);
        // Each lane's allocs among the eight: the other half's lanes
        // counted in this half's, then swapped into place.
        let own = sum4(
            eq(iota, turned[0]),
            eq(iota, turned[1]),
            eq(iota, turned[2]),
            eq(iota, turned[3]),
        );
        let other = sum4(
            eq(iota_swapped, turned[0]),
            eq(iota_swapped, turned[1]),
            eq(iota_swapped, turned[2]),
            eq(iota_swapped, turned[3]),
        );
        next = _mm256_sub_epi32(
            next,
            _mm256_add_epi32(own, _mm256_permute2x128_si256::<0x01>(other, other)),
        );
        let mut at = [0u32; 8];
        // SAFETY: `at` is eight u32s, 32 bytes.
        unsafe { _mm256_storeu_si256(at.as_mut_ptr() as *mut __m256i, to) };
        for (j, &t) in at.iter().enumerate() {
            debug_assert!((t as usize) < ids.len());
            // SAFETY: alloc `k + j` exists; `t` is its device's place:
            // `start[d]` plus its device's earlier allocs, below the
            // device's count (`# Safety`), so in `ids`.
            unsafe { *ids.get_unchecked_mut(t as usize) = *alloc_ids.get_unchecked(k + j) };
        }
    }
    // The rest one at a time: a lane permute and move on each.
    for (&d, &id) in devices[eights..].iter().zip(&alloc_ids[eights..]) {
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
        /// Each device's ids lie from its start on, in event order, eight
        /// allocs at a time and the rest one at a time (any devices below
        /// the lanes, runs of one device).
        #[test]
        fn group_puts_each_device_s_ids_at_its_places(
            devices in proptest::collection::vec(prop_oneof![4 => 0u32..8, 1 => Just(3u32)], 0..300),
            one_device in any::<bool>(),
        ) {
            prop_assume!(std::arch::is_x86_feature_detected!("avx2"));
            let mut devices = devices;
            if one_device {
                devices.fill(3);
            }
            let n = devices.len();
            let alloc_ids: Vec<u64> = (0..n as u64).map(|i| 1000 + i).collect();
            let per_device: Vec<Vec<u64>> = (0..LANES)
                .map(|d| (0..n).filter(|&i| devices[i] == d).map(|i| alloc_ids[i]).collect())
                .collect();
            let mut start = [0u32; 8];
            for d in 1..8 {
                start[d] = start[d - 1] + per_device[d - 1].len() as u32;
            }
            let mut ids = vec![0u64; n];
            // SAFETY: the CPU has AVX2 (assumed above); every device is
            // below 8, `start` are their counts' running sums.
            unsafe { group(&devices, &alloc_ids, &start, &mut ids) };
            let want: Vec<u64> = per_device.concat();
            prop_assert_eq!(ids, want);
        }

        /// Each lane counts its device's allocs (any number of devices:
        /// whole eights and a rest, past the 2040 a byte round holds, runs
        /// of one device), and a device past them gives none.
        #[test]
        fn alloc_counts_are_each_device_s_allocs(
            devices in proptest::collection::vec(prop_oneof![4 => 0u32..8, 1 => Just(3u32)], 0..4200),
            past in proptest::option::of((any::<prop::sample::Index>(), LANES..=u32::MAX)),
            one_device in any::<bool>(),
        ) {
            prop_assume!(std::arch::is_x86_feature_detected!("avx2"));
            let mut devices = devices;
            if one_device {
                devices.fill(3);
            }
            if let (Some((at, d)), false) = (past, devices.is_empty()) {
                let k = at.index(devices.len());
                devices[k] = d;
            }
            // SAFETY: the CPU has AVX2 (assumed above).
            let counts = unsafe { alloc_counts(&devices) };
            if devices.iter().any(|&d| d >= LANES) {
                prop_assert!(counts.is_none());
                return Ok(());
            }
            let counts = counts.unwrap();
            let mut got = [0u32; 8];
            // SAFETY: `got` is eight u32s, 32 bytes.
            unsafe { _mm256_storeu_si256(got.as_mut_ptr() as *mut __m256i, counts) };
            let want: [u32; 8] =
                std::array::from_fn(|d| devices.iter().filter(|&&x| x == d as u32).count() as u32);
            prop_assert_eq!(got, want);
        }
    }
}
