//! Format 2.6 end to end: a replay reads no block's times (their frames
//! are not even decompressed), so a trace whose every times frame is
//! damaged replays to the same findings; commands that show times (the
//! report's timeline, `cat`) fail on it naming the block and the frame.

use std::path::Path;
use std::process::{Command, Output};
use ttalloc_corpora::synth::{write_trace, LeakSite, SynthOptions};
use ttalloc_trace::{TraceReader, WriterOptions};

fn ttalloc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ttalloc"))
        .args(args)
        .output()
        .expect("run ttalloc")
}

/// A synthetic trace of 60,000 events in blocks of 4,096, with a leak.
fn synth(path: &Path) {
    let opts = SynthOptions {
        events: 60_000,
        cycles: 30,
        leak_site: Some(LeakSite {
            site: 7,
            from_cycle: 10,
        }),
        ..SynthOptions::default()
    };
    let writer = WriterOptions {
        block_events: 4096,
        ..WriterOptions::default()
    };
    write_trace(path, &opts, writer).unwrap();
}

#[test]
fn a_replay_reads_no_times_frame() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.zst");
    synth(&good);
    let bad = dir.path().join("bad.zst");
    let mut bytes = std::fs::read(&good).unwrap();
    let reader = TraceReader::open(&good).unwrap();
    let blocks = reader.blocks().len();
    assert!(blocks >= 14, "{blocks} blocks");
    for i in 0..blocks {
        let (offset, len) = reader.times_frame(i).expect("a 2.6 trace");
        let middle = (offset + len / 2) as usize;
        bytes[middle..middle + 8].fill(0x55);
    }
    std::fs::write(&bad, &bytes).unwrap();
    let (good, bad) = (good.to_str().unwrap(), bad.to_str().unwrap());

    for args in [&["replay", "--json"][..], &["replay", "--bisect", "--json"]] {
        let of = |path| {
            let out = ttalloc(&[args, &[path]].concat());
            assert_eq!(out.status.code(), Some(0), "{args:?} {path}");
            let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            json
        };
        let findings = of(good);
        // The leak from cycle 10 on is found (the synthetic trace's point).
        assert!(findings["leaks_total"].as_u64().unwrap() > 0, "{findings}");
        assert_eq!(of(bad), findings, "{args:?}");
    }

    let (offset, _) = reader.times_frame(0).unwrap();
    for args in [
        &["report", "--format", "md"][..],
        &["cat", "--from", "0", "--to", "10"],
    ] {
        let out = ttalloc(&[args, &[bad]].concat());
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        let frame = format!("times record (frame at byte {offset})");
        assert!(
            err.contains("block 0") && err.contains(&frame),
            "{args:?}: {err}"
        );
    }
}
