//! End-to-end tests of zero-edit ttnn capture: every program of
//! `corpora/ttnn/` (unmodified ttnn, no `import ttalloc`) runs on the ttnn
//! test bed (the real ttnn 0.81.1 wheel against a mock cluster) once plain
//! and once under `ttalloc record`, and is checked against the
//! `expected.json` beside it (numbers reasoned by hand; see its "why"):
//!
//! - the program prints the expected lines, and the same under ttalloc;
//! - both runs exit 0;
//! - `ttalloc info --json` counts exactly the expected events of each kind;
//! - `ttalloc replay --json` with the expected args contains `expect` (the
//!   comparison rule of `tests/replay.rs`), which pins 0 divergences; and
//!   so does `--cycles auto` where the args say `--cycles device`;
//! - an OOM's recorded message, the model's message and the line the program
//!   printed (tt-metal's text) agree byte for byte;
//! - `replay --bisect --fail-on any` exits as expected.
//!
//! The test bed is `$TTNN_MOCK_PREFIX` or `/opt/ttnn-mock` (`.ci/run` sets it
//! up). Without it the tests fail, unless Python 3.10 (which the ttnn wheel
//! needs) is absent too: then they print a loud `SKIPPED:` line and pass.

#[path = "support/ttnn_bed.rs"]
mod ttnn_bed;

#[path = "support/json_contains.rs"]
mod json_contains;

use json_contains::contains;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use ttnn_bed::{describe, run, test_bed, ONE_AT_A_TIME};

fn strings(v: &Value, what: &str) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected.json: {what} is not an array"))
        .iter()
        .map(|s| {
            s.as_str()
                .unwrap_or_else(|| panic!("expected.json: {what} holds a non-string"))
                .to_owned()
        })
        .collect()
}

/// Runs `name`'s program plain and recorded and checks both against its
/// expected.json.
fn program(name: &str) {
    let Some(bed) = test_bed() else { return };
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpora/ttnn")
        .join(name);
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("expected.json")).expect("expected.json exists"),
    )
    .expect("expected.json is JSON");
    let cluster = expected["cluster"]
        .as_str()
        .expect("expected.json: cluster");
    let program = dir.join("program.py");
    let tmp = tempfile::tempdir().unwrap();

    // The plain run: tt-metal's own behaviour, the reference for the recorded one.
    let mut plain_cmd = Command::new(bed.python());
    plain_cmd.current_dir(tmp.path()).arg(&program);
    bed.configure(&mut plain_cmd, cluster);
    let plain = run(name, &mut plain_cmd);
    assert!(plain.status.success(), "{}", describe(name, &plain));
    let printed = String::from_utf8_lossy(&plain.stdout).into_owned();
    let want: Vec<String> = strings(&expected["stdout"], "stdout");
    assert_eq!(
        printed.lines().collect::<Vec<_>>(),
        want,
        "{name} printed other lines than expected.json's stdout"
    );

    let trace = tmp.path().join(format!("{name}.zst"));
    let mut rec_cmd = Command::new(env!("CARGO_BIN_EXE_ttalloc"));
    rec_cmd
        .current_dir(tmp.path())
        .arg("record")
        .arg("-o")
        .arg(&trace)
        .arg("--")
        .arg(bed.python())
        .arg(&program);
    bed.configure(&mut rec_cmd, cluster);
    let recorded = run("ttalloc record", &mut rec_cmd);
    assert!(
        recorded.status.success(),
        "{}",
        describe(&format!("ttalloc record {name}"), &recorded)
    );
    assert_eq!(
        String::from_utf8_lossy(&recorded.stdout),
        printed,
        "{name} prints something else under ttalloc record\n{}",
        describe("recorded run", &recorded)
    );

    check_event_counts(name, &trace, &expected);
    let args = strings(&expected["args"], "args");
    let report = check_replay(name, &trace, &args, &expected);
    // `--cycles auto` gives the same verdicts: a program that opens its
    // device several times is cut at its device spans either way; one that
    // opens it once calls nothing but ttnn ops, which `auto` never cuts at
    // (the capture's ops), so its device's life is its one cycle, as with
    // `--cycles device` (issue 13 follow-up).
    if let Some(i) = args.windows(2).position(|w| w == ["--cycles", "device"]) {
        let mut auto = args.clone();
        auto[i + 1] = "auto".to_owned();
        check_replay(name, &trace, &auto, &expected);
    }
    if let Some(prefix) = expected.get("oom_line_prefix").and_then(Value::as_str) {
        check_oom_message(name, &report, &printed, prefix);
    }
    check_fail_on_any(name, &trace, &expected);
}

fn check_event_counts(name: &str, trace: &Path, expected: &Value) {
    let out = run(
        "ttalloc info",
        Command::new(env!("CARGO_BIN_EXE_ttalloc"))
            .arg("info")
            .arg(trace)
            .arg("--json"),
    );
    assert!(out.status.success(), "{}", describe("ttalloc info", &out));
    let info: Value = serde_json::from_slice(&out.stdout).expect("info --json is JSON");
    let counts = &info["events_by_kind"];
    let want = expected["events_by_kind"]
        .as_object()
        .expect("expected.json: events_by_kind");
    let wrong: Vec<String> = want
        .iter()
        .filter(|(kind, n)| counts.get(kind.as_str()).unwrap_or(&Value::from(0)) != *n)
        .map(|(kind, n)| format!("{kind}: {} (expected {n})", counts[kind.as_str()]))
        .collect();
    assert!(
        wrong.is_empty(),
        "{name}: events by kind differ:\n  {}\nall counts: {counts}",
        wrong.join("\n  ")
    );
}

fn check_replay(name: &str, trace: &Path, args: &[String], expected: &Value) -> Value {
    let out = run(
        "ttalloc replay",
        Command::new(env!("CARGO_BIN_EXE_ttalloc"))
            .arg("replay")
            .arg(trace)
            .args(args),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        describe(&format!("replay {name} {args:?}"), &out)
    );
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("replay {name} printed no JSON ({e})"));
    let mut errors = Vec::new();
    contains(&report, &expected["expect"], "", &mut errors);
    assert!(
        errors.is_empty(),
        "{name} {args:?} differs from expected.json:\n  {}\nfull report:\n{}",
        errors.join("\n  "),
        serde_json::to_string_pretty(&report).unwrap()
    );
    report
}

/// tt-metal's text is the program's line after `prefix`; the exception adds
/// TT_FATAL's final '.' to the allocator's message, which the model (and
/// tt-metal's format string) do not have.
fn check_oom_message(name: &str, report: &Value, printed: &str, prefix: &str) {
    let raised = printed
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("{name}: no line starting with {prefix:?} in {printed}"));
    let allocator_text = raised.strip_suffix('.').unwrap_or(raised);
    let oom = &report["oom"];
    assert_eq!(
        oom["message"].as_str(),
        Some(allocator_text),
        "{name}: the model's OOM message"
    );
    if let Some(model) = oom.get("model_message") {
        assert_eq!(
            model.as_str(),
            Some(allocator_text),
            "{name}: model_message"
        );
    }
    let recorded = oom["recorded_message"].as_str();
    assert!(
        recorded == Some(allocator_text) || recorded == Some(raised),
        "{name}: recorded_message {recorded:?} is not tt-metal's {raised:?}"
    );
    assert_eq!(
        oom["message_matches"],
        Value::Bool(true),
        "{name}: message_matches"
    );
}

fn check_fail_on_any(name: &str, trace: &Path, expected: &Value) {
    let want = expected["exit_with_fail_on_any"]
        .as_i64()
        .expect("expected.json: exit_with_fail_on_any");
    let out = run(
        "ttalloc replay --fail-on any",
        Command::new(env!("CARGO_BIN_EXE_ttalloc"))
            .arg("replay")
            .arg(trace)
            .args(["--bisect", "--fail-on", "any"]),
    );
    assert_eq!(
        out.status.code(),
        Some(want as i32),
        "{}",
        describe(&format!("{name} --fail-on any"), &out)
    );
}

#[test]
fn accumulation() {
    program("accumulation");
}

#[test]
fn l1_fragmentation_oom() {
    program("l1_fragmentation_oom");
}

#[test]
fn sharding_l1_small() {
    program("sharding_l1_small");
}

#[test]
fn sharded_oom() {
    program("sharded_oom");
}

#[test]
fn mesh_t3k() {
    program("mesh_t3k");
}

#[test]
fn program_cache() {
    program("program_cache");
}

#[test]
fn user_graph_capture() {
    program("user_graph_capture");
}
