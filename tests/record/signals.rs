//! Signals forwarded to the command, and children drained within the grace
//! period.

use super::*;

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
