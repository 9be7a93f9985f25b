//! Who a native connection is: the kernel's peer-credential pid, not the pid
//! its HELLO claims; and a stream that goes on after GOODBYE is reported.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use ttalloc_model::{Event, EventKind, Pid};
use ttalloc_recorder::protocol::Encoder;
use ttalloc_recorder::{Session, SessionOptions};

/// Runs a session, writes `bytes` on one connection, returns the trace's
/// events and the warnings.
fn record(bytes: &[u8]) -> (Vec<Event>, ttalloc_trace::TraceReader, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.zst");
    let warnings: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut opts = SessionOptions::new(&out, vec!["test".into()]);
    let w = warnings.clone();
    opts.warn = Arc::new(move |m: &str| w.lock().unwrap().push(m.to_owned()));
    let session = Session::start(opts).unwrap();
    let mut stream = UnixStream::connect(session.socket_path()).unwrap();
    stream.write_all(bytes).unwrap();
    drop(stream);
    session.finish(Duration::from_secs(5)).unwrap();
    let reader = ttalloc_trace::TraceReader::open(&out).unwrap();
    let events = reader.events().collect::<Result<Vec<_>, _>>().unwrap();
    let warnings = warnings.lock().unwrap().join("\n");
    (events, reader, warnings)
}

fn marker_stream(claimed_pid: u32) -> Encoder {
    let mut enc = Encoder::new();
    enc.hello(
        claimed_pid,
        1,
        1,
        "identity-test",
        "1",
        &["claimed", "argv"],
    );
    enc.strings(&["hello"]);
    enc.events(&[Event {
        ts: 1,
        pid: Pid(claimed_pid),
        kind: EventKind::Marker {
            label: ttalloc_model::StringId(1),
        },
    }]);
    enc.goodbye(Some(0));
    enc
}

#[test]
fn a_hello_claiming_another_pid_is_filed_under_the_peer_pid_with_a_warning() {
    let me = std::process::id();
    let claimed = if me == 4242 { 4243 } else { 4242 };
    let (events, reader, warnings) = record(&marker_stream(claimed).buf);
    assert!(!events.is_empty());
    assert!(
        events.iter().all(|e| e.pid == Pid(me)),
        "every event under the real pid {me}: {events:?}"
    );
    assert!(
        warnings.contains(&format!("says it is pid {claimed} in its HELLO"))
            && warnings.contains(&format!("recorded under pid {me}")),
        "{warnings}"
    );
    // The command line is this process's, not the one the HELLO claimed.
    let argv = events.iter().find_map(|e| match e.kind {
        EventKind::ProcessStart { argv, .. } => Some(reader.interner().string(argv).to_owned()),
        _ => None,
    });
    let argv = argv.expect("a ProcessStart");
    assert!(!argv.contains("claimed argv"), "{argv}");
}

#[test]
fn the_true_pid_records_without_a_warning() {
    let (events, _, warnings) = record(&marker_stream(std::process::id()).buf);
    assert!(events.iter().all(|e| e.pid == Pid(std::process::id())));
    assert!(warnings.is_empty(), "{warnings}");
}

#[test]
fn bytes_after_goodbye_are_reported() {
    let mut enc = marker_stream(std::process::id());
    let goodbye_end = enc.buf.len();
    enc.strings(&["late"]);
    let late = enc.buf.len() - goodbye_end;
    let (events, _, warnings) = record(&enc.buf);
    let markers = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Marker { .. }))
        .count();
    assert_eq!(markers, 1, "what came before GOODBYE is kept");
    assert!(
        warnings.contains(&format!("{late} bytes after its GOODBYE frame")),
        "{warnings}"
    );
}
