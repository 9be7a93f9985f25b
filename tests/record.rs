//! End-to-end tests of `ttalloc record`: the real binary, the bundled Python
//! client, real processes.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use ttalloc_model::units::thousands;
use ttalloc_model::{Event, EventKind, EventTag};
use ttalloc_trace::TraceReader;

const BIN: &str = env!("CARGO_BIN_EXE_ttalloc");
const LOCAL_MASK: u64 = (1 << 40) - 1;

fn workloads_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpora/workloads")
}

fn record(dir: &Path, trace: &Path, args: &[&str], envs: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .arg("record")
        .arg("-o")
        .arg(trace)
        .arg("--")
        .args(args);
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().expect("run ttalloc")
}

fn read_trace(path: &Path) -> (TraceReader, Vec<Event>) {
    let r = TraceReader::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let events: Vec<Event> = r.events().collect::<Result<_, _>>().expect("decode events");
    (r, events)
}

fn site_json(r: &TraceReader, site: ttalloc_model::SiteId) -> Value {
    Value::Array(
        r.interner()
            .resolve(site)
            .into_iter()
            .map(|f| json!([f.function, f.file, f.line]))
            .collect(),
    )
}

/// The trace event in the shape the Python client's TTALLOC_ECHO writes.
fn echo_shape(r: &TraceReader, e: &Event) -> Option<Value> {
    let s = |id| r.interner().string(id).to_owned();
    Some(match &e.kind {
        EventKind::ProcessStart { .. } | EventKind::ProcessExit { .. } => return None,
        EventKind::DeviceOpen {
            device,
            arch,
            config,
        } => {
            let cfg: serde_json::Map<String, Value> = config
                .known()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), json!(v)))
                .collect();
            json!({"kind": "device_open", "device": device.0, "arch": *arch as u8, "config": cfg})
        }
        EventKind::DeviceClose { device } => json!({"kind": "device_close", "device": device.0}),
        EventKind::BufferAlloc {
            device,
            buffer,
            buffer_type,
            address,
            size,
            page_size,
            layout,
            num_cores,
            per_bank_size,
            label,
            site,
        } => {
            let label = (*label != ttalloc_model::StringId::EMPTY).then(|| s(*label));
            json!({"kind": "buffer_alloc", "device": device.0, "buffer": buffer.0 & LOCAL_MASK,
                "buffer_type": buffer_type.name(), "size": size, "address": address, "page_size": page_size,
                "layout": layout.name(), "num_cores": num_cores, "per_bank_size": per_bank_size,
                "label": label, "site": site_json(r, *site)})
        }
        EventKind::AllocRefused {
            device,
            buffer_type,
            size,
            page_size,
            layout,
            num_cores,
            per_bank_size,
            message,
            site,
        } => json!({"kind": "alloc_refused", "device": device.0, "buffer_type": buffer_type.name(),
            "size": size, "page_size": page_size, "layout": layout.name(), "num_cores": num_cores,
            "per_bank_size": per_bank_size, "message": s(*message), "site": site_json(r, *site)}),
        EventKind::BufferFree {
            device,
            buffer,
            site,
        } => json!({"kind": "buffer_free", "device": device.0,
            "buffer": buffer.0 & LOCAL_MASK, "site": site_json(r, *site)}),
        EventKind::CbAlloc {
            device,
            address,
            size,
            cores,
            globally_allocated,
            site,
        } => {
            json!({"kind": "cb_alloc", "device": device.0, "address": address, "size": size, "cores": cores,
                "globally_allocated": globally_allocated, "site": site_json(r, *site)})
        }
        EventKind::CbFreeAll { device } => json!({"kind": "cb_free_all", "device": device.0}),
        EventKind::ProgramLoad {
            device,
            program,
            binary_size,
            site,
        } => json!({"kind": "program_load",
            "device": device.0, "program": program.0 & LOCAL_MASK, "binary_size": binary_size,
            "site": site_json(r, *site)}),
        EventKind::ProgramUnload { device, program } => {
            json!({"kind": "program_unload", "device": device.0, "program": program.0 & LOCAL_MASK})
        }
        EventKind::TraceCapture {
            device,
            trace_id,
            size,
            site,
        } => {
            json!({"kind": "trace_capture", "device": device.0, "trace_id": trace_id.0, "size": size,
                "site": site_json(r, *site)})
        }
        EventKind::TraceRelease { device, trace_id } => {
            json!({"kind": "trace_release", "device": device.0, "trace_id": trace_id.0})
        }
        EventKind::OpBegin { name } => json!({"kind": "op_begin", "name": s(*name)}),
        EventKind::OpEnd => json!({"kind": "op_end"}),
        EventKind::Marker { label } => json!({"kind": "marker", "label": s(*label)}),
    })
}

/// Parses "N `kind`" pairs from the README's "Event counts:" paragraph.
fn readme_counts(readme: &str) -> BTreeMap<String, u64> {
    let start = readme
        .find("Event counts:")
        .expect("README has an 'Event counts:' paragraph");
    let para = &readme[start
        ..readme[start..]
            .find("\n\n")
            .map_or(readme.len(), |e| start + e)];
    let words: Vec<&str> = para.split_whitespace().collect();
    let mut out = BTreeMap::new();
    for w in words.windows(2) {
        if let Ok(n) = w[0].trim_start_matches('(').parse::<u64>() {
            if w[1].starts_with('`') {
                let kind =
                    w[1].trim_matches(|c: char| c == '`' || c == ',' || c == '.' || c == ';');
                out.insert(kind.to_owned(), n);
            }
        }
    }
    assert!(!out.is_empty(), "no counts parsed from: {para}");
    out
}

#[test]
fn records_every_workload_exactly() {
    let dirs: Vec<PathBuf> = std::fs::read_dir(workloads_dir())
        .expect("corpora/workloads")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("workload.py").exists())
        .collect();
    assert!(
        dirs.len() >= 7,
        "expected the 7 scenario workloads, found {dirs:?}"
    );
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let tmp = tempfile::tempdir().unwrap();
        let echo = tmp.path().join("echo");
        std::fs::create_dir(&echo).unwrap();
        let trace = tmp.path().join("t.zst");
        let out = record(
            tmp.path(),
            &trace,
            &["python3", dir.join("workload.py").to_str().unwrap()],
            &[("TTALLOC_ECHO", &echo)],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("ttalloc replay {} --bisect", trace.display())),
            "{name}: {stderr}"
        );

        let (r, events) = read_trace(&trace);
        assert!(r.truncation().is_none(), "{name}: trace not sealed");
        // Exactly what each process sent, in its order.
        let mut by_pid: BTreeMap<u32, Vec<Value>> = BTreeMap::new();
        for e in &events {
            if let Some(v) = echo_shape(&r, e) {
                by_pid.entry(e.pid.0).or_default().push(v);
            }
        }
        let mut sent: BTreeMap<u32, Vec<Value>> = BTreeMap::new();
        for f in std::fs::read_dir(&echo).unwrap() {
            let p = f.unwrap().path();
            let pid: u32 = p.file_stem().unwrap().to_str().unwrap().parse().unwrap();
            let lines = std::fs::read_to_string(&p).unwrap();
            sent.insert(
                pid,
                lines
                    .lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect(),
            );
        }
        assert_eq!(sent.len(), 1, "{name}: one process");
        assert_eq!(
            by_pid, sent,
            "{name}: trace differs from what the workload sent"
        );
        // One start and one exit per process.
        let starts = events
            .iter()
            .filter(|e| e.kind.tag() == EventTag::ProcessStart)
            .count();
        let exits = events
            .iter()
            .filter(|e| e.kind.tag() == EventTag::ProcessExit)
            .count();
        assert_eq!((starts, exits), (1, 1), "{name}");
        // The README's event counts are what the workload does.
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        for (kind, n) in readme_counts(&readme) {
            let got = events
                .iter()
                .filter(|e| e.kind.tag().name() == kind)
                .count() as u64;
            assert_eq!(got, n, "{name}: README says {n} `{kind}`, trace has {got}");
        }
        // Sites are real Python stacks of the workload, innermost first.
        let first_alloc = events.iter().find_map(|e| match e.kind {
            EventKind::BufferAlloc { site, .. } => Some(site),
            _ => None,
        });
        if let Some(site) = first_alloc {
            let frames = r.interner().resolve(site);
            assert!(
                frames.iter().all(|f| f.file.ends_with("workload.py")),
                "{name}: {frames:?}"
            );
            assert_eq!(
                frames.last().unwrap().function,
                "<module>",
                "{name}: {frames:?}"
            );
        }
    }
}

#[test]
fn accumulation_summary_and_fail_on_leak() {
    let tmp = tempfile::tempdir().unwrap();
    let wl = workloads_dir();
    let trace = tmp.path().join("acc.zst");
    let acc = wl.join("accumulation/workload.py");
    let out = Command::new(BIN)
        .current_dir(tmp.path())
        .args(["record", "--fail-on", "leak", "-o"])
        .arg(&trace)
        .args(["--", "python3"])
        .arg(&acc)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("on 8 devices"), "{stderr}");
    assert!(
        stderr.contains("device 0: 6 buffers, 110,592 B DRAM, 67,584 B L1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("finding (leak): 6 buffers left behind"),
        "{stderr}"
    );

    // Refuses to overwrite without --force, and overwrites with it.
    let again = record(tmp.path(), &trace, &["python3", acc.to_str().unwrap()], &[]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    let clean = wl.join("clean/workload.py");
    let out = Command::new(BIN)
        .current_dir(tmp.path())
        .args(["record", "--force", "--fail-on", "leak,growth", "-o"])
        .arg(&trace)
        .args(["--", "python3"])
        .arg(&clean)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("left behind at the end: nothing"),
        "{stderr}"
    );
}

/// `record --fail-on` evaluates kinds only the replayer can decide (an
/// out-of-memory needs the allocator model), with `replay --fail-on`'s meaning.
#[test]
fn fail_on_uses_the_replayer() {
    let tmp = tempfile::tempdir().unwrap();
    let frag = workloads_dir().join("fragmentation_oom/workload.py");
    let run = |kinds: &str, name: &str| {
        Command::new(BIN)
            .current_dir(tmp.path())
            .args(["record", "--fail-on", kinds, "-o"])
            .arg(tmp.path().join(name))
            .args(["--", "python3"])
            .arg(&frag)
            .output()
            .unwrap()
    };
    let out = run("oom", "a.zst");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("finding (oom): Out of Memory: Not enough space to allocate"),
        "{stderr}"
    );
    // The same recording has no double free: that kind alone passes.
    let out = run("double-free", "b.zst");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("finding ("), "{stderr}");
    // A kind that does not exist is bad usage.
    let out = run("leaks", "c.zst");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn default_output_name_and_exit_status_pass_through() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .current_dir(tmp.path())
        .args([
            "record",
            "python3",
            "-c",
            "import ttalloc, sys; assert ttalloc.enabled(); ttalloc.mark('x'); sys.exit(3)",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].starts_with("ttalloc-") && files[0].ends_with(".zst"),
        "{files:?}"
    );
    let (_, events) = read_trace(&tmp.path().join(&files[0]));
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind.tag() == EventTag::Marker)
            .count(),
        1
    );
    let exit = events
        .iter()
        .find(|e| e.kind.tag() == EventTag::ProcessExit)
        .unwrap();
    assert_eq!(
        exit.kind,
        EventKind::ProcessExit { status: Some(3) },
        "CMD's exit code"
    );
}

#[test]
fn two_recordings_in_a_row_get_two_default_names() {
    let tmp = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = Command::new(BIN)
            .current_dir(tmp.path())
            .args([
                "record",
                "python3",
                "-c",
                "import ttalloc; ttalloc.mark('x')",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let files: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert_eq!(files.len(), 2, "{files:?}");
}

#[test]
fn missing_command_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("never.zst");
    let out = record(
        tmp.path(),
        &trace,
        &["ttalloc-no-such-command-xyz", "arg"],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("ttalloc-no-such-command-xyz: command not found"),
        "{stderr}"
    );
    assert!(!trace.exists(), "no trace for a command that never ran");
}

const SENDER: &str = r#"
import os, sys, ttalloc
n = int(sys.argv[1]); tag = int(sys.argv[2])
for i in range(n):
    ttalloc.alloc(tag % 8, i, "DRAM", i + 1, page_size=2048)
ttalloc.flush()
"#;

#[test]
fn sixteen_processes_lose_nothing() {
    const PROCS: usize = 16;
    const EVENTS: u64 = 50_000;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("sender.py"), SENDER).unwrap();
    let parent = format!(
        "import subprocess, sys\nps = [subprocess.Popen([sys.executable, 'sender.py', '{EVENTS}', str(i)]) for i in range({PROCS})]\nsys.exit(max(p.wait() for p in ps))\n"
    );
    std::fs::write(tmp.path().join("parent.py"), parent).unwrap();
    let trace = tmp.path().join("many.zst");
    let out = record(tmp.path(), &trace, &["python3", "parent.py"], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, events) = read_trace(&trace);
    let mut per_pid: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    let mut last_ts = 0;
    let mut out_of_order = 0u64;
    for e in &events {
        if let EventKind::BufferAlloc { size, .. } = e.kind {
            per_pid.entry(e.pid.0).or_default().push(size);
        }
        if e.ts < last_ts {
            out_of_order += 1;
        }
        last_ts = e.ts;
    }
    assert_eq!(per_pid.len(), PROCS);
    for (pid, sizes) in &per_pid {
        assert_eq!(sizes.len() as u64, EVENTS, "process {pid} lost events");
        assert!(
            sizes.iter().copied().eq(1..=EVENTS),
            "process {pid}: events out of order"
        );
    }
    // The 16 children; the parent never records anything, so it never connects.
    let starts = events
        .iter()
        .filter(|e| e.kind.tag() == EventTag::ProcessStart)
        .count();
    assert_eq!(starts, PROCS);
    // Interleaved by timestamp, not batch by batch: a merge by arrival would
    // switch process about once per 1024-event batch (~800 times), a
    // timestamp merge of concurrent senders far more often. Only stragglers
    // beyond the reorder window may be written late.
    let switches = events.windows(2).filter(|w| w[0].pid != w[1].pid).count();
    eprintln!(
        "{switches} process switches, {out_of_order} timestamp descents in {} events",
        events.len()
    );
    assert!(
        switches > 5_000,
        "{switches} process switches: not merged by timestamp"
    );
    assert!(
        out_of_order < events.len() as u64 / 10,
        "{out_of_order} of {} out of order",
        events.len()
    );
}

#[test]
fn sigkill_half_way_keeps_everything_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let script = r#"
import os, sys, time, ttalloc
print(os.getpid(), flush=True)
i = 0
while True:
    for _ in range(1000):
        ttalloc.alloc(0, i, "L1", i + 1)
        i += 1
    ttalloc.flush()
    print(i, flush=True)
    time.sleep(0.001)
"#;
    std::fs::write(tmp.path().join("forever.py"), script).unwrap();
    let trace = tmp.path().join("killed.zst");
    let mut child = Command::new(BIN)
        .current_dir(tmp.path())
        .arg("record")
        .arg("-o")
        .arg(&trace)
        .args(["--", "python3", "forever.py"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let pid: i32 = lines.next().unwrap().unwrap().trim().parse().unwrap();
    let mut sent = 0u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while sent < 20_000 && Instant::now() < deadline {
        sent = lines.next().unwrap().unwrap().trim().parse().unwrap();
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(128 + 9),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (r, events) = read_trace(&trace);
    assert!(r.truncation().is_none(), "the recorder sealed the trace");
    let sizes: Vec<u64> = events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::BufferAlloc { size, .. } => Some(size),
            _ => None,
        })
        .collect();
    assert!(
        sizes.len() as u64 >= sent,
        "{} recorded < {sent} flushed before the kill",
        sizes.len()
    );
    assert!(
        sizes.iter().copied().eq(1..=sizes.len() as u64),
        "a gap or reordering in the recorded prefix"
    );
    let exit = events
        .iter()
        .find(|e| e.kind.tag() == EventTag::ProcessExit)
        .expect("exit recorded");
    // The launcher reaped CMD: its exit records the signal that killed it.
    assert_eq!(exit.kind, EventKind::ProcessExit { status: Some(-9) });
}

const GARBAGE: &str = r#"
import os, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(os.environ["TTALLOC_SOCKET"])
if sys.argv[1] == "raw":
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 10)
else:
    name = b"evil"
    hello = struct.pack("<IHHIIQ", 0x4C415454, 1, 0, os.getpid(), os.getppid(), 0)
    hello += struct.pack("<I", 4) + name + struct.pack("<I", 1) + b"1" + struct.pack("<I", 1) + struct.pack("<I", 4) + name
    s.sendall(struct.pack("<IHHI", len(hello), 1, 0, 0) + hello)
    # An EVENTS frame whose alloc refers to site 77, never defined.
    ev = struct.pack("<BBHIQQQQQIIBBH", 4, 0, 0, 0, 1, 1, 4096, 0, 0, 0, 77, 0, 0, 0)
    s.sendall(struct.pack("<IHHI", len(ev), 5, 0, 1) + ev)
print(os.getpid(), flush=True)
try:
    s.recv(1)
except OSError:
    pass
"#;

#[test]
fn garbage_on_one_connection_does_not_affect_others() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("garbage.py"), GARBAGE).unwrap();
    std::fs::write(tmp.path().join("sender.py"), SENDER).unwrap();
    let parent = r#"
import subprocess, sys, ttalloc
good = subprocess.Popen([sys.executable, "sender.py", "5000", "1"])
raw = subprocess.run([sys.executable, "garbage.py", "raw"], capture_output=True, text=True).stdout.strip()
bad = subprocess.run([sys.executable, "garbage.py", "hello"], capture_output=True, text=True).stdout.strip()
print(raw, bad, flush=True)
for i in range(100):
    ttalloc.alloc(0, i, "DRAM", 2048)
sys.exit(good.wait())
"#;
    std::fs::write(tmp.path().join("parent.py"), parent).unwrap();
    let trace = tmp.path().join("g.zst");
    let out = record(tmp.path(), &trace, &["python3", "parent.py"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let pids: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(pids.len(), 2, "{stdout}");
    assert!(
        stderr.contains(&format!("process {}:", pids[0])),
        "raw garbage sender named: {stderr}"
    );
    assert!(
        stderr.contains(&format!("process {} (evil)", pids[1])),
        "bad frame sender named: {stderr}"
    );
    assert!(stderr.contains("site id 77 is not defined"), "{stderr}");
    assert!(stderr.contains("2 connection(s) were closed"), "{stderr}");
    let (_, events) = read_trace(&trace);
    let allocs_by_pid = events.iter().fold(BTreeMap::<u32, u64>::new(), |mut m, e| {
        if e.kind.tag() == EventTag::BufferAlloc {
            *m.entry(e.pid.0).or_default() += 1;
        }
        m
    });
    let mut counts: Vec<u64> = allocs_by_pid.values().copied().collect();
    counts.sort();
    assert_eq!(
        counts,
        vec![100, 5000],
        "the good processes recorded everything: {allocs_by_pid:?}"
    );
    // The bad-frame process registered (hello was valid) but none of its events made it.
    let bad: u32 = pids[1].parse().unwrap();
    assert!(!allocs_by_pid.contains_key(&bad));
}

#[test]
fn threads_forks_and_multiprocessing_each_record_their_own_events() {
    let tmp = tempfile::tempdir().unwrap();
    let script = r#"
import multiprocessing, os, sys, threading, ttalloc

def work(tag, n):
    for i in range(n):
        ttalloc.alloc(1, (tag, i), "DRAM", 2048 * (i + 1), page_size=2048)
        ttalloc.free(1, (tag, i))

if __name__ == "__main__":
    # Unsent events at fork time belong to the parent only.
    ttalloc.mark("before fork")
    pid = os.fork()
    if pid == 0:
        work("forked", 300)
        ttalloc.flush()
        os._exit(0)
    os.waitpid(pid, 0)
    ctx = multiprocessing.get_context("fork")
    ps = [ctx.Process(target=work, args=("mp%d" % k, 200)) for k in range(2)]
    for p in ps: p.start()
    for p in ps: p.join()
    ts = [threading.Thread(target=work, args=("t%d" % k, 500)) for k in range(4)]
    for t in ts: t.start()
    for t in ts: t.join()
    ttalloc.mark("end")
"#;
    std::fs::write(tmp.path().join("fork.py"), script).unwrap();
    let trace = tmp.path().join("fork.zst");
    let out = record(tmp.path(), &trace, &["python3", "fork.py"], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, events) = read_trace(&trace);
    let mut per_pid: BTreeMap<u32, (u64, u64, u64)> = BTreeMap::new();
    for e in &events {
        let c = per_pid.entry(e.pid.0).or_default();
        match e.kind.tag() {
            EventTag::BufferAlloc => c.0 += 1,
            EventTag::BufferFree => c.1 += 1,
            EventTag::Marker => c.2 += 1,
            _ => {}
        }
    }
    // Four threads share one connection; its timestamps still never go back.
    let mut last: BTreeMap<u32, u64> = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e.kind.tag() != EventTag::ProcessExit)
    {
        let l = last.entry(e.pid.0).or_default();
        assert!(e.ts >= *l, "process {}: timestamp went back", e.pid);
        *l = e.ts;
    }
    let mut counts: Vec<(u64, u64, u64)> = per_pid.values().copied().collect();
    counts.sort();
    // Two multiprocessing workers, the forked child, the parent with 4 threads.
    assert_eq!(
        counts,
        vec![(200, 200, 0), (200, 200, 0), (300, 300, 0), (2000, 2000, 2)],
        "{per_pid:?}"
    );
    // Every free matches an alloc of the same process: nothing left behind.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("left behind at the end: nothing"),
        "{stderr}"
    );
}

#[test]
fn a_full_disk_is_a_clear_error_and_what_was_sealed_stays_readable() {
    let tmp = tempfile::tempdir().unwrap();
    let script = r#"
import time, ttalloc
for i in range(10000):
    ttalloc.alloc(0, i, "DRAM", 2048 * (i % 97 + 1))
ttalloc.flush()
time.sleep(1.5)  # the recorder seals that block on time
for i in range(10000, 400000):
    ttalloc.alloc(0, i, "DRAM", (i * 7919) % 100003)
"#;
    std::fs::write(tmp.path().join("big.py"), script).unwrap();
    let trace = tmp.path().join("full.zst");
    // The file-size limit plays the full disk: writes past 128 KiB fail with EFBIG.
    let out = Command::new("sh")
        .current_dir(tmp.path())
        .arg("-c")
        .arg(format!(
            "ulimit -f 256 && exec '{BIN}' record -o '{}' -- python3 big.py",
            trace.display()
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("error: writing") && stderr.contains("failed"),
        "{stderr}"
    );
    let r = TraceReader::open(&trace).expect("the part written before the failure opens");
    let events: Vec<Event> = r
        .events()
        .collect::<Result<_, _>>()
        .expect("recovered blocks decode");
    let allocs = events
        .iter()
        .filter(|e| e.kind.tag() == EventTag::BufferAlloc)
        .count();
    assert!(
        allocs >= 10_000,
        "the block sealed before the failure is readable ({allocs} allocs)"
    );
    assert!(
        allocs < 390_000,
        "the limit did cut the trace ({allocs} allocs)"
    );
    // The summary counts what the file holds, not what was received.
    assert!(
        stderr.contains(&format!(
            "recorded {} events",
            thousands(events.len() as u64)
        )),
        "{} events readable: {stderr}",
        events.len()
    );
    assert!(
        stderr.contains("left behind at the end of what the file holds: device 0: "),
        "{stderr}"
    );
}

/// Starts `ttalloc record -- python3 SCRIPT`, waits for the script to print "ready".
fn spawn_ready(dir: &Path, trace: &Path, script: &str) -> std::process::Child {
    std::fs::write(dir.join("s.py"), script).unwrap();
    let mut child = Command::new(BIN)
        .current_dir(dir)
        .arg("record")
        .arg("-o")
        .arg(trace)
        .args(["--", "python3", "s.py"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    child
}

fn count(events: &[Event], tag: EventTag) -> usize {
    events.iter().filter(|e| e.kind.tag() == tag).count()
}

#[test]
fn sigterm_and_sigint_are_forwarded_and_the_trace_is_sealed() {
    use nix::sys::signal::{kill, Signal};
    let script = r#"
import time, ttalloc
for i in range(500):
    ttalloc.alloc(0, i, "DRAM", 4096)
ttalloc.flush()
for i in range(500, 510):
    ttalloc.alloc(0, i, "DRAM", 4096)  # not flushed: sent by the atexit handler, if it runs
print("ready", flush=True)
time.sleep(60)
"#;
    for (sig, code, allocs) in [
        (Signal::SIGTERM, 128 + 15, 500),
        (Signal::SIGINT, 128 + 2, 510),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let trace = tmp.path().join("sig.zst");
        let child = spawn_ready(tmp.path(), &trace, script);
        kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // SIGTERM kills Python outright; SIGINT raises KeyboardInterrupt, atexit flushes, Python re-raises.
        assert_eq!(out.status.code(), Some(code), "{sig}: {stderr}");
        let (r, events) = read_trace(&trace);
        assert!(r.truncation().is_none(), "{sig}: sealed");
        assert_eq!(count(&events, EventTag::BufferAlloc), allocs, "{sig}");
        let exit = events
            .iter()
            .find(|e| e.kind.tag() == EventTag::ProcessExit)
            .unwrap();
        assert_eq!(
            exit.kind,
            EventKind::ProcessExit {
                status: Some(-(sig as i32))
            },
            "{sig}"
        );
    }
}

#[test]
fn children_still_connected_are_drained_within_the_grace_period() {
    let tmp = tempfile::tempdir().unwrap();
    // CMD starts two children and exits at once: one finishes within the grace
    // period, one would run for a minute.
    let script = r#"
import subprocess, sys
quick = "import time, ttalloc\nttalloc.mark('quick start')\ntime.sleep(0.5)\nfor i in range(100): ttalloc.alloc(1, i, 'L1', 2048)\n"
slow = "import time, ttalloc\nfor i in range(50): ttalloc.alloc(2, i, 'L1', 2048)\nttalloc.flush()\ntime.sleep(60)\n"
quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
subprocess.Popen([sys.executable, "-c", quick], **quiet)
s = subprocess.Popen([sys.executable, "-c", slow], **quiet)
open("slow.pid", "w").write(str(s.pid))
print("ready", flush=True)
"#;
    let trace = tmp.path().join("grace.zst");
    let t0 = Instant::now();
    let child = spawn_ready(tmp.path(), &trace, script);
    let out = child.wait_with_output().unwrap();
    let took = t0.elapsed();
    let slow: i32 = std::fs::read_to_string(tmp.path().join("slow.pid"))
        .unwrap()
        .parse()
        .unwrap();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(slow),
        nix::sys::signal::Signal::SIGKILL,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        took < Duration::from_secs(20),
        "the recorder did not wait for the slow child: {took:?}"
    );
    let (_, events) = read_trace(&trace);
    let on = |d: u32| {
        events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::BufferAlloc { device, .. } if device.0 == d))
            .count()
    };
    assert_eq!(
        on(1),
        100,
        "the quick child finished within the grace period and was recorded"
    );
    assert_eq!(
        on(2),
        50,
        "what the slow child sent before the end is recorded"
    );
}

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
