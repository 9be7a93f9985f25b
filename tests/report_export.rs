//! End-to-end tests of `ttalloc report` and `ttalloc export` through the
//! real binary, on the accumulation workload (recorded) and on synthetic
//! traces. Expected values are reasoned from the workload (see
//! corpora/workloads/accumulation/README.md): 3 runs, each leaving 36,864 B
//! DRAM and 22,528 B L1 behind on device 0 from the two `alloc` calls in
//! `mesh_device_initialize`.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ttalloc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ttalloc"))
}

#[path = "support/output.rs"]
mod output;
use output::describe;

fn ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("ttalloc runs");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    out
}

/// Records the accumulation workload into `dir`.
fn record_accumulation(dir: &Path) -> PathBuf {
    let trace = dir.join("accumulation.zst");
    let workload =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpora/workloads/accumulation/workload.py");
    ok(ttalloc()
        .args(["record", "-o"])
        .arg(&trace)
        .args(["--", "python3"])
        .arg(workload));
    trace
}

/// 3 runs x (36,864 B DRAM + 22,528 B L1).
const ACCUMULATION_LEAKED: u64 = 3 * (36_864 + 22_528);
/// Device 0 DRAM in a run: dispatch 65,536 + cq 36,864 + tensor shard 16,384
/// (the earlier runs' cq buffers went with their device).
const ACCUMULATION_PEAK: u64 = 65_536 + 36_864 + 16_384;

/// `(stack, bytes)` per folded line; panics on a malformed line.
fn parse_folded(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .map(|l| {
            let (stack, n) = l.rsplit_once(' ').expect("`stack bytes`");
            assert!(!stack.is_empty(), "empty stack in {l:?}");
            (stack.to_owned(), n.parse().expect("a byte count"))
        })
        .collect()
}

#[test]
fn folded_lines_sum_to_the_leaked_bytes_and_name_the_leaking_site() {
    let tmp = tempfile::tempdir().unwrap();
    let trace = record_accumulation(tmp.path());
    let out = ok(ttalloc()
        .arg("export")
        .arg(&trace)
        .args(["--format", "folded"]));
    let lines = parse_folded(&String::from_utf8(out.stdout).unwrap());
    let total: u64 = lines.iter().map(|l| l.1).sum();
    assert_eq!(total, ACCUMULATION_LEAKED);
    // Two sites: the DRAM (3 x 36,864) and L1 (3 x 22,528) allocs, stacks
    // outermost first, so the leaking function is the last frame.
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0].1, 3 * 36_864);
    assert_eq!(lines[1].1, 3 * 22_528);
    for (stack, _) in &lines {
        let frames: Vec<&str> = stack.split(';').collect();
        assert!(frames[0].starts_with("<module>"), "{stack}");
        assert!(
            frames
                .last()
                .unwrap()
                .starts_with("mesh_device_initialize ("),
            "{stack}"
        );
    }
    // The same number as replay's leaks.
    let replay = ok(ttalloc().arg("replay").arg(&trace).arg("--json"));
    let r: Value = serde_json::from_slice(&replay.stdout).unwrap();
    let leaked: u64 = r["leaks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["size"].as_u64().unwrap())
        .sum();
    assert_eq!(leaked, total);
}

#[test]
fn folded_peak_sums_to_the_highest_peak() {
    let tmp = tempfile::tempdir().unwrap();
    let trace = record_accumulation(tmp.path());
    let out = ok(ttalloc()
        .arg("export")
        .arg(&trace)
        .args(["--format", "folded", "--metric", "peak"]));
    let lines = parse_folded(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(lines.iter().map(|l| l.1).sum::<u64>(), ACCUMULATION_PEAK);
    let leaf = |s: &str| s.rsplit(';').next().unwrap().to_owned();
    let leaves: BTreeMap<String, u64> = lines.iter().map(|(s, b)| (leaf(s), *b)).collect();
    assert_eq!(leaves.len(), 3, "{leaves:?}");
    assert!(leaves
        .iter()
        .any(|(k, &b)| k.starts_with("open_mesh (") && b == 65_536));
    assert!(leaves
        .iter()
        .any(|(k, &b)| k.starts_with("mesh_device_initialize (") && b == 36_864));
    assert!(leaves
        .iter()
        .any(|(k, &b)| k.starts_with("upload_tensor (") && b == 16_384));
}

#[test]
fn folded_on_a_synthetic_trace_sums_to_the_generated_leak() {
    use ttalloc_corpora::synth::{write_trace, LeakSite, SynthOptions};
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("synth.zst");
    let opts = SynthOptions {
        events: 30_000,
        cycles: 5,
        devices: 2,
        leak_site: Some(LeakSite {
            site: 7,
            from_cycle: 2,
        }),
        ..SynthOptions::default()
    };
    let stats = write_trace(&trace, &opts, Default::default()).unwrap();
    assert!(stats.leaked_bytes > 0);
    let out = ok(ttalloc()
        .arg("export")
        .arg(&trace)
        .args(["--format", "folded"]));
    let lines = parse_folded(&String::from_utf8(out.stdout).unwrap());
    // Only the leak site's buffers are never freed: one stack, all the bytes.
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].1, stats.leaked_bytes);
}

/// Checks `v` against the Chrome trace-event format ("JSON Object Format":
/// https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU):
/// a `traceEvents` array of objects with a one-letter `ph`; per phase the
/// fields that phase requires, with the right types.
fn check_trace_event_format(v: &Value) -> Vec<&Value> {
    let events = v["traceEvents"].as_array().expect("traceEvents array");
    if let Some(unit) = v.get("displayTimeUnit") {
        assert!(matches!(unit.as_str(), Some("ms" | "ns")), "{unit}");
    }
    for e in events {
        let ph = e["ph"].as_str().unwrap_or_else(|| panic!("no ph: {e}"));
        let name = || assert!(e["name"].is_string(), "name: {e}");
        let pid = || assert!(e["pid"].is_u64(), "pid: {e}");
        let ts = || assert!(e["ts"].as_f64().is_some_and(|t| t >= 0.0), "ts: {e}");
        match ph {
            "X" => {
                name();
                pid();
                ts();
                assert!(e["tid"].is_u64(), "tid: {e}");
                assert!(e["dur"].as_f64().is_some_and(|d| d >= 0.0), "dur: {e}");
            }
            "C" => {
                name();
                pid();
                ts();
                let args = e["args"].as_object().expect("counter args");
                assert!(
                    !args.is_empty() && args.values().all(Value::is_number),
                    "{e}"
                );
            }
            "i" | "I" => {
                name();
                pid();
                ts();
                assert!(
                    matches!(e["s"].as_str(), Some("g" | "p" | "t")),
                    "scope: {e}"
                );
            }
            "M" => {
                pid();
                let n = e["name"].as_str().unwrap();
                assert!(
                    ["process_name", "thread_name", "process_sort_index"].contains(&n),
                    "{e}"
                );
                assert!(e["args"].is_object(), "{e}");
            }
            other => panic!("phase {other} not expected from ttalloc: {e}"),
        }
    }
    events.iter().collect()
}

#[test]
fn perfetto_export_follows_the_trace_event_format() {
    let tmp = tempfile::tempdir().unwrap();
    let trace = record_accumulation(tmp.path());
    let out_path = tmp.path().join("acc.json");
    ok(ttalloc()
        .arg("export")
        .arg(&trace)
        .args(["--format", "perfetto", "-o"])
        .arg(&out_path));
    let v: Value = serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap();
    let events = check_trace_event_format(&v);
    let of = |ph: &'static str| events.iter().filter(move |e| e["ph"] == ph);
    // A counter track per device and buffer type: DRAM on devices 0-7, L1 on 0.
    let tracks: BTreeSet<(u64, String)> = of("C")
        .map(|e| {
            (
                e["pid"].as_u64().unwrap(),
                e["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(tracks.len(), 9, "{tracks:?}");
    let device_pid = |d: u64| (1u64 << 30) + d;
    assert!(tracks.contains(&(device_pid(0), "L1 live bytes".into())));
    let dram0 = of("C")
        .filter(|e| e["pid"] == device_pid(0) && e["name"] == "DRAM live bytes")
        .map(|e| e["args"]["bytes"].as_u64().unwrap())
        .max();
    assert_eq!(dram0, Some(ACCUMULATION_PEAK));
    // Slices: one per op scope (2 per run) and one per cycle (device spans).
    let names: Vec<&str> = of("X").map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names.iter().filter(|n| **n == "ttnn.from_torch").count(), 3);
    assert_eq!(names.iter().filter(|n| **n == "ttnn.deallocate").count(), 3);
    for c in ["cycle 1", "cycle 2", "cycle 3"] {
        assert!(names.contains(&c), "{names:?}");
    }
    // Findings: one instant per leaked buffer (6) and the highest peak.
    let instants: Vec<&str> = of("i").map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(
        instants.iter().filter(|n| n.starts_with("leak: ")).count(),
        6,
        "{instants:?}"
    );
    assert!(instants
        .iter()
        .any(|n| n.starts_with("highest peak: DRAM 118784")));
}

#[test]
fn svg_export_is_an_inferno_flame_graph_of_the_leak() {
    let tmp = tempfile::tempdir().unwrap();
    let trace = record_accumulation(tmp.path());
    let out = ok(ttalloc()
        .arg("export")
        .arg(&trace)
        .args(["--format", "svg"]));
    let svg = String::from_utf8(out.stdout).unwrap();
    assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("mesh_device_initialize"));
    // inferno titles each frame "name (N bytes, P%)": the whole graph is the leak.
    assert!(
        svg.contains("178,176 bytes") || svg.contains("178176 bytes"),
        "total missing"
    );
}

#[test]
fn markdown_report_is_small_and_names_the_leaking_site() {
    let tmp = tempfile::tempdir().unwrap();
    let trace = record_accumulation(tmp.path());
    let md_path = tmp.path().join("issue.md");
    // The format follows the .md extension.
    ok(ttalloc().arg("report").arg(&trace).arg("-o").arg(&md_path));
    let md = std::fs::read_to_string(&md_path).unwrap();
    assert!(md.len() < 10 * 1024, "{} bytes", md.len());
    assert!(md.starts_with("## ttalloc report"));
    assert!(md.contains("`mesh_device_initialize ("));
    assert!(md.contains("**growth**: device 0 DRAM +36,864 B per cycle"));
    assert!(md.contains("| 2 | "), "per-cycle table: {md}");
    assert!(md.contains("ttalloc replay "));
    // No overwriting without --force; nothing else is touched.
    let again = ttalloc()
        .arg("report")
        .arg(&trace)
        .arg("-o")
        .arg(&md_path)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2), "{}", describe(&again));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
}

#[test]
fn html_report_is_self_contained_and_names_the_leaking_site() {
    let tmp = tempfile::tempdir().unwrap();
    let trace = record_accumulation(tmp.path());
    let out = ok(ttalloc().arg("report").arg(&trace));
    let html = String::from_utf8(out.stdout).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("mesh_device_initialize"));
    // Nothing is fetched: no external script, style, image or font.
    for needle in ["src=\"http", "href=\"http", "url(http", "@import", "<link"] {
        assert!(!html.contains(needle), "{needle}");
    }
    // Exactly one data island, which closes once.
    assert_eq!(html.matches("</script>").count(), 2);
}

#[test]
fn html_report_of_a_long_trace_stays_bounded() {
    use ttalloc_corpora::synth::{write_trace, LeakSite, SynthOptions};
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("synth.zst");
    let opts = SynthOptions {
        events: 200_000,
        cycles: 50,
        leak_site: Some(LeakSite {
            site: 3,
            from_cycle: 1,
        }),
        ..SynthOptions::default()
    };
    write_trace(&trace, &opts, Default::default()).unwrap();
    let out = ok(ttalloc()
        .arg("report")
        .arg(&trace)
        .args(["--points", "200"]));
    let html = String::from_utf8(out.stdout).unwrap();
    let start = html.find("id=\"report-data\">").unwrap() + "id=\"report-data\">".len();
    let end = start + html[start..].find("</script>").unwrap();
    let data: Value = serde_json::from_str(&html[start..end]).unwrap();
    let series = data["series"].as_array().unwrap();
    assert!(!series.is_empty());
    for s in series {
        // At most one point per bucket, plus the zero before a late first
        // allocation and the value at the end.
        let n = s["points"].as_array().unwrap().len();
        assert!(n <= 200 + 2, "{n} points");
    }
    assert_eq!(data["cycles"].as_array().unwrap().len(), 50);
    assert!(data["buffers"].as_array().unwrap().len() <= 50);
}

#[test]
fn bad_input_is_a_clear_error_with_status_2() {
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("junk.zst");
    std::fs::write(&junk, b"not a trace").unwrap();
    for args in [
        vec!["report"],
        vec!["export", "--format", "folded"],
        vec!["export", "--format", "perfetto"],
    ] {
        let out = ttalloc().args(&args).arg(&junk).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("junk.zst"), "{err}");
        assert!(out.stdout.is_empty());
    }
    let out = ttalloc()
        .args(["export", "--format", "folded", "--metric", "biggest"])
        .arg(&junk)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown metric 'biggest'"));
}
