use super::*;
use crate::TraceReader;
use ttalloc_model::{EventKind, Pid, StringId};

fn marker(ts: u64) -> Event {
    Event {
        ts,
        pid: Pid(1),
        kind: EventKind::Marker { label: StringId(1) },
    }
}

#[test]
fn unknown_kinds_of_a_newer_minor_are_skipped_with_one_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.zst");
    let mut w = TraceWriter::create_with_version(
        &path,
        TraceHeader::default(),
        WriterOptions {
            block_events: 4,
            ..Default::default()
        },
        FORMAT_MAJOR,
        FORMAT_MINOR + 3,
    )
    .unwrap();
    w.interner_mut().intern_string("cycle 1");
    w.push(&marker(10)).unwrap();
    w.push_unknown_kind(200, 11, Pid(1), b"future payload")
        .unwrap();
    w.push(&marker(12)).unwrap();
    w.push_unknown_kind(200, 13, Pid(1), b"").unwrap();
    w.push_unknown_kind(201, 14, Pid(1), b"x").unwrap();
    w.push(&marker(15)).unwrap();
    w.finish().unwrap();

    let r = TraceReader::open(&path).unwrap();
    assert_eq!(r.header().format_minor, FORMAT_MINOR + 3);
    assert_eq!(r.num_events(), 6, "the index counts every stored event");
    assert!(r.warnings().is_empty(), "nothing decoded yet");
    let got: Vec<u64> = r.events().map(|e| e.unwrap().ts).collect();
    assert_eq!(got, [10, 12, 15]);
    // Reading again neither repeats the warning (one line per unknown
    // kind) nor counts the same events again: the file holds 2 of kind
    // 200 (events 1 and 3, in blocks 0 and 0) and 1 of kind 201.
    let _ = r.events().count();
    r.for_each_event(|_, _| ()).unwrap();
    let w = r.warnings();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w[0].contains("unknown kind 200") && w[0].contains("skipped 2 "),
        "{w:?}"
    );
    assert!(w[1].contains("skipped 1 "), "{w:?}");
    assert!(w[1].contains("unknown kind 201"), "{w:?}");
    let mut ords = Vec::new();
    r.for_each_event(|o, _| ords.push(o)).unwrap();
    assert_eq!(ords, [0, 2, 5], "ordinals count skipped events too");
}

/// A writer whose records after the header claim another major version.
fn write_with_foreign_major(path: &Path, foreign: Option<RecordKind>) {
    let mut w = TraceWriter::create(
        path,
        TraceHeader::default(),
        WriterOptions {
            block_events: 1,
            ..Default::default()
        },
    )
    .unwrap();
    w.interner_mut().intern_string("cycle 1");
    if foreign == Some(RecordKind::Intern) {
        w.major = FORMAT_MAJOR + 1;
    }
    w.seal().unwrap(); // the intern record only: no events yet
    w.major = FORMAT_MAJOR;
    if foreign == Some(RecordKind::Block) {
        w.major = FORMAT_MAJOR + 1;
    }
    w.push(&marker(10)).unwrap();
    w.seal().unwrap();
    w.major = FORMAT_MAJOR; // the footer is right: the indexed path is taken
    w.finish().unwrap();
}

#[test]
fn records_of_another_major_are_corrupt_on_the_indexed_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.zst");
    // Control: the same file with every record of this major reads clean.
    write_with_foreign_major(&path, None);
    let r = TraceReader::open(&path).unwrap();
    assert!(r.truncation().is_none());
    assert_eq!(r.events().map(|e| e.unwrap().ts).collect::<Vec<_>>(), [10]);

    // An intern record of format 3.x: the index is not trusted, and the
    // recovery scan stops at that record (nothing before it holds events).
    write_with_foreign_major(&path, Some(RecordKind::Intern));
    let r = TraceReader::open(&path).unwrap();
    let t = r.truncation().expect("reported as damaged");
    let foreign = format!("format 3.{FORMAT_MINOR}");
    assert!(t.reason.contains(&foreign), "{}", t.reason);
    assert_eq!((t.events_recovered, r.num_events()), (0, 0));

    // A block of format 3.x: found when decoded, named with its offset.
    write_with_foreign_major(&path, Some(RecordKind::Block));
    let r = TraceReader::open(&path).unwrap();
    let err = r.events().next().unwrap().unwrap_err().to_string();
    assert!(err.contains("block 0") && err.contains(&foreign), "{err}");
}

#[test]
fn a_newer_major_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.zst");
    let w = TraceWriter::create_with_version(
        &path,
        TraceHeader::default(),
        WriterOptions::default(),
        FORMAT_MAJOR + 1,
        1,
    )
    .unwrap();
    w.finish().unwrap();
    let err = TraceReader::open(&path).err().unwrap();
    assert!(
        matches!(
            err,
            crate::TraceError::NewerMajor {
                major: 3,
                minor: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("trace format 3.1 is newer"),
        "{err}"
    );
}
