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

mod online;
pub(crate) mod probe;
mod pytest;
mod scanner;
#[cfg(test)]
mod tests;

pub use online::{Boundary, OnlineCycles};
pub use pytest::{test_name, TEST_BEGIN, TEST_END};
pub use scanner::CycleScanner;

use crate::options::CycleMode;
use regex::Regex;
use serde::Serialize;
use ttalloc_model::{Event, InternTables};

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
