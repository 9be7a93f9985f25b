//! What each event needs to make sense in a subset of the trace: a free its
//! alloc, an unload its load, a release its capture, a device event the
//! open/close of its device's span, an op end its begin (and back), a
//! process exit its start (and back).
//!
//! A kept subset is always *closed*: every prerequisite of a kept event is
//! kept. [`Deps::close_up`] grows a candidate set to that (what delta
//! debugging tests); [`Deps::remove_with_dependents`] shrinks a closed set by
//! one event and everything that needs it (what the 1-minimality check does).

use alloc_index::AllocIndex;
use span_column::SpanColumn;
use ttalloc_model::hash::FastMap;
use ttalloc_model::{Event, EventKind};
use ttalloc_trace::BlockColumns;

use ttalloc_model::tag_code::{ALLOC, CB_ALLOC, CB_FREE_ALL, FREE, MARKER, OP_BEGIN, OP_END};

const NONE: u32 = u32::MAX;

/// Prerequisites of every event of a trace, by position.
#[cfg_attr(test, derive(Debug, PartialEq))]
pub struct Deps {
    /// The one event this event pairs with or needs (alloc of a free, load
    /// of an unload, the other end of an open/close, op or process pair).
    partner: Vec<u32>,
    /// Index into `spans` of the device span the event happens in.
    span: SpanColumn,
    /// (DeviceOpen, DeviceClose or NONE) of every device span.
    spans: Vec<(u32, u32)>,
    /// Scratch marks for `close_up`: an epoch per call, so no clearing
    /// but once every 255 calls. A byte, not a word: a large candidate's
    /// events are listed by a walk over its marks, and at 4 bytes an event
    /// that walk read 40 MB of the 10M-event trace's marks per candidate.
    marks: Vec<u8>,
    epoch: u8,
}

/// Builds a [`Deps`] from the events in order ([`DepsBuilder::push`]).
#[derive(Default)]
pub struct DepsBuilder {
    partner: Vec<u32>,
    span: SpanColumn,
    spans: Vec<(u32, u32)>,
    open_span: FastMap<u32, u32>,
    allocs: AllocIndex,
    programs: FastMap<(u32, u64), u32>,
    traces: FastMap<(u32, u32), u32>,
    ops: FastMap<u32, Vec<u32>>,
    processes: FastMap<u32, u32>,
}

impl DepsBuilder {
    /// A builder with room for `events` events' entries, if memory can be
    /// had for them (the count comes from a file's index: a damaged one may
    /// claim any number, and then the tables grow as events come).
    pub fn with_capacity(events: usize) -> DepsBuilder {
        let mut b = DepsBuilder::default();
        let events = events.min(u32::MAX as usize);
        if b.partner.try_reserve_exact(events).is_err() || !b.span.try_reserve(events) {
            b.partner = Vec::new();
            b.span = SpanColumn::default();
        }
        b
    }

    /// Event `i`, the next one (ordinals from 0, none skipped).
    pub fn push(&mut self, i: u32, e: &Event) {
        self.push_kind(i, e.pid.0, &e.kind);
    }

    /// The events of a decoded block, the first of them event `at` (none
    /// of an unknown kind: [`BlockColumns::skipped`] is empty). Allocs and
    /// frees straight from their columns: building each event whole, to
    /// look at its device and buffer, cost more than the rest of the pass.
    pub fn push_columns(&mut self, at: u32, cols: &BlockColumns) {
        debug_assert!(cols.skipped.is_empty());
        let (mut alloc, mut free, mut name, mut cb, mut other) = (0, 0, 0, 0, 0);
        for (pos, &tag) in cols.tags.iter().enumerate() {
            let i = at + pos as u32;
            let pid = || cols.pid_at(pos).0;
            match tag {
                ALLOC => {
                    let Some(a) = cols.allocs.at(alloc) else {
                        // Not in a decoded block (its counts are checked).
                        self.push_head(i, NONE);
                        continue;
                    };
                    alloc += 1;
                    self.push_head(i, a.device().0);
                    self.allocs.insert(a.device().0, a.buffer().get(), i);
                }
                FREE => {
                    let Some(x) = cols.frees.at(free) else {
                        // Not in a decoded block (its counts are checked).
                        self.push_head(i, NONE);
                        continue;
                    };
                    free += 1;
                    self.push_head(i, x.device().0);
                    if let Some(a) = self.allocs.get(x.device().0, x.buffer().get()) {
                        self.partner[i as usize] = a;
                    }
                }
                OP_BEGIN | MARKER => {
                    let Some(&label) = cols.names.get(name) else {
                        self.push_head(i, NONE);
                        continue;
                    };
                    name += 1;
                    let kind = match tag {
                        OP_BEGIN => EventKind::OpBegin { name: label },
                        _ => EventKind::Marker { label },
                    };
                    self.push_kind(i, pid(), &kind);
                }
                OP_END => self.push_kind(i, pid(), &EventKind::OpEnd),
                CB_ALLOC | CB_FREE_ALL => {
                    let Some(c) = cols.cbs.get(cb) else {
                        // Not in a decoded block (its counts are checked).
                        self.push_head(i, NONE);
                        continue;
                    };
                    cb += 1;
                    self.push_kind(i, pid(), &c.kind());
                }
                _ => {
                    let Some((_, e)) = cols.others.get(other) else {
                        // Not in a decoded block (its counts are checked).
                        self.push_head(i, NONE);
                        continue;
                    };
                    other += 1;
                    self.push_kind(i, pid(), &e.kind);
                }
            }
        }
    }

    /// Event `i`'s entries, in the span of `device` if it is open
    /// (`NONE`: of no device).
    #[inline]
    fn push_head(&mut self, i: u32, device: u32) {
        debug_assert_eq!(i as usize, self.partner.len());
        self.partner.push(NONE);
        let span = match device {
            NONE => NONE,
            d => self.open_span.get(&d).copied().unwrap_or(NONE),
        };
        self.span.push(span);
    }

    /// Event `i` of process `pid`, of kind `kind`.
    fn push_kind(&mut self, i: u32, pid: u32, kind: &EventKind) {
        debug_assert_eq!(i as usize, self.partner.len());
        self.partner.push(NONE);
        self.span.push(NONE);
        if let Some(d) = kind.device() {
            if let EventKind::DeviceOpen { .. } = kind {
                // An open of a device already open starts a new span; the
                // old one stays without a close.
                self.open_span.insert(d.0, self.spans.len() as u32);
                self.spans.push((i, NONE));
            }
            if let Some(&s) = self.open_span.get(&d.0) {
                self.span.set(i as usize, s);
            }
        }
        let partner = &mut self.partner;
        match *kind {
            EventKind::DeviceClose { device } => {
                if let Some(s) = self.open_span.remove(&device.0) {
                    self.spans[s as usize].1 = i;
                }
            }
            EventKind::BufferAlloc { device, buffer, .. } => {
                self.allocs.insert(device.0, buffer.get(), i);
            }
            EventKind::BufferFree { device, buffer, .. } => {
                if let Some(a) = self.allocs.get(device.0, buffer.get()) {
                    partner[i as usize] = a;
                }
            }
            EventKind::ProgramLoad {
                device, program, ..
            } => {
                self.programs.insert((device.0, program.0), i);
            }
            EventKind::ProgramUnload { device, program } => {
                if let Some(&a) = self.programs.get(&(device.0, program.0)) {
                    partner[i as usize] = a;
                }
            }
            EventKind::TraceCapture {
                device, trace_id, ..
            } => {
                self.traces.insert((device.0, trace_id.0), i);
            }
            EventKind::TraceRelease { device, trace_id } => {
                if let Some(&a) = self.traces.get(&(device.0, trace_id.0)) {
                    partner[i as usize] = a;
                }
            }
            EventKind::OpBegin { .. } => self.ops.entry(pid).or_default().push(i),
            EventKind::OpEnd => {
                if let Some(b) = self.ops.get_mut(&pid).and_then(Vec::pop) {
                    partner[i as usize] = b;
                    partner[b as usize] = i;
                }
            }
            EventKind::ProcessStart { .. } => {
                self.processes.insert(pid, i);
            }
            EventKind::ProcessExit { .. } => {
                if let Some(s) = self.processes.remove(&pid) {
                    partner[i as usize] = s;
                    partner[s as usize] = i;
                }
            }
            _ => {}
        }
    }

    pub fn finish(self) -> Deps {
        let n = self.partner.len();
        Deps {
            partner: self.partner,
            span: self.span,
            spans: self.spans,
            marks: vec![0; n],
            epoch: 0,
        }
    }
}

impl Deps {
    pub fn new(events: &[Event]) -> Deps {
        let mut b = DepsBuilder::default();
        for (i, e) in events.iter().enumerate() {
            b.push(i as u32, e);
        }
        b.finish()
    }

    pub fn len(&self) -> usize {
        self.partner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.partner.is_empty()
    }

    /// The direct prerequisites of event `i` (the first `n` of the array).
    fn prereqs(&self, i: u32) -> ([u32; 3], usize) {
        let mut out = [NONE; 3];
        let mut n = 0;
        let p = self.partner[i as usize];
        if p != NONE {
            out[n] = p;
            n += 1;
        }
        let s = self.span.get(i as usize);
        if s != NONE {
            let (open, close) = self.spans[s as usize];
            out[n] = open;
            n += 1;
            if close != NONE {
                out[n] = close;
                n += 1;
            }
        }
        (out, n)
    }

    /// Calls `f` on every direct prerequisite of event `i`.
    fn for_each_prereq(&self, i: u32, mut f: impl FnMut(u32)) {
        let (pre, n) = self.prereqs(i);
        pre[..n].iter().for_each(|&p| f(p));
    }

    /// `seeds` and every prerequisite they need, transitively, sorted.
    pub fn close_up(&mut self, seeds: impl IntoIterator<Item = u32>) -> Vec<u32> {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.fill(0);
            self.epoch = 1;
        }
        let epoch = self.epoch;
        // A small set is listed as it is found, then sorted; a large one
        // (more than `small` events) by a walk over the marks between its
        // ends (a sort of millions of ordinals cost more than the closing),
        // into a list of its exact size: found into a list first, it
        // doubled as it grew and kept up to twice its size (4 bytes an
        // event of a candidate: the first reduction's took 50 MB at 10M
        // events, held by the search as its best).
        let small = self.marks.len() / 32;
        let mut out = Vec::new();
        let (mut count, mut lo, mut hi) = (0usize, u32::MAX, 0u32);
        let mut stack: Vec<u32> = Vec::new();
        for s in seeds {
            if self.marks[s as usize] != epoch {
                self.marks[s as usize] = epoch;
                stack.push(s);
            }
            while let Some(i) = stack.pop() {
                count += 1;
                (lo, hi) = (lo.min(i), hi.max(i));
                if count <= small {
                    out.push(i);
                }
                // The three candidates in registers (`prereqs`' array went
                // through the stack as words written apart and read back
                // together: a store-forwarding stall per event, a quarter
                // of closing the 10M-event trace's first candidates).
                let partner = self.partner[i as usize];
                let (open, close) = match self.span.get(i as usize) {
                    NONE => (NONE, NONE),
                    s => self.spans[s as usize],
                };
                for p in [partner, open, close] {
                    if p != NONE && self.marks[p as usize] != epoch {
                        self.marks[p as usize] = epoch;
                        stack.push(p);
                    }
                }
            }
        }
        if count > small {
            drop(out);
            let mut all = Vec::with_capacity(count);
            all.extend(
                (lo as usize..=hi as usize)
                    .filter(|&i| self.marks[i] == epoch)
                    .map(|i| i as u32),
            );
            debug_assert_eq!(all.len(), count);
            return all;
        }
        out.sort_unstable();
        out
    }

    /// The closed set `kept` (sorted) without `victim` and every kept event
    /// that needs it, directly or not.
    pub fn remove_with_dependents(&self, kept: &[u32], victim: u32) -> Vec<u32> {
        let mut gone = vec![victim];
        loop {
            let mut grew = false;
            for &i in kept {
                if gone.contains(&i) {
                    continue;
                }
                let mut needs_gone = false;
                self.for_each_prereq(i, |p| needs_gone |= gone.contains(&p));
                if needs_gone {
                    gone.push(i);
                    grew = true;
                }
            }
            if !grew {
                break;
            }
        }
        kept.iter().copied().filter(|i| !gone.contains(i)).collect()
    }

    /// Whether every prerequisite of every event of `kept` (sorted) is in it.
    pub fn is_closed(&self, kept: &[u32]) -> bool {
        kept.iter().all(|&i| {
            let mut ok = true;
            self.for_each_prereq(i, |p| ok &= kept.binary_search(&p).is_ok());
            ok
        })
    }
}

mod alloc_index;
mod span_column;

#[cfg(test)]
mod tests {
    use super::*;
    use ttalloc_model::{Arch, BufferId, BufferType, DeviceConfig, DeviceId, Layout, Pid, SiteId};

    fn ev(kind: EventKind) -> Event {
        Event {
            ts: 0,
            pid: Pid(1),
            kind,
        }
    }

    fn trace() -> Vec<Event> {
        let d = DeviceId(0);
        let alloc = |b: u64| {
            ev(EventKind::BufferAlloc {
                device: d,
                buffer: BufferId::new(b),
                buffer_type: BufferType::Dram,
                address: None,
                size: 2048,
                page_size: Some(2048),
                layout: Layout::Interleaved,
                num_cores: None,
                per_bank_size: None,
                label: ttalloc_model::StringId::EMPTY,
                site: SiteId::UNKNOWN,
            })
        };
        let free = |b: u64| {
            ev(EventKind::BufferFree {
                device: d,
                buffer: BufferId::new(b),
                site: SiteId::UNKNOWN,
            })
        };
        vec![
            ev(EventKind::DeviceOpen {
                device: d,
                arch: Arch::WormholeB0,
                config: Box::new(DeviceConfig::default()),
            }), // 0
            alloc(1),                                 // 1
            alloc(2),                                 // 2
            free(1),                                  // 3
            ev(EventKind::DeviceClose { device: d }), // 4
        ]
    }

    #[test]
    fn a_free_pulls_in_its_alloc_and_the_device_span() {
        let mut deps = Deps::new(&trace());
        // Free 1 (event 3) needs alloc 1 (event 1), open (0) and close (4).
        assert_eq!(deps.close_up([3]), vec![0, 1, 3, 4]);
        // An alloc alone needs only its span.
        assert_eq!(deps.close_up([2]), vec![0, 2, 4]);
    }

    /// `close_up` on a synthetic trace, small seed sets (sorted) and large
    /// ones (walked off the marks), against the closure worked out with a
    /// set: the same events, sorted, each once, whichever way it is sorted.
    #[test]
    fn a_closed_set_is_the_transitive_closure_in_order_either_way_it_is_sorted() {
        let (_, events, _) =
            ttalloc_corpora::synth::generate(&ttalloc_corpora::synth::SynthOptions {
                events: 20_000,
                seed: 2,
                devices: 2,
                cycles: 4,
                leak_site: None,
                reopen_devices: true,
            });
        let mut deps = Deps::new(&events);
        let n = events.len() as u32;
        let reference = |deps: &Deps, seeds: &[u32]| {
            let mut set = std::collections::BTreeSet::new();
            let mut todo: Vec<u32> = seeds.to_vec();
            while let Some(i) = todo.pop() {
                if set.insert(i) {
                    let (pre, k) = deps.prereqs(i);
                    todo.extend_from_slice(&pre[..k]);
                }
            }
            set.into_iter().collect::<Vec<u32>>()
        };
        let seed_sets: Vec<Vec<u32>> = vec![
            // Small: fewer than one event in 32 of the trace.
            vec![n - 1, 17, 5_000],
            (0..n).step_by(997).rev().collect(),
            // Large: every third event, and every event backwards.
            (0..n).filter(|i| i % 3 == 1).collect(),
            (0..n).rev().collect(),
        ];
        for seeds in seed_sets {
            let want = reference(&deps, &seeds);
            assert!(want.len() > seeds.len() / 2);
            let got = deps.close_up(seeds.iter().copied());
            assert_eq!(got, want, "{} seeds", seeds.len());
            // A large set's list holds no room beyond it (the search keeps
            // its best candidate: at twice its size, 4 bytes an event more).
            if got.len() > n as usize / 32 {
                assert_eq!(got.capacity(), got.len(), "{} seeds", seeds.len());
            }
        }
        // Past the marks' 255 epochs (a byte each): a mark left from an
        // earlier call must not count as one of this call's. A large set
        // marked last before the wrap, then small ones after it.
        let every: Vec<u32> = (0..n).collect();
        for call in 0..600u32 {
            let seeds: Vec<u32> = match call % 255 {
                254 => every.clone(),
                k => vec![(k * 79) % n],
            };
            assert_eq!(
                deps.close_up(seeds.iter().copied()),
                reference(&deps, &seeds),
                "call {call}"
            );
        }
    }

    /// A builder sized for more events than memory holds (a damaged
    /// index's count) still takes events: its tables grow as they come.
    #[test]
    fn a_builder_sized_past_memory_still_takes_events() {
        let events = trace();
        let mut b = DepsBuilder::with_capacity(usize::MAX);
        for (i, e) in events.iter().enumerate() {
            b.push(i as u32, e);
        }
        assert_eq!(b.finish(), Deps::new(&events));
        // Sized right, nothing grows.
        let b = DepsBuilder::with_capacity(events.len());
        assert!(b.partner.capacity() >= events.len() && b.span.capacity() >= events.len());
    }

    #[test]
    fn removing_an_alloc_removes_its_free_and_removing_the_open_removes_all() {
        let deps = Deps::new(&trace());
        let all = [0, 1, 2, 3, 4];
        assert_eq!(deps.remove_with_dependents(&all, 1), vec![0, 2, 4]);
        // A free alone can go: nothing needs it.
        assert_eq!(deps.remove_with_dependents(&all, 3), vec![0, 1, 2, 4]);
        assert!(deps.remove_with_dependents(&all, 0).is_empty());
        assert!(deps.remove_with_dependents(&all, 4).is_empty());
        assert!(deps.is_closed(&[0, 1, 3, 4]));
        assert!(!deps.is_closed(&[0, 3, 4]));
    }
}
