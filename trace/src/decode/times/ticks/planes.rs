//! The TS column's byte planes made gaps in one pass (AVX2): each chunk's
//! codes are put together from their planes in registers and made gaps
//! there. Before, the planes were gathered into codes (`column_values_u32`:
//! a pass writing 4 bytes an event) and [`from_codes`](super::from_codes)
//! read them back, looking each event's base up by two lane permutes per
//! eight events (`vpermd`: one issue in two cycles on Zen 3). Here the
//! bases are looked up a byte at a time by in-half byte shuffles, and the
//! bytes of codes and bases are interleaved into 32-bit lanes by in-half
//! unpacks.

use super::{chunk, CHUNK};
use std::mem::MaybeUninit;

/// [`from_codes`](super::from_codes) of the codes held in `w` byte planes
/// (`w` 1 to 4; `planes`: `w * n` bytes, `n` = `tags.len()`, as the TS column
/// stores them) into `out` (`n` entries): every entry of `out` is
/// written, with the gaps, keys and `Err` that `from_codes` makes of the
/// gathered codes. `None` (nothing written) when the CPU lacks AVX2 or a
/// base of a kind below 16 is too large for the 32-bit lanes: the caller
/// gathers the codes and calls `from_codes`.
pub(in crate::decode) fn from_planes(
    (w, planes): (usize, &[u8]),
    tags: &[u8],
    bases: &[u64; 256],
    unit: u64,
    start: u64,
    out: &mut [MaybeUninit<u32>],
    keys: &mut [MaybeUninit<u64>],
) -> Option<Result<(), usize>> {
    let n = tags.len();
    assert!(out.len() == n && planes.len() == w * n && keys.len() == n.div_ceil(CHUNK));
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        let tables = unsafe { avx2::ByteTables::of(bases) }?;
        let args = (tags, bases, &tables, unit, start, out, keys);
        // SAFETY: the CPU has AVX2; `planes` holds `w` planes of `n`
        // bytes (asserted above); the tables are `bases`'.
        return Some(unsafe {
            match w {
                1 => from_planes_avx2::<1>(planes, args),
                2 => from_planes_avx2::<2>(planes, args),
                3 => from_planes_avx2::<3>(planes, args),
                4 => from_planes_avx2::<4>(planes, args),
                _ => return None,
            }
        });
    }
    let _ = (w, planes, bases, unit, start, out, keys);
    None
}

/// The codes of events `from..to` from their `W` planes into `out`.
fn codes_of<const W: usize>(p: &[&[u8]; W], from: usize, to: usize, out: &mut [MaybeUninit<u32>]) {
    for (i, o) in out[from..to].iter_mut().enumerate() {
        let mut v = 0u32;
        for (j, plane) in p.iter().enumerate() {
            v |= (plane[from + i] as u32) << (8 * j);
        }
        o.write(v);
    }
}

/// `out[from..to]`, every entry written.
///
/// # Safety
///
/// Entries `from..to` of `out` were written.
unsafe fn written(out: &mut [MaybeUninit<u32>], from: usize, to: usize) -> &mut [u32] {
    let part = &mut out[from..to];
    // SAFETY: every entry of `part` was written (`# Safety`), and a
    // `MaybeUninit<u32>` written is a `u32` (same layout).
    unsafe { &mut *(part as *mut [MaybeUninit<u32>] as *mut [u32]) }
}

/// The whole chunk of events `i..i + CHUNK` as `from_codes` makes one its
/// lanes do not (a kind it does not know, a gap of 67 ms or more in
/// nanoseconds): codes gathered, then made gaps; on `Err(i)` (a gap past
/// 32 signed bits) every event from `i` on is left a code, as `from_codes`
/// leaves them. Out of the loop, which it would crowd (it kept some 60
/// instructions of bounds for it in every chunk).
#[cold]
#[inline(never)]
fn rare_chunk<const W: usize>(
    p: &[&[u8]; W],
    i: usize,
    tags: &[u8],
    bases: &[u64; 256],
    out: &mut [MaybeUninit<u32>],
) -> Result<i64, usize> {
    codes_of(p, i, i + CHUNK, out);
    // SAFETY: `codes_of` wrote entries `i..i + CHUNK`.
    let codes = unsafe { written(out, i, i + CHUNK) };
    match chunk(codes, &tags[i..i + CHUNK], bases) {
        Some(sum) => Ok(sum),
        None => {
            codes_of(p, i + CHUNK, tags.len(), out);
            Err(i)
        }
    }
}

/// What [`from_planes_avx2`] takes besides the planes.
#[cfg(target_arch = "x86_64")]
type Args<'a> = (
    &'a [u8],
    &'a [u64; 256],
    &'a avx2::ByteTables,
    u64,
    u64,
    &'a mut [MaybeUninit<u32>],
    &'a mut [MaybeUninit<u64>],
);

/// [`from_planes`] with `W` planes, a chunk of [`CHUNK`] at a time in
/// registers where the chunk's kinds and gaps allow it, else as
/// `from_codes` makes it (codes gathered first).
///
/// # Safety
///
/// The CPU has AVX2; `planes` holds `W` planes of `tags.len()` bytes;
/// `out` holds `tags.len()` entries and `keys` one per chunk; the tables
/// are `bases`'.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn from_planes_avx2<const W: usize>(
    planes: &[u8],
    (tags, bases, tables, unit, start, out, keys): Args<'_>,
) -> Result<(), usize> {
    let n = tags.len();
    let p: [&[u8]; W] = std::array::from_fn(|j| &planes[j * n..(j + 1) * n]);
    let mut before = start;
    let whole = n / CHUNK * CHUNK;
    for (j, key) in keys[..whole / CHUNK].iter_mut().enumerate() {
        let i = j * CHUNK;
        key.write(before);
        // SAFETY: the CPU has AVX2 (`# Safety`); events `i..i + CHUNK`
        // lie in every plane, in `tags` and in `out`.
        let fast =
            unsafe { tables.chunk::<W>(&p, i, tags.as_ptr().add(i), out.as_mut_ptr().add(i)) };
        let sum = match fast {
            Some(sum) => sum,
            None => rare_chunk(&p, i, tags, bases, out)?,
        };
        before = before.wrapping_add((sum as u64).wrapping_mul(unit));
    }
    // The last, partial chunk.
    if let Some(key) = keys.get_mut(whole / CHUNK) {
        key.write(before);
        codes_of(&p, whole, n, out);
        // SAFETY: `codes_of` wrote entries `whole..n`.
        if chunk(unsafe { written(out, whole, n) }, &tags[whole..], bases).is_none() {
            return Err(whole);
        }
    }
    Ok(())
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::super::avx2::{lane_bases, lane_sum, KINDS, SMALL};
    use super::CHUNK;
    use std::arch::x86_64::*;

    /// Byte `b` of the bases of the kinds below [`KINDS`] (16), in both
    /// halves of `bytes[b]`: a byte shuffle by 32 events' kinds looks up
    /// that byte of each one's base.
    pub(super) struct ByteTables {
        bytes: [__m256i; 4],
    }

    /// The four byte vectors' bytes as 32-bit lanes, a byte of each (the
    /// first vector's the lowest). Lane order: vector `v` holds events
    /// `4 v .. 4 v + 4` in its low half and `16 + 4 v .. 20 + 4 v` in its
    /// high half (in-half unpacks keep each half's bytes in it).
    ///
    /// # Safety
    ///
    /// The CPU has AVX2.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn dwords([a0, a1, a2, a3]: [__m256i; 4]) -> [__m256i; 4] {
        let (lo01, hi01) = (_mm256_unpacklo_epi8(a0, a1), _mm256_unpackhi_epi8(a0, a1));
        let (lo23, hi23) = (_mm256_unpacklo_epi8(a2, a3), _mm256_unpackhi_epi8(a2, a3));
        [
            _mm256_unpacklo_epi16(lo01, lo23),
            _mm256_unpackhi_epi16(lo01, lo23),
            _mm256_unpacklo_epi16(hi01, hi23),
            _mm256_unpackhi_epi16(hi01, hi23),
        ]
    }

    impl ByteTables {
        /// The tables of `bases`, if the bases of the kinds below
        /// [`KINDS`] are below the lanes' limit ([`lane_bases`], as `from_codes`' lanes need).
        ///
        /// # Safety
        ///
        /// The CPU has AVX2.
        #[target_feature(enable = "avx2")]
        pub(super) unsafe fn of(bases: &[u64; 256]) -> Option<ByteTables> {
            let known = lane_bases(bases)?;
            let table = |b: usize| {
                let bytes: [u8; 32] = std::array::from_fn(|k| (known[k % KINDS] >> (8 * b)) as u8);
                // SAFETY: `bytes` is 32 readable bytes.
                unsafe { _mm256_loadu_si256(bytes.as_ptr() as *const __m256i) }
            };
            Some(ByteTables {
                bytes: std::array::from_fn(table),
            })
        }

        /// `Tables::chunk` of the codes of events `i..i + CHUNK`, read
        /// from their planes `p`, into `out`: their gaps written and
        /// their sum, when every kind is below [`KINDS`] and every gap is
        /// small; else `None`, nothing written.
        ///
        /// # Safety
        ///
        /// The CPU has AVX2; events `i..i + CHUNK` lie in every plane;
        /// `tags` and `out` point at [`CHUNK`] entries.
        #[inline]
        #[target_feature(enable = "avx2")]
        pub(super) unsafe fn chunk<const W: usize>(
            &self,
            p: &[&[u8]; W],
            i: usize,
            tags: *const u8,
            out: *mut std::mem::MaybeUninit<u32>,
        ) -> Option<i64> {
            debug_assert!(p.iter().all(|plane| i + CHUNK <= plane.len()));
            let zero = _mm256_setzero_si256();
            // SAFETY (the loads and stores): `CHUNK` (32) entries of
            // `tags`, `out` and each plane from `i` (`# Safety`).
            let kinds = unsafe { _mm256_loadu_si256(tags as *const __m256i) };
            // A kind past the tables would read another's base.
            if _mm256_testz_si256(kinds, _mm256_set1_epi8(!(KINDS as u8 - 1) as i8)) == 0 {
                return None;
            }
            let planes = std::array::from_fn(|j| match p.get(j) {
                // SAFETY: as above.
                Some(plane) => unsafe {
                    _mm256_loadu_si256(plane.as_ptr().add(i) as *const __m256i)
                },
                None => zero,
            });
            let base_bytes = std::array::from_fn(|b| _mm256_shuffle_epi8(self.bytes[b], kinds));
            // SAFETY: the CPU has AVX2 (`# Safety`).
            let (codes, bases) = unsafe { (dwords(planes), dwords(base_bytes)) };
            let one = _mm256_set1_epi32(1);
            let shift = _mm256_set1_epi32(SMALL);
            let (mut sum, mut spread) = (zero, zero);
            let gaps: [__m256i; 4] = std::array::from_fn(|v| {
                let c = codes[v];
                let sign = _mm256_sub_epi32(zero, _mm256_and_si256(c, one));
                let g =
                    _mm256_add_epi32(_mm256_xor_si256(_mm256_srli_epi32::<1>(c), sign), bases[v]);
                // Small: `g + SMALL` below `2 SMALL` as unsigned.
                spread = _mm256_or_si256(spread, _mm256_add_epi32(g, shift));
                sum = _mm256_add_epi32(sum, g);
                g
            });
            if _mm256_testz_si256(spread, _mm256_set1_epi32(!(2 * SMALL - 1))) == 0 {
                return None;
            }
            // Events in order: the low halves of vectors 0 and 1 are
            // events 0-7, of 2 and 3 events 8-15; the high halves 16-31.
            let [g0, g1, g2, g3] = gaps;
            let ordered = [
                _mm256_permute2x128_si256::<0x20>(g0, g1),
                _mm256_permute2x128_si256::<0x20>(g2, g3),
                _mm256_permute2x128_si256::<0x31>(g0, g1),
                _mm256_permute2x128_si256::<0x31>(g2, g3),
            ];
            for (v, g) in ordered.into_iter().enumerate() {
                // SAFETY: entries `8 v .. 8 v + 8` of `out` (as above).
                unsafe { _mm256_storeu_si256(out.add(8 * v) as *mut __m256i, g) };
            }
            Some(lane_sum(sum) as i64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::from_codes;
    use super::*;
    use proptest::prelude::*;

    /// The `w` byte planes of `codes` (each code's low `w` bytes), as the
    /// TS column stores them.
    fn planes_of(codes: &[u32], w: usize) -> Vec<u8> {
        (0..w)
            .flat_map(|j| codes.iter().map(move |&c| (c >> (8 * j)) as u8))
            .collect()
    }

    /// A code of a gap near a limit of the lanes (`2^26`, either way, and
    /// past 32 bits), or any.
    fn spike() -> impl Strategy<Value = u32> {
        prop_oneof![
            any::<u32>(),
            (1u32 << 27) - 64..(1u32 << 27) + 64,
            u32::MAX - 64..=u32::MAX,
            1u32 << 23..1 << 24,
        ]
    }

    proptest! {
        /// The planes made gaps are the gathered codes made gaps by
        /// `from_codes`: the same entries (gaps, and codes from a chunk
        /// with a gap past 32 bits on), keys and result, for every width,
        /// chunks the lanes make and chunks they leave to the scalar way
        /// (a kind past the tables, a large gap), and bases too large for
        /// the lanes (then `None`: the caller gathers the codes).
        #[test]
        fn planes_made_gaps_are_the_codes_made_gaps(
            events in proptest::collection::vec((0u32..4096, 0u8..16), 0..300),
            spikes in proptest::collection::vec((any::<prop::sample::Index>(), spike()), 0..3),
            later_kind in proptest::option::of(any::<prop::sample::Index>()),
            w in 1usize..=4,
            seed in any::<u64>(),
            base_width in prop_oneof![Just(8u32), Just(17), Just(25), Just(30), Just(31), Just(64)],
            unit in prop_oneof![Just(1u64), 2u64..1000, any::<u64>()],
            start in any::<u64>(),
        ) {
            let bases: [u64; 256] = std::array::from_fn(|k| {
                let b = seed.wrapping_mul(k as u64 * 2 + 1).rotate_left(k as u32);
                b.checked_shr(64 - base_width).unwrap_or(0)
            });
            let (mut codes, mut tags): (Vec<u32>, Vec<u8>) = events.into_iter().unzip();
            let n = codes.len();
            if n > 0 {
                for (i, c) in spikes {
                    codes[i.index(n)] = c;
                }
                if let Some(i) = later_kind {
                    tags[i.index(n)] = 200;
                }
            }
            let keep = if w == 4 { u32::MAX } else { (1u32 << (8 * w)) - 1 };
            codes.iter_mut().for_each(|c| *c &= keep);
            let n_keys = n.div_ceil(CHUNK);
            let mut want = codes.clone();
            let mut want_keys = vec![MaybeUninit::new(1u64); n_keys];
            let want_made = from_codes(&mut want, &tags, &bases, unit, start, &mut want_keys);
            let mut out = vec![MaybeUninit::new(0xDEAD_BEEFu32); n];
            let mut keys = vec![MaybeUninit::new(1u64); n_keys];
            let planes = planes_of(&codes, w);
            let made = from_planes((w, &planes), &tags, &bases, unit, start, &mut out, &mut keys);
            let lanes = std::arch::is_x86_feature_detected!("avx2")
                && bases[..16].iter().all(|&b| b < 1 << 30);
            prop_assert_eq!(made.is_some(), lanes);
            let Some(made) = made else {
                return Ok(());
            };
            prop_assert_eq!(made, want_made);
            // SAFETY: every entry was written (initialised above).
            let got: Vec<u32> = out.iter().map(|v| unsafe { v.assume_init() }).collect();
            prop_assert_eq!(got, want);
            // Keys up to the chunk that stopped the gaps (all of them on `Ok`).
            let written = made.err().map_or(n_keys, |done| done / CHUNK + 1);
            // SAFETY: every key was initialised above.
            let key = |k: &MaybeUninit<u64>| unsafe { k.assume_init() };
            let got_keys: Vec<u64> = keys[..written].iter().map(key).collect();
            let want_keys: Vec<u64> = want_keys[..written].iter().map(key).collect();
            prop_assert_eq!(got_keys, want_keys);
        }
    }
}
