//! Many processes, killed processes, garbage on a connection, threads and
//! forks, a full disk: nothing sent is lost and what was sealed stays readable.

use super::*;

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
