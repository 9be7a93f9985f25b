//! Allocator throughput: alloc/free operations per second for a realistic
//! mix (tile pages of 2048 B, 1-8 pages per bank, both directions) at a
//! steady number of live buffers, from 1,000 to 100,000.
//!
//! `cargo bench -p ttalloc-model` (a plain binary: no harness, no plots).
//! Each figure is the best of several rounds of `OPS` operations.

#[path = "alloc_throughput/steady.rs"]
mod steady;
#[path = "alloc_throughput/stream.rs"]
mod stream;
#[path = "alloc_throughput/timing.rs"]
mod timing;

use steady::{device_churn, device_steady, free_list_churn, free_list_replay_at, free_list_steady};
use stream::{stream_by_id, stream_placed, Stream};
use timing::{Best, ROUNDS};

fn report(what: &str, n: usize, b: Best, extra: &str) {
    println!(
        "  {what:<42} {n:>6} live: {:5.1} ns/op on-CPU = {:5.1} M ops/s  (wall {:5.1} ns/op = {:5.1} M ops/s){extra}",
        b.1,
        1e3 / b.1,
        b.0,
        1e3 / b.0
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a test run (`cargo test --benches`)
    // does not: then only a short smoke run.
    let full = std::env::args().any(|a| a == "--bench");
    let (mut sizes, mut ops): (Vec<usize>, u64) = if full {
        (vec![1_000, 10_000, 100_000], 1_000_000)
    } else {
        (vec![1_000], 20_000)
    };
    // Overrides for profiling runs (e.g. under callgrind).
    if let Some(v) = std::env::var("ALLOC_BENCH_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        ops = v;
    }
    if let Some(v) = std::env::var("ALLOC_BENCH_LIVE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        sizes = vec![v];
    }
    let stream = match std::env::var("ALLOC_BENCH_STREAM") {
        Ok(path) => Stream::from_file(&path),
        Err(_) => Stream::generated(if full { 2_000_000 } else { 20_000 }, 50),
    };
    println!(
        "replay of an alloc/free stream over {} devices ({} steps; ALLOC_BENCH_STREAM: a file from a trace), best of {} rounds",
        stream.devices,
        stream.len(),
        ROUNDS.min(7)
    );
    report("Device, stream by id", 0, stream_by_id(&stream), "");
    report(
        "Device, stream placed (caller keeps handles)",
        0,
        stream_placed(&stream),
        "",
    );
    if std::env::var_os("ALLOC_BENCH_STREAM").is_none() {
        let compact = Stream::generated(if full { 2_000_000 } else { 20_000 }, 0);
        report(
            "Device, stream placed, no leaks (compact)",
            0,
            stream_placed(&compact),
            "",
        );
    }
    if std::env::var_os("ALLOC_BENCH_STREAM_ONLY").is_some() {
        return;
    }
    println!("alloc+free ops on one core, best of {ROUNDS} rounds (2048 B tiles, 1-8 per bank, half bottom-up, half top-down)");
    for &n in &sizes {
        report(
            "FreeList, realistic mix (64 churning)",
            n,
            free_list_churn(n, ops),
            "",
        );
    }
    if std::env::var_os("ALLOC_BENCH_CHURN_ONLY").is_some() {
        return;
    }
    for &n in &sizes {
        let (b, failed) = free_list_steady(n, ops);
        report(
            "FreeList, uniformly random frees",
            n,
            b,
            &format!("  [{failed} failed]"),
        );
    }
    for &n in &sizes {
        report(
            "FreeList, replay at recorded addresses",
            n,
            free_list_replay_at(n, ops),
            "",
        );
    }
    for &n in &sizes {
        report("Device, realistic mix (by id)", n, device_churn(n, ops), "");
    }
    for &n in &sizes {
        report(
            "Device, uniformly random frees (by id)",
            n,
            device_steady(n, ops),
            "",
        );
    }
}
