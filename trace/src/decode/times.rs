//! A decoded block's timestamps and pids, behind accessors
//! ([`BlockColumns::ts_at`](super::BlockColumns::ts_at),
//! [`BlockColumns::pid_at`](super::BlockColumns::pid_at) and their
//! whole-column iterators): a replay reads them only for the few events
//! that are neither buffer allocs nor frees, so the block keeps them in
//! whatever form is cheapest to write. Pids are kept as runs (one process
//! writes a whole block, nearly always).

use crate::varint::unzigzag;
use std::cell::Cell;

mod gaps;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU64, Ordering};
use ttalloc_model::Pid;

/// Every event's pid, as runs of one pid.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PidRuns {
    /// `(end, pid)` of the first run (`(0, 0)` while there is none): the
    /// run's events are those before position `end`. Kept apart so that
    /// [`PidRuns::at`] answers a block of one process (nearly every block)
    /// with a compare and a load.
    first: (u32, u32),
    /// `(end, pid)` of every later run, in order: a run's events end before
    /// position `end` and start where the run before it ended. Neighbouring
    /// runs have different pids (so equal blocks have equal runs).
    rest: Vec<(u32, u32)>,
}

impl PidRuns {
    pub(crate) fn clear(&mut self) {
        self.first = (0, 0);
        self.rest.clear();
    }

    /// Number of events the runs cover.
    pub(crate) fn len(&self) -> usize {
        self.rest.last().unwrap_or(&self.first).0 as usize
    }

    /// Appends `n` events of `pid` (no-op for `n == 0`).
    pub(crate) fn push(&mut self, pid: u32, n: usize) {
        if n == 0 {
            return;
        }
        let end = (self.len() + n) as u32;
        let last = self.rest.last_mut().unwrap_or(&mut self.first);
        if last.1 == pid || last.0 == 0 {
            *last = (end, pid);
        } else {
            self.rest.push((end, pid));
        }
    }

    /// The pid of event `pos` (0 past the end).
    #[inline]
    pub(crate) fn at(&self, pos: usize) -> u32 {
        if pos < self.first.0 as usize {
            self.first.1
        } else {
            self.later(pos)
        }
    }

    /// [`PidRuns::at`] past the first run.
    #[cold]
    #[inline(never)]
    fn later(&self, pos: usize) -> u32 {
        let i = self.rest.partition_point(|&(end, _)| end as usize <= pos);
        self.rest.get(i).map_or(0, |r| r.1)
    }

    /// The pid of every event, if one process wrote them all (and there are any).
    pub(crate) fn one(&self) -> Option<u32> {
        (self.first.0 > 0 && self.rest.is_empty()).then_some(self.first.1)
    }

    /// `(pid, events)` of every run, in order.
    pub(crate) fn runs(&self) -> impl Iterator<Item = (Pid, usize)> + '_ {
        let mut start = 0u32;
        let first = Some(&self.first).filter(|r| r.0 > 0);
        first.into_iter().chain(&self.rest).map(move |&(end, pid)| {
            let n = end - start;
            start = end;
            (Pid(pid), n as usize)
        })
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.rest.capacity() * std::mem::size_of::<(u32, u32)>()
    }
}

/// Events per key of a block's coded timestamps: [`Times::at`] sums at
/// most this many gaps.
const CHUNK: usize = gaps::SUM_RUN;

/// Events whose gaps [`TimesIter::fold`] makes at a time (2 KiB on the
/// stack): runs of [`CHUNK`] spent a fifth of the fold on each run's setup.
const FOLD_RUN: usize = 256;

/// Every event's timestamp (ns), in one of two forms:
/// - coded (formats 2.3 and later, what the decoder writes): the TS
///   column's codes as they were unpacked, the block's base gap per kind
///   and its clock tick, and a key every [`CHUNK`] events (the time before
///   the chunk's first event). The decoder then sums each chunk's gaps (a
///   vectorised reduction) instead of prefix-summing every event; a reader
///   asking for one event's time adds at most a chunk's gaps to its key;
/// - plain values (hand-built blocks, formats before 2.3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Times {
    /// Plain: every event's timestamp, in order.
    values: Vec<u64>,
    /// Whether the times are coded (else `values`).
    coded: bool,
    /// Coded: event `i`'s gap after event `i - 1` (after `start` for the
    /// first) is `(unzigzag(codes[i]) + bases[tags[i]]) * unit` ns. 32-bit:
    /// half the bytes to write and read of 64-bit ones (a block whose
    /// codes do not fit keeps plain values).
    codes: Vec<u32>,
    /// Coded: the base gap per kind code (256 entries), in ticks.
    bases: Vec<u64>,
    unit: u64,
    start: u64,
    /// Coded: `keys[j]` is the time before event `j * CHUNK`.
    keys: Vec<u64>,
    /// Coded: which decode made them (unique in the process), naming them
    /// in the thread's last answer ([`LAST_ANSWER`]).
    decode: DecodeId,
}

/// A decode's number (0: none). Not part of what a block holds: blocks
/// compare equal whichever decode made them.
#[derive(Clone, Copy, Debug, Default)]
struct DecodeId(u64);

impl PartialEq for DecodeId {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for DecodeId {}

static DECODES: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// `(decode, position, time)` of the last coded time this thread asked
    /// for: a reader asking for events in order (a walk that follows op
    /// scopes: a third of a trace) sums only the gaps since. Kept apart
    /// from the block: an `UnsafeCell` inside `BlockColumns` would make
    /// every walk over it reload its arrays after each call it makes.
    static LAST_ANSWER: Cell<(u64, usize, u64)> = const { Cell::new((0, 0, 0)) };
}

impl Times {
    pub(crate) fn clear(&mut self) {
        self.values.clear();
        self.codes.clear();
        self.keys.clear();
        self.coded = false;
        self.decode = DecodeId(0);
    }

    /// The plain values, for the decoder to fill (formats before 2.3).
    pub(super) fn values_mut(&mut self) -> &mut Vec<u64> {
        self.coded = false;
        &mut self.values
    }

    /// The codes, for the decoder to fill before [`Times::coded`].
    pub(super) fn codes_mut(&mut self) -> &mut Vec<u32> {
        self.coded = false;
        &mut self.codes
    }

    /// Makes the times coded: the codes were filled (one per entry of
    /// `tags`); the first event's gap is after `start`, every gap is in
    /// ticks of `unit` ns.
    pub(super) fn coded(&mut self, start: u64, unit: u64, bases: &[u64; 256], tags: &[u8]) {
        debug_assert_eq!(self.codes.len(), tags.len());
        self.coded = true;
        self.decode = DecodeId(DECODES.fetch_add(1, Ordering::Relaxed));
        self.start = start;
        self.unit = unit;
        self.bases.clear();
        self.bases.extend_from_slice(bases);
        let n_keys = tags.len().div_ceil(CHUNK);
        super::clear_for(&mut self.keys, n_keys);
        let keys = &mut self.keys.spare_capacity_mut()[..n_keys];
        chunk_keys(&self.codes, tags, bases, unit, start, keys);
        // SAFETY: `chunk_keys` wrote every one of the `n_keys` keys
        // (capacity reserved above).
        unsafe { self.keys.set_len(n_keys) };
    }

    /// Event `i`'s gap in ticks (coded times; `i` below the codes' and
    /// `tags`' lengths).
    #[inline(always)]
    unsafe fn ticks(&self, i: usize, tags: &[u8]) -> u64 {
        // SAFETY: the caller keeps `i` in bounds; coded times have 256
        // bases (`Times::coded`), one per kind code.
        unsafe {
            let k = *tags.get_unchecked(i) as usize;
            (unzigzag(*self.codes.get_unchecked(i) as u64) as u64)
                .wrapping_add(*self.bases.get_unchecked(k))
        }
    }

    /// The timestamp of event `pos` (0 past the end); `tags` is the block's
    /// kind column: the chunk's key plus at most a chunk's gaps, or the
    /// last answer plus the gaps since, if it is nearer.
    /// Out of line: the block walks that call it (for a few events: op
    /// scopes and circular buffers at cycle boundaries) keep their
    /// registers (inlined, the test alone made a replay's walk 3
    /// instructions per event dearer).
    #[inline(never)]
    pub(crate) fn at(&self, pos: usize, tags: &[u8]) -> u64 {
        if !self.coded {
            return self.values.get(pos).copied().unwrap_or(0);
        }
        self.coded_at(pos, tags)
    }

    fn coded_at(&self, pos: usize, tags: &[u8]) -> u64 {
        let n = self.codes.len();
        if pos >= n || tags.len() < n || self.bases.len() != 256 {
            return 0;
        }
        let chunk = pos / CHUNK;
        let (decode, last, last_ts) = LAST_ANSWER.with(Cell::get);
        let near = decode == self.decode.0 && last >= chunk * CHUNK && last <= pos;
        let (mut i, mut ts) = if near {
            (last + 1, last_ts)
        } else {
            match self.keys.get(chunk) {
                Some(&key) => (chunk * CHUNK, key),
                None => return 0,
            }
        };
        let mut ticks = 0u64;
        while i <= pos {
            // SAFETY: `i <= pos < n`, and `tags` holds `n` kinds at least.
            ticks = ticks.wrapping_add(unsafe { self.ticks(i, tags) });
            i += 1;
        }
        ts = ts.wrapping_add(ticks.wrapping_mul(self.unit));
        LAST_ANSWER.with(|l| l.set((self.decode.0, pos, ts)));
        ts
    }

    /// The timestamp of event `pos`, given `prev`, that of event `pos - 1`
    /// (anything for event 0): one add for a reader going through the
    /// events in order. 0 past the end.
    #[inline]
    pub(crate) fn next(&self, pos: usize, prev: u64, tags: &[u8]) -> u64 {
        if !self.coded {
            return self.values.get(pos).copied().unwrap_or(0);
        }
        if pos >= self.codes.len() || pos >= tags.len() || self.bases.len() != 256 {
            return 0;
        }
        let prev = if pos == 0 { self.start } else { prev };
        // SAFETY: `pos` is below both lengths (checked above).
        let ticks = unsafe { self.ticks(pos, tags) };
        prev.wrapping_add(ticks.wrapping_mul(self.unit))
    }

    /// Appends one event's timestamp (hand-built blocks: plain values;
    /// coded times are made plain first).
    pub(crate) fn push(&mut self, ts: u64, tags: &[u8]) {
        if self.coded {
            let mut values = std::mem::take(&mut self.values);
            values.clear();
            values.extend(self.iter(tags));
            self.values = values;
            self.coded = false;
        }
        self.values.push(ts);
    }

    /// Every event's timestamp, in order (`tags`: the block's kind column).
    /// Coded times are a running sum of ticks times the unit: the checks of
    /// [`Times::next`] are made once here, not per event (they made a
    /// whole-column pass a tenth of a block scan).
    pub(crate) fn iter<'a>(&'a self, tags: &'a [u8]) -> TimesIter<'a> {
        let coded = self.coded && self.bases.len() == 256 && tags.len() >= self.codes.len();
        debug_assert!(
            coded || !self.coded,
            "coded times always have a kind and base per code"
        );
        let (plain, codes): (&[u64], &[u32]) = if coded {
            (&[], &self.codes)
        } else if self.coded {
            (&[], &[])
        } else {
            (&self.values, &[])
        };
        let bases = match <&[u64; 256]>::try_from(self.bases.as_slice()) {
            Ok(bases) if coded => bases,
            _ => &NO_BASES,
        };
        TimesIter {
            plain: plain.iter(),
            codes: codes.iter(),
            tags: tags[..codes.len()].iter(),
            bases,
            unit: self.unit,
            start: self.start,
            ticks: 0,
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        let b = std::mem::size_of::<u64>();
        (self.values.capacity() + self.bases.capacity() + self.keys.capacity()) * b
            + self.codes.capacity() * std::mem::size_of::<u32>()
    }

    /// Makes the times plain from codes too wide for 32 bits, which the
    /// decoder put in the plain values (one per entry of `tags`): each
    /// becomes its event's time, the running sum from `start` of the gaps
    /// [`Times::coded`] would make.
    pub(super) fn plain_from_codes(
        &mut self,
        start: u64,
        unit: u64,
        bases: &[u64; 256],
        tags: &[u8],
    ) {
        debug_assert_eq!(self.values.len(), tags.len());
        self.coded = false;
        let mut ts = start;
        for (v, &t) in self.values.iter_mut().zip(tags) {
            let ticks = (unzigzag(*v) as u64).wrapping_add(bases[t as usize]);
            ts = ts.wrapping_add(ticks.wrapping_mul(unit));
            *v = ts;
        }
    }
}

/// The bases of times that are not coded (never read).
static NO_BASES: [u64; 256] = [0; 256];

/// [`Times::iter`]: the plain values, or the coded gaps summed in order.
pub(crate) struct TimesIter<'a> {
    plain: std::slice::Iter<'a, u64>,
    /// The coded gaps left and their events' kinds (as many).
    codes: std::slice::Iter<'a, u32>,
    tags: std::slice::Iter<'a, u8>,
    bases: &'a [u64; 256],
    unit: u64,
    start: u64,
    /// Ticks since `start`, up to the last event handed out.
    ticks: u64,
}

impl Iterator for TimesIter<'_> {
    type Item = u64;

    #[inline]
    fn next(&mut self) -> Option<u64> {
        if let Some(&v) = self.plain.next() {
            return Some(v);
        }
        let (&code, &tag) = (self.codes.next()?, self.tags.next()?);
        let gap = (unzigzag(code as u64) as u64).wrapping_add(self.bases[tag as usize]);
        self.ticks = self.ticks.wrapping_add(gap);
        Some(self.start.wrapping_add(self.ticks.wrapping_mul(self.unit)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.plain.len() + self.codes.len();
        (n, Some(n))
    }

    /// Every time in one loop per form (a whole-column pass: `sum`,
    /// `extend`, `for_each` come here), not a test of the plain values
    /// per coded one. The gaps of each chunk are made first, apart from
    /// the running sum: a loop without the sum's dependency.
    fn fold<B, F: FnMut(B, u64) -> B>(self, init: B, mut f: F) -> B {
        let mut acc = self.plain.copied().fold(init, &mut f);
        let (bases, unit) = (self.bases, self.unit);
        // The time of the last event handed out (`start` before the first):
        // `start + ticks * unit` is `start` plus every gap times the unit
        // (wrapping), so the gaps come scaled and the sum is in ns.
        let mut ts = self.start.wrapping_add(self.ticks.wrapping_mul(unit));
        let (codes, tags) = (self.codes.as_slice(), self.tags.as_slice());
        let mut gaps = [0u64; FOLD_RUN];
        for (cc, tc) in codes.chunks(FOLD_RUN).zip(tags.chunks(FOLD_RUN)) {
            let gaps = &mut gaps[..cc.len()];
            gaps::gaps(cc, tc, bases, unit, gaps);
            for &g in gaps.iter() {
                ts = ts.wrapping_add(g);
                acc = f(acc, ts);
            }
        }
        acc
    }
}

/// Writes every entry of `keys` (one per chunk of `codes`, the last one
/// partial; nothing is zeroed first) with the time before every chunk of
/// [`CHUNK`] events: each chunk's gaps summed apart (a vector reduction
/// with AVX2, the bases gathered by kind), not event after event.
fn chunk_keys(
    codes: &[u32],
    tags: &[u8],
    bases: &[u64; 256],
    unit: u64,
    start: u64,
    keys: &mut [MaybeUninit<u64>],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { chunk_keys_avx2(codes, tags, bases, unit, start, keys) };
    }
    chunk_keys_with::<false>(codes, tags, bases, unit, start, keys)
}

/// [`chunk_keys`] with AVX2.
///
/// # Safety
///
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn chunk_keys_avx2(
    codes: &[u32],
    tags: &[u8],
    bases: &[u64; 256],
    unit: u64,
    start: u64,
    keys: &mut [MaybeUninit<u64>],
) {
    chunk_keys_with::<true>(codes, tags, bases, unit, start, keys)
}

/// [`chunk_keys`]; `AVX2` only where the CPU has it.
#[inline(always)]
fn chunk_keys_with<const AVX2: bool>(
    codes: &[u32],
    tags: &[u8],
    bases: &[u64; 256],
    unit: u64,
    start: u64,
    keys: &mut [MaybeUninit<u64>],
) {
    assert_eq!(keys.len(), codes.len().div_ceil(CHUNK));
    // Every key is written (`Times::coded` relies on it): one kind per code.
    let tags = &tags[..codes.len()];
    let mut before = start;
    // SAFETY (of both): `AVX2` is set only where the CPU has it; every
    // chunk holds `CHUNK` (= `SUM_RUN`) codes and kinds.
    #[cfg(target_arch = "x86_64")]
    let planes = AVX2.then(|| unsafe { gaps::BytePlanes::new(bases) });
    let chunks = codes.chunks_exact(CHUNK).zip(tags.chunks_exact(CHUNK));
    for ((cc, tc), key) in chunks.zip(keys.iter_mut()) {
        key.write(before);
        #[cfg(target_arch = "x86_64")]
        let ticks = match &planes {
            Some(planes) => unsafe { gaps::sum32_avx2(cc, tc, bases, planes) },
            None => gaps::sum(cc, tc, bases),
        };
        #[cfg(not(target_arch = "x86_64"))]
        let ticks = gaps::sum(cc, tc, bases);
        before = before.wrapping_add(ticks.wrapping_mul(unit));
    }
    // The last, partial chunk needs its key only.
    if !codes.len().is_multiple_of(CHUNK) {
        if let Some(key) = keys.last_mut() {
            key.write(before);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::varint::zigzag;

    /// Coded times answer every position as the running sum of gaps the
    /// decoder made before (`ts += (unzigzag(code) + base[kind]) * unit`),
    /// whether asked one by one, in order or all at once, for lengths on
    /// and off a chunk boundary, with gaps that wrap around.
    #[test]
    fn coded_times_are_the_running_sum_of_their_gaps() {
        let mut bases = [0u64; 256];
        bases[4] = 1000;
        bases[5] = 40;
        bases[12] = (-7i64) as u64; // a base below 0 (wrapping)
        let kinds = [4u8, 5, 12, 13, 4, 4, 5, 200];
        for (n, unit, start) in [
            (0, 1, 5),
            (1, 1, 5),
            (32, 10, 0),
            (99, 100, u64::MAX - 5000),
        ] {
            let tags: Vec<u8> = (0..n)
                .map(|i| kinds[(i * 5 + i / 3) % kinds.len()])
                .collect();
            // Gaps from the base: -3, 0, 5, -1, ... (some events before their base).
            let codes: Vec<u32> = (0..n)
                .map(|i| zigzag((i as i64 * 37) % 11 - 5) as u32)
                .collect();
            let mut expect = Vec::new();
            let mut ts = start;
            for (&c, &k) in codes.iter().zip(&tags) {
                let ticks = (unzigzag(c as u64) as u64).wrapping_add(bases[k as usize]);
                ts = ts.wrapping_add(ticks.wrapping_mul(unit));
                expect.push(ts);
            }
            let mut t = Times::default();
            t.codes_mut().extend_from_slice(&codes);
            t.coded(start, unit, &bases, &tags);
            let at: Vec<u64> = (0..n).map(|p| t.at(p, &tags)).collect();
            assert_eq!(at, expect, "{n} events");
            // Out of order (from the keys, or from the last answer when
            // it is behind in the same chunk), and again.
            for p in (0..n).rev().chain((0..n).step_by(3)).chain((0..n).rev()) {
                assert_eq!(t.at(p, &tags), expect[p], "event {p} of {n}");
            }
            assert_eq!(t.iter(&tags).collect::<Vec<_>>(), expect);
            // A fold (in chunks), from the start and after a few `next`s.
            let folded = |skip: usize| {
                let mut it = t.iter(&tags);
                let mut got: Vec<u64> = it.by_ref().take(skip).collect();
                it.fold((), |(), ts| got.push(ts));
                got
            };
            for skip in [0, 1, 5, 40] {
                assert_eq!(folded(skip), expect, "{n} events, {skip} taken first");
            }
            assert_eq!(
                (t.at(n, &tags), t.next(n, 1, &tags)),
                (0, 0),
                "past the end"
            );
            // A hand-built event after them: the times become plain.
            t.push(77, &tags);
            expect.push(77);
            let mut tags = tags.clone();
            tags.push(4);
            assert_eq!(t.iter(&tags).collect::<Vec<_>>(), expect);
            assert_eq!(t.at(n, &tags), 77);
        }
    }

    #[test]
    fn pid_runs_answer_each_position_and_merge_equal_neighbours() {
        let mut p = PidRuns::default();
        assert_eq!((p.len(), p.at(0), p.one()), (0, 0, None));
        p.push(7, 3);
        // One run: every position below 3 is 7's, and the block has one pid.
        assert_eq!((p.at(0), p.at(2), p.at(3), p.one()), (7, 7, 0, Some(7)));
        p.push(7, 2); // the same pid again: still one run, now of 5
        p.push(9, 0); // nothing
        assert_eq!((p.len(), p.one()), (5, Some(7)));
        p.push(9, 1);
        p.push(7, 2);
        // Runs 7 x5 (0..5), 9 x1 (5), 7 x2 (6..8).
        let at: Vec<u32> = (0..9).map(|i| p.at(i)).collect();
        assert_eq!(at, [7, 7, 7, 7, 7, 9, 7, 7, 0]);
        assert_eq!(p.one(), None);
        let runs: Vec<(Pid, usize)> = p.runs().collect();
        assert_eq!(runs, [(Pid(7), 5), (Pid(9), 1), (Pid(7), 2)]);
    }
}
