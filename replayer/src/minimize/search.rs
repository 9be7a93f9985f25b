//! The search: delta debugging over the trace's structure (cycles,
//! processes, devices, call sites), then over single events, then a sweep
//! that removes single events with their dependents until none can go
//! (1-minimality). Every candidate is closed under prerequisites
//! ([`Deps`]) and replayed from memory; equal candidates are replayed once.

use super::deps::Deps;
use super::resume::{self, ResumePoint};
use super::store::{EventStore, Part};
use super::target::{still_shows, Target};
use crate::cycles::{CycleRule, CycleSpan};
use crate::ddmin::ddmin;
use crate::engine::{CycleInput, Engine, EngineSetup, ModelAddresses};
use crate::findings::Findings;
use crate::options::ReplayOptions;
use crate::source::Chunk;
use crate::Result;
use std::collections::{BTreeMap, HashMap};
use ttalloc_model::{Event, InternTables};
use unit::Unit;

/// Decides whether a closed subset keeps the finding, by replaying it.
pub struct Oracle<'a> {
    pub events: &'a dyn EventStore,
    pub interner: &'a InternTables,
    pub target: &'a Target,
    pub opts: &'a ReplayOptions,
    /// The original trace's cycle rule, applied to every subset.
    pub rule: CycleRule,
    /// Subset (as a 128-bit digest of its sorted ordinals) -> verdict.
    cache: HashMap<(u64, u64, usize), bool>,
    pub replays: u32,
    pub cache_hits: u32,
    /// Called after every replay (progress).
    pub on_replay: Option<Box<dyn FnMut(u32, usize) + 'a>>,
    buf: Vec<Event>,
    /// Checkpoints a candidate keeping the whole trace before one starts from.
    pub resume_points: Vec<ResumePoint>,
    /// Events the replays went through, and the replays that started at a checkpoint.
    pub events_replayed: u64,
    pub resumed: u32,
}

impl<'a> Oracle<'a> {
    pub fn new(
        events: &'a dyn EventStore,
        interner: &'a InternTables,
        target: &'a Target,
        opts: &'a ReplayOptions,
        rule: CycleRule,
    ) -> Self {
        Oracle {
            events,
            interner,
            target,
            opts,
            rule,
            cache: HashMap::new(),
            replays: 0,
            cache_hits: 0,
            on_replay: None,
            buf: Vec::new(),
            resume_points: Vec::new(),
            events_replayed: 0,
            resumed: 0,
        }
    }

    fn digest(kept: &[u32]) -> (u64, u64, usize) {
        subset_digest(kept)
    }

    /// Records that the trace's `events` events, all of them, are known
    /// to keep the finding.
    pub fn assume_all(&mut self, events: u32) {
        self.cache.insert(all_digest(events), true);
    }

    /// Replays `kept` (sorted original ordinals, closed): does it show the finding?
    pub fn keeps(&mut self, kept: &[u32]) -> Result<bool> {
        let key = Self::digest(kept);
        if let Some(&v) = self.cache.get(&key) {
            self.cache_hits += 1;
            return Ok(v);
        }
        let f = self.replay(kept)?;
        let v = still_shows(self.target, &f, kept, self.events, self.opts.warmup)?;
        self.cache.insert(key, v);
        self.replays += 1;
        if let Some(cb) = self.on_replay.as_mut() {
            cb(self.replays, kept.len());
        }
        Ok(v)
    }

    /// The findings of a replay of `kept` (ordinals in the findings are
    /// positions in `kept`).
    pub fn replay(&mut self, kept: &[u32]) -> Result<Findings> {
        let resumed = resume::latest_for(&self.resume_points, kept).and_then(|p| {
            // A checkpoint that cannot be restored is passed over.
            let engine = Engine::resume(self.setup(), &p.checkpoint, Some(&p.known)).ok()?;
            Some((p.at() as usize, engine))
        });
        let (from, mut engine) = match resumed {
            Some(r) => {
                self.resumed += 1;
                r
            }
            None => (0, Engine::new(self.setup())),
        };
        // The subset is copied a chunk at a time: a copy of it whole (the
        // first candidates keep most of the trace) was a second copy of
        // the trace in memory.
        // Whole blocks of a trace file go in as decoded columns.
        self.buf.clear();
        let mut feed = Feeder {
            engine: &mut engine,
            buf: &mut self.buf,
            next: from as u64,
        };
        self.events
            .each_part(&kept[from..], &mut |part| feed.part(part))?;
        feed.flush()?;
        self.events_replayed += (kept.len() - from) as u64;
        Ok(engine.finish())
    }

    /// The replay of the whole trace, with what the model knew at each of
    /// `points` (sorted ordinals) for replays resumed there.
    pub fn replay_all(&mut self, points: &[u64]) -> Result<(Findings, Vec<ModelAddresses>)> {
        let mut engine = Engine::new(self.setup());
        let mut known = Vec::with_capacity(points.len());
        let mut fed = 0usize;
        for end in points
            .iter()
            .map(|&p| (p as usize).min(self.events.len()))
            .chain([self.events.len()])
        {
            self.buf.clear();
            let mut feed = Feeder {
                engine: &mut engine,
                buf: &mut self.buf,
                next: fed as u64,
            };
            self.events
                .each_part_in(fed..end, &mut |part| feed.part(part))?;
            feed.flush()?;
            fed = end.max(fed);
            if known.len() < points.len() {
                known.push(engine.model_addresses());
            }
        }
        self.events_replayed += self.events.len() as u64;
        Ok((engine.finish(), known))
    }

    fn setup(&self) -> EngineSetup<'a> {
        EngineSetup {
            arch: self.opts.arch,
            overrides: &self.opts.overrides,
            warmup: self.opts.warmup,
            cycles: CycleInput::Online(self.rule.clone()),
            interner: self.interner,
            release_sites: None,
            stop_at_oom: self.target.kind == super::FindingKind::Oom,
        }
    }
}

const CHUNK: usize = 65536;

/// Feeds an engine the parts of a walk, numbering events from `next`:
/// single events gathered into chunks of [`CHUNK`], runs and blocks as they
/// come.
struct Feeder<'e, 'a> {
    engine: &'e mut Engine<'a>,
    buf: &'e mut Vec<Event>,
    next: u64,
}

impl Feeder<'_, '_> {
    fn part(&mut self, part: Part<'_>) -> Result<()> {
        match part {
            Part::Event(e) => {
                self.buf.push(e.clone());
                if self.buf.len() == CHUNK {
                    self.flush()?;
                }
                return Ok(());
            }
            Part::Events(run) => {
                self.flush()?;
                self.engine.feed(self.next, run)?;
            }
            Part::Block(columns) => {
                self.flush()?;
                self.engine.feed_chunk(&Chunk::Columns {
                    first: self.next,
                    columns,
                })?;
            }
        }
        self.next += part.len() as u64;
        Ok(())
    }

    /// Feeds the events gathered.
    fn flush(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            self.engine.feed(self.next, self.buf)?;
            self.next += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }
}

/// [`subset_digest`] of every ordinal below `events`, which are not listed.
fn all_digest(events: u32) -> (u64, u64, usize) {
    let (mut a, mut b) = (0u64, DIGEST_M);
    let mut i = 0u32;
    while events - i >= 2 {
        let w = i as u64 | ((i + 1) as u64) << 32;
        a = digest_fold(a, w, DIGEST_K);
        b = digest_fold(b, w.rotate_left(32), DIGEST_M);
        i += 2;
    }
    if i < events {
        a = digest_fold(a, i as u64 | 1 << 63, DIGEST_K);
        b = digest_fold(b, i as u64, DIGEST_M);
    }
    (a, b, events as usize)
}

const DIGEST_K: u64 = 0x9E37_79B9_7F4A_7C15;
const DIGEST_M: u64 = 0xC2B2_AE3D_27D4_EB4F;

#[inline(always)]
fn digest_fold(h: u64, w: u64, k: u64) -> u64 {
    let p = ((h ^ w) as u128).wrapping_mul(k as u128);
    (p as u64) ^ ((p >> 64) as u64)
}

/// A subset's cache key: two folded-multiply hashes of its ordinals, taken
/// two at a time, with other keys, starts and word orders, and its length.
/// The subsets are a search's, not an adversary's; SipHash and a
/// byte-at-a-time hash of a 10M-event subset were 9% of minimising it.
fn subset_digest(kept: &[u32]) -> (u64, u64, usize) {
    const K: u64 = DIGEST_K;
    const M: u64 = DIGEST_M;
    let fold = digest_fold;
    let (mut a, mut b) = (0u64, M);
    let mut pairs = kept.chunks_exact(2);
    for p in &mut pairs {
        let w = p[0] as u64 | (p[1] as u64) << 32;
        a = fold(a, w, K);
        b = fold(b, w.rotate_left(32), M);
    }
    if let [last] = pairs.remainder() {
        a = fold(a, *last as u64 | 1 << 63, K);
        b = fold(b, *last as u64, M);
    }
    (a, b, kept.len())
}

/// Delta debugging over `units` (`base` always kept) of a closed set of
/// `kept` events that keeps the finding: the smallest closed subset found
/// that keeps it, if smaller (`None`: the set stays as it is).
fn reduce(
    oracle: &mut Oracle<'_>,
    deps: &mut Deps,
    kept: usize,
    base: &Unit,
    units: Vec<Unit>,
) -> Result<Option<Vec<u32>>> {
    if units.len() < 2 {
        return Ok(None);
    }
    let ids: Vec<usize> = (0..units.len()).collect();
    let mut error = None;
    // The smallest candidate that kept the finding, if smaller than `kept`
    // (not a copy of `kept` to start from: 4 bytes an event while the
    // first reduction runs).
    let mut best: Option<Vec<u32>> = None;
    let found = ddmin(&ids, usize::MAX, |chosen| {
        if error.is_some() {
            return false;
        }
        // Every unit (ddmin's first test): `kept` itself, known to keep the
        // finding. Closing it again (all 10M events of the first reduction
        // of a 10M-event trace) and hashing it was 40% of the closing.
        if chosen.len() == units.len() {
            return true;
        }
        let seeds = base
            .iter()
            .chain(chosen.iter().flat_map(|&u| units[u].iter()));
        let candidate = deps.close_up(seeds);
        match oracle.keeps(&candidate) {
            Ok(true) => {
                if candidate.len() < best.as_ref().map_or(kept, Vec::len) {
                    best = Some(candidate);
                }
                true
            }
            Ok(false) => false,
            Err(e) => {
                error = Some(e);
                false
            }
        }
    });
    if let Some(e) = error {
        return Err(e);
    }
    Ok(found.and(best))
}

/// Splits events into units by their keys (events with no key form the
/// base): `keyed` gives each event's ordinal and key, in order. Units come
/// in key order. Keys come in runs (a cycle's events, a block's process),
/// so a key equal to the one before goes to the same unit unlooked-up.
fn group_by<K: Ord + Copy>(keyed: impl IntoIterator<Item = (u32, Option<K>)>) -> (Unit, Vec<Unit>) {
    let mut base = Unit::new();
    let mut index: BTreeMap<K, usize> = BTreeMap::new();
    let mut groups: Vec<Unit> = Vec::new();
    let mut last: Option<(K, usize)> = None;
    for (i, key) in keyed {
        let Some(k) = key else {
            base.push(i);
            continue;
        };
        let g = match last {
            Some((lk, g)) if lk == k => g,
            _ => {
                let next = groups.len();
                let g = *index.entry(k).or_insert(next);
                if g == next {
                    groups.push(Unit::new());
                }
                last = Some((k, g));
                g
            }
        };
        groups[g].push(i);
    }
    let units = index
        .into_values()
        .map(|g| std::mem::take(&mut groups[g]))
        .collect();
    (base, units)
}

/// Stage 1's units: the events of each cycle (of the trace's first
/// `events`), in cycle order, and as the base the events of none: what
/// [`group_by`] makes of every event keyed by its cycle. Cycles in order
/// and apart (a scanner's are) give their units from their ends alone, not
/// an event at a time (6% of minimising a 50M-event trace); others, event
/// by event.
fn cycle_units(cycles: &[CycleSpan], events: u32) -> (Unit, Vec<Unit>) {
    let end = u64::from(events);
    let apart = cycles.iter().all(|s| s.start_event <= s.end_event)
        && cycles.windows(2).all(|w| w[0].end_event < w[1].start_event);
    if !apart {
        return cycles_keyed(cycles, events);
    }
    let (mut base, mut units) = (Unit::new(), Vec::with_capacity(cycles.len()));
    let mut next = 0u64;
    for s in cycles {
        let (lo, hi) = (
            s.start_event.min(end),
            s.end_event.saturating_add(1).min(end),
        );
        (next..lo).for_each(|i| base.push(i as u32));
        if lo < hi {
            units.push(Unit::Run(lo as u32, hi as u32));
        }
        next = next.max(hi);
    }
    (next..end).for_each(|i| base.push(i as u32));
    (base, units)
}

/// [`cycle_units`] an event at a time: each of the first `events` keyed by
/// its cycle. The cycle of each event is taken at or after the last one's.
fn cycles_keyed(cycles: &[CycleSpan], events: u32) -> (Unit, Vec<Unit>) {
    let mut c = 0;
    let mut cycle_of = |i: u32| {
        let i = i as u64;
        while cycles.get(c).is_some_and(|s| s.end_event < i) {
            c += 1;
        }
        cycles
            .get(c)
            .filter(|s| s.start_event <= i && i <= s.end_event)
            .map(|_| c)
    };
    group_by((0..events).map(|i| (i, cycle_of(i))))
}

/// Splits `kept` into units by a key of each event (read from `events`
/// once, in order).
fn group_by_event<K: Ord + Copy>(
    events: &dyn EventStore,
    kept: &[u32],
    key: impl Fn(&Event) -> Option<K>,
) -> Result<(Unit, Vec<Unit>)> {
    let mut keyed = Vec::with_capacity(kept.len());
    events.each_of(kept, &mut |i, e| {
        keyed.push((i, key(e)));
        Ok(())
    })?;
    Ok(group_by(keyed))
}

/// Runs every stage on the trace's `events` events (which keep the
/// finding), and returns the ordinals kept.
pub fn minimise(
    oracle: &mut Oracle<'_>,
    deps: &mut Deps,
    cycles: &[CycleSpan],
    events: u32,
) -> Result<Vec<u32>> {
    oracle.assume_all(events);
    // 1. Cycles: usually one leaking cycle is enough. The events are not
    // listed (4 bytes an event while the first reduction runs) unless no
    // cycle can go.
    let (base, units) = cycle_units(cycles, events);
    let reduced = reduce(oracle, deps, events as usize, &base, units)?;
    drop(base);
    let mut kept = reduced.unwrap_or_else(|| (0..events).collect());
    // 2. Processes, 3. devices, 4. call sites.
    let (base, units) = group_by_event(oracle.events, &kept, |e| Some(e.pid.0))?;
    kept = reduce(oracle, deps, kept.len(), &base, units)?.unwrap_or(kept);
    let (base, units) = group_by_event(oracle.events, &kept, |e| e.kind.device().map(|d| d.0))?;
    kept = reduce(oracle, deps, kept.len(), &base, units)?.unwrap_or(kept);
    let (base, units) = group_by_event(oracle.events, &kept, |e| e.kind.site().map(|s| s.0))?;
    kept = reduce(oracle, deps, kept.len(), &base, units)?.unwrap_or(kept);
    // 5. Single events (with what they need).
    let units: Vec<Unit> = kept.iter().map(|&i| Unit::one(i)).collect();
    kept = reduce(oracle, deps, kept.len(), &Unit::new(), units)?.unwrap_or(kept);
    // 6. Until no single event can go with its dependents.
    sweep(oracle, deps, kept)
}

/// Removes single events (with everything that needs them) while the
/// finding stays; returns a 1-minimal set.
fn sweep(oracle: &mut Oracle<'_>, deps: &Deps, mut kept: Vec<u32>) -> Result<Vec<u32>> {
    'again: loop {
        // Latest first: frees and closes go before what they need.
        for &victim in kept.iter().rev() {
            let candidate = deps.remove_with_dependents(&kept, victim);
            if oracle.keeps(&candidate)? {
                kept = candidate;
                continue 'again;
            }
        }
        return Ok(kept);
    }
}

/// Whether `kept` is 1-minimal: removing any one event, with its
/// dependents, loses the finding (one replay per event; for tests).
pub fn is_one_minimal(oracle: &mut Oracle<'_>, deps: &Deps, kept: &[u32]) -> Result<bool> {
    for &victim in kept {
        if oracle.keeps(&deps.remove_with_dependents(kept, victim))? {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests;
mod unit;
