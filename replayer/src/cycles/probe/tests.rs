use super::*;
use crate::source::{MemoryTrace, CHUNK};
use ttalloc_model::{Event, EventKind, InternTables, Pid};

/// `total` events: the markers `marks` (position, label) where they are,
/// top-level `model.step` op scopes everywhere else.
fn trace(total: usize, marks: &[(usize, &str)]) -> MemoryTrace {
    let mut interner = InternTables::new();
    let op = interner.intern_string("model.step");
    let mut events = Vec::with_capacity(total);
    let mut open = false;
    for i in 0..total {
        let kind = match marks.iter().find(|m| m.0 == i) {
            Some((_, label)) => EventKind::Marker {
                label: interner.intern_string(label),
            },
            None if open => EventKind::OpEnd,
            None => EventKind::OpBegin { name: op },
        };
        open = matches!(kind, EventKind::OpBegin { .. });
        events.push(Event {
            ts: i as u64,
            pid: Pid(1),
            kind,
        });
    }
    MemoryTrace { events, interner }
}

/// What a scanner over `events` says: the whole trace's rule, and the
/// guess from the first probe (one chunk) alone.
fn whole_and_first_chunk(t: &MemoryTrace, mode: &CycleMode) -> (CycleRule, CycleRule) {
    let mut whole = CycleScanner::new();
    whole.scan(0, &t.events);
    let mut first = CycleScanner::new();
    first.scan(0, &t.events[..CHUNK]);
    (
        whole.rule(mode, &t.interner),
        first.guess_from_prefix(mode, &t.interner),
    )
}

const PROBE: u64 = CHUNK as u64;

/// Cycles longer than the probe: "setup done" and "cycle 1" in the first
/// chunk (no shape twice: unsettled), "cycle 2" at 100,000. The look goes
/// on to a third of the 300,000 events (100,000: chunk 1 holds it) and
/// stops at the chunk where "cycle N" repeats; the guess is then the whole
/// trace's rule, which the first chunk alone gets wrong (a tie of shapes,
/// won by "setup done").
#[test]
fn cycles_longer_than_the_probe_are_guessed_from_a_longer_look() {
    let t = trace(
        300_000,
        &[
            (0, "setup done"),
            (1, "cycle 1"),
            (100_000, "cycle 2"),
            (200_000, "cycle 3"),
        ],
    );
    for mode in [CycleMode::Auto, "marker".parse().unwrap()] {
        let (whole, first) = whole_and_first_chunk(&t, &mode);
        assert_ne!(
            whole, first,
            "{mode:?}: the first chunk alone guesses wrong"
        );
        let (rule, scanned) = guess_rule_within(&t, &mode, PROBE).unwrap();
        assert_eq!(rule, whole, "{mode:?}");
        assert_eq!(
            scanned,
            2 * PROBE,
            "{mode:?}: stops at the chunk of the repeat"
        );
    }
}

/// A repeat past a third of the trace is not looked for: "cycle 2" at
/// 250,000 of 300,000. The look ends with chunk 1 (the first at or past
/// 100,000 events), and the guess is the first chunk's (the replay's
/// check then finds the repeat, as it did before there was a look).
#[test]
fn the_look_ends_at_a_third_of_the_trace() {
    let t = trace(
        300_000,
        &[(0, "setup done"), (1, "cycle 1"), (250_000, "cycle 2")],
    );
    let (whole, first) = whole_and_first_chunk(&t, &CycleMode::Auto);
    assert_ne!(whole, first);
    let (rule, scanned) = guess_rule_within(&t, &CycleMode::Auto, PROBE).unwrap();
    assert_eq!(rule, first);
    assert_eq!(scanned, 2 * PROBE);
}

/// No marker in the probe, or a shape already seen twice there: no look
/// past the first chunk.
#[test]
fn a_probe_without_markers_or_with_a_repeat_looks_no_further() {
    let none = trace(300_000, &[]);
    let repeated = trace(
        300_000,
        &[(5, "cycle 1"), (60_000, "cycle 2"), (100_000, "other")],
    );
    for t in [&none, &repeated] {
        let (whole, first) = whole_and_first_chunk(t, &CycleMode::Auto);
        let (rule, scanned) = guess_rule_within(t, &CycleMode::Auto, PROBE).unwrap();
        assert_eq!((&rule, scanned), (&first, PROBE));
        assert_eq!(rule, whole);
    }
    assert_eq!(
        guess_rule_within(&none, &CycleMode::Auto, PROBE).unwrap().0,
        CycleRule::Op("model.step".into())
    );
}

/// A trace shorter than the probe is scanned whole, and guessed from.
#[test]
fn a_trace_shorter_than_the_probe_is_scanned_whole() {
    let t = trace(
        1_000,
        &[(0, "setup done"), (1, "cycle 1"), (900, "cycle 2")],
    );
    let (rule, scanned) = guess_rule_within(&t, &CycleMode::Auto, PROBE).unwrap();
    assert_eq!(scanned, 1_000);
    let mut whole = CycleScanner::new();
    whole.scan(0, &t.events);
    assert_eq!(rule, whole.rule(&CycleMode::Auto, &t.interner));
    assert!(matches!(rule, CycleRule::MarkerShape(_)), "{rule:?}");
}

/// A device opened and still open at the end, nothing else that repeats
/// (its circular buffers freed, over and over): no cycles (a device's life
/// is a cycle only once it closes). A prefix alone takes the device to
/// close later; a probe that saw the whole trace knows better, and so does
/// one whose trace's last block closes no device. Either way the guess is
/// the rule the replay's check finds (else the trace was replayed twice:
/// every trace of a program that crashed with its device open).
#[test]
fn a_device_never_closed_is_no_cycle_whatever_the_trace_length() {
    let device = ttalloc_model::DeviceId(0);
    let at = |kind| Event {
        ts: 0,
        pid: Pid(1),
        kind,
    };
    let open = at(EventKind::DeviceOpen {
        device,
        arch: Default::default(),
        config: Default::default(),
    });
    // `n` events; the last closes the device if `close`.
    let events = |n: usize, close: bool| {
        let mut events: Vec<Event> = std::iter::once(open.clone())
            .chain(std::iter::repeat_n(
                at(EventKind::CbFreeAll { device }),
                n - 1,
            ))
            .collect();
        if close {
            events[n - 1] = at(EventKind::DeviceClose { device });
        }
        MemoryTrace {
            events,
            interner: InternTables::new(),
        }
    };
    let whole_rule = |t: &MemoryTrace| {
        let mut whole = CycleScanner::new();
        whole.scan(0, &t.events);
        whole.rule(&CycleMode::Auto, &t.interner)
    };
    let mut prefix = CycleScanner::new();
    prefix.scan(0, &events(1_000, false).events);
    assert_eq!(
        prefix.guess_from_prefix(&CycleMode::Auto, &InternTables::new()),
        CycleRule::Device,
        "a prefix alone takes the device to close later"
    );
    for (n, close, rule) in [
        (1_000, false, CycleRule::None),
        (1_000, true, CycleRule::Device),
        // Scanned whole at the probe's end.
        (CHUNK, false, CycleRule::None),
        (3 * CHUNK, false, CycleRule::None),
        (3 * CHUNK, true, CycleRule::Device),
    ] {
        let t = events(n, close);
        assert_eq!(whole_rule(&t), rule, "{n} events, closed: {close}");
        assert_eq!(
            guess_rule_within(&t, &CycleMode::Auto, PROBE).unwrap().0,
            rule,
            "{n} events, closed: {close}"
        );
    }
}
