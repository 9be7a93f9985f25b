//! An idle recorder is at rest: with a native and an allocation-server
//! client connected and silent, none of its threads wakes up (they sleep in
//! blocking reads, poll(2) and `recv` with no timeout, not in timed polls),
//! and a stop still ends every one of them.
//!
//! Its own test binary: it counts the context switches of every `ttalloc-*`
//! thread in this process, so no other test may run recorder threads here.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};
use ttalloc_model::{Event, EventKind, Pid, StringId};
use ttalloc_recorder::compat::{CompatListener, Numbering};
use ttalloc_recorder::protocol::Encoder;
use ttalloc_recorder::{Session, SessionOptions};

/// Context switches (voluntary + involuntary) of each recorder thread, by thread id.
fn recorder_thread_switches() -> BTreeMap<String, (String, u64)> {
    let mut out = BTreeMap::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let task = task.unwrap().path();
        let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        if !comm.starts_with("ttalloc") {
            continue;
        }
        let status = std::fs::read_to_string(task.join("status")).unwrap_or_default();
        let switches: u64 = status
            .lines()
            .filter(|l| l.contains("ctxt_switches"))
            .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
            .sum();
        let tid = task.file_name().unwrap().to_string_lossy().into_owned();
        out.insert(tid, (comm.trim().to_owned(), switches));
    }
    out
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn an_idle_recorder_with_connected_clients_does_not_wake_up() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.zst");
    let mut opts = SessionOptions::new(&out, vec!["test".into()]);
    // The writer ticks until its block could be sealed: make that short.
    opts.writer.seal_interval = Duration::from_millis(50);
    let session = Session::start(opts).unwrap();
    let compat_path = dir.path().join("compat.sock");
    let compat =
        CompatListener::start_ingest(&compat_path, Numbering::TtMetal, session.ingest()).unwrap();

    let mut native = UnixStream::connect(session.socket_path()).unwrap();
    let mut enc = Encoder::new();
    let pid = std::process::id();
    enc.hello(pid, 1, 1, "idle-test", "1", &["idle"]);
    enc.strings(&["still here"]);
    enc.events(&[Event {
        ts: 2,
        pid: Pid(pid),
        kind: EventKind::Marker { label: StringId(1) },
    }]);
    native.write_all(&enc.buf).unwrap();
    let _compat_client = UnixStream::connect(&compat_path).unwrap();
    wait_until("both connections served", || {
        session.active_connections() == 1 && compat.report().connections == 1
    });
    wait_until("the marker written", || session.stats().events >= 2);
    // Let the writer seal and publish what it has (a few 100 ms ticks).
    std::thread::sleep(Duration::from_millis(600));

    let before = recorder_thread_switches();
    std::thread::sleep(Duration::from_millis(700));
    let after = recorder_thread_switches();
    let names: Vec<&str> = before.values().map(|(n, _)| n.as_str()).collect();
    for thread in [
        "ttalloc-writer",
        "ttalloc-accept",
        "ttalloc-conn",
        "ttalloc-compat-",
    ] {
        assert!(names.contains(&thread), "no {thread} thread: {names:?}");
    }
    // Polling at 20-100 ms would have woken each of them several times.
    assert_eq!(before, after, "recorder threads woke up while idle");

    // The stop still ends every blocked thread, and what was sent is kept.
    let report = compat.stop();
    assert_eq!(report.connections, 1);
    let summary = session.finish(Duration::from_millis(100)).unwrap();
    assert!(summary.write_error.is_none());
    let reader = ttalloc_trace::TraceReader::open(&out).unwrap();
    let kinds: Vec<EventKind> = reader
        .events()
        .map(|e| e.unwrap().kind)
        .filter(|k| matches!(k, EventKind::Marker { .. }))
        .collect();
    assert_eq!(
        kinds.len(),
        1,
        "the marker sent before the stop is in the trace"
    );
}
