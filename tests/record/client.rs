//! The Python client's API errors and disabled mode, and `record --compat`.

use super::*;

#[test]
fn op_decorator_api_errors_and_disabled_client() {
    let tmp = tempfile::tempdir().unwrap();
    let script = r#"
import ttalloc

@ttalloc.op("ttnn.add")
def add(i):
    ttalloc.alloc(0, i, 1, 2048, layout="BLOCK_SHARDED", num_cores=8, address=0x1000)
    return i

assert add(1) == 1
for bad in [lambda: ttalloc.alloc(0, 2, "HBM", 1), lambda: ttalloc.alloc(0, 2, "DRAM", -1),
            lambda: ttalloc.device_open(0, nonsense=1), lambda: ttalloc.alloc(0, 2, "L1", 1, layout="diagonal")]:
    try:
        bad()
        raise SystemExit("no error")
    except ValueError as e:
        assert "ttalloc" in str(e), e
# The error names the argument that is wrong.
for bad, words in [(lambda: ttalloc.alloc(0, 3, "DRAM", -1), "alloc: size -1 is out of range"),
                   (lambda: ttalloc.alloc(-2, 3, "DRAM", 64), "alloc: device -2 is out of range"),
                   (lambda: ttalloc.alloc(0, 3, "DRAM", 64, page_size=1 << 64), "alloc: page_size"),
                   (lambda: ttalloc.alloc(0, 3, "DRAM", "big"), "alloc: size must be an integer, not 'big'"),
                   (lambda: ttalloc.trace_capture(0, 1 << 32, 64), "trace_capture: trace_id"),
                   (lambda: ttalloc.cb_alloc(0, 0, 64, cores=-1), "cb_alloc: cores")]:
    try:
        bad()
        raise SystemExit("no error")
    except ValueError as e:
        assert words in str(e), e
ttalloc.free(0, 1)
ttalloc.free(0, "never allocated")
print("ready", flush=True)
"#;
    let trace = tmp.path().join("api.zst");
    let child = spawn_ready(tmp.path(), &trace, script);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (r, events) = read_trace(&trace);
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.tag().name()).collect();
    assert_eq!(
        kinds,
        [
            "process_start",
            "op_begin",
            "buffer_alloc",
            "op_end",
            "buffer_free",
            "buffer_free",
            "process_exit"
        ]
    );
    match &events[2].kind {
        EventKind::BufferAlloc {
            buffer_type,
            layout,
            num_cores,
            address,
            site,
            ..
        } => {
            assert_eq!((buffer_type.name(), layout.name()), ("L1", "BLOCK_SHARDED"));
            assert_eq!((*num_cores, *address), (Some(8), Some(0x1000)));
            let frames = r.interner().resolve(*site);
            assert_eq!(
                frames[0].function, "add",
                "the decorator's own frame is not part of the site"
            );
            assert_eq!(frames[1].function, "<module>");
            let line_of =
                |needle: &str| script.lines().position(|l| l.contains(needle)).unwrap() as u32 + 1;
            assert_eq!(frames[0].line, line_of("ttalloc.alloc(0, i, 1"));
            assert_eq!(frames[1].line, line_of("assert add(1) == 1"));
        }
        other => panic!("{other:?}"),
    }
    // The free of an unknown buffer uses an id no alloc has.
    let ids: Vec<u64> = events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::BufferAlloc { buffer, .. } | EventKind::BufferFree { buffer, .. } => {
                Some(buffer.0)
            }
            _ => None,
        })
        .collect();
    assert_eq!(ids[0], ids[1]);
    assert_ne!(ids[2], ids[0]);

    // Without a recorder every call is a no-op, even invalid ones.
    let plain = Command::new("python3")
        .env_remove("TTALLOC_SOCKET")
        .env("PYTHONPATH", Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/python"))
        .args(["-c", "import ttalloc\nassert not ttalloc.enabled()\nttalloc.alloc(0, 1, 'HBM', -1)\nwith ttalloc.op('x'): pass\nttalloc.flush()\nprint('ok')"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&plain.stdout).trim(),
        "ok",
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
}

#[test]
fn record_compat_also_records_allocation_server_clients() {
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("alloc_server.sock");
    // tt-metal's allocation client: one 112-byte message per call, blocking sends.
    let script = format!(
        r#"
import os, socket, struct, time, ttalloc
fmt = "=BxxxiQBxxxiQQQQQQQQIIIIII"
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect({sock:?})
msg = lambda t, dev, size, bt, addr: struct.pack(fmt, t, dev, size, bt, os.getpid(), addr, time.time_ns(), *[0] * 12)
s.sendall(msg(1, 0, 4096, 0, 0x1000))
s.sendall(msg(1, 0, 8192, 1, 0x2000))
s.sendall(msg(2, 0, 0, 0, 0x1000))
ttalloc.alloc(3, "native", "DRAM", 2048)
s.close()
"#
    );
    std::fs::write(tmp.path().join("compat.py"), script).unwrap();
    let trace = tmp.path().join("compat.zst");
    let out = Command::new(BIN)
        .current_dir(tmp.path())
        .args(["record", "--compat", "--compat-socket"])
        .arg(&sock)
        .arg("-o")
        .arg(&trace)
        .args(["--", "python3", "compat.py"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("allocation-server clients: 1 connection, 3 messages"),
        "{stderr}"
    );
    let (_, events) = read_trace(&trace);
    let allocs: Vec<(u32, u64, Option<u64>)> = events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::BufferAlloc {
                device,
                size,
                address,
                ..
            } => Some((device.0, size, address)),
            _ => None,
        })
        .collect();
    assert_eq!(allocs.len(), 3, "{allocs:?}");
    assert!(allocs.contains(&(0, 4096, Some(0x1000))) && allocs.contains(&(0, 8192, Some(0x2000))));
    assert!(
        allocs.contains(&(3, 2048, None)),
        "the native client records alongside"
    );
    assert_eq!(count(&events, EventTag::BufferFree), 1);
    assert!(
        !sock.exists(),
        "the allocation-server socket is removed at the end"
    );
}
