//! A block's coded timestamps made gaps once, by the decoder: each 32-bit
//! code becomes, in place, its event's gap in ticks (`unzigzag(code)` plus
//! its kind's base) when every gap of the block fits 32 signed bits
//! (nearly every block), and each chunk of [`CHUNK`] gaps is summed into
//! a key on the way. A pass over every time then adds one gap per event
//! (no unzigzag, no base looked up), as does a reader asking for one.

use crate::varint::unzigzag;
use std::mem::MaybeUninit;

mod planes;
pub(super) use planes::from_planes;

/// Events per key: [`Times::at`](super::Times::at) sums at most this many
/// gaps.
pub(super) const CHUNK: usize = 32;

/// A gap as kept (an `i32`'s bits) as the 64-bit wrapping number of
/// ticks it stands for.
#[inline(always)]
pub(super) fn gap(kept: u32) -> u64 {
    kept as i32 as i64 as u64
}

/// The gap of an event from its code and its kind's base (the wrapping
/// sum the format defines), as kept, if it fits 32 signed bits.
#[inline]
fn kept_gap(code: u32, base: u64) -> Option<u32> {
    let g = (unzigzag(code as u64) as u64).wrapping_add(base) as i64;
    i32::try_from(g).ok().map(|g| g as u32)
}

/// Makes every code of `codes` its event's gap in place (`tags`: the
/// events' kinds, as many), and writes `keys[j]`, the time before event
/// `j * CHUNK` (`start` plus the gaps before it times `unit`). `keys`
/// holds one per chunk, the last one partial.
///
/// `Err(done)`: the gap of an event at `done` or after it does not fit
/// 32 signed bits: `codes[..done]` are gaps, the rest are still codes,
/// and the keys are not all written.
pub(super) fn from_codes(
    codes: &mut [u32],
    tags: &[u8],
    bases: &[u64; 256],
    unit: u64,
    start: u64,
    keys: &mut [MaybeUninit<u64>],
) -> Result<(), usize> {
    assert_eq!(keys.len(), codes.len().div_ceil(CHUNK));
    let tags = &tags[..codes.len()];
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        if let Some(tables) = unsafe { avx2::Tables::of(bases) } {
            // SAFETY: the CPU has AVX2; the tables were made for `tags`.
            return unsafe { from_codes_avx2(codes, tags, bases, &tables, unit, start, keys) };
        }
    }
    from_codes_plain(codes, tags, bases, unit, start, keys)
}

/// [`from_codes`] with the AVX2 chunk where it applies.
///
/// # Safety
///
/// The CPU has AVX2; `tables` were made for `bases`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn from_codes_avx2(
    codes: &mut [u32],
    tags: &[u8],
    bases: &[u64; 256],
    tables: &avx2::Tables,
    unit: u64,
    start: u64,
    keys: &mut [MaybeUninit<u64>],
) -> Result<(), usize> {
    let mut before = start;
    let whole = codes.len() / CHUNK * CHUNK;
    let chunks = codes[..whole].chunks_exact_mut(CHUNK);
    for (j, (cc, tc)) in chunks.zip(tags[..whole].chunks_exact(CHUNK)).enumerate() {
        let i = j * CHUNK;
        keys[j].write(before);
        // SAFETY: the CPU has AVX2 (`# Safety`); the chunk holds `CHUNK`
        // codes and kinds; the tables are `bases`'.
        let sum = match unsafe { tables.chunk(cc, tc) } {
            Some(sum) => sum,
            None => match rare_chunk(cc, tc, bases) {
                Some(sum) => sum,
                None => return Err(i),
            },
        };
        before = before.wrapping_add((sum as u64).wrapping_mul(unit));
    }
    // The last, partial chunk.
    if let Some(key) = keys.get_mut(whole / CHUNK) {
        key.write(before);
        if rare_chunk(&mut codes[whole..], &tags[whole..], bases).is_none() {
            return Err(whole);
        }
    }
    Ok(())
}

/// [`from_codes`] a chunk at a time by [`chunk`].
fn from_codes_plain(
    codes: &mut [u32],
    tags: &[u8],
    bases: &[u64; 256],
    unit: u64,
    start: u64,
    keys: &mut [MaybeUninit<u64>],
) -> Result<(), usize> {
    let mut before = start;
    let chunks = codes.chunks_mut(CHUNK).zip(tags.chunks(CHUNK));
    for (j, ((cc, tc), key)) in chunks.zip(keys.iter_mut()).enumerate() {
        key.write(before);
        let Some(sum) = chunk(cc, tc, bases) else {
            return Err(j * CHUNK);
        };
        before = before.wrapping_add((sum as u64).wrapping_mul(unit));
    }
    Ok(())
}

/// [`chunk`], out of the AVX2 loop: a block's last chunk, and one with a
/// gap of 67 ms or more in nanoseconds, or a kind this version does not
/// know.
#[cold]
#[inline(never)]
fn rare_chunk(codes: &mut [u32], tags: &[u8], bases: &[u64; 256]) -> Option<i64> {
    chunk(codes, tags, bases)
}

/// One chunk made gaps (any length, any kinds and bases): the sum of its
/// gaps, or `None` (its codes left as they were) if one does not fit.
fn chunk(codes: &mut [u32], tags: &[u8], bases: &[u64; 256]) -> Option<i64> {
    let mut gaps = [0u32; CHUNK];
    let gaps = &mut gaps[..codes.len()];
    let mut sum = 0i64;
    for ((g, &c), &t) in gaps.iter_mut().zip(codes.iter()).zip(tags) {
        *g = kept_gap(c, bases[t as usize])?;
        sum = sum.wrapping_add(*g as i32 as i64);
    }
    codes.copy_from_slice(gaps);
    Some(sum)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::CHUNK;
    use std::arch::x86_64::*;

    /// Kinds the tables hold (every kind this version knows).
    pub(super) const KINDS: usize = 16;

    /// Bases below this make a gap whose 32-bit sum is near 0 exact:
    /// a code's `unzigzag` is within 32 signed bits, so with such a base
    /// the true gap is below `2^31 + 2^30`, and one that wrapped past
    /// `2^31` reads as below `-2^31 + 2^30` (see [`Tables::chunk`]).
    pub(super) const BASE_LIMIT: u64 = 1 << 30;

    /// Gaps a chunk sums in 32 bits: each below `2^26` either way, so
    /// the chunk's 32 of them sum within 32 signed bits.
    pub(super) const SMALL: i32 = 1 << 26;

    /// The wrapping sum of `v`'s eight 32-bit lanes (a chunk's gaps).
    ///
    /// # Safety
    ///
    /// The CPU has AVX2.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn lane_sum(v: __m256i) -> i32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        _mm_cvtsi128_si32(s)
    }

    /// The bases of the kinds below [`KINDS`], if every one is below
    /// [`BASE_LIMIT`] (what the lanes of both table forms can hold).
    pub(super) fn lane_bases(bases: &[u64; 256]) -> Option<&[u64]> {
        let known = &bases[..KINDS];
        known.iter().all(|&b| b < BASE_LIMIT).then_some(known)
    }

    /// The bases of the kinds below [`KINDS`], as two tables of eight
    /// 32-bit lanes (kinds 0-7, 8-15): two permutes and a blend look up
    /// eight events' bases.
    pub(super) struct Tables {
        low: __m256i,
        high: __m256i,
    }

    impl Tables {
        /// The tables of `bases`, if the bases of the kinds below
        /// [`KINDS`] are below [`BASE_LIMIT`].
        ///
        /// # Safety
        ///
        /// The CPU has AVX2.
        #[target_feature(enable = "avx2")]
        pub(super) unsafe fn of(bases: &[u64; 256]) -> Option<Tables> {
            let known = lane_bases(bases)?;
            let table = |from: usize| {
                let lanes: [u32; 8] = std::array::from_fn(|k| known[from + k] as u32);
                // SAFETY: `lanes` is 32 readable bytes.
                unsafe { _mm256_loadu_si256(lanes.as_ptr() as *const __m256i) }
            };
            Some(Tables {
                low: table(0),
                high: table(8),
            })
        }

        /// [`chunk`](super::chunk) of a whole chunk of kinds below
        /// [`KINDS`] whose gaps are all small (within [`SMALL`] either
        /// way): the gaps made in 32-bit lanes and summed in them; `None`
        /// (nothing written) for another, for `chunk` to make.
        ///
        /// Exact: a gap whose 32-bit sum wrapped (a true gap of `2^31` or
        /// more, below `2^31 + BASE_LIMIT`) reads as below
        /// `-2^31 + BASE_LIMIT`, far from small.
        ///
        /// # Safety
        ///
        /// The CPU has AVX2; `codes` and `tags` hold [`CHUNK`] entries.
        #[inline]
        #[target_feature(enable = "avx2")]
        pub(super) unsafe fn chunk(&self, codes: &mut [u32], tags: &[u8]) -> Option<i64> {
            debug_assert!(codes.len() == CHUNK && tags.len() == CHUNK);
            // SAFETY: `tags` holds `CHUNK` (32) kinds (`# Safety`).
            let kinds = unsafe { _mm256_loadu_si256(tags.as_ptr() as *const __m256i) };
            // A kind past the tables would read another's base.
            if _mm256_testz_si256(kinds, _mm256_set1_epi8(!(KINDS as u8 - 1) as i8)) == 0 {
                return None;
            }
            let one = _mm256_set1_epi32(1);
            let shift = _mm256_set1_epi32(SMALL);
            let zero = _mm256_setzero_si256();
            let mut gaps = [zero; CHUNK / 8];
            let (mut sum, mut spread) = (zero, zero);
            for (v, g) in gaps.iter_mut().enumerate() {
                // SAFETY: entries `8 v .. 8 v + 8` lie in both slices
                // (`# Safety`: `CHUNK` of each).
                unsafe {
                    let kinds = _mm_loadl_epi64(tags.as_ptr().add(8 * v) as *const __m128i);
                    let idx = _mm256_cvtepu8_epi32(kinds);
                    // Bits 0-2 of a kind pick its lane in both tables, bit
                    // 3 (moved to the sign bit) which table.
                    let low = _mm256_permutevar8x32_epi32(self.low, idx);
                    let high = _mm256_permutevar8x32_epi32(self.high, idx);
                    let pick = _mm256_castsi256_ps(_mm256_slli_epi32::<28>(idx));
                    let base = _mm256_castps_si256(_mm256_blendv_ps(
                        _mm256_castsi256_ps(low),
                        _mm256_castsi256_ps(high),
                        pick,
                    ));
                    let c = _mm256_loadu_si256(codes.as_ptr().add(8 * v) as *const __m256i);
                    let sign = _mm256_sub_epi32(zero, _mm256_and_si256(c, one));
                    let z = _mm256_xor_si256(_mm256_srli_epi32::<1>(c), sign);
                    *g = _mm256_add_epi32(z, base);
                    // Small: `g + SMALL` below `2 SMALL` as unsigned.
                    spread = _mm256_or_si256(spread, _mm256_add_epi32(*g, shift));
                    sum = _mm256_add_epi32(sum, *g);
                }
            }
            if _mm256_testz_si256(spread, _mm256_set1_epi32(!(2 * SMALL - 1))) == 0 {
                return None;
            }
            for (v, g) in gaps.iter().enumerate() {
                // SAFETY: as above (entries `8 v .. 8 v + 8` of `codes`).
                unsafe { _mm256_storeu_si256(codes.as_mut_ptr().add(8 * v) as *mut __m256i, *g) };
            }
            Some(lane_sum(sum) as i64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every event's gap (the format's wrapping sum) and the keys, the
    /// plain way.
    fn plain(
        codes: &[u32],
        tags: &[u8],
        bases: &[u64; 256],
        unit: u64,
        start: u64,
    ) -> (Vec<u64>, Vec<u64>) {
        let gaps: Vec<u64> = codes
            .iter()
            .zip(tags)
            .map(|(&c, &t)| (unzigzag(c as u64) as u64).wrapping_add(bases[t as usize]))
            .collect();
        let mut keys = Vec::new();
        let mut ts = start;
        for (i, &g) in gaps.iter().enumerate() {
            if i % CHUNK == 0 {
                keys.push(ts);
            }
            ts = ts.wrapping_add(g.wrapping_mul(unit));
        }
        (gaps, keys)
    }

    /// A code of a gap near a limit (`2^25`, `2^26` and `2^31`, either
    /// way), or any.
    fn spike() -> impl Strategy<Value = u32> {
        prop_oneof![
            any::<u32>(),
            (1u32 << 26) - 64..(1u32 << 26) + 64,
            (1u32 << 27) - 64..(1u32 << 27) + 64,
            u32::MAX - 64..=u32::MAX,
        ]
    }

    proptest! {
        /// Codes made gaps in place are each event's gap, and the keys
        /// the time before each chunk, whichever way a chunk was made
        /// (in 32-bit lanes or not; kinds and bases the tables hold or
        /// not); a block with a gap past 32 signed bits is made gaps up
        /// to a chunk before it, the rest left as codes.
        #[test]
        fn codes_made_gaps_are_the_format_s_gaps(
            events in proptest::collection::vec((0u32..4096, 0u8..16), 0..200),
            spikes in proptest::collection::vec((any::<prop::sample::Index>(), spike()), 0..3),
            later_kind in any::<bool>(),
            seed in any::<u64>(),
            base_width in prop_oneof![Just(8u32), Just(29), Just(30), Just(31), Just(32), Just(64)],
            near_2_32 in any::<bool>(),
            unit in prop_oneof![Just(1u64), 2u64..1000, any::<u64>()],
            start in any::<u64>(),
        ) {
            let bases: [u64; 256] = std::array::from_fn(|k| {
                let b = seed.wrapping_mul(k as u64 * 2 + 1).rotate_left(k as u32);
                if near_2_32 && k == 3 {
                    // A gap past 32 bits whose low 32 are small.
                    return (1 << 32) - (b & 0xFFFF) - 1;
                }
                b.checked_shr(64 - base_width).unwrap_or(0)
            });
            let (mut codes, mut tags): (Vec<u32>, Vec<u8>) = events.into_iter().unzip();
            if !codes.is_empty() {
                let n = codes.len();
                for (i, c) in spikes {
                    codes[i.index(n)] = c;
                }
                if later_kind {
                    let i = (seed % tags.len() as u64) as usize;
                    tags[i] = 200;
                }
            }
            let (want, want_keys) = plain(&codes, &tags, &bases, unit, start);
            let mut made = codes.clone();
            let mut keys = vec![MaybeUninit::new(0u64); codes.len().div_ceil(CHUNK)];
            let fits = |g: u64| i32::try_from(g as i64).is_ok();
            match from_codes(&mut made, &tags, &bases, unit, start, &mut keys) {
                Ok(()) => {
                    prop_assert!(want.iter().all(|&g| fits(g)));
                    let got: Vec<u64> = made.iter().map(|&g| gap(g)).collect();
                    prop_assert_eq!(got, want);
                    // SAFETY: every key was written (`Ok`), as they all were to start.
                    let keys: Vec<u64> = keys.iter().map(|k| unsafe { k.assume_init() }).collect();
                    prop_assert_eq!(keys, want_keys);
                }
                Err(done) => {
                    prop_assert_eq!(done % CHUNK, 0);
                    let bad = want.iter().position(|&g| !fits(g));
                    prop_assert!(bad.is_some_and(|b| b / CHUNK == done / CHUNK), "{:?} {}", bad, done);
                    let got: Vec<u64> = made[..done].iter().map(|&g| gap(g)).collect();
                    prop_assert_eq!(&got[..], &want[..done]);
                    prop_assert_eq!(&made[done..], &codes[done..]);
                }
            }
        }
    }
}
