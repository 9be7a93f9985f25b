//! The listener end to end over a real socket, recording into memory.

use super::*;
use crate::import::VecSink;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use ttalloc_model::{BufferId, BufferType, DeviceId, EventKind, Pid};

struct Harness {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    output: Arc<SinkOutput<VecSink>>,
    warnings: Arc<Mutex<Vec<String>>>,
    printed: Arc<Mutex<Vec<String>>>,
    listener: Option<CompatListener>,
}

fn harness(numbering: Numbering) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alloc.sock");
    let warnings: Arc<Mutex<Vec<String>>> = Arc::default();
    let w = warnings.clone();
    let output = Arc::new(
        SinkOutput::new(VecSink::default())
            .with_warn(move |m| w.lock().unwrap().push(m.to_owned())),
    );
    let printed: Arc<Mutex<Vec<String>>> = Arc::default();
    let p = printed.clone();
    let mut opts = CompatOptions::new(&path, numbering);
    opts.print = Arc::new(move |s: &str| p.lock().unwrap().push(s.to_owned()));
    let listener = CompatListener::start(opts, output.clone()).unwrap();
    Harness {
        _dir: dir,
        path,
        output,
        warnings,
        printed,
        listener: Some(listener),
    }
}

impl Harness {
    fn stop(&mut self) -> CompatReport {
        self.listener.take().unwrap().stop()
    }
    fn events(&self) -> Vec<ttalloc_model::Event> {
        self.output.with_sink(|s| s.events.clone())
    }
    fn warnings(&self) -> String {
        self.warnings.lock().unwrap().join("\n")
    }
}

/// Sends like tt-metal's `AllocationClient`: a zeroed struct per message,
/// blocking `send` until all 112 bytes are out.
fn send(s: &mut UnixStream, m: &Message) {
    s.write_all(&m.encode()).unwrap();
}

fn alloc(device: i32, size: u64, bt: u8, addr: u64) -> Message {
    Message {
        msg_type: MsgType::Alloc as u8,
        device_id: device,
        size,
        buffer_type: bt,
        process_id: std::process::id() as i32,
        buffer_id: addr,
        timestamp: 1_764_000_000_000_000_000,
        ..Default::default()
    }
}

fn free(device: i32, addr: u64) -> Message {
    Message {
        msg_type: MsgType::Free as u8,
        device_id: device,
        process_id: std::process::id() as i32,
        buffer_id: addr,
        ..Default::default()
    }
}

fn query(s: &mut UnixStream, device: i32) -> Message {
    send(
        s,
        &Message {
            msg_type: MsgType::Query as u8,
            device_id: device,
            ..Default::default()
        },
    );
    let mut b = [0u8; MESSAGE_SIZE];
    s.read_exact(&mut b).unwrap();
    Message::decode(&b)
}

#[test]
fn cpp_client_alloc_free_query_and_unknown_free() {
    let mut h = harness(Numbering::TtMetal);
    let mut c = UnixStream::connect(&h.path).unwrap();
    send(&mut c, &alloc(0, 36864, 0, 0x4000));
    send(&mut c, &alloc(0, 22528, 0, 0x20000));
    send(&mut c, &alloc(0, 2048, 1, 0x10_0000));
    send(&mut c, &alloc(0, 2048, 1, 0x10_0000)); // same key again: ref count 2
    send(&mut c, &alloc(1, 4096, 3, 0x4000)); // same address, other device, L1_SMALL
    send(&mut c, &free(0, 0x4000));
    send(&mut c, &free(0, 0x10_0000)); // count 2 -> 1: stays
    let r = query(&mut c, 0);
    assert_eq!(r.msg_type, MsgType::Response as u8);
    assert_eq!(
        (
            r.device_id,
            r.dram_allocated,
            r.l1_allocated,
            r.l1_small_allocated,
            r.trace_allocated
        ),
        (0, 22528, 2048, 0, 0)
    );
    let r1 = query(&mut c, 1);
    assert_eq!((r1.dram_allocated, r1.l1_small_allocated), (0, 4096));
    send(&mut c, &free(0, 0x999)); // never allocated
    send(
        &mut c,
        &Message {
            msg_type: MsgType::DumpRemaining as u8,
            ..Default::default()
        },
    );
    let info = {
        send(
            &mut c,
            &Message {
                msg_type: MsgType::DeviceInfoQuery as u8,
                device_id: -1,
                ..Default::default()
            },
        );
        let mut b = [0u8; MESSAGE_SIZE];
        c.read_exact(&mut b).unwrap();
        Message::decode(&b)
    };
    assert_eq!(
        (info.msg_type, info.num_devices),
        (MsgType::DeviceInfoResponse as u8, 2)
    );
    drop(c);
    let report = h.stop();
    assert_eq!(report.connections, 1);
    assert_eq!(report.unknown_frees, 1);
    assert_eq!(report.misframed_connections, 0);

    let events = h.events();
    let me = Pid(std::process::id());
    assert!(events.iter().all(|e| e.pid == me));
    assert!(matches!(events[0].kind, EventKind::ProcessStart { .. }));
    assert!(matches!(
        events.last().unwrap().kind,
        EventKind::ProcessExit { status: None }
    ));
    assert!(events.windows(2).all(|w| w[0].ts <= w[1].ts));
    let allocs: Vec<(BufferId, DeviceId, BufferType, Option<u64>, u64)> = events
        .iter()
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
        .collect();
    assert_eq!(allocs.len(), 4, "{allocs:?}");
    let want = [
        (DeviceId(0), BufferType::Dram, Some(0x4000), 36864),
        (DeviceId(0), BufferType::Dram, Some(0x20000), 22528),
        (DeviceId(0), BufferType::L1, Some(0x10_0000), 2048),
        (DeviceId(1), BufferType::L1Small, Some(0x4000), 4096),
    ];
    for (got, want) in allocs.iter().zip(want) {
        assert_eq!((got.1, got.2, got.3, got.4), want);
    }
    let ids: std::collections::HashSet<BufferId> = allocs.iter().map(|a| a.0).collect();
    assert_eq!(ids.len(), 4, "each compat buffer has its own id");
    let frees: Vec<BufferId> = events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::BufferFree { buffer, .. } => Some(buffer),
            _ => None,
        })
        .collect();
    // The 0x4000 DRAM buffer, then the unknown free (an id never allocated).
    assert_eq!(frees.len(), 2, "{frees:?}");
    assert_eq!(frees[0], allocs[0].0);
    assert!(!ids.contains(&frees[1]));
    assert!(
        h.warnings().contains(&format!(
            "Deallocation for unknown buffer: process {} buffer 0x999 on device",
            std::process::id()
        )),
        "{}",
        h.warnings()
    );
    let printed = h.printed.lock().unwrap().join("\n");
    assert!(
        printed.contains("Total tracked allocations: 3"),
        "{printed}"
    );
    let marker = events
        .iter()
        .any(|e| matches!(e.kind, EventKind::Marker { .. }));
    assert!(marker, "DUMP_REMAINING leaves a marker");
    // What the process held at exit stays allocated in the trace.
    assert_eq!(
        report.active_allocations, 0,
        "registry forgets a closed connection's buffers"
    );
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_128_byte_stream_is_reported_and_its_first_message_kept() {
    let mut h = harness(Numbering::TtMetal);
    let mut c = UnixStream::connect(&h.path).unwrap();
    for i in 0..3u64 {
        let mut b = alloc(0, 1024, 0, 0x100 * (i + 1)).encode().to_vec();
        b.resize(128, 0);
        c.write_all(&b).unwrap();
    }
    // The server closes the connection.
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut sink = [0u8; 16];
    assert_eq!(c.read(&mut sink).unwrap_or(0), 0);
    let report = h.stop();
    assert_eq!(report.misframed_connections, 1);
    let w = h.warnings();
    assert!(
        w.contains("byte offset 112") && w.contains("128-byte"),
        "{w}"
    );
    let events = h.events();
    let allocs = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::BufferAlloc { .. }))
        .count();
    assert_eq!(
        allocs, 1,
        "only the message before the misframing is recorded"
    );
    let interner = h.output.with_sink(|s| s.interner.clone());
    let label = events
        .iter()
        .find_map(|e| match e.kind {
            EventKind::Marker { label } => Some(interner.string(label).to_owned()),
            _ => None,
        })
        .expect("a marker in the trace");
    assert!(label.contains("128-byte"), "{label}");
}

#[test]
fn a_72_byte_client_waiting_for_an_answer_is_diagnosed() {
    let mut h = harness(Numbering::TtMetal);
    let mut c = UnixStream::connect(&h.path).unwrap();
    let mut q = Message {
        msg_type: MsgType::Query as u8,
        device_id: 0,
        ..Default::default()
    }
    .encode()
    .to_vec();
    q.truncate(72);
    c.write_all(&q).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut b = [0u8; 72];
    // No answer: the connection is closed after the stall diagnosis.
    assert_eq!(c.read(&mut b).unwrap_or(0), 0);
    let w = wait_for("the warning", || {
        let w = h.warnings();
        w.contains("72-byte").then_some(w)
    });
    assert!(w.contains("byte offset 0"), "{w}");
    let r = h.stop();
    assert_eq!(r.misframed_connections, 1);
}

#[test]
fn python_demo_numbering() {
    let mut h = harness(Numbering::PythonDemo);
    let mut c = UnixStream::connect(&h.path).unwrap();
    send(&mut c, &alloc(0, 100, 2, 1));
    send(&mut c, &alloc(0, 200, 3, 2));
    let r = query(&mut c, 0);
    assert_eq!((r.l1_small_allocated, r.trace_allocated), (100, 200));
    drop(c);
    h.stop();
    let types: Vec<BufferType> = h
        .events()
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::BufferAlloc { buffer_type, .. } => Some(buffer_type),
            _ => None,
        })
        .collect();
    assert_eq!(types, [BufferType::L1Small, BufferType::Trace]);
}

#[test]
fn socket_file_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    // A stale socket file (its server is gone) is replaced.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let out: Arc<dyn CompatOutput> = Arc::new(SinkOutput::new(VecSink::default()));
    let l =
        CompatListener::start(CompatOptions::new(&path, Numbering::TtMetal), out.clone()).unwrap();
    // A second server on the same path is refused, naming the owner.
    let err = CompatListener::start(CompatOptions::new(&path, Numbering::TtMetal), out.clone())
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(msg.contains("already listening"), "{msg}");
    assert!(
        msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
    assert!(msg.contains("--compat-socket"), "{msg}");
    l.stop();
    assert!(!path.exists(), "socket removed on exit");
    // Not a socket: refused, file untouched.
    std::fs::write(&path, b"data").unwrap();
    let err = CompatListener::start(CompatOptions::new(&path, Numbering::TtMetal), out)
        .err()
        .unwrap();
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"data");
}

#[test]
fn statistics_block_follows_the_registry() {
    let mut h = harness(Numbering::TtMetal);
    let mut c = UnixStream::connect(&h.path).unwrap();
    send(&mut c, &alloc(0, 36864, 0, 0x4000));
    query(&mut c, 0); // round trip: the ALLOC is applied
    let stats = h.listener.as_ref().unwrap().statistics();
    assert!(
        stats.contains("  Device 0:\n    Buffers: 1\n    DRAM: 36864 bytes (36 KB)\n"),
        "{stats}"
    );
    assert!(stats.contains("  Active allocations: 1"), "{stats}");
    drop(c);
    h.stop();
}

#[test]
fn a_dead_process_is_cleaned_up_while_its_connection_stays_open() {
    // A connection shared by a process that dies (a forked child's, say).
    let mut h = harness(Numbering::TtMetal);
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let mut c = UnixStream::connect(&h.path).unwrap();
    send(
        &mut c,
        &Message {
            process_id: pid,
            ..alloc(0, 4096, 0, 0x100)
        },
    );
    assert_eq!(query(&mut c, 0).dram_allocated, 4096);
    child.kill().unwrap();
    child.wait().unwrap();
    wait_for("the dead-process clean-up", || {
        (query(&mut c, 0).dram_allocated == 0).then_some(())
    });
    let printed = h.printed.lock().unwrap().join("\n");
    assert!(
        printed.contains(&format!("PID {pid} is dead: 1 buffer (4,096 B)")),
        "{printed}"
    );
    drop(c);
    h.stop();
    let events = h.events();
    let of_child: Vec<&EventKind> = events
        .iter()
        .filter(|e| e.pid == Pid(pid as u32))
        .map(|e| &e.kind)
        .collect();
    assert!(
        matches!(
            of_child[..],
            [
                EventKind::ProcessStart { .. },
                EventKind::BufferAlloc { size: 4096, .. },
                EventKind::ProcessExit { .. }
            ]
        ),
        "the buffer stays allocated in the trace: {of_child:?}"
    );
}

#[test]
fn a_misframed_connection_ends_only_itself_not_its_process_sibling() {
    // Connection A of this process allocates; connection B of the same
    // process sends one misframed message (type 0x6b, then 111 bytes) and
    // closes. A's buffer must stay A's: its FREE is an ordinary free.
    let mut h = harness(Numbering::TtMetal);
    let mut a = UnixStream::connect(&h.path).unwrap();
    send(&mut a, &alloc(5, 4096, 0, 0x1000));
    assert_eq!(query(&mut a, 5).dram_allocated, 4096);
    let mut b = UnixStream::connect(&h.path).unwrap();
    let mut garbage = vec![0x6bu8];
    garbage.extend((0..111u32).map(|i| (i.wrapping_mul(97) ^ 0x5a) as u8));
    b.write_all(&garbage).unwrap();
    drop(b);
    wait_for("B's misframe", || {
        let r = h.listener.as_ref().unwrap().report();
        (r.misframed_connections == 1).then_some(())
    });
    assert_eq!(
        query(&mut a, 5).dram_allocated,
        4096,
        "B's end kept A's buffer"
    );
    send(&mut a, &free(5, 0x1000));
    assert_eq!(query(&mut a, 5).dram_allocated, 0);
    drop(a);
    let report = h.stop();
    assert_eq!(report.unknown_frees, 0, "{}", h.warnings());
    assert!(!h.warnings().contains("unknown buffer"), "{}", h.warnings());
    let events = h.events();
    let alloc_id = events.iter().find_map(|e| match e.kind {
        EventKind::BufferAlloc { buffer, .. } => Some(buffer),
        _ => None,
    });
    let free_id = events.iter().find_map(|e| match e.kind {
        EventKind::BufferFree { buffer, .. } => Some(buffer),
        _ => None,
    });
    assert!(alloc_id.is_some());
    assert_eq!(alloc_id, free_id, "A's FREE frees A's buffer");
    let printed = h.printed.lock().unwrap().join("\n");
    assert!(!printed.contains("still allocated"), "{printed}");
}

/// The message count is shared once a read, not once a message, but a
/// client holding an answer finds every message up to its question counted
/// (`count_handled` before the reply). One write holds 200 allocs, a
/// QUERY, then 3,000 allocs more: the QUERY is answered in the middle of
/// the server's first read (64 KiB, 585 messages), and its answer must
/// find at least the 201 before it counted, not the 0 of no read yet
/// ended. All 3,201 are counted at the end.
#[test]
fn a_client_holding_its_answer_finds_its_messages_counted() {
    let mut h = harness(Numbering::TtMetal);
    let mut s = UnixStream::connect(&h.path).unwrap();
    let query_msg = Message {
        msg_type: MsgType::Query as u8,
        ..Default::default()
    };
    let mut stream: Vec<u8> = Vec::new();
    for i in 0..3_200u64 {
        if i == 200 {
            stream.extend_from_slice(&query_msg.encode());
        }
        stream.extend_from_slice(&alloc(0, 4096, 1, 0x10_0000 + i * 4096).encode());
    }
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(&stream).unwrap());
    let mut answer = [0u8; MESSAGE_SIZE];
    s.read_exact(&mut answer).unwrap();
    let counted = h.listener.as_ref().unwrap().report().messages;
    assert!(
        counted >= 201,
        "{counted} messages counted when the answer came"
    );
    writer.join().unwrap();
    drop(s);
    assert_eq!(h.stop().messages, 3_201);
}
