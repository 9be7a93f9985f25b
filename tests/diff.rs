//! End-to-end tests of `ttalloc diff` as a CI gate: a leaky and a fixed
//! version of the same program (the accumulation workload, `workload.py` and
//! `fixed.py`, and synthetic traces with and without a
//! leaking site) must diff with the right exit codes and name the site.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use ttalloc_corpora::synth::{write_trace, LeakSite, SynthOptions};

fn ttalloc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ttalloc"))
}

#[path = "support/output.rs"]
mod output;
use output::describe;

fn diff(before: &Path, after: &Path, extra: &[&str]) -> Output {
    ttalloc()
        .arg("diff")
        .arg(before)
        .arg(after)
        .args(extra)
        .output()
        .expect("ttalloc runs")
}

fn record_accumulation(dir: &Path, fixed: bool) -> PathBuf {
    let trace = dir.join(if fixed { "fixed.zst" } else { "leaky.zst" });
    let workload = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpora/workloads/accumulation")
        .join(if fixed { "fixed.py" } else { "workload.py" });
    let out = ttalloc()
        .args(["record", "-o"])
        .arg(&trace)
        .args(["--", "python3"])
        .arg(workload)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    trace
}

#[test]
fn the_leaky_workload_after_the_fixed_one_is_a_regression() {
    let tmp = tempfile::tempdir().unwrap();
    let leaky = record_accumulation(tmp.path(), false);
    let fixed = record_accumulation(tmp.path(), true);

    // Fixed -> leaky: exit 1, naming the leaking function.
    let out = diff(&fixed, &leaky, &["--fail-on-regression"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("error[regression]"), "{text}");
    assert!(text.contains("mesh_device_initialize ("), "{text}");
    // 36,864 B DRAM + 22,528 B L1 per run.
    assert!(
        text.contains("59,392 B left behind per cycle (before: 0 B)"),
        "{text}"
    );

    // Without --fail-on-regression the same diff exits 0.
    let out = diff(&fixed, &leaky, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));

    // Leaky -> fixed: the fix, not a regression; same peaks (118,784 B on
    // device 0 DRAM either way).
    let out = diff(&leaky, &fixed, &["--fail-on-regression", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["regressions"].as_array().unwrap().len(), 0);
    assert_eq!(d["before"]["left_behind_per_cycle"], 59_392);
    assert_eq!(d["after"]["left_behind_per_cycle"], 0);
    assert_eq!(d["after"]["leaked_bytes"], 0);
    assert_eq!(d["before"]["leaked_bytes"], 3 * 59_392);
    let fixed_kinds: Vec<&str> = d["fixed_findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(fixed_kinds, ["leak", "growth"]);
    let dram0 = d["types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["device"] == 0 && t["buffer_type"] == "DRAM")
        .unwrap();
    assert_eq!(dram0["before_peak"], 118_784);
    assert_eq!(dram0["after_peak"], 118_784);
    // The leaking site was removed. Sites match by function and file, so the
    // DRAM and L1 allocs (two lines of mesh_device_initialize) are one site.
    let removed: Vec<&Value> = d["sites"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["change"] == "removed")
        .collect();
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(
        removed[0]["site"]["frames"][0]["function"],
        "mesh_device_initialize"
    );
    assert_eq!(removed[0]["before_per_cycle"], 59_392);
    assert_eq!(removed[0]["before_leaked"], 3 * 59_392);

    // A recording against itself: nothing changed.
    let out = diff(&leaky, &leaky, &["--fail-on-regression"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no regression"));
}

fn synth(dir: &Path, name: &str, leak_from: Option<u32>) -> PathBuf {
    let path = dir.join(name);
    let opts = SynthOptions {
        events: 40_000,
        cycles: 6,
        devices: 2,
        seed: 11,
        leak_site: leak_from.map(|from_cycle| LeakSite {
            site: 9,
            from_cycle,
        }),
        ..SynthOptions::default()
    };
    write_trace(&path, &opts, Default::default()).unwrap();
    path
}

#[test]
fn synthetic_leak_diffs_with_the_right_exit_codes_and_threshold() {
    let tmp = tempfile::tempdir().unwrap();
    let clean = synth(tmp.path(), "clean.zst", None);
    let late = synth(tmp.path(), "late.zst", Some(5));
    let early = synth(tmp.path(), "early.zst", Some(2));

    let out = diff(&clean, &early, &["--fail-on-regression", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(d["new_findings"]
        .as_array()
        .unwrap()
        .contains(&Value::from("leak")));
    let added: Vec<&Value> = d["sites"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["change"] == "added")
        .collect();
    assert_eq!(added.len(), 1, "the one leaking site: {added:?}");

    // The generator draws a different stream without a leak site, so the
    // clean trace's peaks differ from the leaky one's by up to about a MB
    // (measured: L1 +657,408 B); the peak threshold absorbs that.
    let out = diff(
        &early,
        &clean,
        &["--fail-on-regression", "--peak-threshold", "2M"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let out = diff(&early, &clean, &["--fail-on-regression"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "peaks higher: {}",
        describe(&out)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(": peak "));

    // Both leak; leaking from cycle 2 leaves more behind per cycle than from
    // cycle 5. The threshold decides: above every difference, no regression.
    let out = diff(&late, &early, &["--fail-on-regression", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(d["new_findings"].as_array().unwrap().is_empty(), "{d}");
    let per_cycle = |side: &str| d[side]["left_behind_per_cycle"].as_u64().unwrap();
    assert!(per_cycle("after") > per_cycle("before"));
    let mut biggest = per_cycle("after") - per_cycle("before");
    for t in d["types"].as_array().unwrap() {
        let gap = |a: &str, b: &str| {
            t[a].as_u64()
                .unwrap()
                .saturating_sub(t[b].as_u64().unwrap())
        };
        biggest = biggest.max(gap("after_growth_per_cycle", "before_growth_per_cycle"));
    }
    let peaks = ["--peak-threshold", "1G"];
    let out = diff(
        &late,
        &early,
        &[
            &["--fail-on-regression", "--threshold", &biggest.to_string()],
            &peaks[..],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let out = diff(
        &late,
        &early,
        &[
            &[
                "--fail-on-regression",
                "--threshold",
                &(biggest - 1).to_string(),
            ],
            &peaks[..],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
}

#[test]
fn diff_of_unreadable_input_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("junk.zst");
    std::fs::write(&junk, b"nope").unwrap();
    let clean = synth(tmp.path(), "clean.zst", None);
    let out = diff(&clean, &junk, &["--fail-on-regression"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("junk.zst"));
    let out = diff(&clean, &clean, &["--threshold", "lots"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

/// Two traces of one size are replayed side by side by default (on two
/// cores or more), one after the other with `--threads 1`: the diff is the
/// same either way, and a side that cannot be replayed (8 bytes of its
/// block flipped: it opens, its replay fails) is the one the error
/// names, first or second.
#[test]
fn side_by_side_and_in_turn_give_one_diff_and_name_a_damaged_side() {
    let tmp = tempfile::tempdir().unwrap();
    let clean = synth(tmp.path(), "clean.zst", None);
    let early = synth(tmp.path(), "early.zst", Some(2));
    let both = diff(&clean, &early, &["--json"]);
    let in_turn = diff(&clean, &early, &["--json", "--threads", "1"]);
    assert_eq!(both.status.code(), Some(0), "{}", describe(&both));
    assert_eq!(both.stdout, in_turn.stdout, "{}", describe(&in_turn));

    let damaged = tmp.path().join("damaged.zst");
    let mut bytes = std::fs::read(&early).unwrap();
    // A quarter in: inside the one block's frame (its times' frame, which
    // a diff does not read, comes after it).
    let at = bytes.len() / 4;
    bytes[at..at + 8].iter_mut().for_each(|b| *b ^= 0xA5);
    std::fs::write(&damaged, bytes).unwrap();
    for threads in [&[][..], &["--threads", "1"][..]] {
        for (before, after) in [(&clean, &damaged), (&damaged, &clean)] {
            let out = diff(before, after, threads);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
            assert!(
                err.contains(&format!("replaying {}", damaged.display())),
                "{threads:?}: {}",
                describe(&out)
            );
        }
    }
}
