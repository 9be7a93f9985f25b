//! Cutting a trace into cycles — repetitions of the workload — so that what a
//! cycle leaves behind and how memory grows per cycle can be measured.
//!
//! A [`CycleRule`] says what delimits cycles; an [`OnlineCycles`] applies it
//! event by event during the replay (no look-ahead is needed: a marker cycle
//! ends just before the next marker, a device cycle at the close that leaves
//! no device open, an op cycle at its `OpEnd`). Which rule `auto` (and plain
//! `marker`) means depends on the whole trace, so [`CycleScanner`] counts the
//! candidates in a pass over the events and picks the rule; it also yields
//! the spans directly. Spans never overlap and are sorted; events outside
//! every span belong to no cycle (set-up, tear-down).
//!
//! Test cycles come from ttalloc's pytest plugin: the marker
//! `pytest:begin NODEID` starts a test's cycle and `pytest:end NODEID` ends
//! it; fixtures of wider scope are set up between tests, outside every cycle.
//! Tests of several processes (pytest-xdist workers) may overlap: a cycle
//! belongs to the process whose begin started it, and the other processes'
//! test markers are ignored until it ends.

use crate::options::CycleMode;
use crate::source::{Chunk, Item};
use regex::Regex;
use serde::Serialize;
use ttalloc_model::hash::FastMap;
use ttalloc_model::{DeviceId, Event, EventKind, InternTables, Pid, StringId};

/// The pytest plugin's marker that starts a test's cycle (the node id follows).
pub const TEST_BEGIN: &str = "pytest:begin ";
/// The pytest plugin's marker that ends a test's cycle, after its teardown.
pub const TEST_END: &str = "pytest:end ";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TestMarker {
    Begin,
    End,
}

fn test_marker(label: &str) -> Option<TestMarker> {
    if label.starts_with(TEST_BEGIN) {
        Some(TestMarker::Begin)
    } else if label.starts_with(TEST_END) {
        Some(TestMarker::End)
    } else {
        None
    }
}

/// The node id a test cycle's begin marker names, if `label` is one.
pub fn test_name(label: &str) -> Option<&str> {
    label.strip_prefix(TEST_BEGIN)
}

/// Test cycles, decided marker by marker (shared by the online and the
/// scanning paths so they cannot disagree).
#[derive(Clone, Copy, Debug, Default)]
struct TestTracker {
    /// The process whose test is the current cycle.
    pid: Option<Pid>,
}

impl TestTracker {
    /// (end the current cycle just before this marker, start one with it, end it with it).
    fn marker(&mut self, kind: TestMarker, pid: Pid) -> (bool, bool, bool) {
        match (kind, self.pid) {
            (TestMarker::Begin, None) => {
                self.pid = Some(pid);
                (false, true, false)
            }
            // The previous test of this process never ended (it crashed):
            // its cycle ends here and the next one starts.
            (TestMarker::Begin, Some(p)) if p == pid => (true, true, false),
            (TestMarker::End, Some(p)) if p == pid => {
                self.pid = None;
                (false, false, true)
            }
            _ => (false, false, false),
        }
    }
}

/// One cycle: events `start_event..=end_event`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CycleSpan {
    pub start_event: u64,
    pub end_event: u64,
}

/// The cycles chosen for a replay and why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cycles {
    /// What delimits them: "device", "marker", "marker=RE", "op=NAME" or "none".
    pub kind: String,
    pub spans: Vec<CycleSpan>,
}

/// What delimits cycles, concretely.
#[derive(Clone, Debug)]
pub enum CycleRule {
    /// Spans during which at least one device is open.
    Device,
    /// Markers whose label matches start cycles.
    MarkerRegex(Regex),
    /// Markers whose label has this shape (digits as `#`) start cycles.
    MarkerShape(String),
    /// Every marker starts a cycle.
    MarkerAll,
    /// Top-level ops with this name are cycles.
    Op(String),
    /// pytest tests (the plugin's begin/end markers).
    Test,
    None,
}

impl PartialEq for CycleRule {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (CycleRule::MarkerRegex(a), CycleRule::MarkerRegex(b)) => a.as_str() == b.as_str(),
            (CycleRule::MarkerShape(a), CycleRule::MarkerShape(b)) => a == b,
            (CycleRule::Op(a), CycleRule::Op(b)) => a == b,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

impl CycleRule {
    /// The rule an explicit mode means, if it does not depend on the whole trace.
    pub fn explicit(mode: &CycleMode) -> Option<CycleRule> {
        match mode {
            CycleMode::Device => Some(CycleRule::Device),
            CycleMode::Test => Some(CycleRule::Test),
            CycleMode::Marker(Some(re)) => Some(CycleRule::MarkerRegex(re.clone())),
            CycleMode::Op(name) => Some(CycleRule::Op(name.clone())),
            CycleMode::Auto | CycleMode::Marker(None) => None,
        }
    }

    pub fn kind(&self) -> String {
        match self {
            CycleRule::Device => "device".into(),
            CycleRule::MarkerRegex(re) => format!("marker={}", re.as_str()),
            CycleRule::MarkerShape(_) | CycleRule::MarkerAll => "marker".into(),
            CycleRule::Op(name) => format!("op={name}"),
            CycleRule::Test => "test".into(),
            CycleRule::None => "none".into(),
        }
    }

    fn starts_at_marker(&self, label: &str) -> bool {
        match self {
            CycleRule::MarkerRegex(re) => re.is_match(label),
            CycleRule::MarkerShape(shape) => label_shape(label) == *shape,
            CycleRule::MarkerAll => true,
            _ => false,
        }
    }
}

/// What an event does to the current cycle, decided before and after it is replayed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Boundary {
    /// The current cycle ends just before this event.
    pub end_before: bool,
    /// A cycle starts with this event.
    pub start: bool,
    /// The current cycle ends with this event.
    pub end_after: bool,
}

/// Applies a [`CycleRule`] event by event.
pub struct OnlineCycles {
    rule: CycleRule,
    open: Vec<DeviceId>,
    depth: FastMap<Pid, u32>,
    /// The process whose top-level op is the current cycle.
    op_pid: Option<Pid>,
    tests: TestTracker,
    in_cycle: bool,
}

impl OnlineCycles {
    pub fn new(rule: CycleRule) -> Self {
        OnlineCycles {
            rule,
            open: Vec::new(),
            depth: FastMap::default(),
            op_pid: None,
            tests: TestTracker::default(),
            in_cycle: false,
        }
    }

    pub fn rule(&self) -> &CycleRule {
        &self.rule
    }

    #[inline]
    pub fn boundary(&mut self, e: &Event, interner: &InternTables) -> Boundary {
        let mut b = Boundary::default();
        match (&self.rule, &e.kind) {
            (CycleRule::Device, EventKind::DeviceOpen { device, .. }) => {
                if self.open.is_empty() {
                    b.start = true;
                }
                if !self.open.contains(device) {
                    self.open.push(*device);
                }
            }
            (CycleRule::Device, EventKind::DeviceClose { device }) => {
                if let Some(pos) = self.open.iter().position(|d| d == device) {
                    self.open.swap_remove(pos);
                    b.end_after = self.open.is_empty();
                }
            }
            (
                CycleRule::MarkerRegex(_) | CycleRule::MarkerShape(_) | CycleRule::MarkerAll,
                EventKind::Marker { label },
            ) => {
                b.end_before = self.in_cycle;
                b.start = self.rule.starts_at_marker(interner.string(*label));
            }
            (CycleRule::Test, EventKind::Marker { label }) => {
                if let Some(kind) = test_marker(interner.string(*label)) {
                    (b.end_before, b.start, b.end_after) = self.tests.marker(kind, e.pid);
                }
            }
            (CycleRule::Op(name), EventKind::OpBegin { name: id }) => {
                let d = self.depth.entry(e.pid).or_insert(0);
                if *d == 0 && !self.in_cycle && interner.string(*id) == name {
                    b.start = true;
                    self.op_pid = Some(e.pid);
                }
                *d += 1;
            }
            (CycleRule::Op(_), EventKind::OpEnd) => {
                if let Some(d) = self.depth.get_mut(&e.pid) {
                    if *d > 0 {
                        *d -= 1;
                        if *d == 0 && self.op_pid == Some(e.pid) {
                            b.end_after = true;
                            self.op_pid = None;
                        }
                    }
                }
            }
            _ => {}
        }
        if b.end_before {
            self.in_cycle = false;
        }
        if b.start {
            self.in_cycle = true;
        }
        if b.end_after {
            self.in_cycle = false;
        }
        b
    }
}

/// Counts every kind of candidate boundary in one pass.
#[derive(Default)]
pub struct CycleScanner {
    /// Devices currently open and the ordinal where the current span began.
    open: Vec<DeviceId>,
    span_start: u64,
    device_spans: Vec<CycleSpan>,
    markers: Vec<(u64, StringId, Pid)>,
    /// Per process: op nesting depth and the current top-level op.
    ops: FastMap<Pid, (u32, u64, StringId)>,
    top_ops: Vec<(CycleSpan, StringId)>,
    /// Which top-level op spans are worth keeping: one per op would grow
    /// with the trace (24 B per op, most of a replay's memory on long
    /// traces) though most modes can never use them.
    keep_ops: KeepOps,
    last: Option<u64>,
}

/// Which top-level op spans a [`CycleScanner`] keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum KeepOps {
    /// All of them (any rule may be asked for).
    #[default]
    All,
    /// Only while the op rule can still win `auto`: fewer than two device
    /// spans and fewer than two markers (both only ever grow).
    WhileAutoMayPickOps,
    /// None: the mode never cuts at ops.
    None,
}

impl CycleScanner {
    /// A scanner that can answer any mode.
    pub fn new() -> Self {
        Self::default()
    }

    /// A scanner for `mode` only: it keeps no more than that mode's rule
    /// can use, so its memory does not grow with the number of ops.
    pub fn for_mode(mode: &CycleMode) -> Self {
        let keep_ops = match mode {
            CycleMode::Auto => KeepOps::WhileAutoMayPickOps,
            CycleMode::Op(_) => KeepOps::All,
            CycleMode::Device | CycleMode::Marker(_) | CycleMode::Test => KeepOps::None,
        };
        CycleScanner {
            keep_ops,
            ..Self::default()
        }
    }

    /// Whether a finished top-level op's span may still be needed.
    fn wants_op_spans(&self) -> bool {
        match self.keep_ops {
            KeepOps::All => true,
            KeepOps::WhileAutoMayPickOps => {
                if self.device_spans.len() >= 2 || self.markers.len() >= 2 {
                    // From now on `auto` picks devices or markers: drop
                    // what was kept too.
                    false
                } else {
                    true
                }
            }
            KeepOps::None => false,
        }
    }

    pub fn scan(&mut self, first: u64, events: &[Event]) {
        self.scan_chunk(&Chunk::Events { first, events });
    }

    /// Like `scan`, on a chunk in the source's own form.
    pub fn scan_chunk(&mut self, chunk: &Chunk<'_>) {
        let wants_ops = self.wants_op_spans();
        if !wants_ops && !self.top_ops.is_empty() {
            self.top_ops = Vec::new();
        }
        let _ = chunk.try_for_each(|ord, item| -> Result<(), ()> {
            let e = match &item {
                Item::Alloc(_) | Item::Free(_) => return Ok(()),
                Item::Event(e) => *e,
                Item::Light(e) => e,
            };
            match e.kind {
                EventKind::DeviceOpen { device, .. } => {
                    if self.open.is_empty() {
                        self.span_start = ord;
                    }
                    if !self.open.contains(&device) {
                        self.open.push(device);
                    }
                }
                EventKind::DeviceClose { device } => {
                    if let Some(pos) = self.open.iter().position(|&d| d == device) {
                        self.open.swap_remove(pos);
                        if self.open.is_empty() {
                            self.device_spans.push(CycleSpan {
                                start_event: self.span_start,
                                end_event: ord,
                            });
                        }
                    }
                }
                EventKind::Marker { label } => self.markers.push((ord, label, e.pid)),
                EventKind::OpBegin { name } => {
                    let st = self.ops.entry(e.pid).or_insert((0, 0, StringId::EMPTY));
                    if st.0 == 0 {
                        st.1 = ord;
                        st.2 = name;
                    }
                    st.0 += 1;
                }
                EventKind::OpEnd => {
                    if let Some(st) = self.ops.get_mut(&e.pid) {
                        if st.0 > 0 {
                            st.0 -= 1;
                            if st.0 == 0 && wants_ops {
                                self.top_ops.push((
                                    CycleSpan {
                                        start_event: st.1,
                                        end_event: ord,
                                    },
                                    st.2,
                                ));
                            }
                        }
                    }
                }
                _ => {}
            }
            Ok(())
        });
        if !chunk.is_empty() {
            self.last = Some(chunk.first() + chunk.len() as u64 - 1);
        }
    }

    /// The rule `mode` means for the events scanned so far.
    pub fn rule(&self, mode: &CycleMode, interner: &InternTables) -> CycleRule {
        if let Some(rule) = CycleRule::explicit(mode) {
            return rule;
        }
        let open_at_end = !self.open.is_empty() as usize;
        match mode {
            CycleMode::Marker(None) => self.marker_rule(interner),
            _ => {
                if self.has_tests(interner) {
                    CycleRule::Test
                } else if self.device_spans.len() + open_at_end >= 2 {
                    CycleRule::Device
                } else if self.markers.len() >= 2 {
                    self.marker_rule(interner)
                } else if let Some(name) = self.most_repeated_op(interner) {
                    CycleRule::Op(name)
                } else {
                    // Nothing repeats: no cycles (a single span is not a repetition).
                    CycleRule::None
                }
            }
        }
    }

    /// The spans `rule` gives on the events scanned.
    pub fn spans(&self, rule: &CycleRule, interner: &InternTables) -> Cycles {
        let kind = rule.kind();
        let Some(last) = self.last else {
            return Cycles {
                kind,
                spans: Vec::new(),
            };
        };
        let spans = match rule {
            CycleRule::Device => {
                let mut v = self.device_spans.clone();
                // A device still open at the end of the trace closes its span there.
                if !self.open.is_empty() {
                    v.push(CycleSpan {
                        start_event: self.span_start,
                        end_event: last,
                    });
                }
                v
            }
            CycleRule::MarkerRegex(_) | CycleRule::MarkerShape(_) | CycleRule::MarkerAll => self
                .markers
                .iter()
                .enumerate()
                .filter(|(_, (_, label, _))| rule.starts_at_marker(interner.string(*label)))
                .map(|(i, &(start, _, _))| CycleSpan {
                    start_event: start,
                    end_event: self
                        .markers
                        .get(i + 1)
                        .map_or(last, |&(next, _, _)| next - 1),
                })
                .collect(),
            CycleRule::Test => self.test_spans(last, interner),
            CycleRule::Op(name) => {
                let mut v: Vec<CycleSpan> = self
                    .top_ops
                    .iter()
                    .filter(|(_, n)| interner.string(*n) == name)
                    .map(|&(s, _)| s)
                    .collect();
                // A top-level op still open at the end runs to it.
                let mut open: Vec<u64> = self
                    .ops
                    .values()
                    .filter(|st| st.0 > 0 && interner.string(st.2) == name)
                    .map(|st| st.1)
                    .collect();
                open.sort_unstable();
                v.extend(open.into_iter().map(|s| CycleSpan {
                    start_event: s,
                    end_event: last,
                }));
                // Ops of several processes may overlap: keep the first of overlapping ones.
                v.sort_by_key(|s| s.start_event);
                let mut out: Vec<CycleSpan> = Vec::with_capacity(v.len());
                for s in v {
                    if out.last().is_none_or(|p| s.start_event > p.end_event) {
                        out.push(s);
                    }
                }
                out
            }
            CycleRule::None => Vec::new(),
        };
        Cycles { kind, spans }
    }

    /// Picks the spans for `mode`.
    pub fn finish(self, mode: &CycleMode, interner: &InternTables) -> Cycles {
        let rule = self.rule(mode, interner);
        self.spans(&rule, interner)
    }

    /// True when the trace has a test cycle (a pytest run under the plugin).
    fn has_tests(&self, interner: &InternTables) -> bool {
        self.markers
            .iter()
            .any(|(_, l, _)| interner.string(*l).starts_with(TEST_BEGIN))
    }

    /// The spans of the tests; one still running at the end of the trace runs to it.
    fn test_spans(&self, last: u64, interner: &InternTables) -> Vec<CycleSpan> {
        let mut tests = TestTracker::default();
        let mut start: Option<u64> = None;
        let mut out = Vec::new();
        for &(ord, label, pid) in &self.markers {
            let Some(kind) = test_marker(interner.string(label)) else {
                continue;
            };
            let (end_before, begins, end_after) = tests.marker(kind, pid);
            if end_before {
                if let Some(s) = start.take() {
                    out.push(CycleSpan {
                        start_event: s,
                        end_event: ord - 1,
                    });
                }
            }
            if begins {
                start = Some(ord);
            }
            if end_after {
                if let Some(s) = start.take() {
                    out.push(CycleSpan {
                        start_event: s,
                        end_event: ord,
                    });
                }
            }
        }
        if let Some(s) = start {
            out.push(CycleSpan {
                start_event: s,
                end_event: last,
            });
        }
        out
    }

    /// Markers of the most repeated label shape, or all markers if no shape repeats.
    fn marker_rule(&self, interner: &InternTables) -> CycleRule {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for (_, l, _) in &self.markers {
            let sh = label_shape(interner.string(*l));
            match counts.iter_mut().find(|c| c.0 == sh) {
                Some(c) => c.1 += 1,
                None => counts.push((sh, 1)),
            }
        }
        // Most repeated; ties go to the shape seen first.
        let mut best: Option<(String, usize)> = None;
        for (sh, n) in counts {
            if best.as_ref().is_none_or(|b| n > b.1) {
                best = Some((sh, n));
            }
        }
        match best {
            Some((shape, n)) if n >= 2 => CycleRule::MarkerShape(shape),
            _ => CycleRule::MarkerAll,
        }
    }

    /// The top-level op name that occurs most often (at least twice); ties go
    /// to the one seen first.
    fn most_repeated_op(&self, interner: &InternTables) -> Option<String> {
        let mut counts: Vec<(StringId, usize, usize)> = Vec::new();
        let mut index: FastMap<StringId, usize> = FastMap::default();
        for (i, (_, name)) in self.top_ops.iter().enumerate() {
            let slot = *index.entry(*name).or_insert_with(|| {
                counts.push((*name, 0, i));
                counts.len() - 1
            });
            counts[slot].1 += 1;
        }
        counts
            .into_iter()
            .filter(|c| c.1 >= 2)
            .max_by(|a, b| a.1.cmp(&b.1).then(b.2.cmp(&a.2)))
            .map(|c| interner.string(c.0).to_owned())
    }
}

/// A marker label with its digit runs replaced by `#` ("run 12" -> "run #").
pub fn label_shape(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    let mut in_digits = false;
    for c in label.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

/// Finds the cycles of `events` in one pass.
pub fn find_cycles(mode: &CycleMode, events: &[Event], interner: &InternTables) -> Cycles {
    let mut s = CycleScanner::new();
    s.scan(0, events);
    s.finish(mode, interner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_ignore_digit_runs() {
        assert_eq!(label_shape("run 12"), "run #");
        assert_eq!(label_shape("run 1 of 3"), "run # of #");
        assert_eq!(label_shape("setup"), "setup");
    }

    #[test]
    fn online_and_scanned_spans_agree() {
        let mut it = InternTables::new();
        let run = |n: u32, it: &mut InternTables| EventKind::Marker {
            label: it.intern_string(&format!("run {n}")),
        };
        let mut events = Vec::new();
        let setup = it.intern_string("setup");
        let op = it.intern_string("ttnn.add");
        let mut push = |k: EventKind| {
            events.push(Event {
                ts: 0,
                pid: Pid(1),
                kind: k,
            })
        };
        push(EventKind::Marker { label: setup });
        for n in 1..=3 {
            push(run(n, &mut it));
            push(EventKind::DeviceOpen {
                device: DeviceId(0),
                arch: Default::default(),
                config: Default::default(),
            });
            push(EventKind::OpBegin { name: op });
            push(EventKind::OpBegin { name: op });
            push(EventKind::OpEnd);
            push(EventKind::OpEnd);
            push(EventKind::DeviceClose {
                device: DeviceId(0),
            });
        }
        push(EventKind::OpBegin { name: op });
        for mode in ["auto", "device", "marker", "marker=^run", "op=ttnn.add"] {
            let mode: CycleMode = mode.parse().unwrap();
            let mut s = CycleScanner::new();
            s.scan(0, &events);
            let rule = s.rule(&mode, &it);
            let expected = s.spans(&rule, &it);
            let spans = online_spans(rule, &events, &it);
            assert_eq!(spans, expected.spans, "{mode}");
            assert!(!spans.is_empty(), "{mode}");
        }
    }

    /// The spans an engine gets from `OnlineCycles` (as engine.rs applies them).
    fn online_spans(rule: CycleRule, events: &[Event], it: &InternTables) -> Vec<CycleSpan> {
        let mut online = OnlineCycles::new(rule);
        let mut spans = Vec::new();
        let mut start = None;
        for (i, e) in events.iter().enumerate() {
            let i = i as u64;
            let b = online.boundary(e, it);
            if b.end_before {
                if let Some(s) = start.take() {
                    spans.push(CycleSpan {
                        start_event: s,
                        end_event: i - 1,
                    });
                }
            }
            if b.start && start.is_none() {
                start = Some(i);
            }
            if b.end_after {
                if let Some(s) = start.take() {
                    spans.push(CycleSpan {
                        start_event: s,
                        end_event: i,
                    });
                }
            }
        }
        if let Some(s) = start {
            spans.push(CycleSpan {
                start_event: s,
                end_event: events.len() as u64 - 1,
            });
        }
        spans
    }

    /// Test cycles: begin..end of one process; another process's markers
    /// are ignored while a test runs; a begin without an end (a crashed
    /// test) ends at the next begin of its process; the last runs to the end.
    #[test]
    fn test_cycles_follow_the_process_that_began_them() {
        let mut it = InternTables::new();
        let mut events = Vec::new();
        let mut push = |pid: u32, label: &str, it: &mut InternTables| {
            events.push(Event {
                ts: 0,
                pid: Pid(pid),
                kind: EventKind::Marker {
                    label: it.intern_string(label),
                },
            })
        };
        push(1, "pytest:begin t.py::a", &mut it); // 0
        push(1, "user marker", &mut it); // 1: not a boundary of test cycles
        push(1, "pytest:end t.py::a", &mut it); // 2
        push(1, "pytest:begin t.py::b", &mut it); // 3
        push(2, "pytest:begin t.py::c", &mut it); // 4: another worker, ignored
        push(1, "pytest:end t.py::b", &mut it); // 5
        push(2, "pytest:end t.py::c", &mut it); // 6: ignored (no cycle of pid 2)
        push(1, "pytest:begin t.py::d", &mut it); // 7: d never ends
        push(1, "pytest:begin t.py::e", &mut it); // 8
        push(1, "tail", &mut it); // 9
        let span = |a, b| CycleSpan {
            start_event: a,
            end_event: b,
        };
        let expected = vec![span(0, 2), span(3, 5), span(7, 7), span(8, 9)];
        let mut s = CycleScanner::new();
        s.scan(0, &events);
        let rule = s.rule(&CycleMode::Auto, &it);
        assert_eq!(rule, CycleRule::Test, "auto picks tests when there are any");
        assert_eq!(s.spans(&rule, &it).spans, expected);
        assert_eq!(online_spans(rule, &events, &it), expected);
        assert_eq!(test_name("pytest:begin t.py::a[x y]"), Some("t.py::a[x y]"));
        assert_eq!(test_name("pytest:end t.py::a"), None);
    }

    /// `ops` top-level ops, with `markers` "run N" markers spread among them
    /// (the first before any op) and no device spans.
    fn ops_and_markers(ops: u32, markers: u32, it: &mut InternTables) -> Vec<Event> {
        let op = it.intern_string("ttnn.matmul");
        let mut events = Vec::new();
        let mut push = |kind: EventKind| {
            events.push(Event {
                ts: 0,
                pid: Pid(1),
                kind,
            })
        };
        let every = ops / markers.max(1);
        for i in 0..ops {
            if markers > 0 && i % every == 0 && i / every < markers {
                let label = it.intern_string(&format!("run {}", i / every + 1));
                push(EventKind::Marker { label });
            }
            push(EventKind::OpBegin { name: op });
            push(EventKind::OpEnd);
        }
        events
    }

    #[test]
    fn a_scanner_for_one_mode_keeps_only_what_that_mode_uses() {
        let mut it = InternTables::new();
        // 3 markers among 1,000 ops: `auto` picks the markers, so once the
        // second marker is seen no op span can matter. Scanned in chunks
        // of 100 events as a replay does.
        let events = ops_and_markers(1_000, 3, &mut it);
        for mode in ["auto", "device", "marker", "marker=^run", "op=ttnn.matmul"] {
            let mode: CycleMode = mode.parse().unwrap();
            let mut general = CycleScanner::new();
            let mut narrow = CycleScanner::for_mode(&mode);
            for (k, chunk) in events.chunks(100).enumerate() {
                general.scan(k as u64 * 100, chunk);
                narrow.scan(k as u64 * 100, chunk);
            }
            let rule = general.rule(&mode, &it);
            assert_eq!(narrow.rule(&mode, &it), rule, "{mode}");
            assert_eq!(
                narrow.spans(&rule, &it).spans,
                general.spans(&rule, &it).spans,
                "{mode}"
            );
            // `op=` needs every op span; the others at most the spans of the
            // last chunk scanned (50 ops of 2 events each).
            let kept = narrow.top_ops.len();
            if matches!(mode, CycleMode::Op(_)) {
                assert_eq!(kept, 1_000, "{mode}");
            } else {
                assert!(kept <= 50, "{mode}: {kept} op spans kept");
            }
        }
        // Without markers `auto` cuts at the op: the spans are all kept.
        let events = ops_and_markers(1_000, 0, &mut it);
        let mut narrow = CycleScanner::for_mode(&CycleMode::Auto);
        narrow.scan(0, &events);
        let rule = narrow.rule(&CycleMode::Auto, &it);
        assert_eq!(rule, CycleRule::Op("ttnn.matmul".into()));
        assert_eq!(narrow.spans(&rule, &it).spans.len(), 1_000);
    }
}
