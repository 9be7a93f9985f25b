//! Where each kind sits in a block: one bit per event for the kinds the
//! decoder hands out by position (allocs, frees, names, the other kinds),
//! 64 events to a word. Built in one vector pass over the kind column, so
//! the passes that follow visit only the events of their kind (a count of
//! the ones before is a popcount) instead of every event.

use super::block::{HAS_DEVICE, IS_OTHER};
use ttalloc_model::EventTag;

/// The kind bits of 64 consecutive events (bit `j` of word `w` is event
/// `64 w + j`; bits past the block's last event are 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct KindWord {
    pub(crate) alloc: u64,
    pub(crate) free: u64,
    /// OpBegin or Marker (an entry of the NAME column).
    pub(crate) name: u64,
    /// Every kind `decode_others` decodes (`IS_OTHER`).
    pub(crate) other: u64,
}

/// Fills `out` with the kind words of `tags` (cleared first); returns
/// how many allocs, frees, names, circular-buffer allocs (for
/// `decode_others`, which counted them in a pass of its own) and events
/// with a device (`HAS_DEVICE`: the decoder counted them one other kind
/// at a time, a load of its tag and of the table each) they hold.
pub(crate) fn kind_words(tags: &[u8], out: &mut Vec<KindWord>) -> [usize; 5] {
    #[cfg(target_arch = "x86_64")]
    if super::fast_cpu() {
        // SAFETY: the CPU has every feature `kind_words_fast` is compiled for.
        return unsafe { kind_words_fast(tags, out) };
    }
    kind_words_with::<false>(tags, out)
}

/// [`kind_words`] 32 tags to a compare (AVX2).
///
/// # Safety
///
/// The CPU has the features it is compiled for.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi1,bmi2,popcnt,lzcnt")]
unsafe fn kind_words_fast(tags: &[u8], out: &mut Vec<KindWord>) -> [usize; 5] {
    kind_words_with::<true>(tags, out)
}

/// [`kind_words`]; `AVX2` only where the CPU has it.
#[inline(always)]
fn kind_words_with<const AVX2: bool>(tags: &[u8], out: &mut Vec<KindWord>) -> [usize; 5] {
    out.clear();
    out.reserve(tags.len().div_ceil(64));
    let (mut n_cb, mut n_dev) = (0usize, 0usize);
    let mut chunks = tags.chunks_exact(64);
    for c in &mut chunks {
        let c: &[u8; 64] = c.try_into().expect("64 tags");
        #[cfg(target_arch = "x86_64")]
        let (w, cb, dev) = if AVX2 {
            // SAFETY: `AVX2` is set only where the CPU has it.
            unsafe { word_of_64_avx2(c) }
        } else {
            word_of_64(c)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let (w, cb, dev) = word_of_64(c);
        n_cb += cb.count_ones() as usize;
        n_dev += dev.count_ones() as usize;
        out.push(w);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = KindWord::default();
        for (j, &t) in rest.iter().enumerate() {
            w.alloc |= ((t == EventTag::BufferAlloc as u8) as u64) << j;
            w.free |= ((t == EventTag::BufferFree as u8) as u64) << j;
            w.name |= ((t == EventTag::OpBegin as u8 || t == EventTag::Marker as u8) as u64) << j;
            w.other |= (IS_OTHER[t as usize] as u64) << j;
            n_cb += (t == EventTag::CbAlloc as u8) as usize;
            n_dev += HAS_DEVICE[t as usize] as usize;
        }
        out.push(w);
    }
    let mut n = [0, 0, 0, n_cb, n_dev];
    for w in out.iter() {
        n[0] += w.alloc.count_ones() as usize;
        n[1] += w.free.count_ones() as usize;
        n[2] += w.name.count_ones() as usize;
    }
    n
}

/// [`word_of_64`] 32 tags at a time.
///
/// # Safety
///
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn word_of_64_avx2(tags: &[u8; 64]) -> (KindWord, u64, u64) {
    use std::arch::x86_64::*;
    let alloc = _mm256_set1_epi8(EventTag::BufferAlloc as i8);
    let free = _mm256_set1_epi8(EventTag::BufferFree as i8);
    let begin = _mm256_set1_epi8(EventTag::OpBegin as i8);
    let end = _mm256_set1_epi8(EventTag::OpEnd as i8);
    let marker = _mm256_set1_epi8(EventTag::Marker as i8);
    let cb_alloc = _mm256_set1_epi8(EventTag::CbAlloc as i8);
    // SAFETY: each load reads 32 of the 64 bytes of `tags`.
    let (lo, hi) = unsafe {
        (
            _mm256_loadu_si256(tags.as_ptr() as *const __m256i),
            _mm256_loadu_si256(tags.as_ptr().add(32) as *const __m256i),
        )
    };
    // The 64 bits of `eq` over both halves.
    let bits = |eq: &dyn Fn(__m256i) -> __m256i| {
        let l = _mm256_movemask_epi8(eq(lo)) as u32 as u64;
        let h = _mm256_movemask_epi8(eq(hi)) as u32 as u64;
        l | h << 32
    };
    let a = bits(&|v| _mm256_cmpeq_epi8(v, alloc));
    let f = bits(&|v| _mm256_cmpeq_epi8(v, free));
    let n = bits(&|v| _mm256_or_si256(_mm256_cmpeq_epi8(v, begin), _mm256_cmpeq_epi8(v, marker)));
    let e = bits(&|v| _mm256_cmpeq_epi8(v, end));
    let cb = bits(&|v| _mm256_cmpeq_epi8(v, cb_alloc));
    // DeviceOpen..=TraceRelease: `t - first` at most the range's width.
    let first = _mm256_set1_epi8(EventTag::DeviceOpen as i8);
    let width = _mm256_set1_epi8((EventTag::TraceRelease as u8 - EventTag::DeviceOpen as u8) as i8);
    let dev = bits(&|v| {
        let d = _mm256_sub_epi8(v, first);
        _mm256_cmpeq_epi8(_mm256_min_epu8(d, width), d)
    });
    let w = KindWord {
        alloc: a,
        free: f,
        name: n,
        // Every kind is one of alloc, free, name, op end or other.
        other: !(a | f | n | e),
    };
    (w, cb, dev)
}

/// The kind word of 64 tags and the masks of their CbAllocs and of the
/// events with a device: byte compares and movemasks, 16 tags at a time.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn word_of_64(tags: &[u8; 64]) -> (KindWord, u64, u64) {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8, _mm_sub_epi8,
    };
    // SAFETY: SSE2 is part of every x86_64 target; each load reads 16 of
    // the 64 bytes of `tags`.
    unsafe {
        let alloc = _mm_set1_epi8(EventTag::BufferAlloc as i8);
        let free = _mm_set1_epi8(EventTag::BufferFree as i8);
        let begin = _mm_set1_epi8(EventTag::OpBegin as i8);
        let end = _mm_set1_epi8(EventTag::OpEnd as i8);
        let marker = _mm_set1_epi8(EventTag::Marker as i8);
        let cb_alloc = _mm_set1_epi8(EventTag::CbAlloc as i8);
        let first = _mm_set1_epi8(EventTag::DeviceOpen as i8);
        let width =
            _mm_set1_epi8((EventTag::TraceRelease as u8 - EventTag::DeviceOpen as u8) as i8);
        let (mut w, mut cb, mut dev) = (KindWord::default(), 0u64, 0u64);
        for q in 0..4 {
            let v = _mm_loadu_si128(tags.as_ptr().add(16 * q) as *const __m128i);
            let a = _mm_movemask_epi8(_mm_cmpeq_epi8(v, alloc)) as u16 as u64;
            let f = _mm_movemask_epi8(_mm_cmpeq_epi8(v, free)) as u16 as u64;
            let n = _mm_movemask_epi8(_mm_or_si128(
                _mm_cmpeq_epi8(v, begin),
                _mm_cmpeq_epi8(v, marker),
            )) as u16 as u64;
            let e = _mm_movemask_epi8(_mm_cmpeq_epi8(v, end)) as u16 as u64;
            w.alloc |= a << (16 * q);
            w.free |= f << (16 * q);
            w.name |= n << (16 * q);
            // Every kind is one of alloc, free, name, op end or other.
            w.other |= (!(a | f | n | e) & 0xffff) << (16 * q);
            cb |= (_mm_movemask_epi8(_mm_cmpeq_epi8(v, cb_alloc)) as u16 as u64) << (16 * q);
            let d = _mm_sub_epi8(v, first);
            let in_range = _mm_cmpeq_epi8(_mm_min_epu8(d, width), d);
            dev |= (_mm_movemask_epi8(in_range) as u16 as u64) << (16 * q);
        }
        (w, cb, dev)
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn word_of_64(tags: &[u8; 64]) -> (KindWord, u64, u64) {
    let (mut w, mut cb, mut dev) = (KindWord::default(), 0u64, 0u64);
    for (j, &t) in tags.iter().enumerate() {
        cb |= ((t == EventTag::CbAlloc as u8) as u64) << j;
        dev |= (HAS_DEVICE[t as usize] as u64) << j;
        w.alloc |= ((t == EventTag::BufferAlloc as u8) as u64) << j;
        w.free |= ((t == EventTag::BufferFree as u8) as u64) << j;
        w.name |= ((t == EventTag::OpBegin as u8 || t == EventTag::Marker as u8) as u64) << j;
        w.other |= (IS_OTHER[t as usize] as u64) << j;
    }
    (w, cb, dev)
}

/// Calls `f(position)` for every set bit of `pick(word)`, in event order.
#[inline(always)]
pub(crate) fn for_each_of(
    words: &[KindWord],
    pick: impl Fn(&KindWord) -> u64,
    mut f: impl FnMut(usize),
) {
    for (wi, w) in words.iter().enumerate() {
        let mut m = pick(w);
        while m != 0 {
            f(wi * 64 + m.trailing_zeros() as usize);
            m &= m - 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_lands_in_its_own_bits() {
        // 150 tags cycling through every code 0..20 (unknown kinds 16..19
        // count as other, like AllocRefused 15): two whole words and a rest.
        let tags: Vec<u8> = (0..150u32).map(|i| (i % 20) as u8).collect();
        let mut words = Vec::new();
        // Codes 4 (alloc), 5 (free), 12 and 14 (names) and 6 (CbAlloc) once
        // in every 20 tags: allocs at 4, 24, ..., 144 (8), frees at 5, ...,
        // 145 (8), names at 12, ..., 132 and 14, ..., 134 (7 + 7),
        // CbAllocs at 6, ..., 146 (8); codes 2 to 11 have a device (ten in
        // every 20, and 2 to 9 of the last ten: 78). With and without AVX2
        // alike.
        let mut portable = Vec::new();
        assert_eq!(
            kind_words_with::<false>(&tags, &mut portable),
            [8, 8, 14, 8, 78]
        );
        assert_eq!(kind_words(&tags, &mut words), [8, 8, 14, 8, 78]);
        assert_eq!(words, portable);
        assert_eq!(words.len(), 3);
        for (p, &t) in tags.iter().enumerate() {
            let w = words[p / 64];
            let bit = |m: u64| (m >> (p % 64)) & 1 == 1;
            assert_eq!(bit(w.alloc), t == 4, "alloc at {p}");
            assert_eq!(bit(w.free), t == 5, "free at {p}");
            assert_eq!(bit(w.name), t == 12 || t == 14, "name at {p}");
            assert_eq!(bit(w.other), IS_OTHER[t as usize], "other at {p}");
        }
        // No bit past the last event.
        let last = words[2];
        let past = !0u64 << (150 - 128);
        assert_eq!((last.alloc | last.free | last.name | last.other) & past, 0);
        let mut allocs = Vec::new();
        for_each_of(&words, |w| w.alloc, |p| allocs.push(p));
        let expected: Vec<usize> = (0..150).filter(|p| p % 20 == 4).collect();
        assert_eq!(allocs, expected);
        // Every byte value (unknown kinds too, which wrap below the
        // device range's first code): the events with a device are those
        // `HAS_DEVICE` marks, in whole words and in the rest.
        let all: Vec<u8> = (0..300u32).map(|i| (i * 7 % 256) as u8).collect();
        let want = all.iter().filter(|&&t| HAS_DEVICE[t as usize]).count();
        assert_eq!(kind_words_with::<false>(&all, &mut portable)[4], want);
        assert_eq!(kind_words(&all, &mut words)[4], want);
    }
}
