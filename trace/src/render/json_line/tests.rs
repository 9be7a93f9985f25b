use super::*;
use crate::render::test_events::common_kinds;
use ttalloc_model::Pid;

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
