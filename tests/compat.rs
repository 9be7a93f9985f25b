//! End-to-end tests: `ttalloc serve --compat` as a drop-in for tt-metal's
//! allocation server — the 112-byte protocol, QUERY answers, unknown frees,
//! misframed streams, two processes started separately, Ctrl-C sealing.

#[path = "compat/cpp_client.rs"]
mod cpp_client;
#[path = "compat/serve.rs"]
mod serve;

use cpp_client::{now_ns, AllocMessage, CppClient};
use serve::{wait_until, Serve};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use ttalloc_model::{BufferId, BufferType, DeviceId, Event, EventKind, InternTables, Pid};
use ttalloc_trace::TraceReader;

fn read_trace(path: &Path) -> (Vec<Event>, InternTables) {
    let r = TraceReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(r.truncation().is_none(), "the trace is sealed");
    let events: Vec<Event> = r.events().collect::<Result<_, _>>().unwrap();
    (events, r.interner().clone())
}

fn allocs_of(
    events: &[Event],
    pid: Pid,
) -> Vec<(BufferId, DeviceId, BufferType, Option<u64>, u64)> {
    events
        .iter()
        .filter(|e| e.pid == pid)
        .filter_map(|e| match e.kind {
            EventKind::BufferAlloc {
                device,
                buffer,
                buffer_type,
                address,
                size,
                ..
            } => Some((buffer, device, buffer_type, address, size)),
            _ => None,
        })
        .collect()
}

fn frees_of(events: &[Event], pid: Pid) -> Vec<BufferId> {
    events
        .iter()
        .filter(|e| e.pid == pid)
        .filter_map(|e| match e.kind {
            EventKind::BufferFree { buffer, .. } => Some(buffer),
            _ => None,
        })
        .collect()
}

fn markers(events: &[Event], interner: &InternTables) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Marker { label } => Some(interner.string(label).to_owned()),
            _ => None,
        })
        .collect()
}

#[test]
fn cpp_client_is_recorded_answered_and_its_unknown_free_reported() {
    let mut serve = Serve::start(&[]);
    let mut c = CppClient::connect(&serve.compat_socket());
    c.alloc(0, 36864, 0, 0x4000); // DRAM
    c.alloc(0, 22528, 0, 0x13000); // DRAM
    c.alloc(0, 2048, 1, 0x10_0000); // L1
    c.alloc(0, 2048, 1, 0x10_0000); // same (device, address): ref count 2
    c.alloc(1, 8192, 4, 0x4000); // TRACE on device 1, same address as device 0's buffer
    c.free(0, 0x4000);
    c.free(0, 0x10_0000); // ref count 2 -> 1: still allocated
    assert_eq!(c.query(0), (4, 22528, 2048, 0, 0));
    assert_eq!(c.query(1), (4, 0, 0, 0, 8192));
    assert_eq!(c.query(5), (4, 0, 0, 0, 0));
    c.free(0, 0xdead0); // never allocated
    let info = c.request(6, -1); // DEVICE_INFO_QUERY for the device count
    assert_eq!(info[0], 7);
    assert_eq!(u32::from_le_bytes(info[108..112].try_into().unwrap()), 2);
    // The periodic statistics block shows the live state, as the original's did.
    wait_until("a statistics block", Duration::from_secs(10), || {
        serve.out().contains("  Device 0:\n    Buffers: 2\n    DRAM: 22528 bytes (22 KB)\n    L1: 2048 bytes (2 KB)\n    Total: 24576 bytes\n")
    });
    wait_until("the unknown-free warning", Duration::from_secs(10), || {
        serve.err().contains(&format!(
            "Deallocation for unknown buffer: process {} buffer 0xdead0 on device 0",
            std::process::id()
        ))
    });
    drop(c);
    let status = serve.interrupt();
    assert!(status.success(), "{status:?}\n{}", serve.err());
    let out = serve.out();
    assert!(out.contains("1 unknown free,"), "{out}");
    assert!(!serve.compat_socket().exists(), "socket removed on exit");

    let (events, _) = read_trace(&serve.trace());
    let me = Pid(std::process::id());
    assert!(events
        .iter()
        .any(|e| e.pid == me && matches!(e.kind, EventKind::ProcessStart { .. })));
    let allocs = allocs_of(&events, me);
    let shape: Vec<_> = allocs.iter().map(|a| (a.1, a.2, a.3, a.4)).collect();
    assert_eq!(
        shape,
        [
            (DeviceId(0), BufferType::Dram, Some(0x4000), 36864),
            (DeviceId(0), BufferType::Dram, Some(0x13000), 22528),
            (DeviceId(0), BufferType::L1, Some(0x10_0000), 2048),
            (DeviceId(1), BufferType::Trace, Some(0x4000), 8192),
        ]
    );
    let frees = frees_of(&events, me);
    assert_eq!(frees.len(), 2, "{frees:?}");
    assert_eq!(
        frees[0], allocs[0].0,
        "the DRAM buffer at 0x4000 on device 0"
    );
    assert!(
        allocs.iter().all(|a| a.0 != frees[1]),
        "the unknown free names a buffer never allocated"
    );
    // The process's exit is recorded; what it still held stays allocated.
    assert!(events
        .iter()
        .any(|e| e.pid == me && matches!(e.kind, EventKind::ProcessExit { .. })));
}

/// The Python demo client's way of speaking the protocol (struct.pack).
const COMPAT_CLIENT: &str = r#"
import os, socket, struct, sys
FMT = '=BxxxiQBxxxiQQQQQQQQIIIIII'
assert struct.calcsize(FMT) == 112
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
def msg(t, dev, size=0, bt=0, bid=0, ts=0):
    return struct.pack(FMT, t, dev, size, bt, os.getpid(), bid, ts, *([0] * 12))
s.sendall(msg(1, 0, 4096, 0, 0x1000, 1))
s.sendall(msg(1, 0, 1024, 1, 0x2000, 2))
s.sendall(msg(2, 0, 0, 0, 0x1000))
s.sendall(msg(3, 0))
r = struct.unpack(FMT, s.recv(112))
assert r[0] == 4 and r[7:11] == (0, 1024, 0, 0), r
print(os.getpid())
"#;

const NATIVE_CLIENT: &str = r#"
import os, ttalloc
assert ttalloc.enabled()
ttalloc.device_open(0)
ttalloc.alloc(0, "a", "DRAM", 8192)
ttalloc.alloc(0, "b", "L1", 512)
ttalloc.free(0, "b")
ttalloc.flush()
print(os.getpid())
"#;

#[test]
fn a_client_that_pauses_connected_finds_its_events_in_the_trace() {
    // The listener hands a connection's events to the writer when its client
    // pauses (a read that would block), not after every read. A client that
    // sends three allocations and then waits, still connected and sending
    // nothing more, has them in the trace's sealed blocks: the writer seals
    // within its 1 s interval, and the trace is read while serve runs.
    let mut serve = Serve::start(&[]);
    let mut c = CppClient::connect(&serve.compat_socket());
    c.alloc(0, 4096, 0, 0x4000);
    c.alloc(0, 8192, 0, 0x6000);
    c.alloc(0, 2048, 1, 0x10_0000);
    let me = Pid(std::process::id());
    let sealed_allocs = || -> usize {
        let Ok(r) = TraceReader::open(&serve.trace()) else {
            return 0;
        };
        let events: Vec<Event> = r.events().filter_map(Result::ok).collect();
        allocs_of(&events, me).len()
    };
    wait_until(
        "the paused client's three allocations in the trace",
        Duration::from_secs(15),
        || sealed_allocs() == 3,
    );
    drop(c);
    let status = serve.interrupt();
    assert!(status.success(), "{status:?}\n{}", serve.err());
}

fn exported(out: &str, var: &str) -> String {
    let prefix = format!("export {var}=");
    out.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix(&prefix)
                .map(|v| v.trim_matches('\'').to_owned())
        })
        .unwrap_or_else(|| panic!("serve did not print {var}: {out}"))
}

#[test]
fn serve_records_two_processes_started_separately_and_ctrl_c_seals() {
    let mut serve = Serve::start(&[]);
    let out = serve.out();
    let socket = exported(&out, "TTALLOC_SOCKET");
    assert_eq!(exported(&out, "TT_ALLOC_TRACKING_ENABLED"), "1");
    // The printed line prepends the client in the user's own shell.
    let line = out
        .lines()
        .find(|l| l.trim().starts_with("export PYTHONPATH="))
        .unwrap()
        .trim();
    let kept = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "PYTHONPATH=/users/own; {line}; echo \"$PYTHONPATH\""
        ))
        .output()
        .unwrap();
    let pythonpath = String::from_utf8_lossy(&kept.stdout).trim().to_owned();
    assert!(pythonpath.ends_with(":/users/own"), "{pythonpath}");
    assert!(pythonpath.contains("ttalloc-serve-"), "{pythonpath}");
    // Blocked, not polling: the accept threads sleep while nobody connects.
    let switches = |name: &str| -> u64 {
        let tasks = format!("/proc/{}/task", serve.child.id());
        std::fs::read_dir(tasks)
            .unwrap()
            .filter_map(|t| t.ok())
            .filter(|t| {
                std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name)
            })
            .map(|t| {
                let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
                status
                    .lines()
                    .filter(|l| l.contains("ctxt_switches"))
                    .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                    .sum::<u64>()
            })
            .sum()
    };
    let before = (switches("ttalloc-accept"), switches("ttalloc-compat-"));
    std::thread::sleep(Duration::from_millis(500));
    let after = (switches("ttalloc-accept"), switches("ttalloc-compat-"));
    // A 5 ms accept-and-sleep loop would switch ~100 times in 0.5 s.
    assert!(
        after.0 - before.0 <= 3,
        "native accept woke {} times",
        after.0 - before.0
    );
    assert!(
        after.1 - before.1 <= 3,
        "compat accept woke {} times",
        after.1 - before.1
    );

    // First an allocation-server client, then (after it ended) a native one.
    let a = Command::new("python3")
        .arg("-c")
        .arg(COMPAT_CLIENT)
        .arg(serve.compat_socket())
        .output()
        .unwrap();
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let b = Command::new("python3")
        .arg("-c")
        .arg(NATIVE_CLIENT)
        .env("TTALLOC_SOCKET", &socket)
        .env("TT_ALLOC_TRACKING_ENABLED", "1")
        .env("PYTHONPATH", &pythonpath)
        .output()
        .unwrap();
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    let pid =
        |o: &std::process::Output| Pid(String::from_utf8_lossy(&o.stdout).trim().parse().unwrap());
    let (pa, pb) = (pid(&a), pid(&b));
    assert_ne!(pa, pb);

    // A device closed with a buffer still on it: the statistics stop
    // counting it as allocated and say it outlived the device.
    let c = Command::new("python3")
        .arg("-c")
        .arg("import ttalloc; ttalloc.device_open(3); ttalloc.alloc(3, 'x', 'DRAM', 4096); ttalloc.device_close(3); ttalloc.flush()")
        .env("TTALLOC_SOCKET", &socket)
        .env("TT_ALLOC_TRACKING_ENABLED", "1")
        .env("PYTHONPATH", &pythonpath)
        .output()
        .unwrap();
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
    let out = serve.out.clone();
    wait_until(
        "a statistics block after device 3 closed",
        Duration::from_secs(20),
        || {
            out.lock()
                .unwrap()
                .contains("  Device 3: closed; 1 buffer (4,096 B) outlived it\n")
        },
    );

    let status = serve.interrupt();
    assert!(status.success(), "{status:?}\n{}", serve.err());
    let (events, _) = read_trace(&serve.trace());
    for p in [pa, pb] {
        assert!(
            events
                .iter()
                .any(|e| e.pid == p && matches!(e.kind, EventKind::ProcessStart { .. })),
            "no ProcessStart for {p:?}"
        );
    }
    let a_allocs: Vec<_> = allocs_of(&events, pa)
        .iter()
        .map(|x| (x.2, x.3, x.4))
        .collect();
    assert_eq!(
        a_allocs,
        [
            (BufferType::Dram, Some(0x1000), 4096),
            (BufferType::L1, Some(0x2000), 1024)
        ]
    );
    assert_eq!(frees_of(&events, pa).len(), 1);
    let b_allocs: Vec<_> = allocs_of(&events, pb).iter().map(|x| (x.2, x.4)).collect();
    assert_eq!(b_allocs, [(BufferType::Dram, 8192), (BufferType::L1, 512)]);
    assert_eq!(frees_of(&events, pb).len(), 1);
    let out = serve.out();
    assert!(out.contains("ttalloc: recorded "), "{out}");
    assert!(out.contains(" from 3 processes"), "{out}");
    assert!(out.contains("ttalloc: left behind at the end: "), "{out}");
    assert!(out.contains(" --bisect\n"), "{out}");
    // Nothing left in the temporary directory (the private dir was empty).
    let left: Vec<_> = std::fs::read_dir(serve.dir.path().join("tmp"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn misframed_128_and_72_byte_streams_are_reported() {
    let mut serve = Serve::start(&[]);
    // The later branch's 128-byte struct: header as before, 16 more bytes.
    let mut c128 = UnixStream::connect(serve.compat_socket()).unwrap();
    for i in 0..4u64 {
        let mut b = AllocMessage {
            kind: 1,
            device_id: 0,
            size: 4096,
            buffer_type: 0,
            process_id: std::process::id() as i32,
            buffer_id: 0x1000 * (i + 1),
            timestamp: now_ns(),
        }
        .bytes()
        .to_vec();
        b.resize(128, 0);
        c128.write_all(&b).unwrap();
    }
    c128.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(
        c128.read(&mut buf).unwrap_or(0),
        0,
        "the misframed connection is closed"
    );
    wait_until("the 128-byte diagnosis", Duration::from_secs(10), || {
        serve.err().contains("128-byte")
    });
    let err = serve.err();
    assert!(err.contains("byte offset 112"), "{err}");

    // The monitor client's 72-byte struct: a QUERY, then it waits for an answer.
    let mut c72 = UnixStream::connect(serve.compat_socket()).unwrap();
    let q = AllocMessage {
        kind: 3,
        device_id: 0,
        ..Default::default()
    }
    .bytes();
    c72.write_all(&q[..72]).unwrap();
    c72.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(
        c72.read(&mut buf).unwrap_or(0),
        0,
        "no garbage answer; the connection is closed"
    );
    wait_until("the 72-byte diagnosis", Duration::from_secs(10), || {
        serve.err().contains("72-byte")
    });

    // A good client is unaffected.
    let mut good = CppClient::connect(&serve.compat_socket());
    good.alloc(0, 64, 1, 0x40);
    // The 128-byte connection is closed: its buffer left the registry (dead-process clean-up).
    assert_eq!(good.query(0), (4, 0, 64, 0, 0));
    drop(good);

    let status = serve.interrupt();
    assert!(status.success(), "{status:?}");
    let (events, interner) = read_trace(&serve.trace());
    let labels = markers(&events, &interner);
    assert!(
        labels
            .iter()
            .any(|l| l.contains("128-byte") && l.contains("byte offset 112")),
        "{labels:?}"
    );
    assert!(labels.iter().any(|l| l.contains("72-byte")), "{labels:?}");
    // Only the 128-byte stream's first message (its first 112 bytes are a
    // complete message) and the good client's allocation are recorded.
    let sizes: Vec<u64> = allocs_of(&events, Pid(std::process::id()))
        .iter()
        .map(|a| a.4)
        .collect();
    assert_eq!(sizes, [4096, 64]);
}

#[test]
fn a_live_server_on_the_socket_is_refused() {
    let mut serve = Serve::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_ttalloc"))
        .arg("serve")
        .arg("-o")
        .arg(dir.path().join("second.zst"))
        .arg("--socket")
        .arg(dir.path().join("n.sock"))
        .arg("--compat")
        .arg("--compat-socket")
        .arg(serve.compat_socket())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("already listening"), "{err}");
    assert!(err.contains(&format!("pid {}", serve.child.id())), "{err}");
    assert!(err.contains("--compat-socket"), "{err}");
    assert!(
        !dir.path().join("second.zst").exists(),
        "no trace left behind"
    );
    assert!(
        serve.compat_socket().exists(),
        "the live server's socket is untouched"
    );
    assert!(serve.interrupt().success());
}

#[test]
fn record_compat_records_the_command_over_the_allocation_server_socket() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("rec.zst");
    let sock = dir.path().join("alloc.sock");
    let o = Command::new(env!("CARGO_BIN_EXE_ttalloc"))
        .arg("record")
        .arg("-o")
        .arg(&trace)
        .arg("--compat")
        .arg("--compat-socket")
        .arg(&sock)
        .arg("--")
        .arg("python3")
        .arg("-c")
        .arg(COMPAT_CLIENT)
        .arg(&sock)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pid = Pid(String::from_utf8_lossy(&o.stdout).trim().parse().unwrap());
    assert!(!sock.exists(), "the compat socket is removed at the end");
    let (events, _) = read_trace(&trace);
    let allocs: Vec<_> = allocs_of(&events, pid)
        .iter()
        .map(|x| (x.2, x.3, x.4))
        .collect();
    assert_eq!(
        allocs,
        [
            (BufferType::Dram, Some(0x1000), 4096),
            (BufferType::L1, Some(0x2000), 1024)
        ]
    );
    assert_eq!(frees_of(&events, pid).len(), 1);
}
