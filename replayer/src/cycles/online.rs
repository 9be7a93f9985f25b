//! Cycle boundaries decided event by event while replaying.

use super::pytest::{test_marker, TestTracker};
use super::CycleRule;
use ttalloc_model::hash::FastMap;
use ttalloc_model::{DeviceId, Event, EventKind, EventTag, InternTables, Pid};

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

    /// True if events of kind `tag` (an [`EventTag`] code) may bound a
    /// cycle under this rule: [`OnlineCycles::boundary`] of any other kind
    /// is always the default and changes nothing, so it need not be called.
    #[inline]
    pub fn looks_at(&self, tag: u8) -> bool {
        let tag_is = |t: EventTag| tag == t as u8;
        match self.rule {
            CycleRule::Device => tag_is(EventTag::DeviceOpen) || tag_is(EventTag::DeviceClose),
            CycleRule::MarkerRegex(_)
            | CycleRule::MarkerShape(_)
            | CycleRule::MarkerAll
            | CycleRule::Test => tag_is(EventTag::Marker),
            CycleRule::Op(_) => tag_is(EventTag::OpBegin) || tag_is(EventTag::OpEnd),
            CycleRule::None => false,
        }
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
