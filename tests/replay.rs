//! End-to-end tests of `ttalloc replay`: every scenario workload in
//! `corpora/workloads/` is recorded with the real binary, replayed with
//! `--bisect --json`, and compared with the `expected.json` next to it (the
//! numbers there are reasoned by hand from the workload; see its "why").
//!
//! Comparison: every key of `expect` must be present with an equal value;
//! arrays must have the same length and match element by element; a frame's
//! `file` matches by suffix (the recorder stores the path Python reports).

#[path = "support/json_contains.rs"]
mod json_contains;

use json_contains::contains;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ttalloc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ttalloc"))
}

fn workloads() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpora/workloads")
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("ttalloc runs")
}

#[path = "support/output.rs"]
mod output;
use output::describe;

fn args_of(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_owned())
        .collect()
}

/// Records `name`'s workload, replays it as its expected.json says, compares.
fn scenario(name: &str) {
    let dir = workloads().join(name);
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("expected.json")).expect("expected.json exists"),
    )
    .expect("expected.json is JSON");
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join(format!("{name}.zst"));
    let rec = run(ttalloc()
        .current_dir(tmp.path())
        .arg("record")
        .arg("-o")
        .arg(&trace)
        .arg("--")
        .arg("python3")
        .arg(dir.join("workload.py")));
    assert!(
        rec.status.success(),
        "recording {name} failed: {}",
        describe(&rec)
    );

    let mut runs = vec![(args_of(&expected["args"]), expected["expect"].clone())];
    for v in expected
        .get("variants")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        runs.push((args_of(&v["args"]), v["expect"].clone()));
    }
    for (args, expect) in runs {
        let out = run(ttalloc().arg("replay").arg(&trace).args(&args));
        assert_eq!(
            out.status.code(),
            Some(0),
            "replay {name} {args:?}: {}",
            describe(&out)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "replay {name} {args:?} printed no JSON ({e}): {}",
                describe(&out)
            )
        });
        let mut errors = Vec::new();
        contains(&report, &expect, "", &mut errors);
        assert!(
            errors.is_empty(),
            "{name} {args:?} differs from expected.json:\n  {}\nfull report:\n{}",
            errors.join("\n  "),
            serde_json::to_string_pretty(&report).unwrap()
        );
    }

    // --fail-on any: 1 exactly when the scenario has findings; the human
    // report goes to stdout either way.
    let want = expected["exit_with_fail_on_any"]
        .as_i64()
        .expect("exit_with_fail_on_any");
    let out = run(ttalloc()
        .arg("replay")
        .arg(&trace)
        .args(["--bisect", "--fail-on", "any"]));
    assert_eq!(
        out.status.code(),
        Some(want as i32),
        "{name} --fail-on any: {}",
        describe(&out)
    );
    let human = String::from_utf8_lossy(&out.stdout);
    if want == 0 {
        assert!(human.contains("no findings"), "{human}");
    } else {
        assert!(
            human.contains("warning[") || human.contains("error["),
            "{human}"
        );
    }
}

#[test]
fn accumulation() {
    scenario("accumulation");
}

/// The same workload without its free-alls: the circular buffers of each run
/// stay counted, so the concats of runs 2 and 3 clash with their own output
/// (see the workload's README for the addresses).
#[test]
fn cb_free_all_is_what_keeps_the_circular_buffers_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("no-free-all.zst");
    let rec = run(ttalloc()
        .current_dir(tmp.path())
        .arg("record")
        .arg("-o")
        .arg(&trace)
        .arg("--")
        .arg("python3")
        .arg(workloads().join("cb_free_all/workload.py"))
        .arg("--skip-free-all"));
    assert!(rec.status.success(), "{}", describe(&rec));
    let out = run(ttalloc().arg("replay").arg(&trace).arg("--json"));
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    // 3 fewer events (the free-alls): run 1 is 2..25 (24 events), run 2
    // starts at 26 with its marker, op_begin 27, 'gathered' 28, its CB 29.
    assert_eq!(report["events"], 77);
    assert_eq!(report["cb_clashes"], 2, "{report}");
    let clash = &report["first_cb_clash"];
    assert_eq!(clash["event"], 29, "{clash}");
    let message = clash["message"].as_str().unwrap();
    assert!(
        message.contains("L1 buffer allocated at 155648")
            && message.contains("region ends at 171072"),
        "{message}"
    );
    assert_eq!(report["cb_peak_per_core"]["0"], 3 * 45056);
}

#[test]
fn clean() {
    scenario("clean");
}

#[test]
fn cb_free_all() {
    scenario("cb_free_all");
}

#[test]
fn fragmentation_oom() {
    scenario("fragmentation_oom");
}

#[test]
fn program_cache() {
    scenario("program_cache");
}

#[test]
fn trace_cycles() {
    scenario("trace_cycles");
}

#[test]
fn unreported_free() {
    scenario("unreported_free");
}

/// Every scenario has an expected.json and a test above.
#[test]
fn every_workload_has_an_expected_result_and_a_test() {
    let tested = [
        "accumulation",
        "cb_free_all",
        "clean",
        "fragmentation_oom",
        "program_cache",
        "trace_cycles",
        "unreported_free",
    ];
    let mut found: Vec<String> = std::fs::read_dir(workloads())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("workload.py").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    assert_eq!(
        found, tested,
        "a workload without a test (or a test without a workload)"
    );
    for name in tested {
        assert!(
            workloads().join(name).join("expected.json").exists(),
            "{name} has no expected.json"
        );
    }
}

#[test]
fn fail_on_kinds_select_what_fails() {
    // The accumulation scenario has leaks and growth, nothing else.
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("acc.zst");
    let rec = run(ttalloc()
        .current_dir(tmp.path())
        .args(["record", "-o"])
        .arg(&trace)
        .args(["--", "python3"])
        .arg(workloads().join("accumulation/workload.py")));
    assert!(rec.status.success(), "{}", describe(&rec));
    for (kinds, code) in [
        ("leak", 1),
        ("growth", 1),
        ("oom,unknown-free,double-free,divergence", 0),
        ("oom,leak", 1),
    ] {
        let out = run(ttalloc()
            .arg("replay")
            .arg(&trace)
            .args(["--fail-on", kinds]));
        assert_eq!(
            out.status.code(),
            Some(code),
            "--fail-on {kinds}: {}",
            describe(&out)
        );
    }
    // Human output: the seed's sentence.
    let out = run(ttalloc().arg("replay").arg(&trace));
    let human = String::from_utf8_lossy(&out.stdout);
    assert!(
        human.contains("DRAM +36,864 B per cycle on device 0, since cycle 2"),
        "{human}"
    );
    assert!(human.contains("outlived their device"), "{human}");
    assert!(human.contains("mesh_device_initialize"), "{human}");
}

#[test]
fn bad_usage_and_unreadable_input_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing.zst");
    let out = run(ttalloc().arg("replay").arg(&missing));
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("missing.zst"),
        "the error names the file: {err}"
    );

    let garbage = tmp.path().join("garbage.zst");
    std::fs::write(&garbage, b"this is not a trace at all").unwrap();
    let out = run(ttalloc().arg("replay").arg(&garbage));
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));

    for bad in [
        vec!["--fail-on", "leaks"],
        vec!["--cycles", "weekly"],
        vec!["--cycles", "marker=("],
        vec!["--arch", "pentium"],
        vec!["--threads", "0"],
        vec!["--threads", "3"],
    ] {
        let out = run(ttalloc().arg("replay").arg(&garbage).args(&bad));
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", describe(&out));
    }
}

#[test]
fn unknown_set_key_is_bad_usage() {
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("clean.zst");
    let rec = run(ttalloc()
        .current_dir(tmp.path())
        .args(["record", "-o"])
        .arg(&trace)
        .args(["--", "python3"])
        .arg(workloads().join("clean/workload.py")));
    assert!(rec.status.success(), "{}", describe(&rec));
    let out = run(ttalloc()
        .arg("replay")
        .arg(&trace)
        .args(["--set", "dram_bankz=12"]));
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown device config key"));
}

#[test]
fn a_truncated_trace_replays_what_was_recovered() {
    use ttalloc_corpora::synth::{write_trace, LeakSite, SynthOptions};
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full.zst");
    let opts = SynthOptions {
        events: 40_000,
        cycles: 8,
        devices: 2,
        leak_site: Some(LeakSite {
            site: 5,
            from_cycle: 1,
        }),
        reopen_devices: true,
        ..SynthOptions::default()
    };
    let wopts = ttalloc_trace::WriterOptions {
        block_events: 2048,
        ..Default::default()
    };
    let stats = write_trace(&full, &opts, wopts).expect("synthetic trace");
    let bytes = std::fs::read(&full).unwrap();
    let cut = tmp.path().join("cut.zst");
    std::fs::write(&cut, &bytes[..bytes.len() * 6 / 10]).unwrap();

    let replay = |path: &Path| -> Value {
        let out = run(ttalloc()
            .arg("replay")
            .arg(path)
            .args(["--json", "--warmup", "0"]));
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let whole = replay(&full);
    let part = replay(&cut);
    assert_eq!(whole["events"], stats.events);
    assert!(whole["truncated"].is_null());
    let recovered = part["events"].as_u64().unwrap();
    assert!(
        recovered > 0 && recovered < stats.events,
        "recovered {recovered} of {}",
        stats.events
    );
    assert!(
        part["truncated"]
            .as_str()
            .unwrap()
            .contains("events recovered"),
        "{}",
        part["truncated"]
    );
    // Every cycle that ended before the cut is reported exactly as in the whole trace.
    let whole_cycles = whole["cycles"].as_array().unwrap();
    let part_cycles = part["cycles"].as_array().unwrap();
    assert!(part_cycles.len() >= 2 && part_cycles.len() <= whole_cycles.len());
    for (p, w) in part_cycles
        .iter()
        .zip(whole_cycles)
        .take(part_cycles.len() - 1)
    {
        assert_eq!(p, w);
    }
}

/// `--threads 1` decodes each block on the replaying thread, `--threads 2`
/// on a second one: the same events in the same order, so every report
/// (here with `--bisect`, which replays again from checkpoints, and with
/// cycles found by a scan of their own) is the same, byte for byte.
#[test]
fn one_thread_or_two_give_the_same_report() {
    use ttalloc_corpora::synth::{write_trace, LeakSite, SynthOptions};
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("leak.zst");
    let opts = SynthOptions {
        events: 60_000,
        cycles: 12,
        devices: 2,
        leak_site: Some(LeakSite {
            site: 5,
            from_cycle: 4,
        }),
        ..SynthOptions::default()
    };
    // Small blocks: many handovers between the threads.
    let wopts = ttalloc_trace::WriterOptions {
        block_events: 1024,
        ..Default::default()
    };
    write_trace(&trace, &opts, wopts).expect("synthetic trace");
    for extra in [&["--json", "--bisect"][..], &["--cycles", "device"][..]] {
        let replay = |threads: &str| {
            let out = run(ttalloc()
                .arg("replay")
                .arg(&trace)
                .args(extra)
                .args(["--threads", threads]));
            assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
            out.stdout
        };
        let one = replay("1");
        assert!(!one.is_empty());
        assert_eq!(
            String::from_utf8_lossy(&one),
            String::from_utf8_lossy(&replay("2")),
            "{extra:?}"
        );
    }
}

/// A trace of a newer minor version: events of kinds this ttalloc does not
/// know are skipped, and every report says so once per kind (FORMAT.md
/// §5.4), however many passes the replay makes over the trace.
#[test]
fn events_of_unknown_kinds_are_reported_once_per_kind() {
    use ttalloc_model::{Event, EventKind, Pid};
    use ttalloc_trace::{TraceHeader, TraceWriter, FORMAT_MAJOR, FORMAT_MINOR};
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("newer.zst");
    let wopts = ttalloc_trace::WriterOptions {
        block_events: 2,
        ..Default::default()
    };
    let header = TraceHeader::default();
    let mut w =
        TraceWriter::create_with_version(&path, header, wopts, FORMAT_MAJOR, FORMAT_MINOR + 1)
            .unwrap();
    let label = w.interner_mut().intern_string("run 1");
    let marker = |ts| Event {
        ts,
        pid: Pid(1),
        kind: EventKind::Marker { label },
    };
    // 5 events in 3 blocks: 3 of kind 200 (in two blocks), 1 of kind 201.
    w.push(&marker(1)).unwrap();
    w.push_unknown_kind(200, 2, Pid(1), b"a").unwrap();
    w.push_unknown_kind(200, 3, Pid(1), b"b").unwrap();
    w.push_unknown_kind(201, 4, Pid(1), b"").unwrap();
    w.push_unknown_kind(200, 5, Pid(1), b"c").unwrap();
    w.finish().unwrap();

    let out = run(ttalloc().arg("replay").arg(&path).arg("--json"));
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let warnings: Vec<&str> = report["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].starts_with("skipped 3 event(s) of unknown kind 200"),
        "{warnings:?}"
    );
    assert!(
        warnings[1].starts_with("skipped 1 event(s) of unknown kind 201"),
        "{warnings:?}"
    );
    let human = run(ttalloc().arg("replay").arg(&path));
    let text = String::from_utf8_lossy(&human.stdout);
    assert_eq!(
        text.matches("unknown kind 200").count(),
        1,
        "{}",
        describe(&human)
    );
}
