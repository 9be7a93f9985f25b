//! The events of a block the engine acts on when no cycle rule follows op
//! scopes: every event but op begins and ends (about a third of a trace),
//! found without branches as one bit mask per 64 events, so the walk that
//! dispatches on each event's kind sees only those (it takes them from the
//! masks: a list of their positions cost a store and a load per event).

use super::{ALLOC, CB_ALLOC, CB_FREE_ALL, FREE, MARKER, OP_BEGIN, OP_END};

/// Which events of a block are not op scopes, and where its names are.
#[derive(Default)]
pub(in crate::engine) struct OpSkip {
    /// Bit `j` of entry `i`: event `64 * i + j` is kept (not an op begin
    /// or end; no bit past the block's end).
    kept: Vec<u64>,
    /// Names (op begins' and markers') before position `64 * i`, and which
    /// of the 64 events from there hold one (bit `j`: event `64 * i + j`).
    names_before: Vec<u32>,
    named: Vec<u64>,
}

/// Events per mask.
pub(super) const GROUP: usize = 64;

impl OpSkip {
    /// Finds the events of a block with kind codes `tags` that are kept.
    pub(super) fn scan(&mut self, tags: &[u8]) {
        self.kept.clear();
        self.names_before.clear();
        self.named.clear();
        let mut names = 0u32;
        for chunk in tags.chunks(GROUP) {
            self.names_before.push(names);
            let (kept, named) = group_masks(chunk);
            self.kept.push(kept);
            self.named.push(named);
            names += named.count_ones();
        }
    }

    /// The kept events among positions `64 * group ..` (bit `j`: position
    /// `64 * group + j`); none past the tags last scanned.
    #[inline(always)]
    pub(super) fn kept_mask(&self, group: usize) -> u64 {
        self.kept.get(group).copied().unwrap_or(0)
    }

    /// True if the event at `pos` is kept.
    pub(super) fn is_kept(&self, pos: usize) -> bool {
        self.kept_mask(pos / GROUP) >> (pos % GROUP) & 1 != 0
    }

    /// The index in the block's names column of the op begin or marker at
    /// `pos` (of the tags last scanned).
    pub(super) fn name_index(&self, pos: usize) -> usize {
        let (group, bit) = (pos / GROUP, pos % GROUP);
        let below = self.named[group] & ((1u64 << bit) - 1);
        self.names_before[group] as usize + below.count_ones() as usize
    }
}

/// How many allocs, frees and circular-buffer events (both kinds) a
/// block's tags hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct KindCounts {
    pub(super) allocs: usize,
    pub(super) frees: usize,
    pub(super) cbs: usize,
}

impl KindCounts {
    /// Counts the kinds of `tags`, sixteen a step (SSE2, part of every
    /// x86_64 target): once per block, so that the walk need not check
    /// each event's column entry ([`KindCounts::fit`]).
    pub(super) fn of(tags: &[u8]) -> KindCounts {
        let mut n = KindCounts::default();
        // Per-byte counts, summed every 255 steps before a byte can wrap.
        let steps = tags.chunks(16 * 255);
        for run in steps {
            let sixteens = run.chunks_exact(16);
            let rest = sixteens.remainder();
            #[cfg(target_arch = "x86_64")]
            n.add_sixteens(sixteens);
            #[cfg(not(target_arch = "x86_64"))]
            let rest = run;
            for &tag in rest {
                n.allocs += (tag == ALLOC) as usize;
                n.frees += (tag == FREE) as usize;
                n.cbs += (tag == CB_ALLOC || tag == CB_FREE_ALL) as usize;
            }
        }
        n
    }

    /// Adds the counts of at most 255 groups of sixteen tags.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    fn add_sixteens(&mut self, sixteens: std::slice::ChunksExact<'_, u8>) {
        use std::arch::x86_64::*;
        debug_assert!(sixteens.len() <= 255);
        // SAFETY: SSE2 is part of every x86_64 target; each unaligned
        // load reads the sixteen bytes of `sixteen`.
        unsafe {
            let (alloc, free) = (_mm_set1_epi8(ALLOC as i8), _mm_set1_epi8(FREE as i8));
            let cb = _mm_set1_epi8(CB_ALLOC as i8);
            let cb_all = _mm_set1_epi8(CB_FREE_ALL as i8);
            let zero = _mm_setzero_si128();
            let (mut a, mut f, mut c) = (zero, zero, zero);
            for sixteen in sixteens {
                let v = _mm_loadu_si128(sixteen.as_ptr().cast());
                // A compare's 0xff is -1: subtracted, it counts one.
                a = _mm_sub_epi8(a, _mm_cmpeq_epi8(v, alloc));
                f = _mm_sub_epi8(f, _mm_cmpeq_epi8(v, free));
                let is_cb = _mm_or_si128(_mm_cmpeq_epi8(v, cb), _mm_cmpeq_epi8(v, cb_all));
                c = _mm_sub_epi8(c, is_cb);
            }
            let sum = |v: __m128i| {
                let s = _mm_sad_epu8(v, zero);
                (_mm_cvtsi128_si64(s) + _mm_cvtsi128_si64(_mm_unpackhi_epi64(s, s))) as usize
            };
            self.allocs += sum(a);
            self.frees += sum(f);
            self.cbs += sum(c);
        }
    }

    /// True if the columns hold an entry for every alloc, free and
    /// circular-buffer event of the block these counts are of.
    pub(super) fn fit(self, c: &ttalloc_trace::BlockColumns) -> bool {
        self.allocs <= c.allocs.len() && self.frees <= c.frees.len() && self.cbs <= c.cbs.len()
    }
}

/// Bit `i` set when `chunk[i]` (at most 64 tags) is kept (not an op
/// scope), and when it holds a name (an op begin or a marker).
#[inline]
fn group_masks(chunk: &[u8]) -> (u64, u64) {
    match <&[u8; GROUP]>::try_from(chunk) {
        Ok(whole) => whole_group_masks(whole),
        Err(_) => group_masks_by_words(chunk),
    }
}

/// [`group_masks`] of a whole group, sixteen tags a step (SSE2, part of
/// every x86_64 target): byte compares and their masks, where the word
/// version's bit gathering took ~3.7 instructions a tag (a 64-bit
/// multiply SSE2 lacks, done in halves).
#[cfg(target_arch = "x86_64")]
#[inline]
fn whole_group_masks(group: &[u8; GROUP]) -> (u64, u64) {
    use std::arch::x86_64::*;
    let (mut scopes, mut named) = (0u64, 0u64);
    // SAFETY: SSE2 is part of every x86_64 target; each unaligned load
    // reads the sixteen bytes of `sixteen`.
    unsafe {
        let begin = _mm_set1_epi8(OP_BEGIN as i8);
        let end = _mm_set1_epi8(OP_END as i8);
        let marker = _mm_set1_epi8(MARKER as i8);
        for (k, sixteen) in group.chunks_exact(16).enumerate() {
            let v = _mm_loadu_si128(sixteen.as_ptr().cast());
            let is_begin = _mm_cmpeq_epi8(v, begin);
            let scope = _mm_or_si128(is_begin, _mm_cmpeq_epi8(v, end));
            let name = _mm_or_si128(is_begin, _mm_cmpeq_epi8(v, marker));
            scopes |= u64::from(_mm_movemask_epi8(scope) as u16) << (16 * k);
            named |= u64::from(_mm_movemask_epi8(name) as u16) << (16 * k);
        }
    }
    (!scopes, named)
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn whole_group_masks(group: &[u8; GROUP]) -> (u64, u64) {
    group_masks_by_words(group)
}

/// [`group_masks`] eight tags at a time (and a tail of fewer).
fn group_masks_by_words(chunk: &[u8]) -> (u64, u64) {
    // Op begin and end are 12 and 13, op begin and marker 12 and 14: one
    // bit cleared makes each pair one value.
    const _: () = assert!(OP_BEGIN == 12 && OP_END == 13 && MARKER == 14);
    let (mut kept, mut named) = (0u64, 0u64);
    let mut words = chunk.chunks_exact(8);
    for (w, bytes) in (&mut words).enumerate() {
        let x = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
        kept |= nonzero_bytes((x & !bytes_of(1)) ^ bytes_of(OP_BEGIN)) << (8 * w);
        named |= (!nonzero_bytes((x & !bytes_of(2)) ^ bytes_of(OP_BEGIN)) & 0xff) << (8 * w);
    }
    let done = chunk.len() - words.remainder().len();
    for (i, &tag) in words.remainder().iter().enumerate() {
        kept |= ((tag | 1 != OP_END) as u64) << (done + i);
        named |= ((tag & !2 == OP_BEGIN) as u64) << (done + i);
    }
    (kept, named)
}

/// `b` in every byte of a word.
const fn bytes_of(b: u8) -> u64 {
    u64::from_le_bytes([b; 8])
}

/// Bit `i` set when byte `i` of `x` is not zero.
#[inline]
fn nonzero_bytes(x: u64) -> u64 {
    const LOW7: u64 = bytes_of(0x7f);
    // The high bit of each byte: set when any of its bits is.
    let high = (((x & LOW7) + LOW7) | x) & !LOW7;
    // Gathers the eight high bits into the top byte, then down.
    (high >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_all_but_op_scopes_and_finds_every_name() {
        // 200 events cycling through alloc, op begin, free, marker, op end:
        // positions 5k, 5k+2, 5k+3 are kept; op begins and markers take
        // names in order, so the one at 5k+1 has index 2k, at 5k+3 2k+1.
        let tags: Vec<u8> = (0..200)
            .map(|i| [ALLOC, OP_BEGIN, FREE, MARKER, OP_END][i % 5])
            .collect();
        let mut skip = OpSkip::default();
        skip.scan(&tags);
        let want: Vec<u32> = (0..200u32).filter(|p| matches!(p % 5, 0 | 2 | 3)).collect();
        assert_eq!(kept_positions(&skip, 4), want);
        for k in 0..40 {
            assert_eq!(skip.name_index(5 * k + 1), 2 * k);
            assert_eq!(skip.name_index(5 * k + 3), 2 * k + 1);
        }
        // Every tag value in every place of a word and of a tail.
        for tag in 0..=255u8 {
            for at in 0..67 {
                let mut tags = [ALLOC; 67];
                tags[at] = tag;
                let (kept, named) = group_masks(&tags[..64]);
                if at < 64 {
                    let is_op = tag == OP_BEGIN || tag == OP_END;
                    let is_named = tag == OP_BEGIN || tag == MARKER;
                    assert_eq!(kept >> at & 1 == 0, is_op, "tag {tag} at {at}");
                    assert_eq!(named >> at & 1 == 1, is_named, "tag {tag} at {at}");
                    assert_eq!(kept.count_ones() + is_op as u32, 64);
                    assert_eq!(named.count_ones(), is_named as u32);
                }
                let tail = &tags[64..];
                let (kept, named) = group_masks(tail);
                let want_kept =
                    (0..3).filter(|&i| !(at == 64 + i && (tag == OP_BEGIN || tag == OP_END)));
                assert_eq!(
                    kept,
                    want_kept.fold(0, |m, i| m | 1 << i),
                    "tail {tag} at {at}"
                );
                let named_at = (at >= 64 && (tag == OP_BEGIN || tag == MARKER)) as u64;
                assert_eq!(named, named_at << (at.max(64) - 64), "tail {tag} at {at}");
            }
        }
        // A shorter block after a longer one: only its own positions.
        skip.scan(&tags[..7]);
        assert_eq!(kept_positions(&skip, 4), [0, 2, 3, 5]);
        assert!(skip.is_kept(5) && !skip.is_kept(6) && !skip.is_kept(64));
    }

    /// A whole group's masks by byte compares are those eight tags at a
    /// time give.
    #[test]
    fn whole_groups_by_compares_agree_with_words() {
        let mut tags = [ALLOC; GROUP];
        for tag in 0..=255u8 {
            for at in 0..GROUP {
                tags[at] = tag;
                assert_eq!(
                    whole_group_masks(&tags),
                    group_masks_by_words(&tags),
                    "tag {tag} at {at}"
                );
                tags[at] = ALLOC;
            }
        }
        // Mixed groups (a fixed pseudo-random sequence of kind codes).
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..1000 {
            for t in tags.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *t = (x % 16) as u8;
            }
            assert_eq!(whole_group_masks(&tags), group_masks_by_words(&tags));
        }
    }

    /// Kind counts by compares agree with counting tag by tag, for every
    /// tag value, across the 255-step runs and in a tail.
    #[test]
    fn kind_counts_are_the_tags_of_each_kind() {
        let plain = |tags: &[u8]| KindCounts {
            allocs: tags.iter().filter(|&&t| t == ALLOC).count(),
            frees: tags.iter().filter(|&&t| t == FREE).count(),
            cbs: tags
                .iter()
                .filter(|&&t| t == CB_ALLOC || t == CB_FREE_ALL)
                .count(),
        };
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for len in [0, 1, 15, 16, 17, 255 * 16 - 1, 255 * 16, 255 * 16 + 5, 9000] {
            for modulus in [16u64, 256] {
                let tags: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        (x % modulus) as u8
                    })
                    .collect();
                assert_eq!(
                    KindCounts::of(&tags),
                    plain(&tags),
                    "{len} tags < {modulus}"
                );
            }
            // One kind only: every byte counter runs to its limit.
            for tag in [ALLOC, FREE, CB_ALLOC, CB_FREE_ALL, OP_BEGIN] {
                let tags = vec![tag; len];
                assert_eq!(KindCounts::of(&tags), plain(&tags), "{len} of {tag}");
            }
        }
    }

    /// The positions whose bit is set in the first `groups` masks.
    fn kept_positions(skip: &OpSkip, groups: usize) -> Vec<u32> {
        (0..groups * GROUP)
            .filter(|&p| skip.is_kept(p))
            .map(|p| p as u32)
            .collect()
    }
}
