//! One pass over a trace that counts every kind of candidate cycle
//! boundary, picks the rule a mode means and yields its spans.

use super::pytest::{test_marker, TestTracker, TEST_BEGIN};
use super::{label_shape, CycleRule, CycleSpan, Cycles};
use crate::options::CycleMode;
use crate::source::{Chunk, Item};
use ttalloc_model::hash::FastMap;
use ttalloc_model::{DeviceId, Event, EventKind, InternTables, Pid, StringId};

mod columns;

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

    /// How many top-level op spans are kept (tests check the bound).
    #[cfg(test)]
    pub(super) fn kept_op_spans(&self) -> usize {
        self.top_ops.len()
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

    /// Whether a look past the events scanned may still change `mode`'s
    /// rule to cut at markers of another label shape: markers scanned, but
    /// no shape seen twice yet, and (in `auto`) nothing that outranks
    /// markers (tests, a device opened twice).
    pub fn marker_rule_unsettled(&self, mode: &CycleMode, interner: &InternTables) -> bool {
        let open_at_end = !self.open.is_empty() as usize;
        let outranked = match mode {
            CycleMode::Marker(None) => false,
            CycleMode::Auto => {
                self.has_tests(interner) || self.device_spans.len() + open_at_end >= 2
            }
            _ => true,
        };
        let mut shapes = std::collections::HashSet::new();
        let repeats = self
            .markers
            .iter()
            .any(|(_, l, _)| !shapes.insert(label_shape(interner.string(*l))));
        !outranked && !self.markers.is_empty() && !repeats
    }

    /// Markers scanned so far.
    pub fn markers_seen(&self) -> usize {
        self.markers.len()
    }

    /// Keeps no top-level op span from now on (and drops those kept): for
    /// a scan whose rule will not be asked for ops.
    pub fn stop_keeping_ops(&mut self) {
        self.keep_ops = KeepOps::None;
        self.top_ops = Vec::new();
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
        // A block one process wrote (nearly always), while op scopes are
        // followed: its op nesting is kept in a local, not looked up per op.
        if let (true, Chunk::Columns { first, columns }) = (wants_ops, chunk) {
            if let Some(pid) = columns.one_pid() {
                self.scan_columns_one_pid(*first, columns, pid);
                if !chunk.is_empty() {
                    self.last = Some(chunk.first() + chunk.len() as u64 - 1);
                }
                return;
            }
        }
        let scan = |ord: u64, item: Item<'_>| -> Result<(), ()> {
            let e = match &item {
                Item::Alloc(_) | Item::Free(_) => return Ok(()),
                Item::Event(e) => *e,
                Item::Light(e) | Item::Cb(e) => e,
            };
            self.note(ord, e, wants_ops);
            Ok(())
        };
        // Once no rule can cut at ops, their nesting is not followed either
        // (a hash lookup per op, most events of an op-heavy trace): op
        // begins and ends are not even visited.
        let _ = if wants_ops {
            chunk.try_for_each_non_buffer(scan)
        } else {
            chunk.try_for_each_non_buffer_non_op(scan)
        };
        if !chunk.is_empty() {
            self.last = Some(chunk.first() + chunk.len() as u64 - 1);
        }
    }

    /// Event `e` at ordinal `ord` (any kind but a buffer alloc or free);
    /// `wants_ops`: whether finished top-level ops are kept.
    fn note(&mut self, ord: u64, e: &Event, wants_ops: bool) {
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
                } else if self.device_spans.len() == 1 && open_at_end == 0 {
                    // One device's whole life (opened and closed) is the one
                    // cycle: what a program that opens its device once
                    // repeats is inside it, at no boundary the trace marks.
                    // (A device still open at the end is no cycle: what it
                    // holds then was never freed.)
                    CycleRule::Device
                } else {
                    // Nothing repeats: no cycles.
                    CycleRule::None
                }
            }
        }
    }

    /// The rule `mode` will most likely mean for the whole trace, from a
    /// scan of its beginning only. As [`CycleScanner::rule`], except that a
    /// single device still open where the prefix ends is taken to close
    /// later: `auto` then means that device's life (the common ttnn
    /// program, which opens its device once), not "no cycles" — a guess
    /// the full scan confirms, so the replay needs no second pass.
    pub fn guess_from_prefix(&self, mode: &CycleMode, interner: &InternTables) -> CycleRule {
        let rule = self.rule(mode, interner);
        if rule == CycleRule::None
            && matches!(mode, CycleMode::Auto)
            && self.device_spans.is_empty()
            && self.open.len() == 1
        {
            return CycleRule::Device;
        }
        rule
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
    /// to the one seen first. The ttnn capture's ops (see [`is_capture_op`])
    /// are never picked.
    fn most_repeated_op(&self, interner: &InternTables) -> Option<String> {
        let mut counts: Vec<(StringId, usize, usize)> = Vec::new();
        let mut index: FastMap<StringId, usize> = FastMap::default();
        for (i, (_, name)) in self.top_ops.iter().enumerate() {
            if is_capture_op(interner.string(*name)) {
                continue;
            }
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

/// Whether an op scope is one the ttnn capture made around a ttnn call
/// (named after it: `ttnn.add`, `ttnn.allocate_tensor_on_device`,
/// `ttnn.Tensor.to`). `auto` never cuts cycles at those: a program calls
/// ttnn ops many times per repetition of its own work, and the most
/// repeated one is typically a leaf that only allocates or frees a tensor
/// (`ttnn.allocate_tensor_on_device`, `ttnn.deallocate`), so cycles cut
/// there split tensors from their frees and can show growth that is not
/// there (corpora/ttnn/program_cache, which frees everything, cut at
/// `ttnn.allocate_tensor_on_device`: 148,626 B of DRAM per cycle, the next
/// round's larger inputs). Cut at them with `--cycles op=NAME`.
pub fn is_capture_op(name: &str) -> bool {
    name.starts_with("ttnn.")
}
