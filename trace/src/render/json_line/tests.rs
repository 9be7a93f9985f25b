use super::*;
use ttalloc_model::{BufferId, BufferType, DeviceId, Layout, Pid};

/// Every shape of the kinds `write_common` writes itself: optional fields
/// present and absent, labels empty and not, strings that need escaping
/// (quotes, backslash, control bytes, non-ASCII), a site unknown.
fn common_kinds(t: &mut InternTables) -> Vec<EventKind> {
    let site = t.intern_stack_str(&[("f\"q", "/src/a.py", 3), ("g", "C:\\b.py", 9)]);
    let label = t.intern_string("L1 \"x\"\t\u{1}\u{1f}\u{8}\u{c}\r\n é→ [1,32]");
    let op = t.intern_string("ttnn.add");
    let mut kinds = Vec::new();
    for (address, page_size, num_cores, per_bank_size, label, site) in [
        (Some(0x1000), Some(2048), Some(64), Some(4096), label, site),
        (None, None, None, None, StringId::EMPTY, SiteId::UNKNOWN),
        (Some(0), None, Some(1), None, label, site),
    ] {
        kinds.push(EventKind::BufferAlloc {
            device: DeviceId(3),
            buffer: BufferId(1 << 41 | 7),
            buffer_type: BufferType::L1Small,
            address,
            size: u64::MAX,
            page_size,
            layout: Layout::BlockSharded,
            num_cores,
            per_bank_size,
            label,
            site,
        });
    }
    for site in [site, SiteId::UNKNOWN] {
        kinds.push(EventKind::BufferFree {
            device: DeviceId(0),
            buffer: BufferId(99),
            site,
        });
    }
    for (cores, globally_allocated) in [(Some(8), true), (None, false)] {
        kinds.push(EventKind::CbAlloc {
            device: DeviceId(1),
            address: 0x20_c840,
            size: 8192,
            cores,
            globally_allocated,
            site,
        });
    }
    kinds.push(EventKind::CbFreeAll {
        device: DeviceId(1),
    });
    kinds.push(EventKind::OpBegin { name: op });
    kinds.push(EventKind::OpEnd);
    kinds.push(EventKind::Marker { label });
    kinds.push(EventKind::Marker {
        label: StringId::EMPTY,
    });
    kinds
}

/// The common kinds, written key by key, are `event_json`'s objects to
/// the byte, with and without a name (given with every kind here, so that
/// its place among the sorted keys is checked everywhere; an op's own
/// "name" with another one given goes through `event_json`).
#[test]
fn common_kinds_are_written_as_event_json_writes_them() {
    let mut t = InternTables::new();
    let kinds = common_kinds(&mut t);
    let mut r = JsonLineRenderer::new(&t);
    for kind in kinds {
        let e = Event {
            ts: 1_763_902_401_900_257_895,
            pid: Pid(4242),
            kind,
        };
        for name in [None, Some("process 7 buffer 2 (\"kv\")")] {
            let mut fast = String::new();
            let op_named = matches!(e.kind, EventKind::OpBegin { .. }) && name.is_some();
            assert_eq!(
                r.write_common(&mut fast, 12, &e, name),
                !op_named,
                "{e:?} {name:?}"
            );
            if op_named {
                r.write_line(&mut fast, 12, &e, name);
            }
            let listed = event_json(12, &e, &t, name).to_string();
            assert_eq!(fast, listed, "{e:?} named {name:?}");
            // The cached site gives the same line again.
            let mut again = String::new();
            r.write_line(&mut again, 12, &e, name);
            assert_eq!(again, listed);
        }
    }
}

/// Every byte below 0x20, and the rest of ASCII, escaped as serde_json
/// escapes them.
#[test]
fn strings_are_escaped_as_serde_json_escapes_them() {
    let all: String = (0u8..0x80).map(char::from).chain("é→😀".chars()).collect();
    let mut s = String::new();
    json_str(&mut s, &all);
    assert_eq!(s, serde_json::to_string(&all).unwrap());
}
