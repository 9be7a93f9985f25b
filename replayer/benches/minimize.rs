//! `ttalloc minimize` benchmarks (`cargo bench -p ttalloc-replayer --bench minimize`).
//!
//! 1. A 1M-event synthetic trace (8 devices, 10 cycles) with one leaking
//!    call site: file in, minimised file out. Target: under 5 s.
//! 2. A fragmentation out-of-memory buried in 1M events of DRAM traffic:
//!    nine 8 MiB L1 buffers block a 12 MiB one (the `fragmentation_oom`
//!    workload's numbers) while 500k DRAM buffers come and go around them.
//!
//! Each runs twice — every candidate replayed from the first event, then
//! from checkpoints (the trace file's for 1, taken in memory for 2) — checks
//! both keep the same events, and prints time, replays, events replayed and
//! the ratios. Measured on a 2-core Intel VM: (1) 0.26-0.27 s from the
//! start, 0.25 s from checkpoints (42 replays, 3 events kept: open, leaked
//! alloc, close); (2) 0.30 s and 0.27 s (82 replays, 11 events kept: open,
//! nine blocking buffers, the failing request).
//! `TTALLOC_BENCH_EVENTS` changes the trace size (default 1,000,000).

use std::time::Instant;
use ttalloc_corpora::synth::{write_trace, LeakSite, SynthOptions};
use ttalloc_model::{
    Arch, BufferId, BufferType, DeviceConfig, DeviceId, Event, EventKind, InternTables, Layout,
    Pid, SiteId,
};
use ttalloc_replayer::minimize::{
    minimize_events, minimize_file, FindingKind, MinimizeOptions, Minimized,
};
use ttalloc_trace::WriterOptions;

fn main() {
    let events: u64 = std::env::var("TTALLOC_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");

    // --- 1. one leaking site in a synthetic trace ---
    let input = dir.path().join("synth-leak.zst");
    let opts = SynthOptions {
        events,
        cycles: 10,
        leak_site: Some(LeakSite {
            site: 17,
            from_cycle: 4,
        }),
        ..SynthOptions::default()
    };
    let stats = write_trace(&input, &opts, WriterOptions::default()).expect("write trace");
    let output = dir.path().join("min.zst");
    let mut results = Vec::new();
    for from_start in [true, false] {
        let t = Instant::now();
        let m = minimize_file(
            &input,
            &output,
            &MinimizeOptions {
                keep: Some(FindingKind::Leak),
                from_start,
                ..MinimizeOptions::default()
            },
            None,
        )
        .expect("minimize");
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(m.original_events, stats.events);
        println!(
            "minimize leak, {} events, {}: {:.3} s (target < 5 s), {} replays ({} cache hits, {} from a checkpoint), {:.1}M events replayed, kept {} events: {}",
            stats.events,
            mode(from_start),
            secs,
            m.replays,
            m.cache_hits,
            m.resumed_replays,
            m.events_replayed as f64 / 1e6,
            m.kept_events,
            m.finding
        );
        results.push((secs, m));
    }
    compare("leak", &results);

    // --- 2. a fragmentation OOM in DRAM traffic ---
    let (interner, trace) = fragmentation_in_traffic(events);
    let mut results = Vec::new();
    for from_start in [true, false] {
        let t = Instant::now();
        let opts = MinimizeOptions {
            from_start,
            ..MinimizeOptions::default()
        };
        let m = minimize_events(&trace, &interner, &opts, None).expect("minimize");
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(m.kind, FindingKind::Oom);
        println!(
            "minimize fragmentation OOM, {} events, {}: {:.3} s, {} replays ({} cache hits, {} from a checkpoint), {:.1}M events replayed, kept {} events: {}",
            trace.len(),
            mode(from_start),
            secs,
            m.replays,
            m.cache_hits,
            m.resumed_replays,
            m.events_replayed as f64 / 1e6,
            m.kept_events,
            m.finding
        );
        results.push((secs, m));
    }
    compare("fragmentation OOM", &results);
}

fn mode(from_start: bool) -> &'static str {
    if from_start {
        "every replay from the start"
    } else {
        "from checkpoints"
    }
}

/// Both runs keep the same events; prints the ratios (checkpoints / start).
fn compare(what: &str, results: &[(f64, Minimized)]) {
    let [(t0, plain), (t1, resumed)] = results else {
        return;
    };
    assert_eq!(resumed.kept, plain.kept, "{what}: the same minimal trace");
    println!(
        "  {what}: time {:.2}x, events replayed {:.2}x (from checkpoints / from the start)",
        t1 / t0,
        resumed.events_replayed as f64 / plain.events_replayed.max(1) as f64
    );
}

/// The `fragmentation_oom` workload (ten 8 MiB L1 buffers, every other one
/// freed, a 12 MiB request fails) spread over `n` events of DRAM buffers
/// allocated and freed around it.
fn fragmentation_in_traffic(n: u64) -> (InternTables, Vec<Event>) {
    let mut t = InternTables::new();
    let kv = t.intern_stack_str(&[("fill_kv_cache", "workload.py", 17)]);
    let grow = t.intern_stack_str(&[("grow", "workload.py", 27)]);
    let noise = t.intern_stack_str(&[("matmul", "workload.py", 40)]);
    let dev = DeviceId(0);
    let mut config = DeviceConfig::default();
    for (k, v) in [
        ("l1_banks", 64u64),
        ("l1_bank_size", 1_364_928),
        ("l1_alignment", 16),
        ("l1_unreserved_base", 134_208),
        ("l1_small_size", 0),
        ("worker_l1_size", 1_499_136),
    ] {
        config.set(k, &v.to_string()).expect("config key");
    }
    let mut events = vec![Event {
        ts: 0,
        pid: Pid(1),
        kind: EventKind::DeviceOpen {
            device: dev,
            arch: Arch::WormholeB0,
            config: Box::new(config),
        },
    }];
    let mut push = |kind: EventKind| {
        let ts = events.len() as u64;
        events.push(Event {
            ts,
            pid: Pid(1),
            kind,
        })
    };
    let alloc = |buffer: u64, bt: BufferType, size: u64, site: SiteId| EventKind::BufferAlloc {
        device: dev,
        buffer: BufferId(buffer),
        buffer_type: bt,
        address: None,
        size,
        page_size: Some(2048),
        layout: Layout::Interleaved,
        num_cores: None,
        per_bank_size: None,
        label: ttalloc_model::StringId::EMPTY,
        site,
    };
    let free = |buffer: u64, site: SiteId| EventKind::BufferFree {
        device: dev,
        buffer: BufferId(buffer),
        site,
    };
    let pairs = n.saturating_sub(17) / 2;
    let mut next = 100u64;
    let mut traffic = |k: u64, push: &mut dyn FnMut(EventKind)| {
        for _ in 0..k {
            push(alloc(next, BufferType::Dram, 2048 * (1 + next % 64), noise));
            push(free(next, noise));
            next += 1;
        }
    };
    let slice = pairs / 12;
    for i in 0..10 {
        traffic(slice, &mut push);
        push(alloc(i, BufferType::L1, 8 << 20, kv));
    }
    for i in (1..10).step_by(2) {
        push(free(i, kv));
    }
    traffic(slice, &mut push);
    push(alloc(50, BufferType::L1, 12 << 20, grow));
    traffic(pairs - 11 * slice, &mut push);
    (t, events)
}
