use super::*;
use ttalloc_model::{DeviceId, EventKind, Pid};

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

/// `ops` top-level ops (a hand-made `model.step` scope), with `markers`
/// "run N" markers spread among them (the first before any op) and no
/// device spans.
fn ops_and_markers(ops: u32, markers: u32, it: &mut InternTables) -> Vec<Event> {
    ops_named("model.step", ops, markers, it)
}

fn ops_named(name: &str, ops: u32, markers: u32, it: &mut InternTables) -> Vec<Event> {
    let op = it.intern_string(name);
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
    for mode in ["auto", "device", "marker", "marker=^run", "op=model.step"] {
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
        let kept = narrow.kept_op_spans();
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
    assert_eq!(rule, CycleRule::Op("model.step".into()));
    assert_eq!(narrow.spans(&rule, &it).spans.len(), 1_000);
}

#[test]
fn auto_never_cuts_at_the_ttnn_captures_ops() {
    let mut it = InternTables::new();
    // 1,000 `ttnn.allocate_tensor_on_device` scopes and nothing else: the
    // capture's ops are never cycle boundaries, so nothing repeats.
    let mut events = ops_named("ttnn.allocate_tensor_on_device", 1_000, 0, &mut it);
    let mut s = CycleScanner::for_mode(&CycleMode::Auto);
    s.scan(0, &events);
    assert_eq!(s.rule(&CycleMode::Auto, &it), CycleRule::None);
    // Inside one device open/close, as a ttnn program does: the device's
    // life is the one cycle (what `--cycles device` gives).
    let at = |kind| Event {
        ts: 0,
        pid: Pid(1),
        kind,
    };
    events.insert(
        0,
        at(EventKind::DeviceOpen {
            device: DeviceId(0),
            arch: Default::default(),
            config: Default::default(),
        }),
    );
    events.push(at(EventKind::DeviceClose {
        device: DeviceId(0),
    }));
    let mut s = CycleScanner::for_mode(&CycleMode::Auto);
    s.scan(0, &events);
    let rule = s.rule(&CycleMode::Auto, &it);
    assert_eq!(rule, CycleRule::Device);
    let spans = s.spans(&rule, &it).spans;
    assert_eq!(
        spans,
        [CycleSpan {
            start_event: 0,
            end_event: 2_001
        }]
    );
}

#[test]
fn a_prefix_with_one_device_still_open_guesses_the_device_rule() {
    let mut it = InternTables::new();
    // One device opened, 1,000 capture ops, closed: the whole trace means
    // the device rule (see above). A replay's probe sees only a prefix in
    // which the device has not closed yet; it must guess the same rule, or
    // every such trace is replayed twice.
    let at = |kind| Event {
        ts: 0,
        pid: Pid(1),
        kind,
    };
    let mut events = vec![at(EventKind::DeviceOpen {
        device: DeviceId(0),
        arch: Default::default(),
        config: Default::default(),
    })];
    events.extend(ops_named("ttnn.add", 1_000, 0, &mut it));
    events.push(at(EventKind::DeviceClose {
        device: DeviceId(0),
    }));
    let mut whole = CycleScanner::for_mode(&CycleMode::Auto);
    whole.scan(0, &events);
    let mut prefix = CycleScanner::new();
    prefix.scan(0, &events[..500]);
    assert_eq!(whole.rule(&CycleMode::Auto, &it), CycleRule::Device);
    assert_eq!(
        prefix.guess_from_prefix(&CycleMode::Auto, &it),
        CycleRule::Device
    );
    // Only `auto` guesses so; before any device opens there is nothing to guess from.
    let marker: CycleMode = "marker".parse().unwrap();
    assert_eq!(
        prefix.guess_from_prefix(&marker, &it),
        prefix.rule(&marker, &it)
    );
    let mut empty = CycleScanner::new();
    empty.scan(0, &events[1..500]);
    assert_eq!(
        empty.guess_from_prefix(&CycleMode::Auto, &it),
        CycleRule::None
    );
}
