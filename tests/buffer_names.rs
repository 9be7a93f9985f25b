//! Issue 13, friction 6: one buffer has one name on every surface —
//! `process P buffer K (LABEL)`, K in the form the client gave it. A compat
//! client names buffers by address (hex); a native client by its number.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ttalloc");

/// A client of the allocation server: allocates a DRAM buffer at 0x999000
/// (never freed) and frees 0x1000, which it never allocated.
const COMPAT_CLIENT: &str = r#"
import os, socket, struct, sys
FMT = '=BxxxiQBxxxiQQQQQQQQIIIIII'
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
def msg(t, dev, size=0, bt=0, bid=0):
    return struct.pack(FMT, t, dev, size, bt, os.getpid(), bid, 0, *([0] * 12))
s.sendall(msg(1, 0, 4096, 0, 0x999000))
s.sendall(msg(2, 0, 0, 0, 0x1000))
s.sendall(msg(3, 0))
s.recv(112)
print(os.getpid())
"#;

/// A native client: a labelled buffer, never freed. The Python client takes
/// any object as a buffer's key and numbers a connection's buffers itself,
/// from 1: this one is its buffer 1 on the wire.
const NATIVE_CLIENT: &str = r#"
import os, ttalloc
ttalloc.device_open(0)
ttalloc.alloc(0, "x", "DRAM", 4096, label="input_tensor")
ttalloc.flush()
print(os.getpid())
"#;

fn ttalloc(args: &[&str]) -> (String, String) {
    let o = Command::new(BIN).args(args).output().unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    // 0, or 1 when --fail-on finds something; never a usage error.
    assert!(o.status.code().is_some_and(|c| c < 2), "{args:?}: {err}");
    (out, err)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Records `script` (with `--compat` when `compat`); returns the trace, the
/// client's pid and the recorder's stderr.
fn record(dir: &Path, script: &str, compat: bool) -> (String, u32, String) {
    let trace = dir.join("t.zst").display().to_string();
    let sock = dir.join("alloc.sock").display().to_string();
    let mut args = vec!["record", "-o", &trace];
    if compat {
        args.extend(["--compat", "--compat-socket", &sock]);
    }
    args.extend(["--", "python3", "-c", script]);
    if compat {
        args.push(&sock);
    }
    let (out, err) = ttalloc(&args);
    let pid = out
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{out}\n{err}"));
    (trace, pid, err)
}

/// Every surface that names `buffer`: replay (text and JSON), cat (text and
/// JSON lines), the Markdown and HTML reports, the Perfetto export.
fn assert_named_everywhere(trace: &str, name: &str) {
    let (text, _) = ttalloc(&["replay", trace, "--bisect"]);
    assert!(text.contains(name), "replay text lacks {name:?}:\n{text}");
    let (out, _) = ttalloc(&["replay", trace, "--json"]);
    let names: Vec<String> = json(&out)["leaks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(names.iter().any(|n| n == name), "{names:?}");

    let (cat, _) = ttalloc(&["cat", trace]);
    let want = format!("buffer={name:?}");
    assert!(cat.contains(&want), "cat lacks {want}:\n{cat}");
    let (lines, _) = ttalloc(&["cat", trace, "--jsonl"]);
    assert!(
        lines
            .lines()
            .any(|l| json(l)["name"].as_str() == Some(name)),
        "{lines}"
    );

    let (md, _) = ttalloc(&["report", trace, "--format", "md"]);
    assert!(md.contains(name), "markdown lacks {name:?}:\n{md}");
    let (html, _) = ttalloc(&["report", trace]);
    assert!(html.contains(name), "the HTML report lacks {name:?}");
    let (perfetto, _) = ttalloc(&["export", trace, "--format", "perfetto"]);
    assert!(perfetto.contains(name), "perfetto lacks {name:?}");
}

#[test]
fn a_compat_buffer_is_named_by_its_address_by_the_recorder_and_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let (trace, pid, err) = record(dir.path(), COMPAT_CLIENT, true);
    // The recorder's warning, replay's unknown free and its JSON agree.
    let unknown = format!("process {pid} buffer 0x1000");
    assert!(
        err.contains(&format!(
            "Deallocation for unknown buffer: {unknown} on device 0"
        )),
        "{err}"
    );
    let (text, _) = ttalloc(&["replay", &trace]);
    assert!(
        text.contains(&format!("first at event 2, device 0, {unknown}")),
        "{text}"
    );
    let (out, _) = ttalloc(&["replay", &trace, "--json"]);
    assert_eq!(json(&out)["first_unknown_free"]["name"], unknown.as_str());

    // The leaked buffer: the address the client sent, in hex, everywhere.
    assert_named_everywhere(&trace, &format!("process {pid} buffer 0x999000"));
}

#[test]
fn a_native_buffer_is_named_by_the_clients_number_and_its_label() {
    let dir = tempfile::tempdir().unwrap();
    let (trace, pid, _) = record(dir.path(), NATIVE_CLIENT, false);
    let name = format!("process {pid} buffer 1 (input_tensor)");
    assert_named_everywhere(&trace, &name);
    // The repro script's comments too.
    let script = dir.path().join("repro.py").display().to_string();
    ttalloc(&["repro", &trace, "-o", &script]);
    let text = std::fs::read_to_string(&script).unwrap();
    assert!(text.contains(&format!("# {name}, ")), "{text}");
}

/// `cat --from N` names a compat free whose alloc lies blocks before N: the
/// checkpoint before N says what was live (with its address).
#[test]
fn cat_from_names_a_compat_free_whose_alloc_is_blocks_back() {
    use ttalloc_model::buffer_name::COMPAT_LOCAL;
    use ttalloc_model::*;
    use ttalloc_trace::{TraceHeader, TraceWriter, WriterOptions};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.zst");
    let header = TraceHeader {
        format_major: 0,
        format_minor: 0,
        ttalloc_version: "test".into(),
        argv: vec!["compat".into()],
        start_time_ns: 0,
        hostname: "host".into(),
    };
    let opts = WriterOptions {
        block_events: 8,
        ..Default::default()
    };
    let mut w = TraceWriter::create(&path, header, opts).unwrap();
    let pid = Pid(4242);
    let event = |ts: u64, kind: EventKind| Event { ts, pid, kind };
    let alloc = |ts: u64, local: u64, address: u64| {
        event(
            ts,
            EventKind::BufferAlloc {
                device: DeviceId(0),
                buffer: BufferId(COMPAT_LOCAL | local),
                buffer_type: BufferType::Dram,
                address: Some(address),
                size: 4096,
                page_size: None,
                layout: Layout::Interleaved,
                num_cores: None,
                per_bank_size: None,
                label: StringId::EMPTY,
                site: SiteId(0),
            },
        )
    };
    let free = |ts: u64, local: u64| {
        event(
            ts,
            EventKind::BufferFree {
                device: DeviceId(0),
                buffer: BufferId(COMPAT_LOCAL | local),
                site: SiteId(0),
            },
        )
    };
    // Event 0: buffer 1 at 0x999000, live until event 199. Events 1..199:
    // short-lived buffers (blocks of 8 events: 25 blocks, several
    // checkpoints in between).
    w.push(&alloc(0, 1, 0x999000)).unwrap();
    for i in 0..99u64 {
        w.push(&alloc(1 + 2 * i, 2 + i, 0x1000)).unwrap();
        w.push(&free(2 + 2 * i, 2 + i)).unwrap();
    }
    w.push(&free(199, 1)).unwrap();
    w.finish().unwrap();
    let reader = ttalloc_trace::TraceReader::open(&path).unwrap();
    assert!(
        reader
            .checkpoint_before(199)
            .is_some_and(|i| reader.checkpoints()[i].next_event > 8),
        "a checkpoint lies between the alloc's block and the free's"
    );

    let out = Command::new(BIN)
        .args(["cat", "--from", "199", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("process 4242 buffer 0x999000"),
        "the free is named by its alloc's address: {text}"
    );
}
