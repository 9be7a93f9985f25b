//! Move-to-front in the reader's 4-way caches (recent sites per name,
//! recent sizes per site: FORMAT.md §5.1) as one shuffle of the whole
//! cache line, instead of a select per entry. Place `p` < 4 moves entry
//! `p` to the front (the ones before it move one place back); place 4
//! (new) puts a new value first and drops the last entry.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m128i, __m256i, _mm256_blend_epi32, _mm256_castsi128_si256, _mm256_castsi256_si128,
    _mm256_loadu_si256, _mm256_permutevar8x32_epi32, _mm256_storeu_si256, _mm_cvtsi128_si64,
    _mm_cvtsi64_si128, _mm_load_si128, _mm_shuffle_epi8,
};

/// Which entry lands in each place after a move-to-front of place `p`
/// (rows 5–7 repeat row 4: callers mask the place with 7).
const ORDER: [[u8; 4]; 8] = [
    [0, 1, 2, 3],
    [1, 0, 2, 3],
    [2, 0, 1, 3],
    [3, 0, 1, 2],
    // New: place 0 is overwritten, the others move back.
    [0, 0, 1, 2],
    [0, 0, 1, 2],
    [0, 0, 1, 2],
    [0, 0, 1, 2],
];

/// `ORDER` as byte shuffles of four u32 entries.
#[repr(align(16))]
struct Bytes16([[u8; 16]; 8]);
static SHUFFLE_U32: Bytes16 = Bytes16({
    let mut t = [[0u8; 16]; 8];
    let mut p = 0;
    while p < 8 {
        let mut lane = 0;
        while lane < 4 {
            let mut b = 0;
            while b < 4 {
                t[p][lane * 4 + b] = ORDER[p][lane] * 4 + b as u8;
                b += 1;
            }
            lane += 1;
        }
        p += 1;
    }
    t
});

/// `ORDER` as u32-lane permutations of four u64 entries; row `p` is
/// `ORDER[p & 7]`, so a place with a flag in bit 3 (by_site's repeat bit)
/// reads its row without a mask.
#[repr(align(32))]
struct Lanes8([[u32; 8]; 16]);
static PERMUTE_U64: Lanes8 = Lanes8({
    let mut t = [[0u32; 8]; 16];
    let mut p = 0;
    while p < 16 {
        let mut lane = 0;
        while lane < 4 {
            t[p][lane * 2] = ORDER[p & 7][lane] as u32 * 2;
            t[p][lane * 2 + 1] = ORDER[p & 7][lane] as u32 * 2 + 1;
            lane += 1;
        }
        p += 1;
    }
    t
});

/// The portable move-to-front: the value now first, which is `new` when
/// `place` is 4, else entry `place`.
#[inline(always)]
pub(crate) fn mtf_u32(w: &mut [u32; 4], place: u8, new: u32) -> u32 {
    let i = (place as usize).min(3);
    let v = if place >= 4 { new } else { w[i] };
    let (w0, w1, w2, w3) = (w[0], w[1], w[2], w[3]);
    *w = [
        v,
        if i >= 1 { w0 } else { w1 },
        if i >= 2 { w1 } else { w2 },
        if i >= 3 { w2 } else { w3 },
    ];
    v
}

/// `mtf_u32` for u64 entries, where a new value is `w[0] + delta`
/// (wrapping).
#[inline(always)]
pub(crate) fn mtf_u64(w: &mut [u64; 4], place: u8, delta: u64) -> u64 {
    let i = (place as usize).min(3);
    let (w0, w1, w2, w3) = (w[0], w[1], w[2], w[3]);
    let v = if place >= 4 {
        w0.wrapping_add(delta)
    } else {
        w[i]
    };
    *w = [
        v,
        if i >= 1 { w0 } else { w1 },
        if i >= 2 { w1 } else { w2 },
        if i >= 3 { w2 } else { w3 },
    ];
    v
}

/// The move-to-front of place `place` (4: new, its value not yet in
/// place 0) on four u32 entries held in a register: one byte shuffle.
///
/// # Safety
/// The CPU must have AVX2, and `place` is below 8 (a row of `ORDER`).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn mtf_u32_shuffle(x: __m128i, place: u8) -> __m128i {
    debug_assert!(place < 8);
    // SAFETY: `place` names one of the 8 rows, each 16 bytes, aligned.
    let m = unsafe {
        _mm_load_si128(SHUFFLE_U32.0.get_unchecked(place as usize).as_ptr() as *const __m128i)
    };
    _mm_shuffle_epi8(x, m)
}

/// `mtf_u64_avx2` of a place below 4 (a value used lately): the entries
/// only move, no new one comes in, so nothing is blended in (the common
/// case: callers branch on a new value).
///
/// `place & 7` is the place; bit 3 may hold a flag of the caller's.
///
/// # Safety
/// The CPU must have AVX2, and `place` is below 16 (a row of
/// `PERMUTE_U64`; the row is read unmasked, a mask per alloc being an
/// instruction in six of the loop's).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn mtf_u64_avx2_recent(w: &mut [u64; 4], place: u8) -> __m128i {
    debug_assert!(place < 16 && place & 7 < 4);
    // SAFETY: `w` is 32 bytes; `place` names one of the 16 table rows
    // (`# Safety`), each 32 bytes, aligned.
    let x = _mm256_loadu_si256(w.as_ptr() as *const __m256i);
    let m = unsafe {
        _mm256_loadu_si256(PERMUTE_U64.0.get_unchecked(place as usize).as_ptr() as *const __m256i)
    };
    let y = _mm256_permutevar8x32_epi32(x, m);
    _mm256_storeu_si256(w.as_mut_ptr() as *mut __m256i, y);
    // The front in the low 8 bytes: callers store it from the register.
    _mm256_castsi256_si128(y)
}

/// `mtf_u64` as one lane permutation (`place` at most 4); the value now
/// first in the low 8 bytes of the result (callers store it from the
/// register).
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn mtf_u64_avx2(w: &mut [u64; 4], place: u8, delta: u64) -> __m128i {
    let p = (place & 7) as usize;
    // SAFETY: `w` is 32 bytes; the table rows are 32 bytes, aligned.
    let x = _mm256_loadu_si256(w.as_ptr() as *const __m256i);
    let m = _mm256_loadu_si256(PERMUTE_U64.0[p].as_ptr() as *const __m256i);
    let y = _mm256_permutevar8x32_epi32(x, m);
    let front = _mm_cvtsi128_si64(_mm256_castsi256_si128(y)) as u64;
    // A new value is the old front plus `delta` (the front stays in place 0).
    let v = front.wrapping_add(delta & ((place >= 4) as u64).wrapping_neg());
    let z = _mm256_blend_epi32::<0b11>(y, _mm256_castsi128_si256(_mm_cvtsi64_si128(v as i64)));
    _mm256_storeu_si256(w.as_mut_ptr() as *mut __m256i, z);
    _mm256_castsi256_si128(z)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The low 8 bytes of `x`, as the loops store them.
    fn front(x: __m128i) -> u64 {
        // SAFETY: an __m128i is 16 plain bytes.
        unsafe { std::mem::transmute::<__m128i, [u64; 2]>(x)[0] }
    }

    #[test]
    fn every_place_moves_the_same_entries_as_the_portable_code() {
        // Place 2 of [10, 20, 30, 40]: 30 to the front, 10 and 20 back.
        let mut w = [10u32, 20, 30, 40];
        assert_eq!(mtf_u32(&mut w, 2, 99), 30);
        assert_eq!(w, [30, 10, 20, 40]);
        // New: 99 first, 40 dropped.
        let mut w = [10u32, 20, 30, 40];
        assert_eq!(mtf_u32(&mut w, 4, 99), 99);
        assert_eq!(w, [99, 10, 20, 30]);
        // u64: a new value is the front plus the delta (wrapping).
        let mut w = [1u64 << 40, 2, 3, 4];
        assert_eq!(mtf_u64(&mut w, 4, u64::MAX), (1 << 40) - 1);
        assert_eq!(w, [(1 << 40) - 1, 1 << 40, 2, 3]);
        if !crate::decode::fast_cpu() {
            return;
        }
        for place in 0..=4u8 {
            let mut a = [7u32, 8, 9, u32::MAX];
            let v = mtf_u32(&mut a, place, 5);
            // SAFETY: the CPU has AVX2 (checked above); `place < 8`.
            let b: [u32; 4] = unsafe {
                let y = mtf_u32_shuffle(
                    std::mem::transmute::<[u32; 4], __m128i>([7, 8, 9, u32::MAX]),
                    place,
                );
                std::mem::transmute(y)
            };
            // The same entries moved; a new value (place 4) is the caller's
            // to put first.
            let b = if place == 4 { [5, b[1], b[2], b[3]] } else { b };
            assert_eq!((b[0], b), (v, a), "place {place}");
            let (mut a, mut b) = ([u64::MAX, 1 << 33, 9, 10], [u64::MAX, 1 << 33, 9, 10]);
            // SAFETY: as above.
            let got = front(unsafe { mtf_u64_avx2(&mut b, place, 3) });
            assert_eq!(got, mtf_u64(&mut a, place, 3), "place {place}");
            assert_eq!(a, b, "place {place}");
            if place < 4 {
                // A recent value: the same moves without a new one, with
                // bit 3 (a caller's flag) set or not.
                for flag in [0, 8] {
                    let (mut a, mut b) = ([u64::MAX, 1 << 33, 9, 10], [u64::MAX, 1 << 33, 9, 10]);
                    // SAFETY: as above; `place | flag < 16`.
                    let got = unsafe { mtf_u64_avx2_recent(&mut b, place | flag) };
                    let got = front(got);
                    assert_eq!((got, b), (mtf_u64(&mut a, place, 3), a), "place {place}");
                }
            }
        }
    }
}
