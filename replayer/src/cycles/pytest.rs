//! Test cycles from ttalloc's pytest plugin: its begin/end markers, and the
//! decision, marker by marker, of which test is the current cycle.

use ttalloc_model::Pid;

/// The pytest plugin's marker that starts a test's cycle (the node id follows).
pub const TEST_BEGIN: &str = "pytest:begin ";
/// The pytest plugin's marker that ends a test's cycle, after its teardown.
pub const TEST_END: &str = "pytest:end ";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TestMarker {
    Begin,
    End,
}

pub(super) fn test_marker(label: &str) -> Option<TestMarker> {
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
pub(super) struct TestTracker {
    /// The process whose test is the current cycle.
    pid: Option<Pid>,
}

impl TestTracker {
    /// (end the current cycle just before this marker, start one with it, end it with it).
    pub(super) fn marker(&mut self, kind: TestMarker, pid: Pid) -> (bool, bool, bool) {
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
