//! Replay benchmarks (`cargo bench -p ttalloc-replayer`).
//!
//! 1. Replay with findings, end to end (file -> decode and cycle scan on one
//!    thread, engine on another -> report) on the 10M-event standard
//!    synthetic trace.
//!    Target: at least 20 million events/s.
//! 2. `--bisect` on a 10M-event trace with 1,000 cycles and one leaking
//!    site. Target: under 5 s (and under 256 MB: measure the CLI with
//!    `/usr/bin/time -v ttalloc replay TRACE --bisect --json`; the bench
//!    prints the command with the trace it wrote, kept when
//!    `TTALLOC_BENCH_KEEP=1`).
//!
//! `TTALLOC_BENCH_EVENTS` changes the trace size (default 10,000,000).

use std::time::Instant;
use ttalloc_corpora::synth::{write_trace, LeakSite, SynthOptions};
use ttalloc_replayer::{replay_file, ReplayOptions};
use ttalloc_trace::WriterOptions;

fn main() {
    let events: u64 = std::env::var("TTALLOC_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let keep = std::env::var("TTALLOC_BENCH_KEEP").is_ok_and(|v| v == "1");
    let dir = tempfile::tempdir().expect("temp dir");

    // --- 1. replay with findings on the standard synthetic trace ---
    let plain = dir.path().join("synth-standard.zst");
    let opts = SynthOptions {
        events,
        ..SynthOptions::default()
    };
    let t = Instant::now();
    let stats = write_trace(&plain, &opts, WriterOptions::default()).expect("write trace");
    settle(&plain);
    eprintln!(
        "generated {} events in {:.2} s",
        stats.events,
        t.elapsed().as_secs_f64()
    );
    // The generator records a layout the model accepts as is: no overrides,
    // and its addresses must match the model's (zero divergences).
    let replay_opts = ReplayOptions::default();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let report = replay_file(&plain, &replay_opts).expect("replay");
        let secs = t.elapsed().as_secs_f64();
        best = best.min(secs);
        assert_eq!(report.events, stats.events);
        assert_eq!(report.divergences, 0, "the generator matches the model");
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        eprintln!(
            "  replay: {:.3} s, {:.1} M events/s ({} leaks, {} divergences, {} cycles, warnings {:?})",
            secs,
            stats.events as f64 / secs / 1e6,
            report.leaks.len(),
            report.divergences,
            report.cycles.len(),
            report.warnings
        );
    }
    println!(
        "replay with findings, {} events: best {:.3} s = {:.1} M events/s (target >= 20)",
        stats.events,
        best,
        stats.events as f64 / best / 1e6
    );

    // --- 2. bisect: 1,000 cycles, one leaking site from cycle 400 ---
    let leaky = dir.path().join("synth-1000-cycles-leak.zst");
    let opts = SynthOptions {
        events,
        cycles: 1000,
        leak_site: Some(LeakSite {
            site: 17,
            from_cycle: 400,
        }),
        // Devices are closed and reopened every cycle (the seed's runs), so
        // the leaked buffers outlive their devices instead of filling DRAM.
        reopen_devices: true,
        ..SynthOptions::default()
    };
    let stats = write_trace(&leaky, &opts, WriterOptions::default()).expect("write trace");
    settle(&leaky);
    let bisect_opts = ReplayOptions {
        bisect: true,
        ..replay_opts.clone()
    };
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let report = replay_file(&leaky, &bisect_opts).expect("replay --bisect");
        let secs = t.elapsed().as_secs_f64();
        best = best.min(secs);
        let b = report.bisect.as_ref().expect("bisect ran");
        eprintln!(
            "  bisect: {:.3} s, first cycle {:?} at event {:?}, {} cycles, {} leaks",
            secs,
            b.first_cycle,
            b.first_event,
            report.cycles.len(),
            report.leaks.len()
        );
        assert_eq!(b.first_cycle, Some(400), "the leak starts in cycle 400");
    }
    println!(
        "--bisect, {} events, 1000 cycles: best {:.3} s (target < 5 s)",
        stats.events, best
    );
    if keep {
        let kept = std::env::temp_dir().join("ttalloc-bench-bisect.zst");
        std::fs::copy(&leaky, &kept).expect("keep trace");
        let kept_plain = std::env::temp_dir().join("ttalloc-bench-standard.zst");
        std::fs::copy(&plain, &kept_plain).expect("keep trace");
        println!(
            "memory: /usr/bin/time -v target/release/ttalloc replay {} --bisect --json > /dev/null",
            kept.display()
        );
    }
}

/// Waits until a freshly written trace is on disk: replaying a file whose
/// pages are still being written back measures the disk, not the replay.
fn settle(path: &std::path::Path) {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .expect("sync trace");
}
