//! End to end through the real binary and the Python hand API: what format
//! 2.1 / protocol 1.1 added for real ttnn capture (issue 9) — the per-bank
//! size tt-metal reserved, buffer labels, allocations tt-metal refused — and
//! `record`'s one-line reason for an empty capture.
//!
//! The device is the Wormhole preset (`device_open(0)` with no config): L1
//! has 64 banks whose allocatable part is [134208, 1499136) (1364928 B),
//! top-down, 32 B free-list alignment.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_ttalloc");

/// A 3x3-tile bfloat16 tensor block-sharded on a 2x2 grid with 2x2-tile
/// shards: 9 pages of 2048 B, but every core holds a whole 4-page shard, so
/// tt-metal reserves 4 * 2048 = 8192 B per bank and puts it at
/// 1499136 - 8192 = 1490944. The next L1 buffer (64 pages over 64 banks,
/// one 2048 B page per bank) goes right below: 1490944 - 2048 = 1488896.
const SCRIPT: &str = r#"
import sys, ttalloc
mode = sys.argv[1]
ttalloc.device_open(0, arch="wormhole_b0")
per_bank = None if mode == "no-per-bank" else 8192
ttalloc.alloc(0, 1, "L1", 9 * 2048, address=1490944, page_size=2048, layout="block_sharded",
              num_cores=4, per_bank_size=per_bank, label="L1 tensor [1,1,96,96] bfloat16 TILE")
ttalloc.alloc(0, 2, "L1", 64 * 2048, address=1488896, page_size=2048)
if mode == "fits":
    ttalloc.alloc_refused(0, "L1", 64 * 2048, "Out of Memory: (made up)", page_size=2048)
else:
    text = sys.argv[2] if mode == "wrong-message" else EXPECTED
    ttalloc.alloc_refused(0, "L1", 91750400, text, page_size=2048)
ttalloc.free(0, 2)
"#;

/// What tt-metal prints for 91750400 B of L1 in 2048 B pages on top of the
/// two buffers: 44800 pages over 64 banks is 700 pages = 1433600 B per bank;
/// allocated 8192 + 2048 = 10240 B, free 1364928 - 10240 = 1354688 B, all of
/// it one block [134208, 1488896).
const EXPECTED: &str =
    "Out of Memory: Not enough space to allocate 91750400 B L1 buffer across 64 banks, \
where each bank needs to store 1433600 B, but bank size is 1364928 B \
(allocated: 10240 B, free: 1354688 B, largest free block: 1354688 B)";

fn record(dir: &Path, name: &str, args: &[&str]) -> (PathBuf, Output) {
    let script = dir.join("hand_api.py");
    std::fs::write(
        &script,
        SCRIPT.replace("EXPECTED", &format!("{EXPECTED:?}")),
    )
    .unwrap();
    let trace = dir.join(format!("{name}.zst"));
    let out = Command::new(BIN)
        .current_dir(dir)
        .args(["record", "--force", "-o"])
        .arg(&trace)
        .args(["--", "python3"])
        .arg(&script)
        .args(args)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (trace, out)
}

fn stdout(args: &[&str], trace: &Path) -> String {
    let out = Command::new(BIN).args(args).arg(trace).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn replay_json(trace: &Path) -> Value {
    serde_json::from_str(&stdout(&["replay", "--json"], trace)).unwrap()
}

#[test]
fn the_recorded_per_bank_size_labels_and_refusal_reach_every_output() {
    let tmp = tempfile::tempdir().unwrap();
    let (trace, _) = record(tmp.path(), "exact", &["exact"]);

    // With tt-metal's per-bank size the model puts both buffers where
    // tt-metal did, and refuses the big request with tt-metal's own words.
    let r = replay_json(&trace);
    assert_eq!(r["divergences"], 0, "{r:#}");
    let oom = &r["oom"];
    assert_eq!(oom["recorded_message"], EXPECTED, "{oom:#}");
    assert_eq!(oom["model_message"], EXPECTED);
    assert_eq!(oom["message_matches"], true);
    assert_eq!(oom["size"], 91750400);
    // The sharded buffer is never freed: its leak carries its label.
    let leaks = r["leaks"].as_array().unwrap();
    assert_eq!(leaks.len(), 1, "{leaks:#?}");
    assert_eq!(leaks[0]["label"], "L1 tensor [1,1,96,96] bfloat16 TILE");
    assert_eq!(leaks[0]["size"], 9 * 2048);
    let human = stdout(&["replay"], &trace);
    assert!(
        human.contains("(L1 tensor [1,1,96,96] bfloat16 TILE), "),
        "{human}"
    );
    assert!(human.contains("tt-metal's message was the same"), "{human}");

    // cat shows the new fields, as text and JSON lines.
    let lines: Vec<Value> = stdout(&["cat", "--jsonl"], &trace)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let sharded = lines
        .iter()
        .find(|e| e["kind"] == "buffer_alloc" && e["layout"] == "BLOCK_SHARDED")
        .expect("the sharded alloc");
    assert_eq!(sharded["per_bank_size"], 8192);
    assert_eq!(sharded["label"], "L1 tensor [1,1,96,96] bfloat16 TILE");
    let plain = lines
        .iter()
        .find(|e| e["kind"] == "buffer_alloc" && e["layout"] == "INTERLEAVED")
        .unwrap();
    assert_eq!(
        (&plain["per_bank_size"], &plain["label"]),
        (&Value::Null, &Value::Null)
    );
    let refused = lines
        .iter()
        .find(|e| e["kind"] == "alloc_refused")
        .expect("the refusal");
    assert_eq!(refused["message"], EXPECTED);
    assert_eq!(refused["size"], 91750400);
    assert_eq!(refused["site"][0]["function"], "<module>");
    let text = stdout(&["cat"], &trace);
    assert!(
        // The label is part of the buffer's name (issue 13 friction 6).
        text.contains("buffer 1 (L1 tensor [1,1,96,96] bfloat16 TILE)\""),
        "{text}"
    );
    assert!(text.contains("alloc_refused"), "{text}");

    // info counts them and lists the refusal.
    let info: Value = serde_json::from_str(&stdout(&["info", "--json"], &trace)).unwrap();
    assert_eq!(
        info["format_version"],
        format!(
            "{}.{}",
            ttalloc_trace::FORMAT_MAJOR,
            ttalloc_trace::FORMAT_MINOR
        )
    );
    assert_eq!(info["events_by_kind"]["alloc_refused"], 1);
    let d0 = &info["devices"][0];
    assert_eq!(
        (&d0["labelled_allocs"], &d0["allocs_refused"]),
        (&1.into(), &1.into())
    );
    assert_eq!(info["refusals"][0]["message"], EXPECTED);
    let text = stdout(&["info"], &trace);
    assert!(text.contains("1 refused (out of memory)"), "{text}");
}

#[test]
fn without_the_per_bank_size_the_model_diverges() {
    // From the size alone the model reserves ceil(9/4) = 3 pages = 6144 B
    // and puts the sharded buffer at 1499136 - 6144 = 1492992, not 1490944;
    // re-synced on the recorded address, it then finds the 2048 B hole
    // above it, [1497088, 1499136), for the second buffer: two divergences.
    let tmp = tempfile::tempdir().unwrap();
    let (trace, _) = record(tmp.path(), "no_per_bank", &["no-per-bank"]);
    let r = replay_json(&trace);
    assert_eq!(r["divergences"], 2, "{r:#}");
    assert_eq!(r["first_divergence"]["recorded"], 1490944);
    assert_eq!(r["first_divergence"]["model"], 1492992);
}

#[test]
fn a_refusal_the_model_words_differently_or_places_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let (trace, _) = record(
        tmp.path(),
        "wrong",
        &["wrong-message", "Out of Memory: something else"],
    );
    let r = replay_json(&trace);
    assert_eq!(r["oom"]["message_matches"], false, "{r:#}");
    assert_eq!(
        r["oom"]["recorded_message"],
        "Out of Memory: something else"
    );
    assert_eq!(r["oom"]["model_message"], EXPECTED);
    let human = stdout(&["replay"], &trace);
    assert!(human.contains("warning[oom-message]"), "{human}");

    // 128 KiB fits easily: the model placing what tt-metal refused is a
    // divergence, and the model frees it again (nothing is left of it).
    let (trace, _) = record(tmp.path(), "fits", &["fits"]);
    let r = replay_json(&trace);
    assert_eq!(r["oom"], Value::Null, "{r:#}");
    assert_eq!(r["divergences"], 1);
    assert_eq!(r["placed_refusals"], 1);
    let p = &r["first_placed_refusal"];
    assert_eq!(p["recorded_message"], "Out of Memory: (made up)");
    // Top-down below the second buffer: 1488896 - 2048.
    assert_eq!(p["model_address"], 1488896 - 2048);
    assert_eq!(
        r["leaks"].as_array().unwrap().len(),
        1,
        "only the sharded buffer"
    );
    let human = stdout(&["replay"], &trace);
    assert!(
        human.contains("the model placed 1 allocation(s) tt-metal refused"),
        "{human}"
    );
}

/// `record` on a command that captured nothing says why in one line, and
/// `--fail-on` fails on it.
#[test]
fn an_empty_capture_says_why_and_fails_fail_on() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&str], envs: &[(&str, &str)]| {
        let mut c = Command::new(BIN);
        c.current_dir(tmp.path())
            .args(["record", "--force", "-o", "empty.zst"])
            .args(args)
            .env_remove("TTALLOC_TTNN");
        for (k, v) in envs {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let nothing = ["--", "python3", "-c", "pass"];
    let (code, err) = run(&nothing, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("nothing captured: no client connected"),
        "{err}"
    );
    assert!(!err.contains("TTALLOC_TTNN"), "{err}");

    let (code, err) = run(&nothing, &[("TTALLOC_TTNN", "0")]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("no client connected") && err.contains("TTALLOC_TTNN=0"),
        "{err}"
    );

    // A client connected (a marker) but no device was opened.
    let no_device = ["--", "python3", "-c", "import ttalloc; ttalloc.mark('x')"];
    let (code, err) = run(&no_device, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("nothing captured: 1 process connected but none opened a device"),
        "{err}"
    );

    // --fail-on, whatever the kind, fails an empty capture.
    for kind in ["leak", "any"] {
        let mut args = vec!["--fail-on", kind];
        args.extend(no_device);
        let (code, err) = run(&args, &[]);
        assert_eq!(code, Some(1), "--fail-on {kind}: {err}");
        assert!(err.contains("no device event"), "{err}");
    }
}
