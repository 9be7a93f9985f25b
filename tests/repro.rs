//! End-to-end tests of `ttalloc repro` on the ttnn corpus (real ttnn on the
//! mock cluster): each program is recorded, turned into a script, and the
//! script is run under `ttalloc record` too. The script's trace must replay
//! with 0 divergences and the same leaks (buffer type, size, class) as the
//! program's, and the script must print the recorded address of every
//! buffer it could express exactly. Also through `minimize` first.
//!
//! Without the test bed (and without Python 3.10) the tests print a loud
//! `SKIPPED:` line and pass, as `tests/ttnn_corpus.rs` does.

#[path = "support/ttnn_bed.rs"]
mod ttnn_bed;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use ttnn_bed::{describe, run, test_bed, TestBed, ONE_AT_A_TIME};

const BIN: &str = env!("CARGO_BIN_EXE_ttalloc");

fn ttalloc(args: &[&str]) -> std::process::Output {
    let out = Command::new(BIN).args(args).output().expect("ttalloc runs");
    assert!(out.status.success(), "{}", describe(&args.join(" "), &out));
    out
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Records `python SCRIPT` on the test bed; returns the trace and stdout.
fn record(bed: &TestBed, dir: &Path, script: &Path, name: &str) -> (PathBuf, String) {
    let trace = dir.join(format!("{name}.zst"));
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .args(["record", "-o", p(&trace), "--"])
        .arg(bed.python())
        .arg(script);
    bed.configure(&mut cmd, "n150.yaml");
    let out = run(name, &mut cmd);
    assert!(out.status.success(), "{}", describe(name, &out));
    (trace, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn replay(trace: &Path) -> Value {
    let out = Command::new(BIN)
        .args(["replay", p(trace), "--json"])
        .output()
        .expect("replay runs");
    serde_json::from_slice(&out.stdout).expect("replay JSON")
}

/// The leaks as (buffer type, size, class), sorted.
fn leaks(v: &Value) -> Vec<(String, u64, String)> {
    let mut out: Vec<(String, u64, String)> = v["leaks"]
        .as_array()
        .expect("leaks")
        .iter()
        .map(|l| {
            (
                l["buffer_type"].as_str().unwrap_or("").to_owned(),
                l["size"].as_u64().unwrap_or(0),
                l["class"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Records the corpus program `name`, writes its repro script (after
/// `minimize` when `minimised`), records the script and compares.
/// Returns the script's output.
fn round_trip(bed: &TestBed, name: &str, minimised: bool) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let program = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpora/ttnn")
        .join(name)
        .join("program.py");
    let (mut trace, _) = record(bed, tmp.path(), &program, name);
    if minimised {
        let small = tmp.path().join("small.zst");
        ttalloc(&["minimize", p(&trace), "-o", p(&small), "--keep", "leak"]);
        trace = small;
    }
    let script = tmp.path().join("repro.py");
    ttalloc(&["repro", p(&trace), "-o", p(&script)]);
    let (again, printed) = record(bed, tmp.path(), &script, "repro");
    let (a, b) = (replay(&trace), replay(&again));
    assert_eq!(
        b["divergences"], 0,
        "{name}: the script's own trace diverges: {b}"
    );
    assert_eq!(leaks(&a), leaks(&b), "{name}: the script leaks otherwise");
    assert_eq!(
        a["oom"]["message"], b["oom"]["message"],
        "{name}: another OOM"
    );
    printed
}

fn with_bed(f: impl FnOnce(&TestBed)) {
    let Some(bed) = test_bed() else { return };
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    f(&bed);
}

#[test]
fn accumulation_leaks_the_same_buffers_at_the_same_addresses() {
    with_bed(|bed| {
        let printed = round_trip(bed, "accumulation", false);
        // Nine tensors (three per open, one of them kept): every address as recorded.
        let allocs: Vec<&str> = printed
            .lines()
            .filter(|l| l.starts_with("alloc "))
            .collect();
        assert_eq!(allocs.len(), 9, "{printed}");
        assert!(
            allocs.iter().all(|l| l.ends_with("(as recorded)")),
            "{printed}"
        );
        // Minimised to one leaked tensor, the script still leaks it.
        let printed = round_trip(bed, "accumulation", true);
        assert_eq!(
            printed.lines().filter(|l| l.starts_with("alloc ")).count(),
            1
        );
    });
}

#[test]
fn fragmentation_fills_l1_at_the_recorded_addresses() {
    with_bed(|bed| {
        let printed = round_trip(bed, "l1_fragmentation_oom", false);
        let allocs: Vec<&str> = printed
            .lines()
            .filter(|l| l.starts_with("alloc "))
            .collect();
        assert_eq!(allocs.len(), 10, "{printed}");
        assert!(
            allocs.iter().all(|l| l.ends_with("(as recorded)")),
            "{printed}"
        );
    });
}

#[test]
fn sharded_and_l1_small_buffers_keep_their_pages_per_core() {
    with_bed(|bed| {
        let printed = round_trip(bed, "sharding_l1_small", false);
        let allocs: Vec<&str> = printed
            .lines()
            .filter(|l| l.starts_with("alloc "))
            .collect();
        assert_eq!(allocs.len(), 5, "{printed}");
        // Height, width and block sharded L1 and the L1_SMALL tensor land
        // where tt-metal put the originals. The padded shard (6 pages in
        // 4-page shards on 2 cores) is written as 3 pages per core, since the
        // trace does not say how many pages a core holds, so it alone may
        // land elsewhere.
        for i in [0, 1, 2, 4] {
            assert!(allocs[i].ends_with("(as recorded)"), "{printed}");
        }
    });
}
