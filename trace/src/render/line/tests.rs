use super::*;
use crate::render::test_events::common_kinds;
use ttalloc_model::{BufferId, BufferType, DeviceId, Layout, Pid};

/// The fields of the common kinds, written one by one, are what the
/// field list the JSON lines use gives (names, order, quoting, hex
/// addresses, absent values left out), buffers with and without a name.
#[test]
fn common_kinds_are_written_as_the_field_list_writes_them() {
    let mut t = InternTables::new();
    let kinds = common_kinds(&mut t);
    let renderer = LineRenderer::new(&t, LineStyle::absolute());
    for kind in kinds {
        let e = Event {
            ts: 5,
            pid: Pid(7),
            kind,
        };
        // A name is a buffer's (`StreamNames::name` gives none for other kinds).
        let buffer = matches!(
            e.kind,
            EventKind::BufferAlloc { .. } | EventKind::BufferFree { .. }
        );
        let named = buffer.then_some("process 7 buffer 2 (\"kv\")");
        for name in [None, named] {
            let (mut fast, mut listed) = (String::new(), String::new());
            assert!(renderer.write_common_fields(&mut fast, &e, name), "{e:?}");
            write_fields(&mut listed, &e, &t, name);
            assert_eq!(fast, listed, "{e:?} named {name:?}");
        }
    }
}

/// A line: ordinal, time (raw or after the start), pid, kind, fields, and
/// the call site innermost first with the common directory left out; a
/// site's text is the same when it comes from the cache.
#[test]
fn a_line_shows_time_fields_and_site() {
    let mut t = InternTables::new();
    let site = t.intern_stack_str(&[("f", "/src/a.py", 3), ("g", "/src/b.py", 9)]);
    let e = Event {
        ts: 2_500_123_456,
        pid: Pid(7),
        kind: EventKind::BufferFree {
            device: DeviceId(0),
            buffer: BufferId(99),
            site,
        },
    };
    let mut r = LineRenderer::new(&t, LineStyle::relative(1_000_000_000, &t));
    let mut s = String::new();
    for _ in 0..2 {
        s.clear();
        r.write_line(&mut s, 12, &e, None);
        assert_eq!(
            s,
            "12 +1.500123 s pid=7 buffer_free device=0 buffer=99 at f (a.py:3) <- g (b.py:9)"
        );
    }
    assert_eq!(
        event_line(12, &e, &t),
        "12 2500123456 pid=7 buffer_free device=0 buffer=99 at f (/src/a.py:3) <- g (/src/b.py:9)"
    );
    let before = Event {
        ts: 999_000_000,
        ..e
    };
    s.clear();
    r.write_line(&mut s, 0, &before, None);
    assert!(s.starts_with("0 -0.001000 s "), "{s}");
}

/// Kinds the renderer does not write itself go through the field list;
/// an unknown site is `?`.
#[test]
fn rare_kinds_take_the_field_list() {
    let mut t = InternTables::new();
    let message = t.intern_string("Out of Memory: \"L1\"");
    let e = Event {
        ts: 1,
        pid: Pid(1),
        kind: EventKind::AllocRefused {
            device: DeviceId(2),
            buffer_type: BufferType::L1,
            size: 64,
            page_size: None,
            layout: Layout::Interleaved,
            num_cores: Some(4),
            per_bank_size: None,
            message,
            site: SiteId::UNKNOWN,
        },
    };
    let r = LineRenderer::new(&t, LineStyle::absolute());
    assert!(!r.write_common_fields(&mut String::new(), &e, None));
    assert_eq!(
        event_line(0, &e, &t),
        "0 1 pid=1 alloc_refused device=2 buffer_type=\"L1\" size=64 layout=\"INTERLEAVED\" \
         num_cores=4 message=\"Out of Memory: \\\"L1\\\"\" at ?"
    );
}
