//! End-to-end tests of `ttalloc minimize`: minimised traces keep their
//! finding, are 1-minimal (removing any remaining event, with what depends
//! on it, loses the finding: checked by writing each such trace and
//! replaying it with the real binary), say where they came from, and bad
//! input is one clear line with exit status 2.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use ttalloc_corpora::synth::{write_trace, LeakSite, SynthOptions};
use ttalloc_model::{Event, EventKind};
use ttalloc_trace::{TraceHeader, TraceReader, TraceWriter, WriterOptions};

fn ttalloc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ttalloc"))
}

fn run(args: &[&str]) -> Output {
    ttalloc().args(args).output().expect("ttalloc runs")
}

#[path = "support/output.rs"]
mod output;
use output::describe;

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn replay_json(trace: &Path) -> Value {
    let out = run(&["replay", p(trace), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    serde_json::from_slice(&out.stdout).expect("replay JSON")
}

fn minimize(input: &Path, output: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["minimize", p(input), "-o", p(output), "--json"];
    args.extend_from_slice(extra);
    let out = run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    serde_json::from_slice(&out.stdout).expect("minimize JSON")
}

fn read_events(path: &Path) -> (TraceReader, Vec<Event>) {
    let r = TraceReader::open(path).expect("readable trace");
    let events = r.events().collect::<Result<Vec<_>, _>>().expect("events");
    (r, events)
}

/// The events of `events` left when `victim` goes with everything that
/// needs it: a device's events need its open and close, a free its alloc.
/// (The minimised traces here hold one open/close span per device.)
fn without(events: &[Event], victim: usize) -> Vec<Event> {
    let mut gone = vec![false; events.len()];
    gone[victim] = true;
    match events[victim].kind {
        EventKind::DeviceOpen { device, .. } | EventKind::DeviceClose { device } => {
            for (i, e) in events.iter().enumerate() {
                gone[i] |= e.kind.device() == Some(device);
            }
        }
        EventKind::BufferAlloc { device, buffer, .. } => {
            for (i, e) in events.iter().enumerate() {
                if let EventKind::BufferFree {
                    device: d,
                    buffer: b,
                    ..
                } = e.kind
                {
                    gone[i] |= d == device && b == buffer;
                }
            }
        }
        _ => {}
    }
    events
        .iter()
        .zip(&gone)
        .filter(|(_, g)| !**g)
        .map(|(e, _)| e.clone())
        .collect()
}

/// Writes `events` with the intern tables of `like`.
fn write_like(like: &TraceReader, events: &[Event], path: &Path) {
    let header = TraceHeader::new(vec!["test".into()], "test".into());
    let mut w = TraceWriter::create(path, header, WriterOptions::default()).expect("create");
    *w.interner_mut() = like.interner().clone();
    for e in events {
        w.push(e).expect("push");
    }
    w.finish().expect("finish");
}

/// Checks 1-minimality: every single-event removal loses the finding.
fn assert_one_minimal(trace: &Path, dir: &Path, shows: impl Fn(&Value) -> bool) {
    let (r, events) = read_events(trace);
    assert!(shows(&replay_json(trace)), "the minimised trace keeps it");
    for victim in 0..events.len() {
        let smaller = without(&events, victim);
        let path = dir.join(format!("without-{victim}.zst"));
        write_like(&r, &smaller, &path);
        assert!(
            !shows(&replay_json(&path)),
            "removing event {victim} ({:?}) keeps the finding: not 1-minimal",
            events[victim].kind.tag()
        );
    }
}

fn frames_of(v: &Value) -> Vec<(String, u64)> {
    v["site"]["frames"]
        .as_array()
        .map(|fs| {
            fs.iter()
                .map(|f| {
                    (
                        f["function"].as_str().unwrap_or("").to_owned(),
                        f["line"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_leaking_site_of_a_synthetic_trace_shrinks_to_open_alloc_close() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("synth.zst");
    // Site 3 leaks from cycle 2 on; 8 devices, 4 cycles, ~40k events.
    let opts = SynthOptions {
        events: 40_000,
        cycles: 4,
        leak_site: Some(LeakSite {
            site: 3,
            from_cycle: 2,
        }),
        ..SynthOptions::default()
    };
    let stats = write_trace(&input, &opts, WriterOptions::default()).unwrap();
    let original = replay_json(&input);
    let leak_frames: Vec<(String, u64)> = {
        let r = TraceReader::open(&input).unwrap();
        let site = ttalloc_model::SiteId(stats.leak_site_id.unwrap());
        r.interner()
            .resolve(site)
            .into_iter()
            .map(|f| (f.function, f.line as u64))
            .collect()
    };
    assert!(original["leaks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| frames_of(l) == leak_frames));

    let out = dir.path().join("min.zst");
    let m = minimize(&input, &out, &["--keep", "leak"]);
    assert_eq!(m["original_events"], stats.events);
    // One leaked buffer needs its device's open and close, nothing else:
    // the free of every other buffer and every other device can go.
    assert_eq!(m["kept_events"], 3, "{m}");
    assert!(m["replays"].as_u64().unwrap() > 0);
    assert!(m["finding"].as_str().unwrap().starts_with("leak of "));

    let shows = |v: &Value| {
        v["leaks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| frames_of(l) == leak_frames)
    };
    assert_one_minimal(&out, dir.path(), shows);

    // `info` says what it was minimised from; the intern tables hold only
    // the one call stack it uses.
    let info = run(&["info", p(&out), "--json"]);
    assert_eq!(info.status.code(), Some(0), "{}", describe(&info));
    let j: Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(j["provenance"]["source"], "synth.zst");
    assert_eq!(j["provenance"]["source_events"], stats.events);
    assert_eq!(j["provenance"]["finding"], m["finding"]);
    assert_eq!(j["intern"]["stack_nodes"], leak_frames.len() as u64 + 1);
    let text = run(&["info", p(&out)]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("minimised:  from synth.zst"));
}

fn workload(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpora/workloads")
        .join(name)
        .join("workload.py")
}

fn record(dir: &Path, name: &str) -> PathBuf {
    let trace = dir.join(format!("{name}.zst"));
    let out = ttalloc()
        .args([
            "record",
            "-o",
            p(&trace),
            "--",
            "python3",
            p(&workload(name)),
        ])
        .current_dir(dir)
        .output()
        .expect("record runs");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    trace
}

#[test]
fn the_fragmentation_oom_keeps_nine_blocking_buffers() {
    let dir = tempfile::tempdir().unwrap();
    let input = record(dir.path(), "fragmentation_oom");
    let out = dir.path().join("min.zst");
    let m = minimize(&input, &out, &[]);
    // The default finding is the OOM (the most severe). L1 is 1364928 B per
    // bank; the 12 MiB request needs 196608 B per bank. Eight 8 MiB
    // buffers (131072 B per bank each, top-down) leave 316352 B: it fits.
    // Nine leave 185280 B: out of memory. So: the open, nine allocs and the
    // failing alloc = 11 events (no free, marker or op scope is needed).
    assert_eq!(m["kept_events"], 11, "{m}");
    assert!(m["finding"]
        .as_str()
        .unwrap()
        .starts_with("oom of L1 (12582912 B) at grow"));
    let shows = |v: &Value| v["oom"]["size"] == 12_582_912u64 && v["oom"]["buffer_type"] == "L1";
    assert_one_minimal(&out, dir.path(), shows);

    // --exact also keeps tt-metal's message (the free bytes and largest
    // block of the original), which nine buffers alone do not give.
    let exact = dir.path().join("exact.zst");
    let m = minimize(&input, &exact, &["--exact"]);
    let original = replay_json(&input);
    assert_eq!(
        replay_json(&exact)["oom"]["message"],
        original["oom"]["message"]
    );
    assert!(m["kept_events"].as_u64().unwrap() > 11, "{m}");
}

#[test]
fn bad_input_is_one_clear_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let input = record(dir.path(), "fragmentation_oom");
    let out = dir.path().join("min.zst");
    let check = |args: &[&str], wants: &str| {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains(wants), "'{err}' should say '{wants}'");
    };
    // No finding of the requested kind.
    check(
        &[
            "minimize",
            p(&input),
            "-o",
            p(&out),
            "--keep",
            "double-free",
        ],
        "has no double-free finding",
    );
    check(
        &["minimize", p(&input), "-o", p(&out), "--site", "no_such_fn"],
        "in function 'no_such_fn'",
    );
    assert!(!out.exists(), "no output file on failure");
    // A usage error (clap's own message, with its usage lines).
    let o = run(&["minimize", p(&input), "-o", p(&out), "--keep", "leaks"]);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown finding kind 'leaks'"));
    // A truncated trace: cut the finished file in its middle.
    let bytes = std::fs::read(&input).unwrap();
    let cut = dir.path().join("cut.zst");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    check(&["minimize", p(&cut), "-o", p(&out)], "truncated");
    // Not a trace at all.
    let junk = dir.path().join("junk.zst");
    std::fs::write(&junk, b"not a trace").unwrap();
    check(
        &["minimize", p(&junk), "-o", p(&out)],
        "not a ttalloc trace",
    );
    // An existing output is not overwritten without --force.
    std::fs::write(&out, b"keep me").unwrap();
    check(&["minimize", p(&input), "-o", p(&out)], "--force");
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
}
