//! `report`, `export` and `diff` on real ttnn (the ttnn 0.81.1 wheel on the
//! mock cluster, zero-edit capture): `corpora/ttnn/accumulation/program.py`
//! keeps each run's 256x256 bf16 cache tensor (131,072 B DRAM) past the
//! close of its device, at `dram_tensor` <- `run`; `fixed.py` deallocates it
//! first. Numbers from that program's expected.json "why": 3 runs leak
//! 3 x 131,072 B; the DRAM peak is scratch + cache = 32,768 + 131,072 =
//! 163,840 B in both programs.

#[path = "support/ttnn_bed.rs"]
mod ttnn_bed;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use ttnn_bed::{describe, run, test_bed, TestBed, ONE_AT_A_TIME};

fn ttalloc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ttalloc"))
}

fn record(bed: &TestBed, dir: &Path, program: &str) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpora/ttnn/accumulation")
        .join(program);
    let trace = dir.join(format!("{program}.zst"));
    let mut cmd = ttalloc();
    cmd.current_dir(dir)
        .args(["record", "-o"])
        .arg(&trace)
        .arg("--")
        .arg(bed.python())
        .arg(source);
    bed.configure(&mut cmd, "n150.yaml");
    let out = run("ttalloc record", &mut cmd);
    assert!(out.status.success(), "{}", describe(program, &out));
    trace
}

fn ok(what: &str, cmd: &mut Command) -> String {
    let out = run(what, cmd);
    assert_eq!(out.status.code(), Some(0), "{}", describe(what, &out));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn reports_exports_and_diffs_of_a_real_ttnn_leak() {
    let Some(bed) = test_bed() else { return };
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let leaky = record(&bed, tmp.path(), "program.py");
    let fixed = record(&bed, tmp.path(), "fixed.py");

    // Folded: one stack, the cache tensors, innermost frame dram_tensor called from run.
    let folded = ok(
        "export folded",
        ttalloc()
            .arg("export")
            .arg(&leaky)
            .args(["--format", "folded"]),
    );
    let lines: Vec<&str> = folded.lines().collect();
    assert_eq!(lines.len(), 1, "{folded}");
    let (stack, bytes) = lines[0].rsplit_once(' ').unwrap();
    assert_eq!(bytes, (3 * 131_072).to_string());
    let frames: Vec<&str> = stack.split(';').collect();
    assert!(
        frames[frames.len() - 1].starts_with("dram_tensor ("),
        "{stack}"
    );
    assert!(frames[frames.len() - 2].starts_with("run ("), "{stack}");
    let fixed_folded = ok(
        "export folded (fixed)",
        ttalloc()
            .arg("export")
            .arg(&fixed)
            .args(["--format", "folded"]),
    );
    assert_eq!(fixed_folded, "", "nothing leaks once fixed");

    // The Markdown report names the site and the growth.
    let md = ok(
        "report md",
        ttalloc().arg("report").arg(&leaky).args(["--format", "md"]),
    );
    assert!(md.contains("`dram_tensor ("), "{md}");
    assert!(md.contains("device 0 DRAM +131,072 B per cycle"), "{md}");

    // Perfetto: device 0's DRAM counter peaks at scratch + cache.
    let json = ok(
        "export perfetto",
        ttalloc()
            .arg("export")
            .arg(&leaky)
            .args(["--format", "perfetto"]),
    );
    let v: Value = serde_json::from_str(&json).unwrap();
    let peak = v["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ph"] == "C" && e["name"] == "DRAM live bytes" && e["pid"] == 1u64 << 30)
        .filter_map(|e| e["args"]["bytes"].as_u64())
        .max();
    assert_eq!(peak, Some(163_840));

    // diff as a CI gate, both ways round.
    let out = run(
        "diff fixed leaky",
        ttalloc()
            .arg("diff")
            .arg(&fixed)
            .arg(&leaky)
            .arg("--fail-on-regression"),
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe("diff", &out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("dram_tensor (") && text.contains("(added)"),
        "{text}"
    );
    let out = run(
        "diff leaky fixed",
        ttalloc()
            .arg("diff")
            .arg(&leaky)
            .arg(&fixed)
            .arg("--fail-on-regression"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe("diff", &out));
}
