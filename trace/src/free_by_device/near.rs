//! The reader's side of FREE_DEV_NEAR (FORMAT.md §5.1): a free's device is
//! the change from the device of the latest alloc before it in the block.
//! Two passes, chunk by chunk of the kind words: each free's alloc rank
//! (how many allocs precede it, a walk over the kind words), then the
//! devices from the ranks (eight frees at a time with AVX2: a masked
//! gather of the allocs' devices). One pass that
//! did both spent half of each free on the read of the alloc's device
//! (none before the block's first alloc) and the change's unzigzag.

use super::code::Code;
use crate::decode::KindWord;
use crate::varint::unzigzag;

crate::decode::fast_cpu_dispatch!(
/// Every free's device (into `out`) from `codes` (its values, one per
/// free) and the device of the latest alloc before it in the block
/// (`alloc_devices`, in event order), 0 when none. `words` are the block's
/// kind words: the allocs before a free are those of earlier words and the
/// ones below its bit.
pub(crate) fn decode_free_devices => decode_free_devices_any(
    words: &[KindWord],
    alloc_devices: &[u32],
    codes: &[u64],
    out: &mut Vec<u32>,
) -> Result<(), String>);

crate::decode::fast_cpu_dispatch!(
/// [`decode_free_devices`] with the codes as the column's one byte plane.
pub(crate) fn decode_free_devices_bytes => decode_free_devices_any(
    words: &[KindWord],
    alloc_devices: &[u32],
    codes: &[u8],
    out: &mut Vec<u32>,
) -> Result<(), String>);

#[inline(always)]
fn decode_free_devices_any<C: Code>(
    words: &[KindWord],
    alloc_devices: &[u32],
    codes: &[C],
    out: &mut Vec<u32>,
) -> Result<(), String> {
    let n_free: usize = words.iter().map(|w| w.free.count_ones() as usize).sum();
    let n_alloc: usize = words.iter().map(|w| w.alloc.count_ones() as usize).sum();
    if codes.len() != n_free || alloc_devices.len() != n_alloc {
        return Err("free devices do not match the kind column".into());
    }
    // (Ranks are gathered as i32 lanes.)
    if n_alloc > i32::MAX as usize {
        return Err(format!("a block of {n_alloc} allocs is too large"));
    }
    // Every rank counts allocs of these words: at most `n_alloc`
    // (`alloc_devices.len()`, below 2^31: checked above).
    #[cfg(target_arch = "x86_64")]
    if crate::decode::fast_cpu() {
        // Eight past the frees: `ranks_by_bytes` stores eight at a time.
        crate::decode::overwrite_len(out, n_free + 8);
        // SAFETY: the CPU has the features (checked just above); `out`
        // holds eight more than the frees of `words`, `codes` the frees.
        unsafe { ranks_and_devices(words, alloc_devices, codes, out) };
        out.truncate(n_free);
        return Ok(());
    }
    // Overwritten whole: only growth is zeroed.
    crate::decode::overwrite_len(out, n_free);
    // SAFETY: `out` holds `n_free`, the free bits of `words`.
    unsafe { ranks_by_bits(words, out) };
    let out = &mut out[..n_free];
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above); the ranks are as
        // `devices_avx2` needs (see above).
        done = unsafe { devices_avx2(alloc_devices, codes, out) };
    }
    devices_one_at_a_time(alloc_devices, codes, out, done);
    Ok(())
}

/// The devices of the frees from `done` on, whose ranks are in `out`.
#[inline(always)]
fn devices_one_at_a_time<C: Code>(
    alloc_devices: &[u32],
    codes: &[C],
    out: &mut [u32],
    done: usize,
) {
    for (o, &c) in out.iter_mut().zip(codes).skip(done) {
        *o = device_after(alloc_devices, *o).wrapping_add(unzigzag(c.wide()) as u32);
    }
}

/// Kind words per chunk of [`ranks_and_devices`]: 4096 events, some
/// 1200 frees (5 KB of ranks).
#[cfg(target_arch = "x86_64")]
const CHUNK_WORDS: usize = 64;

/// The ranks (`ranks_by_bytes`) and then the devices (`devices_avx2`)
/// of the frees of each chunk of [`CHUNK_WORDS`] words, so the devices
/// pass finds the chunk's ranks still in L1: over the whole block the
/// ranks (4 bytes a free, some 74 KB) were written out to L2 and read
/// back. The frees of a chunk past its last whole eight wait for the
/// next chunk's; those past the block's take the one-at-a-time loop.
///
/// # Safety
///
/// The CPU has the features `fast_cpu_dispatch` is compiled for; `out`
/// holds eight more than the free bits of `words`, and `codes` as many
/// as those bits; every rank (at most the alloc bits of `words`) is at
/// most `alloc_devices.len()`, below 2^31.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi1,bmi2,popcnt,lzcnt")]
unsafe fn ranks_and_devices<C: Code>(
    words: &[KindWord],
    alloc_devices: &[u32],
    codes: &[C],
    out: &mut [u32],
) {
    let n_free = out.len() - 8;
    debug_assert_eq!(codes.len(), n_free);
    let (mut ka, mut kf, mut done) = (0u32, 0usize, 0usize);
    for chunk in words.chunks(CHUNK_WORDS) {
        // SAFETY: `out[kf..]` holds eight more than the free bits of
        // `chunk` (`kf` counts those of the chunks before; `# Safety`).
        (ka, kf) = unsafe { ranks_by_bytes(chunk, ka, kf, out) };
        // SAFETY: the CPU has AVX2; the ranks `done..kf` are as
        // `devices_avx2` needs (`# Safety`), `codes` holds `kf` (at most
        // `n_free`).
        done += unsafe { devices_avx2(alloc_devices, &codes[done..kf], &mut out[done..kf]) };
    }
    devices_one_at_a_time(alloc_devices, codes, &mut out[..n_free], done);
}

/// Each free's alloc rank into `out`, a free at a time.
///
/// # Safety
///
/// `out` is as long as the free bits of `words`.
#[inline(always)]
unsafe fn ranks_by_bits(words: &[KindWord], out: &mut [u32]) {
    let (mut ka, mut kf) = (0u32, 0usize);
    for w in words {
        let mut m = w.free;
        while m != 0 {
            let bit = m.trailing_zeros();
            m &= m - 1;
            let k = ka + (w.alloc & ((1u64 << bit) - 1)).count_ones();
            debug_assert!(kf < out.len());
            // SAFETY: `kf` counts the free bits before this one of
            // `words`, whose free bits number `out.len()` (`# Safety`).
            unsafe { *out.get_unchecked_mut(kf) = k };
            kf += 1;
        }
        ka += w.alloc.count_ones();
    }
}

/// For a byte of free bits among a word's allocs and frees (`_pext_u64`
/// of the frees by both: bit `j` is the `j`th of them, set for a free),
/// each set bit's count of clear bits below it (allocs before that free
/// among the eight), in order, a byte each.
#[cfg(target_arch = "x86_64")]
static ALLOCS_BELOW: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut byte = 0;
    while byte < 256 {
        let (mut frees, mut allocs, mut bit) = (0, 0u64, 0);
        while bit < 8 {
            if byte >> bit & 1 == 1 {
                table[byte] |= allocs << (8 * frees);
                frees += 1;
            } else {
                allocs += 1;
            }
            bit += 1;
        }
        byte += 1;
    }
    table
};

/// For a byte of `ALLOCS_BELOW`, its clear bits (its allocs), as a
/// 32-bit lane: the allocs before the next byte's frees move on by this.
#[cfg(target_arch = "x86_64")]
static ALLOCS_IN: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = 8 - (byte as u8).count_ones();
        byte += 1;
    }
    table
};

/// [`ranks_by_bits`] eight allocs and frees at a time: that loop spent
/// some 11 instructions on each free, and its exit mispredicted on
/// nearly every word. Here a word's allocs and frees are packed in order
/// (frees set) and each byte of them gives its frees' ranks from one
/// table row, widened and stored as eight lanes; the lanes past its
/// frees are overwritten by the next byte's (or land in the eight spare).
/// A word has at most eight such bytes, all taken, so no exit depends
/// on the data. The ranks start at `ka` (the allocs before `words`) and
/// go into `out` from `kf`; returns both moved past `words`.
///
/// # Safety
///
/// The CPU has the features `fast_cpu_dispatch` is compiled for; `out`
/// holds at least `kf` plus eight more than the free bits of `words`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi1,bmi2,popcnt,lzcnt")]
unsafe fn ranks_by_bytes(
    words: &[KindWord],
    mut ka: u32,
    mut kf: usize,
    out: &mut [u32],
) -> (u32, usize) {
    use std::arch::x86_64::*;
    for w in words {
        let packed = _pext_u64(w.free, w.alloc | w.free);
        // Allocs before the byte's first event, in every lane (wrapping
        // past the last byte holding any: the lanes those store are
        // overwritten). Moved on by a lane broadcast from memory (a load),
        // not by a scalar add and a broadcast from a register (a shuffle).
        let mut before = _mm256_set1_epi32(ka as i32);
        for byte in 0..8 {
            let frees = (packed >> (8 * byte)) as u8 as usize;
            // SAFETY: `frees` is below 256, the tables' length; a row is
            // eight bytes.
            let (row, allocs) = unsafe {
                (
                    _mm_loadl_epi64(ALLOCS_BELOW.as_ptr().add(frees) as *const __m128i),
                    *ALLOCS_IN.get_unchecked(frees),
                )
            };
            let ranks = _mm256_add_epi32(_mm256_cvtepu8_epi32(row), before);
            debug_assert!(kf + 8 <= out.len());
            // SAFETY: `kf` is the given one plus the frees of the bytes
            // before this one, at most the frees of `words`, so `kf + 8`
            // is at most `out.len()` (`# Safety`).
            unsafe { _mm256_storeu_si256(out.as_mut_ptr().add(kf) as *mut __m256i, ranks) };
            kf += 8 - allocs as usize;
            before = _mm256_add_epi32(before, _mm256_set1_epi32(allocs as i32));
        }
        ka = ka.wrapping_add(w.alloc.count_ones());
    }
    (ka, kf)
}

/// The device of the alloc of rank `rank` (the latest of `rank` allocs),
/// 0 for none.
#[inline(always)]
fn device_after(alloc_devices: &[u32], rank: u32) -> u32 {
    match (rank as usize).checked_sub(1) {
        Some(i) => alloc_devices.get(i).copied().unwrap_or(0),
        None => 0,
    }
}

/// Turns the alloc ranks in `out` into devices (`device_after` plus the
/// change in `codes`) for every whole group of eight; returns how many.
///
/// # Safety
///
/// AVX2; every entry of `out` is at most `alloc_devices.len()`, which is
/// below 2^31.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn devices_avx2<C: Code>(alloc_devices: &[u32], codes: &[C], out: &mut [u32]) -> usize {
    use std::arch::x86_64::*;
    let n = out.len().min(codes.len());
    let zero = _mm256_setzero_si256();
    let one32 = _mm256_set1_epi32(1);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: entries `i..i + 8` lie in `out` and `codes` (`i + 8 <= n`).
        // A lane gathers only where its rank is at least 1 (the mask), at
        // index `rank - 1`, below `alloc_devices.len()` (`# Safety`).
        unsafe {
            let rank = _mm256_loadu_si256(out.as_ptr().add(i) as *const __m256i);
            let none = _mm256_cmpeq_epi32(rank, zero);
            let some = _mm256_andnot_si256(none, _mm256_cmpeq_epi32(zero, zero));
            let prev = _mm256_mask_i32gather_epi32::<4>(
                zero,
                alloc_devices.as_ptr() as *const i32,
                _mm256_sub_epi32(rank, one32),
                some,
            );
            let change = C::changes8(codes, i);
            _mm256_storeu_si256(
                out.as_mut_ptr().add(i) as *mut __m256i,
                _mm256_add_epi32(prev, change),
            );
        }
        i += 8;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::varint::zigzag;
    use proptest::prelude::*;
    use ttalloc_model::EventTag::{BufferAlloc as A, BufferFree as F, OpEnd as E};

    #[test]
    fn a_free_s_device_is_the_latest_alloc_s_plus_its_change() {
        // free (no alloc before: 0 + 2), alloc on 5, free (5 + 0), alloc on 3,
        // op end, free (3 - 1), free (3 + 0); after 60 op ends, so the
        // events straddle two kind words.
        let mut tags = vec![E as u8; 60];
        tags.extend([F, A, F, A, E, F, F].map(|t| t as u8));
        let codes = [zigzag(2), 0, zigzag(-1), 0];
        let mut words = Vec::new();
        crate::decode::kind_words(&tags, &mut words);
        let mut out = Vec::new();
        decode_free_devices(&words, &[5, 3], &codes, &mut out).unwrap();
        assert_eq!(out, [2, 5, 2, 3]);
        assert!(decode_free_devices(&words, &[5], &codes, &mut out).is_err());
    }

    #[cfg(target_arch = "x86_64")]
    proptest! {
        /// Ranks a byte of allocs and frees at a time are the ranks a free
        /// at a time: words of any mix (none, sparse, every event an alloc
        /// or a free), with allocs before them in the block.
        #[test]
        fn ranks_by_bytes_are_the_ranks_by_bits(
            masks in proptest::collection::vec(
                (any::<u64>(), any::<u64>(), prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()]),
                0..12,
            ),
        ) {
            prop_assume!(crate::decode::fast_cpu());
            // `busy` picks the events that are allocs or frees, `which`
            // the frees among them.
            let words: Vec<KindWord> = masks
                .iter()
                .map(|&(which, sparse, dense)| {
                    let busy = sparse | dense;
                    KindWord { alloc: busy & !which, free: busy & which, ..Default::default() }
                })
                .collect();
            let n_free: usize = words.iter().map(|w| w.free.count_ones() as usize).sum();
            let mut want = vec![0; n_free];
            // SAFETY: `want` holds the frees of `words`.
            unsafe { ranks_by_bits(&words, &mut want) };
            let mut got = vec![7; n_free + 8];
            // SAFETY: the CPU has the features (assumed above); `got` holds
            // eight more than the frees.
            unsafe { ranks_by_bytes(&words, 0, 0, &mut got) };
            prop_assert_eq!(&got[..n_free], &want[..]);
        }
    }

    #[cfg(target_arch = "x86_64")]
    proptest! {
        /// Ranks and devices chunk by chunk are the ranks a free at a time
        /// and the devices a free at a time: blocks of up to four chunks
        /// of words (dense, sparse or empty), so frees past a chunk's
        /// last whole eight wait for the next chunk.
        #[test]
        fn chunked_devices_are_the_devices_a_free_at_a_time(
            masks in proptest::collection::vec(
                (any::<u64>(), prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()]),
                0..4 * CHUNK_WORDS + 3,
            ),
            seed in any::<u64>(),
        ) {
            prop_assume!(crate::decode::fast_cpu());
            let words: Vec<KindWord> = masks
                .iter()
                .map(|&(which, busy)| {
                    KindWord { alloc: busy & !which, free: busy & which, ..Default::default() }
                })
                .collect();
            let n_free: usize = words.iter().map(|w| w.free.count_ones() as usize).sum();
            let n_alloc: usize = words.iter().map(|w| w.alloc.count_ones() as usize).sum();
            let mix = |i: u64| (i ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
            let alloc_devices: Vec<u32> = (0..n_alloc as u64).map(|i| mix(i) as u32 % 9).collect();
            let codes: Vec<u64> = (0..n_free as u64).map(|i| mix(!i) % 5).collect();
            let mut want = vec![0; n_free];
            // SAFETY: `want` holds the frees of `words`.
            unsafe { ranks_by_bits(&words, &mut want) };
            devices_one_at_a_time(&alloc_devices, &codes, &mut want, 0);
            let mut got = vec![7; n_free + 8];
            // SAFETY: the CPU has the features (assumed above); `got` holds
            // eight more than the frees, `codes` the frees; every rank is at
            // most `n_alloc`.
            unsafe { ranks_and_devices(&words, &alloc_devices, &codes, &mut got) };
            prop_assert_eq!(&got[..n_free], &want[..]);
        }
    }

    proptest! {
        /// Against a walk over the events that keeps the latest alloc's
        /// device: blocks of any length and mix (frees before any alloc,
        /// runs of frees, changes that wrap).
        #[test]
        fn free_devices_are_the_latest_alloc_s_plus_the_change(
            events in proptest::collection::vec((0u8..3, any::<u32>(), any::<u64>()), 0..300),
        ) {
            let tags: Vec<u8> = events.iter().map(|e| [A, F, E][e.0 as usize] as u8).collect();
            let (mut alloc_devices, mut codes, mut want) = (Vec::new(), Vec::new(), Vec::new());
            let mut latest = 0u32;
            for &(kind, device, code) in &events {
                match kind {
                    0 => {
                        alloc_devices.push(device);
                        latest = device;
                    }
                    1 => {
                        codes.push(code);
                        want.push(latest.wrapping_add(unzigzag(code) as u32));
                    }
                    _ => {}
                }
            }
            let mut words = Vec::new();
            crate::decode::kind_words(&tags, &mut words);
            let mut out = vec![7; 3];
            decode_free_devices(&words, &alloc_devices, &codes, &mut out).unwrap();
            prop_assert_eq!(out, want);
        }
    }
}
