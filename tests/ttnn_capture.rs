//! End-to-end tests of how the zero-edit ttnn capture behaves inside the
//! recorded program (what `tests/ttnn_corpus.rs` does not cover): it turns
//! off with `TTALLOC_TTNN=0`, keeps a site's own `sitecustomize` working,
//! follows `multiprocessing` children and other threads, charges events to
//! the user's line (not to ttalloc's or ttnn's wrappers), leaves the
//! program's output and exit status alone, and survives a device object
//! dropped after its close. Each program below is written to a temporary
//! directory and run on the ttnn test bed (`support/ttnn_bed.rs`).

#[path = "support/ttnn_bed.rs"]
mod ttnn_bed;

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use ttnn_bed::{describe, run, test_bed, TestBed, ONE_AT_A_TIME};

fn ttalloc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ttalloc"))
}

/// Runs `program` (Python source) under `ttalloc record`; returns the
/// command's output and the trace's events (`cat --jsonl`).
fn record(bed: &TestBed, dir: &Path, program: &str, env: &[(&str, &str)]) -> (Output, Vec<Value>) {
    let script = dir.join("program.py");
    std::fs::write(&script, program).unwrap();
    let trace = dir.join("t.zst");
    let mut cmd = ttalloc();
    cmd.current_dir(dir)
        .args(["record", "--force", "-o"])
        .arg(&trace)
        .arg("--")
        .arg(bed.python())
        .arg(&script);
    bed.configure(&mut cmd, "n150.yaml");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run("ttalloc record", &mut cmd);
    let cat = run(
        "ttalloc cat",
        ttalloc().arg("cat").arg("--jsonl").arg(&trace),
    );
    assert!(cat.status.success(), "{}", describe("cat", &cat));
    let events = String::from_utf8(cat.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("cat --jsonl prints JSON lines"))
        .collect();
    (out, events)
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

/// The innermost frame of an event's call site as (function, file name, line).
fn innermost(e: &Value) -> (String, String, u64) {
    let f = &e["site"][0];
    let file = f["file"].as_str().unwrap_or("");
    (
        f["function"].as_str().unwrap_or("").to_owned(),
        Path::new(file)
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned()),
        f["line"].as_u64().unwrap_or(0),
    )
}

const ALLOC_AND_LEAK: &str = r#"import ttnn

def make(dev):
    return ttnn.allocate_tensor_on_device(ttnn.Shape([1, 1, 32, 32]), ttnn.bfloat16, ttnn.TILE_LAYOUT, dev,
                                          ttnn.L1_MEMORY_CONFIG)

dev = ttnn.open_device(device_id=0)
kept = make(dev)
ttnn.close_device(dev)
print("program output")
raise SystemExit(3)
"#;

/// The capture is on by default, charges the allocation to `make`'s line 4
/// called from line 8 (not to ttalloc's op wrapper nor to ttnn's
/// decorators), and changes neither the output nor the exit status (3).
/// With `TTALLOC_TTNN=0` the same program records no device event at all.
#[test]
fn capture_charges_the_user_line_and_turns_off_with_ttalloc_ttnn_0() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(bed) = test_bed() else { return };
    let dir = tempfile::tempdir().unwrap();

    let (out, events) = record(&bed, dir.path(), ALLOC_AND_LEAK, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", describe("record", &out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "program output"
    );
    let allocs = of_kind(&events, "buffer_alloc");
    assert_eq!(allocs.len(), 1, "one tensor: {events:#?}");
    // 32x32 bfloat16 TILE = one 2048 B page; L1 is top-down from 1499136.
    assert_eq!(allocs[0]["size"], 2048);
    assert_eq!(allocs[0]["buffer_type"], "L1");
    assert_eq!(allocs[0]["address"], 1_499_136 - 2048);
    assert_eq!(
        innermost(allocs[0]),
        ("make".to_owned(), "program.py".to_owned(), 4)
    );
    assert_eq!(allocs[0]["site"][1]["line"], 8);
    assert_eq!(of_kind(&events, "device_open").len(), 1);
    assert_eq!(of_kind(&events, "device_close").len(), 1);

    let (out, events) = record(&bed, dir.path(), ALLOC_AND_LEAK, &[("TTALLOC_TTNN", "0")]);
    assert_eq!(out.status.code(), Some(3), "{}", describe("record", &out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "program output"
    );
    let device_events = events.iter().filter(|e| e.get("device").is_some()).count();
    assert_eq!(
        device_events, 0,
        "TTALLOC_TTNN=0 must record nothing: {events:#?}"
    );
}

/// A site's own `sitecustomize` on PYTHONPATH still runs under the recorder
/// (ttalloc's chain-loads it), and the capture still works.
#[test]
fn the_sites_own_sitecustomize_still_runs() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(bed) = test_bed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(
        site.join("sitecustomize.py"),
        "import builtins\nbuiltins.SITE_HOOK = 'ran'\n",
    )
    .unwrap();
    let program = format!(
        "import builtins\nprint('site hook', getattr(builtins, 'SITE_HOOK', 'missing'))\n{}",
        ALLOC_AND_LEAK
    );
    let (out, events) = record(
        &bed,
        dir.path(),
        &program,
        &[("PYTHONPATH", site.to_str().unwrap())],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("site hook ran"),
        "{}",
        describe("record", &out)
    );
    assert_eq!(of_kind(&events, "buffer_alloc").len(), 1);
}

const CHILD_AND_THREAD: &str = r#"import multiprocessing as mp
import threading
import ttnn

def child():
    dev = ttnn.open_device(device_id=0)
    t = ttnn.allocate_tensor_on_device(ttnn.Shape([1, 1, 32, 32]), ttnn.bfloat16, ttnn.TILE_LAYOUT, dev, ttnn.L1_MEMORY_CONFIG)
    ttnn.close_device(dev)

def worker(dev):
    t = ttnn.allocate_tensor_on_device(ttnn.Shape([1, 1, 32, 64]), ttnn.bfloat16, ttnn.TILE_LAYOUT, dev, ttnn.DRAM_MEMORY_CONFIG)
    ttnn.deallocate(t)

if __name__ == "__main__":
    p = mp.get_context("spawn").Process(target=child)
    p.start()
    p.join()
    dev = ttnn.open_device(device_id=0)
    th = threading.Thread(target=worker, args=(dev,))
    th.start()
    th.join()
    ttnn.close_device(dev)
    print("exit codes", p.exitcode)
"#;

/// A `multiprocessing` (spawn) child is a process of its own in the trace
/// with its own device events; a thread's op is captured with the thread's
/// call site (line 11), and `record` warns that ops ran on another thread.
#[test]
fn multiprocessing_children_and_threads_are_captured() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(bed) = test_bed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (out, events) = record(&bed, dir.path(), CHILD_AND_THREAD, &[]);
    assert!(out.status.success(), "{}", describe("record", &out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "exit codes 0");
    let starts = of_kind(&events, "process_start");
    assert_eq!(starts.len(), 2, "parent and spawned child: {starts:#?}");
    let allocs = of_kind(&events, "buffer_alloc");
    assert_eq!(allocs.len(), 2, "{allocs:#?}");
    let child_pid = &starts[1]["pid"];
    let (child_alloc, thread_alloc) = if &allocs[0]["pid"] == child_pid {
        (allocs[0], allocs[1])
    } else {
        (allocs[1], allocs[0])
    };
    assert_eq!(innermost(child_alloc).0, "child");
    assert_eq!(child_alloc["buffer_type"], "L1");
    // 32x64 bfloat16 TILE: 2 pages of 2048 B, DRAM bottom-up from 1048640.
    assert_eq!(
        innermost(thread_alloc),
        ("worker".to_owned(), "program.py".to_owned(), 11)
    );
    assert_eq!(thread_alloc["size"], 4096);
    assert_eq!(thread_alloc["address"], 1_048_640);
    assert_eq!(of_kind(&events, "buffer_free").len(), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ran on threads other than the main thread"),
        "{}",
        describe("record", &out)
    );
}

/// tt-metal crashes when a closed MeshDevice is destroyed while a graph
/// capture begun after its close is active; ttalloc keeps closed devices
/// alive until exit, so dropping and re-opening devices in a loop after
/// running an op (which caches a program) exits 0 under the recorder.
#[test]
fn dropping_a_closed_device_after_an_op_does_not_crash() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(bed) = test_bed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let program = r#"import ttnn
for i in range(3):
    device = ttnn.open_device(device_id=0)
    a = ttnn.allocate_tensor_on_device(ttnn.Shape([1, 1, 32, 32]), ttnn.bfloat16, ttnn.TILE_LAYOUT, device, ttnn.DRAM_MEMORY_CONFIG)
    b = ttnn.add(a, a)
    ttnn.deallocate(a)
    ttnn.deallocate(b)
    ttnn.close_device(device)
    del device
print("ok")
"#;
    let (out, events) = record(&bed, dir.path(), program, &[]);
    assert!(out.status.success(), "{}", describe("record", &out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    // Per round: the input and add's output allocated and freed.
    assert_eq!(of_kind(&events, "buffer_alloc").len(), 6);
    assert_eq!(of_kind(&events, "buffer_free").len(), 6);
    let ops: Vec<&str> = of_kind(&events, "op_begin")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(
        ops.iter().filter(|n| **n == "ttnn.add").count(),
        3,
        "{ops:?}"
    );
}
