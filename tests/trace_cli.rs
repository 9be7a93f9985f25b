//! End-to-end tests of `ttalloc info`, `ttalloc cat`, `ttalloc repair` and
//! `ttalloc repro`'s size limit on synthetic traces (the generator's own
//! counts are the expected values).

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use ttalloc_corpora::synth::{generate, write_trace, LeakSite, SynthOptions, SynthStats};
use ttalloc_trace::WriterOptions;

fn ttalloc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ttalloc"))
        .args(args)
        .output()
        .expect("run ttalloc")
}

fn ok_stdout(args: &[&str]) -> String {
    let out = ttalloc(args);
    assert!(
        out.status.success(),
        "ttalloc {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Exit status 2 and exactly one error line on stderr.
fn assert_bad_input(args: &[&str], needle: &str) {
    let out = ttalloc(args);
    assert_eq!(out.status.code(), Some(2), "ttalloc {args:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one error line expected: {err}");
    assert!(
        err.starts_with("ttalloc: error: ") || err.starts_with("error:"),
        "{err}"
    );
    assert!(err.contains(needle), "{err:?} should mention {needle:?}");
}

fn synth(dir: &Path, opts: &SynthOptions, block_events: usize) -> (std::path::PathBuf, SynthStats) {
    let path = dir.join("synth.zst");
    let stats = write_trace(
        &path,
        opts,
        WriterOptions {
            block_events,
            ..Default::default()
        },
    )
    .unwrap();
    (path, stats)
}

fn info_json(path: &Path) -> Value {
    serde_json::from_str(&ok_stdout(&["info", "--json", path.to_str().unwrap()])).unwrap()
}

/// `info` shows the clock tick the trace was written at (100 ns, what
/// `record` keeps by default), in text and JSON.
#[test]
fn info_shows_the_clock_tick() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SynthOptions {
        events: 5_000,
        seed: 3,
        ..Default::default()
    };
    let path = dir.path().join("tick.zst");
    let writer = WriterOptions {
        block_events: 1024,
        clock_tick_ns: 100,
        ..Default::default()
    };
    write_trace(&path, &opts, writer).unwrap();
    assert_eq!(info_json(&path)["clock_tick_ns"], 100);
    let text = ok_stdout(&["info", path.to_str().unwrap()]);
    assert!(text.contains("\nclock tick: 100 ns\n"), "{text}");
}

#[test]
fn info_json_reports_exactly_the_generator_counts() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SynthOptions {
        events: 30_000,
        seed: 7,
        cycles: 3,
        leak_site: Some(LeakSite {
            site: 4,
            from_cycle: 2,
        }),
        ..Default::default()
    };
    let (path, stats) = synth(dir.path(), &opts, 4096);
    let j = info_json(&path);
    assert_eq!(j["events"].as_u64().unwrap(), stats.events);
    let by_kind = j["events_by_kind"].as_object().unwrap();
    assert_eq!(by_kind.len(), stats.by_kind.len());
    for (k, n) in &stats.by_kind {
        assert_eq!(by_kind[k].as_u64(), Some(*n), "kind {k}");
    }
    assert_eq!(
        j["format_version"],
        format!(
            "{}.{}",
            ttalloc_trace::FORMAT_MAJOR,
            ttalloc_trace::FORMAT_MINOR
        )
    );
    assert!(j["truncation"].is_null());
    assert_eq!(j["devices"].as_array().unwrap().len(), 8);
    let allocs: u64 = j["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["buffer_allocs"].as_u64().unwrap())
        .sum();
    assert_eq!(allocs, stats.buffers_allocated);
    // Devices are closed at the end: deallocate_all leaves nothing live.
    for d in j["devices"].as_array().unwrap() {
        assert!(d["live_bytes_at_end"].as_object().unwrap().is_empty());
        assert!(d["peak_live_bytes"]["DRAM"].as_u64().unwrap() > 0);
        assert_eq!(d["config"]["dram_banks"], 12);
    }
    assert_eq!(j["processes"][0]["pid"], 4242);
    assert_eq!(j["processes"][0]["exit_status"], 0);
    assert!(j["blocks"].as_u64().unwrap() >= stats.events / 4096);
    let size = std::fs::metadata(&path).unwrap().len();
    assert_eq!(j["file_size"].as_u64().unwrap(), size);

    let text = ok_stdout(&["info", path.to_str().unwrap()]);
    assert!(text.contains("integrity:  ok"), "{text}");
    assert!(
        text.contains(&format!(
            "buffer_alloc     {}",
            stats.by_kind["buffer_alloc"]
        )),
        "{text}"
    );
    assert!(text.contains("device 7 (wormhole_b0)"), "{text}");
}

#[test]
fn cat_prints_the_requested_range_with_resolved_sites() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SynthOptions {
        events: 5_000,
        seed: 3,
        ..Default::default()
    };
    let (path, _) = synth(dir.path(), &opts, 1000);
    let (tables, events, _) = generate(&opts);
    let p = path.to_str().unwrap();

    let out = ok_stdout(&["cat", p, "--from", "995", "--to", "1010", "--jsonl"]);
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 15, "the range crosses a block boundary");
    for (i, l) in lines.iter().enumerate() {
        let ord = 995 + i;
        assert_eq!(l["ordinal"].as_u64(), Some(ord as u64));
        assert_eq!(l["ts"].as_u64(), Some(events[ord].ts));
        assert_eq!(l["kind"], events[ord].kind.tag().name());
        if let Some(site) = events[ord].kind.site() {
            let frames = tables.resolve(site);
            let got = l["site"].as_array().unwrap();
            assert_eq!(got.len(), frames.len());
            if let Some(f) = frames.first() {
                assert_eq!(got[0]["function"], f.function.as_str());
                assert_eq!(got[0]["file"], f.file.as_str());
                assert_eq!(got[0]["line"], f.line);
            }
        }
    }
    let text = ok_stdout(&["cat", p]);
    assert_eq!(text.lines().count(), events.len());
    let alloc = text.lines().find(|l| l.contains(" buffer_alloc ")).unwrap();
    assert!(
        alloc.contains("at ") && alloc.contains("ttnn/ttnn/operations/") && alloc.contains("size="),
        "{alloc}"
    );
    assert!(
        text.lines().next().unwrap().starts_with("0 "),
        "lines start with the ordinal"
    );
    assert!(ok_stdout(&["cat", p, "--from", "999999"]).is_empty());
}

#[test]
fn truncated_trace_is_reported_and_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SynthOptions {
        events: 20_000,
        seed: 11,
        ..Default::default()
    };
    let (path, stats) = synth(dir.path(), &opts, 2000);
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.zst");
    std::fs::write(&cut, &bytes[..bytes.len() * 6 / 10]).unwrap();

    let j = info_json(&cut);
    let t = &j["truncation"];
    let recovered = t["events_recovered"].as_u64().unwrap();
    assert!(recovered > 0 && recovered < stats.events, "{t}");
    assert_eq!(recovered % 2000, 0, "whole blocks are recovered");
    assert_eq!(j["events"].as_u64(), Some(recovered));
    assert_eq!(t["file_size"].as_u64(), Some((bytes.len() * 6 / 10) as u64));
    assert!(t["valid_up_to"].as_u64().unwrap() <= t["file_size"].as_u64().unwrap());
    let text = ok_stdout(&["info", cut.to_str().unwrap()]);
    assert!(
        text.contains("TRUNCATED") && text.contains(&format!("{recovered} events recovered")),
        "{text}"
    );

    let fixed = dir.path().join("fixed.zst");
    let out = ok_stdout(&[
        "repair",
        cut.to_str().unwrap(),
        "-o",
        fixed.to_str().unwrap(),
    ]);
    assert!(out.contains(&format!("wrote {recovered} events")), "{out}");
    let j = info_json(&fixed);
    assert!(j["truncation"].is_null());
    assert_eq!(j["events"].as_u64(), Some(recovered));
    // Repair refuses to overwrite silently.
    assert_bad_input(
        &[
            "repair",
            cut.to_str().unwrap(),
            "-o",
            fixed.to_str().unwrap(),
        ],
        "already exists",
    );
    // The events themselves survive: cat of the repaired copy equals cat of the cut file.
    assert_eq!(
        ok_stdout(&["cat", fixed.to_str().unwrap()]),
        ok_stdout(&["cat", cut.to_str().unwrap()])
    );
}

#[test]
fn unreadable_input_and_bad_usage_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.zst");
    assert_bad_input(&["info", missing.to_str().unwrap()], "missing.zst");
    // An architecture without a preset is refused, not replayed as nothing.
    for arch in ["", "unknown"] {
        let out = ttalloc(&["replay", "--arch", arch, missing.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("expected wormhole_b0 or blackhole"), "{err}");
    }
    // Said once: the path once, the OS error once.
    for cmd in ["info", "cat", "replay"] {
        let out = ttalloc(&[cmd, missing.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.matches("os error 2").count(), 1, "{cmd}: {err}");
        assert_eq!(err.matches("missing.zst").count(), 1, "{cmd}: {err}");
    }
    let garbage = dir.path().join("garbage.zst");
    std::fs::write(&garbage, b"not a trace at all").unwrap();
    assert_bad_input(&["info", garbage.to_str().unwrap()], "not a ttalloc trace");
    assert_bad_input(&["cat", garbage.to_str().unwrap()], "not a ttalloc trace");
    let out = dir.path().join("out.zst");
    assert_bad_input(
        &[
            "repair",
            garbage.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        "not a ttalloc trace",
    );
    assert!(!out.exists(), "no output file for an unreadable input");

    let opts = SynthOptions {
        events: 3_000,
        ..Default::default()
    };
    let (path, _) = synth(dir.path(), &opts, 500);
    assert_bad_input(
        &["cat", path.to_str().unwrap(), "--from", "5", "--to", "3"],
        "--from 5 is after --to 3",
    );
    let status = ttalloc(&["cat", path.to_str().unwrap(), "--from", "x"]).status;
    assert_eq!(status.code(), Some(2), "clap usage errors exit 2");

    // A damaged block: cat prints what comes before and fails naming block and offset.
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 8] {
        *b ^= 0xA5;
    }
    let bad = dir.path().join("bad.zst");
    std::fs::write(&bad, &bytes).unwrap();
    let out = ttalloc(&["cat", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("corrupt block") && err.contains("at byte offset"),
        "{err}"
    );
    assert!(
        !out.stdout.is_empty(),
        "events before the damage are printed"
    );
}

#[test]
fn a_trace_larger_than_the_address_space_says_why_it_cannot_be_opened() {
    // A 64 GiB (sparse) file under a 2 GB address-space limit can be neither
    // mapped nor read: the error says so and names the limit.
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.zst");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(64 << 30)
        .unwrap();
    let bin = env!("CARGO_BIN_EXE_ttalloc");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v 2000000 && exec '{bin}' info '{}'",
            big.display()
        ))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cannot map the 68719476736-byte trace"),
        "{err}"
    );
    assert!(err.contains("ulimit -v"), "{err}");
}

#[test]
fn the_readme_puts_ttalloc_on_path_before_using_it_bare() {
    // Commands in the README that start with a bare `ttalloc` only work
    // once it is installed: the install step must come first.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let install = readme
        .find("cargo install --path cli")
        .expect("the README says how to install ttalloc");
    let first_bare = readme
        .lines()
        .scan(0usize, |offset, line| {
            let at = *offset;
            *offset += line.len() + 1;
            Some((at, line))
        })
        .find(|(_, line)| line.starts_with("ttalloc "))
        .map(|(at, _)| at)
        .expect("the README uses ttalloc");
    assert!(
        install < first_bare,
        "install at {install}, first use at {first_bare}"
    );
    // And cli/ is the package that builds the `ttalloc` binary.
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    assert!(manifest.contains("name = \"ttalloc\""), "{manifest}");
}

#[test]
fn cat_shows_time_since_the_first_event_and_paths_under_the_common_directory() {
    use ttalloc_model::{BufferId, BufferType, DeviceId, Event, EventKind, Layout, Pid};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.zst");
    let mut w = ttalloc_trace::TraceWriter::create(
        &path,
        ttalloc_trace::TraceHeader::new(vec!["test".into()], String::new()),
        WriterOptions::default(),
    )
    .unwrap();
    let site = w.interner_mut().intern_stack_str(&[
        ("make", "/home/u/proj/pkg/model.py", 3),
        ("main", "/home/u/proj/run.py", 10),
    ]);
    // 5 s and 6.5 s after the epoch: printed as +0 s and +1.5 s.
    for (ts, b) in [(5_000_000_000u64, 1u64), (6_500_000_000, 2)] {
        w.push(&Event {
            ts,
            pid: Pid(7),
            kind: EventKind::BufferAlloc {
                device: DeviceId(0),
                buffer: BufferId(b),
                buffer_type: BufferType::Dram,
                address: None,
                size: 64,
                page_size: None,
                layout: Layout::Interleaved,
                num_cores: None,
                per_bank_size: None,
                label: ttalloc_model::StringId::EMPTY,
                site,
            },
        })
        .unwrap();
    }
    w.finish().unwrap();
    let p = path.to_str().unwrap();
    let text = ok_stdout(&["cat", p]);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("0 +0.000000 s pid=7 buffer_alloc"),
        "{text}"
    );
    assert!(lines[1].starts_with("1 +1.500000 s pid=7"), "{text}");
    assert!(
        lines[1].ends_with("at make (pkg/model.py:3) <- main (run.py:10)"),
        "{text}"
    );
    let raw = ok_stdout(&["cat", p, "--absolute"]);
    assert!(
        raw.lines()
            .nth(1)
            .unwrap()
            .starts_with("1 6500000000 pid=7"),
        "{raw}"
    );
    assert!(raw.contains("(/home/u/proj/pkg/model.py:3)"), "{raw}");
}

/// `repro` turns a trace into a script making every buffer in turn, so a
/// trace longer than `--max-events` is refused before it is read: status
/// 2, one line that names the trace, its events, the limit and
/// `ttalloc minimize`, and no script written. At the limit it is written.
#[test]
fn repro_refuses_a_trace_over_max_events() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SynthOptions {
        events: 3_000,
        cycles: 10,
        ..SynthOptions::default()
    };
    let (trace, stats) = synth(dir.path(), &opts, 1_000);
    let t = trace.to_str().unwrap();
    let script = dir.path().join("repro.py");
    let s = script.to_str().unwrap();
    let n = stats.events.to_string();
    let under = (stats.events - 1).to_string();
    let needle = format!("{n} events is more than --max-events {under}");
    assert_bad_input(&["repro", t, "-o", s, "--max-events", &under], &needle);
    let out = ttalloc(&["repro", t, "-o", s, "--max-events", &under]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(t) && err.contains("ttalloc minimize"), "{err}");
    assert!(!script.exists(), "nothing is written");
    let wrote = ok_stdout(&["repro", t, "-o", s, "--max-events", &n]);
    assert!(wrote.starts_with("wrote "), "{wrote}");
    assert!(std::fs::read_to_string(&script)
        .unwrap()
        .contains("import ttnn"));
}
