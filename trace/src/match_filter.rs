//! Which of zstd's matches a block record's frame keeps. Every match is a
//! sequence the reader decodes (some 130 instructions in
//! `ZSTD_decompressSequences`), and in the byte planes of small codes
//! (sites, sizes' places, devices, an address's low byte) zstd's matches
//! of 7 bytes or so save less than they cost: the same bytes as Huffman
//! literals, at their plane's few bits a byte, come to about as much. So a
//! match is kept only when the literals it replaces would cost at least
//! `MIN_SAVING` bytes at its segment's order-0 entropy. The frame stays an
//! ordinary zstd frame; readers see no difference.
//!
//! Synthetic benchmark, 2M events (level 3): zstd sequences 0.315 -> 0.089
//! per event, literals 2.35 -> 4.18 B/event, file 2.93 -> 2.91 B/event, a
//! scan 18.8% fewer instructions. `MIN_SAVING` 2 / 3: 2.89 / 2.95 B/event,
//! 14.4% / 21.2% fewer.

use zstd::zstd_safe::zstd_sys::ZSTD_Sequence;

/// Bytes a match must save (as literals at its segment's entropy) to be
/// worth a sequence: about what its codes cost plus the reader's work.
const MIN_SAVING: f64 = 2.5;

/// zstd's largest block: explicit block delimiters must come at least this often.
pub(crate) const BLOCK_MAX: usize = 128 << 10;

/// zstd's shortest match (a match split at a block end keeps its parts
/// at least this long, shorter parts become literals).
pub(crate) const ZSTD_MIN_MATCH: usize = 3;

/// The shortest match worth keeping in `segment`: at its order-0 entropy
/// (taken as at least 1 bit a byte: a Huffman code spends a bit a byte),
/// the literals it replaces cost `MIN_SAVING` bytes.
fn min_len(segment: &[u8]) -> usize {
    let mut counts = [0u32; 256];
    for &b in segment {
        counts[b as usize] += 1;
    }
    let n = segment.len() as f64;
    let bits: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let c = c as f64;
            -c * (c / n).log2()
        })
        .sum::<f64>()
        / n;
    (8.0 * MIN_SAVING / bits.max(1.0)).ceil() as usize
}

fn delimiter(literals: usize) -> ZSTD_Sequence {
    ZSTD_Sequence {
        offset: 0,
        litLength: literals as u32,
        matchLength: 0,
        rep: 0,
    }
}

/// From `found` (zstd's sequences for `record`, without block delimiters),
/// writes into `out` the matches worth keeping, with a block delimiter at
/// every cut (ascending offsets in `record`) and at least every 128 KiB, for
/// `ZSTD_compressSequences` with explicit delimiters. Every kept match is
/// checked against `record` (the literals are `record`'s own bytes, so the
/// frame then decodes to `record` whatever `found` holds); false if one does
/// not match or `found` runs past the record.
pub(crate) fn keep_paying_matches(
    record: &[u8],
    cuts: &[usize],
    found: &[ZSTD_Sequence],
    out: &mut Vec<ZSTD_Sequence>,
) -> bool {
    out.clear();
    let cuts_inside = cuts.first().is_none_or(|&c| c > 0)
        && cuts.last().is_none_or(|&c| c < record.len())
        && cuts.windows(2).all(|w| w[0] < w[1]);
    if !cuts_inside {
        return false;
    }
    let mut segment_ends = cuts.iter().copied().chain(std::iter::once(record.len()));
    let mut seg_end = segment_ends
        .next()
        .unwrap_or(record.len())
        .min(record.len());
    let mut seg_min = min_len(&record[..seg_end]);
    let mut block_end = next_block_end(cuts, record.len(), 0);
    // `done`: the record's bytes already covered by `out`.
    let (mut done, mut pos) = (0usize, 0usize);
    for s in found {
        let (start, len, offset) = (
            pos + s.litLength as usize,
            s.matchLength as usize,
            s.offset as usize,
        );
        let end = start + len;
        pos = end;
        if end > record.len() {
            return false;
        }
        while seg_end <= start {
            let seg_start = seg_end;
            seg_end = segment_ends.next().unwrap_or(record.len());
            if seg_end <= seg_start || seg_end > record.len() {
                return false;
            }
            seg_min = min_len(&record[seg_start..seg_end]);
        }
        if len < seg_min.max(ZSTD_MIN_MATCH) {
            continue;
        }
        if offset == 0
            || offset > start
            || record[start..end] != record[start - offset..end - offset]
        {
            return false;
        }
        let mut from = start;
        loop {
            while block_end <= from {
                out.push(delimiter(block_end - done));
                done = block_end;
                block_end = next_block_end(cuts, record.len(), block_end);
            }
            let to = end.min(block_end);
            if to - from >= ZSTD_MIN_MATCH {
                out.push(ZSTD_Sequence {
                    offset: offset as u32,
                    litLength: (from - done) as u32,
                    matchLength: (to - from) as u32,
                    rep: 0,
                });
                done = to;
            }
            if to == end {
                break;
            }
            from = to;
        }
    }
    // The open block, and any after it, end with delimiters too.
    loop {
        out.push(delimiter(block_end - done));
        done = block_end;
        if done == record.len() {
            break;
        }
        block_end = next_block_end(cuts, record.len(), block_end);
    }
    true
}

/// The block end after `at`: the next cut, or 128 KiB on, whichever is first.
fn next_block_end(cuts: &[usize], len: usize, at: usize) -> usize {
    let next_cut = cuts.iter().copied().find(|&c| c > at).unwrap_or(len);
    next_cut.min(at + BLOCK_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{FrameCompressor, FrameDecompressor};
    use proptest::prelude::*;
    use rkyv::util::AlignedVec;

    fn seq(lits: usize, offset: usize, len: usize) -> ZSTD_Sequence {
        ZSTD_Sequence {
            offset: offset as u32,
            litLength: lits as u32,
            matchLength: len as u32,
            rep: 0,
        }
    }

    /// Bytes of 2 bits each (order-0 entropy about 2 bits a byte), from a seed.
    fn two_bit_noise(n: usize, mut x: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 62) as u8
            })
            .collect()
    }

    /// (start, length, offset) of the matches in `out`, and the ends of its blocks.
    fn walk(out: &[ZSTD_Sequence]) -> (Vec<(usize, usize, usize)>, Vec<usize>) {
        let (mut pos, mut matches, mut ends) = (0, vec![], vec![]);
        for s in out {
            pos += s.litLength as usize;
            if s.matchLength == 0 && s.offset == 0 {
                ends.push(pos);
            } else {
                matches.push((pos, s.matchLength as usize, s.offset as usize));
                pos += s.matchLength as usize;
            }
        }
        (matches, ends)
    }

    #[test]
    fn short_matches_among_few_bit_bytes_become_literals() {
        // At 2 bits a byte a match must be 10 bytes long to save 2.5 bytes.
        let mut record = two_bit_noise(4000, 7);
        record.copy_within(100..108, 1000);
        record.copy_within(200..230, 2000);
        let found = [seq(1000, 900, 8), seq(992, 1800, 30)];
        let mut out = vec![];
        assert!(keep_paying_matches(&record, &[], &found, &mut out));
        let (matches, ends) = walk(&out);
        assert_eq!(matches, vec![(2000, 30, 1800)]);
        assert_eq!(ends, vec![4000]);
    }

    #[test]
    fn blocks_end_at_every_cut_and_within_128_kib() {
        let mut record = two_bit_noise(300_000, 3);
        // A match across the cut at 1010 is split there; one across 1500
        // leaves 2 bytes before it, which go to literals.
        record.copy_within(0..40, 990);
        record.copy_within(0..60, 1498);
        let found = [seq(990, 990, 40), seq(468, 1498, 60)];
        let cuts = [1010, 1500, 140_000];
        let mut out = vec![];
        assert!(keep_paying_matches(&record, &cuts, &found, &mut out));
        let (matches, ends) = walk(&out);
        assert_eq!(
            matches,
            vec![(990, 20, 990), (1010, 20, 990), (1500, 58, 1498)]
        );
        assert_eq!(
            ends,
            vec![
                1010,
                1500,
                1500 + BLOCK_MAX,
                140_000,
                140_000 + BLOCK_MAX,
                300_000
            ]
        );
    }

    #[test]
    fn matches_that_do_not_match_or_overrun_are_refused() {
        let record = two_bit_noise(4000, 11);
        let mut out = vec![];
        // Two-bit noise: 40 bytes 1000 back are (almost surely) not these.
        assert!(!keep_paying_matches(
            &record,
            &[],
            &[seq(2000, 1000, 40)],
            &mut out
        ));
        assert!(!keep_paying_matches(
            &record,
            &[],
            &[seq(3990, 1000, 40)],
            &mut out
        ));
        assert!(!keep_paying_matches(
            &record,
            &[],
            &[seq(10, 20, 40)],
            &mut out
        ));
        assert!(!keep_paying_matches(&record, &[30, 20], &[], &mut out));
    }

    #[test]
    fn a_record_ending_in_a_tiny_block_takes_the_sequence_path() {
        // zstd's sequence collector refuses a record whose last block is
        // under 7 bytes; the coder searches the whole blocks before it.
        let mut noise = two_bit_noise(BLOCK_MAX, 5);
        noise.extend_from_within(..BLOCK_MAX);
        for len in [1, 3, 6, 7, BLOCK_MAX + 3, 2 * BLOCK_MAX] {
            let record = &noise[..len];
            let mut coder = crate::zstd_sequences::SequenceCoder::new(3, Some(7)).unwrap();
            let mut z = vec![];
            assert!(coder.compress(record, &[], &mut z).unwrap(), "{len} bytes");
            let mut back = AlignedVec::<16>::new();
            FrameDecompressor::default()
                .decompress(&z, &mut back)
                .unwrap();
            assert_eq!(&back[..], record, "{len} bytes");
            if len > BLOCK_MAX {
                // The repeat of the first block is coded as matches.
                assert!(z.len() < BLOCK_MAX / 2, "{len} bytes: {}", z.len());
            }
        }
    }

    /// A record of planes like a block's: noisy bytes, few-bit bytes, runs.
    fn planes() -> impl Strategy<Value = (Vec<u8>, Vec<usize>)> {
        (
            prop::collection::vec((0u8..3, 1usize..3000, any::<u64>()), 1..12),
            prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        )
            .prop_map(|(parts, cut_at)| {
                let mut record = vec![];
                for (kind, n, seed) in parts {
                    match kind {
                        0 => record.extend(two_bit_noise(n, seed)),
                        1 => record.extend(
                            two_bit_noise(n, seed)
                                .iter()
                                .map(|b| b.wrapping_mul(97) ^ (n as u8)),
                        ),
                        _ => {
                            let from = record.len().saturating_sub(n);
                            let copy = record[from..].to_vec();
                            record.extend(copy);
                        }
                    }
                }
                let mut cuts: Vec<usize> = cut_at
                    .iter()
                    .map(|i| i.index(record.len().max(1)))
                    .filter(|&c| c > 0)
                    .collect();
                cuts.sort_unstable();
                cuts.dedup();
                (record, cuts)
            })
    }

    proptest! {
        #[test]
        fn frames_of_kept_matches_decode_to_the_record((record, cuts) in planes()) {
            let mut coder = crate::zstd_sequences::SequenceCoder::new(3, Some(7)).unwrap();
            let mut z = vec![];
            // The sequence path itself, not the writer's fallback, made the frame.
            prop_assert!(coder.compress(&record, &cuts, &mut z).unwrap());
            let mut back = AlignedVec::<16>::new();
            FrameDecompressor::default().decompress(&z, &mut back).unwrap();
            prop_assert_eq!(&back[..], &record[..]);
            // The writer's frames are these.
            let mut c = FrameCompressor::new(3).unwrap();
            let mut w = vec![];
            c.compress_segmented(&record, &cuts, &mut w).unwrap();
            prop_assert_eq!(w, z);
        }
    }
}
