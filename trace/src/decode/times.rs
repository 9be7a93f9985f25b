//! A decoded block's timestamps and pids, behind accessors
//! ([`BlockColumns::ts_at`](super::BlockColumns::ts_at),
//! [`BlockColumns::pid_at`](super::BlockColumns::pid_at) and their
//! whole-column iterators): a replay reads them only for the few events
//! that are neither buffer allocs nor frees, so the block keeps them in
//! whatever form is cheapest to write. Pids are kept as runs (one process
//! writes a whole block, nearly always).

use crate::varint::unzigzag;
use std::cell::Cell;

mod ticks;
use std::sync::atomic::{AtomicU64, Ordering};
use ticks::{gap, CHUNK};
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

/// Every event's timestamp (ns), in one of two forms:
/// - coded (formats 2.3 and later, what the decoder writes when every gap
///   fits 32 signed bits): each event's gap in ticks, the block's clock
///   tick, and a key every [`CHUNK`] events (the time before the chunk's
///   first event). The decoder makes each TS code its gap in place and
///   sums each chunk's gaps (`ticks.rs`) instead of prefix-summing every
///   event; a reader asking for one event's time adds at most a chunk's
///   gaps to its key, a pass over every time one gap per event;
/// - plain values (hand-built blocks, formats before 2.3, and blocks with
///   a gap past 32 bits).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Times {
    /// Plain: every event's timestamp, in order.
    values: Vec<u64>,
    /// Whether the times are coded (else `values`).
    coded: bool,
    /// Coded: event `i`'s gap after event `i - 1` (after `start` for the
    /// first) is `gap(gaps[i]) * unit` ns (an `i32`'s bits: half the bytes
    /// to write and read of 64-bit ones). Filled with the TS codes by the
    /// decoder ([`Times::codes_mut`]), made gaps by [`Times::coded`].
    gaps: Vec<u32>,
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
        self.gaps.clear();
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
        &mut self.gaps
    }

    /// Makes the times coded: the codes were filled (one per entry of
    /// `tags`, their kinds); the first event's gap is after `start`, every
    /// gap is `unzigzag(code) + bases[kind]` ticks of `unit` ns. A block
    /// with a gap past 32 signed bits (a pause of seconds in nanoseconds)
    /// is made plain values instead.
    pub(super) fn coded(&mut self, start: u64, unit: u64, bases: &[u64; 256], tags: &[u8]) {
        debug_assert_eq!(self.gaps.len(), tags.len());
        let n_keys = self.gaps.len().div_ceil(CHUNK);
        super::clear_for(&mut self.keys, n_keys);
        let keys = &mut self.keys.spare_capacity_mut()[..n_keys];
        let made = ticks::from_codes(&mut self.gaps, tags, bases, unit, start, keys);
        self.made(made, start, unit, bases, tags);
    }

    /// [`Times::coded`] of the codes in the TS column's `w` byte planes
    /// (1 to 4; `planes`: `w` planes of one byte per entry of `tags`),
    /// made gaps as they are read (`ticks::from_planes`) where the CPU
    /// and the bases allow it, else gathered first.
    pub(super) fn coded_from_planes(
        &mut self,
        w: usize,
        planes: &[u8],
        start: u64,
        unit: u64,
        bases: &[u64; 256],
        tags: &[u8],
    ) {
        let n = tags.len();
        let n_keys = n.div_ceil(CHUNK);
        super::clear_for(&mut self.keys, n_keys);
        self.gaps.clear();
        super::packed::reserve_exact(&mut self.gaps, n);
        let keys = &mut self.keys.spare_capacity_mut()[..n_keys];
        let out = &mut self.gaps.spare_capacity_mut()[..n];
        match ticks::from_planes((w, planes), tags, bases, unit, start, out, keys) {
            Some(made) => {
                // SAFETY: `from_planes` wrote every one of the `n` entries
                // (capacity reserved above) when it returned `Some`.
                unsafe { self.gaps.set_len(n) };
                self.made(made, start, unit, bases, tags);
            }
            None => {
                super::packed::gather_u32(w, planes, n, &mut self.gaps);
                self.coded(start, unit, bases, tags);
            }
        }
    }

    /// The times once the codes were made gaps (`made`: as
    /// `ticks::from_codes` returns; the keys were written into `keys`'
    /// spare room).
    fn made(
        &mut self,
        made: Result<(), usize>,
        start: u64,
        unit: u64,
        bases: &[u64; 256],
        tags: &[u8],
    ) {
        match made {
            Ok(()) => {
                // SAFETY: the gaps were made (`Ok`), which wrote every one
                // of the keys, one per chunk (capacity reserved by the
                // caller).
                unsafe { self.keys.set_len(self.gaps.len().div_ceil(CHUNK)) };
                self.coded = true;
                self.decode = DecodeId(DECODES.fetch_add(1, Ordering::Relaxed));
                self.start = start;
                self.unit = unit;
            }
            Err(done) => {
                // Gaps before `done`, codes from it on.
                let mut ts = start;
                self.values.clear();
                self.values.reserve(self.gaps.len());
                for (i, (&g, &t)) in self.gaps.iter().zip(tags).enumerate() {
                    let ticks = if i < done {
                        gap(g)
                    } else {
                        (unzigzag(g as u64) as u64).wrapping_add(bases[t as usize])
                    };
                    ts = ts.wrapping_add(ticks.wrapping_mul(unit));
                    self.values.push(ts);
                }
                self.gaps.clear();
                self.coded = false;
            }
        }
    }

    /// The timestamp of event `pos` (0 past the end): the chunk's key plus
    /// at most a chunk's gaps, or the last answer plus the gaps since, if
    /// it is nearer.
    /// Out of line: the block walks that call it (for a few events: op
    /// scopes and circular buffers at cycle boundaries) keep their
    /// registers (inlined, the test alone made a replay's walk 3
    /// instructions per event dearer).
    #[inline(never)]
    pub(crate) fn at(&self, pos: usize) -> u64 {
        if !self.coded {
            return self.values.get(pos).copied().unwrap_or(0);
        }
        self.coded_at(pos)
    }

    fn coded_at(&self, pos: usize) -> u64 {
        if pos >= self.gaps.len() {
            return 0;
        }
        let chunk = pos / CHUNK;
        let (decode, last, last_ts) = LAST_ANSWER.with(Cell::get);
        let near = decode == self.decode.0 && last >= chunk * CHUNK && last <= pos;
        let (i, mut ts) = if near {
            (last + 1, last_ts)
        } else {
            match self.keys.get(chunk) {
                Some(&key) => (chunk * CHUNK, key),
                None => return 0,
            }
        };
        let ticks = self.gaps[i..=pos]
            .iter()
            .fold(0u64, |s, &g| s.wrapping_add(gap(g)));
        ts = ts.wrapping_add(ticks.wrapping_mul(self.unit));
        LAST_ANSWER.with(|l| l.set((self.decode.0, pos, ts)));
        ts
    }

    /// The timestamp of event `pos`, given `prev`, that of event `pos - 1`
    /// (anything for event 0): one add for a reader going through the
    /// events in order. 0 past the end.
    #[inline]
    pub(crate) fn next(&self, pos: usize, prev: u64) -> u64 {
        if !self.coded {
            return self.values.get(pos).copied().unwrap_or(0);
        }
        let Some(&g) = self.gaps.get(pos) else {
            return 0;
        };
        let prev = if pos == 0 { self.start } else { prev };
        prev.wrapping_add(gap(g).wrapping_mul(self.unit))
    }

    /// Appends one event's timestamp (hand-built blocks: plain values;
    /// coded times are made plain first).
    pub(crate) fn push(&mut self, ts: u64) {
        if self.coded {
            let mut values = std::mem::take(&mut self.values);
            values.clear();
            values.extend(self.iter());
            self.values = values;
            self.coded = false;
        }
        self.values.push(ts);
    }

    /// Every event's timestamp, in order: coded times are a running sum
    /// of gaps times the unit.
    pub(crate) fn iter(&self) -> TimesIter<'_> {
        let (plain, gaps): (&[u64], &[u32]) = if self.coded {
            (&[], &self.gaps)
        } else {
            (&self.values, &[])
        };
        TimesIter {
            plain: plain.iter(),
            gaps: gaps.iter(),
            unit: self.unit,
            start: self.start,
            ticks: 0,
        }
    }

    /// Number of events with a time.
    pub(crate) fn len(&self) -> usize {
        if self.coded {
            self.gaps.len()
        } else {
            self.values.len()
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        let b = std::mem::size_of::<u64>();
        (self.values.capacity() + self.keys.capacity()) * b
            + self.gaps.capacity() * std::mem::size_of::<u32>()
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

/// [`Times::iter`]: the plain values, or the coded gaps summed in order.
pub(crate) struct TimesIter<'a> {
    plain: std::slice::Iter<'a, u64>,
    /// The coded gaps left.
    gaps: std::slice::Iter<'a, u32>,
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
        self.ticks = self.ticks.wrapping_add(gap(*self.gaps.next()?));
        Some(self.start.wrapping_add(self.ticks.wrapping_mul(self.unit)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.plain.len() + self.gaps.len();
        (n, Some(n))
    }

    /// Every time in one loop per form (a whole-column pass: `sum`,
    /// `extend`, `for_each` come here), not a test of the plain values
    /// per coded one; a unit of 1 ns (no tick column) multiplies nothing.
    fn fold<B, F: FnMut(B, u64) -> B>(self, init: B, mut f: F) -> B {
        let mut acc = self.plain.copied().fold(init, &mut f);
        let unit = self.unit;
        // The time of the last event handed out (`start` before the first).
        let mut ts = self.start.wrapping_add(self.ticks.wrapping_mul(unit));
        // Runs of a fixed length: loops the compiler unrolls.
        let mut runs = self.gaps.as_slice().chunks_exact(8);
        if unit == 1 {
            for run in &mut runs {
                for &g in run {
                    ts = ts.wrapping_add(gap(g));
                    acc = f(acc, ts);
                }
            }
        } else {
            for run in &mut runs {
                for &g in run {
                    ts = ts.wrapping_add(gap(g).wrapping_mul(unit));
                    acc = f(acc, ts);
                }
            }
        }
        for &g in runs.remainder() {
            ts = ts.wrapping_add(gap(g).wrapping_mul(unit));
            acc = f(acc, ts);
        }
        acc
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
        // The last: one gap past 32 signed bits (2^31 - 1 + 1000 ticks),
        // which makes the times plain.
        for (n, unit, start, wide) in [
            (0, 1, 5, false),
            (1, 1, 5, false),
            (32, 10, 0, false),
            (99, 100, u64::MAX - 5000, false),
            (99, 1, 5, true),
        ] {
            let mut tags: Vec<u8> = (0..n)
                .map(|i| kinds[(i * 5 + i / 3) % kinds.len()])
                .collect();
            // Gaps from the base: -3, 0, 5, -1, ... (some events before their base).
            let mut codes: Vec<u32> = (0..n)
                .map(|i| zigzag((i as i64 * 37) % 11 - 5) as u32)
                .collect();
            if wide {
                (codes[70], tags[70]) = (zigzag(i32::MAX as i64) as u32, 4);
            }
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
            let at: Vec<u64> = (0..n).map(|p| t.at(p)).collect();
            assert_eq!(at, expect, "{n} events");
            // Out of order (from the keys, or from the last answer when
            // it is behind in the same chunk), and again.
            for p in (0..n).rev().chain((0..n).step_by(3)).chain((0..n).rev()) {
                assert_eq!(t.at(p), expect[p], "event {p} of {n}");
            }
            assert_eq!(t.iter().collect::<Vec<_>>(), expect);
            // A fold (in chunks), from the start and after a few `next`s.
            let folded = |skip: usize| {
                let mut it = t.iter();
                let mut got: Vec<u64> = it.by_ref().take(skip).collect();
                it.fold((), |(), ts| got.push(ts));
                got
            };
            for skip in [0, 1, 5, 40] {
                assert_eq!(folded(skip), expect, "{n} events, {skip} taken first");
            }
            assert_eq!((t.at(n), t.next(n, 1)), (0, 0), "past the end");
            // A hand-built event after them: the times become plain.
            t.push(77);
            expect.push(77);
            assert_eq!(t.iter().collect::<Vec<_>>(), expect);
            assert_eq!(t.at(n), 77);
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
