//! Allocator throughput: alloc/free operations per second for a realistic
//! mix (tile pages of 2048 B, 1-8 pages per bank, both directions) at a
//! steady number of live buffers, from 1,000 to 100,000.
//!
//! `cargo bench -p ttalloc-model` (a plain binary: no harness, no plots).
//! Each figure is the best of several rounds of `OPS` operations.

use std::hint::black_box;
use std::time::Instant;
use ttalloc_model::alloc::{AllocRequest, Device, FreeList, Handle};
use ttalloc_model::{Arch, BufferId, BufferType, DeviceConfig, Layout};

/// Best of this many rounds: the machine is shared, and interference only ever slows a round down.
const ROUNDS: usize = 15;

/// Wall-clock and on-CPU time of the current thread. The on-CPU time (from
/// `/proc/thread-self/schedstat`, Linux) excludes time the scheduler gave
/// to other processes — the figure that says what one op costs on a core
/// when the machine is shared.
struct Timer {
    wall: Instant,
    cpu: Option<u64>,
}

fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

impl Timer {
    fn start() -> Timer {
        Timer {
            cpu: cpu_ns(),
            wall: Instant::now(),
        }
    }
    /// (wall ns, on-CPU ns) per op.
    fn per_op(&self, ops: u64) -> (f64, f64) {
        let wall = self.wall.elapsed().as_nanos() as f64 / ops as f64;
        let cpu = match (self.cpu, cpu_ns()) {
            (Some(a), Some(b)) => (b - a) as f64 / ops as f64,
            _ => wall,
        };
        (wall, cpu)
    }
}

/// Best (wall, on-CPU) ns per op over rounds.
#[derive(Clone, Copy)]
struct Best(f64, f64);
impl Best {
    fn new() -> Best {
        Best(f64::INFINITY, f64::INFINITY)
    }
    fn add(&mut self, (wall, cpu): (f64, f64)) {
        self.0 = self.0.min(wall);
        self.1 = self.1.min(cpu);
    }
}

struct Rng(u64);
impl Rng {
    #[inline]
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Per-bank size of a typical buffer: mostly one or two tiles per bank.
#[inline]
fn tile_pages(r: u64) -> u64 {
    const PAGES: [u64; 8] = [1, 1, 1, 1, 2, 2, 4, 8];
    PAGES[(r & 7) as usize] * 2048
}

/// Free-list level, worst case for caches: every free hits a uniformly
/// random live buffer. Wormhole DRAM geometry (1073741792 B at 32 B alignment).
fn free_list_steady(live_target: usize, ops_per_round: u64) -> (Best, u64) {
    let mut fl = FreeList::new(32, 1_073_741_792, 32, 32).unwrap();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut live: Vec<u64> = Vec::with_capacity(live_target + 1);
    while live.len() < live_target {
        let r = rng.next();
        if let Some(a) = fl.allocate(tile_pages(r), r & 256 == 0) {
            // Half bottom-up (DRAM buffers), half top-down (L1, program binaries).
            live.push(a);
        }
    }
    let mut best = Best::new();
    let mut failed = 0;
    for _ in 0..ROUNDS {
        let timer = Timer::start();
        let mut ops = 0u64;
        while ops < ops_per_round {
            let r = rng.next();
            // Free a random live buffer, then allocate one: live count stays put.
            let i = (r >> 32) as usize % live.len();
            let a = live.swap_remove(i);
            black_box(fl.deallocate(a));
            match fl.allocate(tile_pages(r), r & 256 == 0) {
                Some(a) => live.push(a),
                None => failed += 1,
            }
            ops += 2;
        }
        best.add(timer.per_op(ops));
    }
    assert_eq!(fl.num_allocated(), live.len());
    (best, failed)
}

/// The realistic mix: `live_target` long-lived buffers (weights, caches)
/// stay allocated while short-lived ones (activations) churn through a
/// window of 64: each step allocates one (half bottom-up like DRAM, half
/// top-down like L1 and program binaries) and frees a random one of the
/// window. What ttnn models do between ops.
fn free_list_churn(live_target: usize, ops_per_round: u64) -> Best {
    let mut fl = FreeList::new(32, 1_073_741_792, 32, 32).unwrap();
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut kept = 0;
    while kept < live_target {
        let r = rng.next();
        // Weights, and a few holes (freed temporaries) between them.
        if let Some(a) = fl.allocate(tile_pages(r), r & 256 == 0) {
            if r & 0x3000 == 0 {
                fl.deallocate(a);
            } else {
                kept += 1;
            }
        }
    }
    const WINDOW: usize = 64;
    let mut window: Vec<u64> = Vec::with_capacity(WINDOW + 1);
    let mut best = Best::new();
    for _ in 0..ROUNDS {
        let timer = Timer::start();
        let mut ops = 0u64;
        while ops < ops_per_round {
            let r = rng.next();
            if let Some(a) = fl.allocate(tile_pages(r), r & 256 == 0) {
                window.push(a);
            }
            ops += 1;
            if window.len() > WINDOW {
                let a = window.swap_remove((r >> 32) as usize % window.len());
                black_box(fl.deallocate(a));
                ops += 1;
            }
        }
        best.add(timer.per_op(ops));
    }
    assert_eq!(fl.num_allocated(), live_target + window.len());
    best
}

/// Replay at recorded addresses (`allocate_at`, what a replay of a trace
/// with addresses does): the realistic mix is recorded once, then replayed
/// into a fresh free list placing every buffer at its recorded address.
fn free_list_replay_at(live_target: usize, ops_per_round: u64) -> Best {
    // Record: (address, size) for an alloc, (address, 0) for a free.
    let mut fl = FreeList::new(32, 1_073_741_792, 32, 32).unwrap();
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    let mut log: Vec<(u64, u64)> = Vec::with_capacity(ops_per_round as usize + live_target);
    let mut kept = 0;
    while kept < live_target {
        let r = rng.next();
        let size = tile_pages(r);
        if let Some(a) = fl.allocate(size, r & 256 == 0) {
            log.push((a, size));
            kept += 1;
        }
    }
    let prefix = log.len();
    let mut window: Vec<u64> = Vec::new();
    while (log.len() - prefix) < ops_per_round as usize {
        let r = rng.next();
        let size = tile_pages(r);
        if let Some(a) = fl.allocate(size, r & 256 == 0) {
            window.push(a);
            log.push((a, size));
        }
        if window.len() > 64 {
            let a = window.swap_remove((r >> 32) as usize % window.len());
            fl.deallocate(a);
            log.push((a, 0));
        }
    }
    let mut best = Best::new();
    for _ in 0..ROUNDS {
        let mut fresh = FreeList::new(32, 1_073_741_792, 32, 32).unwrap();
        for &(a, size) in &log[..prefix] {
            fresh.allocate_at(a, size).unwrap();
        }
        let timer = Timer::start();
        for &(a, size) in &log[prefix..] {
            if size == 0 {
                black_box(fresh.deallocate(a));
            } else {
                black_box(
                    fresh
                        .allocate_at(a, size)
                        .expect("recorded address is free"),
                );
            }
        }
        best.add(timer.per_op((log.len() - prefix) as u64));
    }
    best
}

/// Device level, realistic mix: long-lived interleaved DRAM buffers (ids)
/// plus 64 churning ones, half DRAM bottom-up, half L1 top-down.
fn device_churn(live_target: usize, ops_per_round: u64) -> Best {
    let mut d = Device::new(Arch::WormholeB0, &DeviceConfig::default()).unwrap();
    let mut rng = Rng(0x0DDB_1A5E_5BAD_5EED);
    let mut next = 0u64;
    let dram = |r: u64| AllocRequest::interleaved(BufferType::Dram, 12 * tile_pages(r), Some(2048));
    let l1 = |r: u64| AllocRequest::interleaved(BufferType::L1, 64 * tile_pages(r & 3), Some(2048));
    while (d.num_live_buffers()) < live_target {
        next += 1;
        let _ = d.allocate(BufferId(next), &dram(rng.next()));
    }
    let mut window: Vec<BufferId> = Vec::new();
    let mut best = Best::new();
    for _ in 0..ROUNDS {
        let timer = Timer::start();
        let mut ops = 0u64;
        while ops < ops_per_round {
            let r = rng.next();
            next += 1;
            let req = if r & 256 == 0 { dram(r) } else { l1(r) };
            if d.allocate(BufferId(next), &req).is_ok() {
                window.push(BufferId(next));
            }
            ops += 1;
            if window.len() > 64 {
                let id = window.swap_remove((r >> 32) as usize % window.len());
                black_box(d.deallocate(id));
                ops += 1;
            }
        }
        best.add(timer.per_op(ops));
    }
    best
}

/// Device level: buffer ids, lockstep interleaved DRAM buffers of 12-96
/// tiles over 12 banks (1-8 pages per bank), plus top-down L1 buffers.
fn device_steady(live_target: usize, ops_per_round: u64) -> Best {
    let mut d = Device::new(Arch::WormholeB0, &DeviceConfig::default()).unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut live: Vec<BufferId> = Vec::with_capacity(live_target + 1);
    let mut next = 0u64;
    let req_for = |r: u64| {
        if r & 15 == 0 {
            // Small L1 buffer: one tile on each of 64 banks, top-down.
            AllocRequest::interleaved(BufferType::L1, 64 * 2048, Some(2048))
        } else {
            AllocRequest::interleaved(BufferType::Dram, 12 * tile_pages(r >> 4), Some(2048))
        }
    };
    let l1_cap = 200; // L1 holds ~660 one-tile buffers; keep them few.
    let mut l1_live = 0usize;
    while live.len() < live_target {
        let r = rng.next() | 1; // DRAM only while filling
        next += 1;
        if d.allocate(BufferId(next), &req_for(r)).is_ok() {
            live.push(BufferId(next));
        }
    }
    let mut best = Best::new();
    for _ in 0..ROUNDS {
        let timer = Timer::start();
        let mut ops = 0u64;
        while ops < ops_per_round {
            let r = rng.next();
            let i = (r >> 32) as usize % live.len();
            let id = live.swap_remove(i);
            if let Some(rel) = d.deallocate(id) {
                if rel.buffer_type == BufferType::L1 {
                    l1_live -= 1;
                }
            }
            let r = if l1_live >= l1_cap { r | 1 } else { r };
            next += 1;
            if d.allocate(BufferId(next), &req_for(r)).is_ok() {
                live.push(BufferId(next));
                if r & 15 == 0 {
                    l1_live += 1;
                }
            }
            ops += 2;
        }
        best.add(timer.per_op(ops));
    }
    best
}

/// One step of a replayed stream: allocate buffer `id` (a dense index) or free it.
#[derive(Clone, Copy)]
enum Step {
    Alloc {
        device: u8,
        id: u32,
        req: AllocRequest,
    },
    Free {
        device: u8,
        id: u32,
    },
}

/// A replay's alloc/free stream: 8 wormhole_b0 devices taking turns, each
/// with a few hundred live buffers (a window of short-lived activations
/// plus a slowly growing set of leaked ones, one in `leak_one_in`; 0: none)
/// — DRAM interleaved bottom-up and L1 sharded top-down, in tile pages, as
/// `synth` generates them. Without leaks every list stays compact (tens of
/// blocks), as in the replay of the synthetic trace between its leaks.
fn generated_stream(steps: usize, leak_one_in: u64) -> Vec<Step> {
    let mut rng = Rng(0x5851_F42D_4C95_7F2D);
    let mut out = Vec::with_capacity(steps);
    let mut live: Vec<std::collections::VecDeque<u32>> = vec![Default::default(); 8];
    let mut next = 0u32;
    while out.len() < steps {
        let r = rng.next();
        let device = (r % 8) as u8;
        let q = &mut live[device as usize];
        if q.len() > 16 && !(r >> 8).is_multiple_of(4) {
            let id = q.pop_front().expect("non-empty");
            // One in `leak_one_in` stays behind for good (a leak).
            if leak_one_in == 0 || !(r >> 16).is_multiple_of(leak_one_in) {
                out.push(Step::Free { device, id });
            }
            continue;
        }
        let pages = 12 + (r >> 20) % 4000;
        let req = if (r >> 40).is_multiple_of(3) {
            let cores = [32u32, 64][((r >> 44) & 1) as usize];
            AllocRequest {
                buffer_type: BufferType::L1,
                size: (pages % 400 + cores as u64) * 2048,
                page_size: Some(2048),
                layout: Layout::BlockSharded,
                num_cores: Some(cores),
                bottom_up: None,
                per_bank_size: None,
            }
        } else {
            AllocRequest::interleaved(BufferType::Dram, pages * 2048, Some(2048))
        };
        out.push(Step::Alloc {
            device,
            id: next,
            req,
        });
        q.push_back(next);
        next += 1;
    }
    out
}

/// A stream file written from a real trace (`ALLOC_BENCH_STREAM`): 32-byte
/// records `kind u8 (0 alloc, 1 free; others skipped), device u8,
/// buffer_type u8 (0 DRAM, 1 L1, 2 L1_SMALL, 3 TRACE, 4 SYSTEM_MEMORY),
/// sharded u8, num_cores u32, id u64, size u64, page_size u64`, little-endian.
fn stream_from_file(path: &str) -> Vec<Step> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut ids = std::collections::HashMap::new();
    let mut out = Vec::new();
    for rec in bytes.chunks_exact(32) {
        let u64_at = |o: usize| u64::from_le_bytes(rec[o..o + 8].try_into().expect("8 bytes"));
        let device = rec[1];
        let n = ids.len() as u32;
        let id = *ids.entry((device, u64_at(8))).or_insert(n);
        match rec[0] {
            0 => {
                let buffer_type = match rec[2] {
                    0 => BufferType::Dram,
                    1 => BufferType::L1,
                    2 => BufferType::L1Small,
                    3 => BufferType::Trace,
                    _ => BufferType::SystemMemory,
                };
                let cores = u32::from_le_bytes(rec[4..8].try_into().expect("4 bytes"));
                let page = u64_at(24);
                out.push(Step::Alloc {
                    device,
                    id,
                    req: AllocRequest {
                        buffer_type,
                        size: u64_at(16),
                        page_size: (page > 0).then_some(page),
                        layout: if rec[3] != 0 {
                            Layout::BlockSharded
                        } else {
                            Layout::Interleaved
                        },
                        num_cores: (cores > 0).then_some(cores),
                        bottom_up: None,
                        per_bank_size: None,
                    },
                });
            }
            1 => out.push(Step::Free { device, id }),
            _ => {}
        }
    }
    out
}

fn fresh_devices(stream: &[Step]) -> Vec<Device> {
    let n = stream
        .iter()
        .map(|s| match *s {
            Step::Alloc { device, .. } | Step::Free { device, .. } => device as usize + 1,
        })
        .max()
        .unwrap_or(1);
    (0..n)
        .map(|_| Device::new(Arch::WormholeB0, &DeviceConfig::default()).expect("preset"))
        .collect()
}

/// Replays `stream` on fresh devices by buffer id (the device keeps the ids).
fn stream_by_id(stream: &[Step]) -> Best {
    let mut best = Best::new();
    for _ in 0..ROUNDS.min(7) {
        let mut devs = fresh_devices(stream);
        let timer = Timer::start();
        for step in stream {
            match *step {
                Step::Alloc { device, id, req } => {
                    let _ = black_box(devs[device as usize].allocate(BufferId(id as u64), &req));
                }
                Step::Free { device, id } => {
                    black_box(devs[device as usize].deallocate(BufferId(id as u64)));
                }
            }
        }
        best.add(timer.per_op(stream.len() as u64));
    }
    best
}

/// Replays `stream` keeping handles in the caller's own table (what the
/// replay engine does): no id lookup in the model.
fn stream_placed(stream: &[Step]) -> Best {
    let ids = stream
        .iter()
        .map(|s| match *s {
            Step::Alloc { id, .. } | Step::Free { id, .. } => id as usize + 1,
        })
        .max()
        .unwrap_or(0);
    let mut best = Best::new();
    for _ in 0..ROUNDS.min(7) {
        let mut devs = fresh_devices(stream);
        let mut handles: Vec<Option<Handle>> = vec![None; ids];
        let timer = Timer::start();
        for step in stream {
            match *step {
                Step::Alloc { device, id, req } => {
                    if let Ok(p) = devs[device as usize].allocate_placed(BufferId(id as u64), &req)
                    {
                        handles[id as usize] = Some(p.handle);
                    }
                }
                Step::Free { device, id } => {
                    if let Some(h) = handles[id as usize].take() {
                        // As the replay engine frees: nothing read back.
                        black_box(devs[device as usize].discard_placed(h));
                    }
                }
            }
        }
        best.add(timer.per_op(stream.len() as u64));
    }
    best
}

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
        Ok(path) => stream_from_file(&path),
        Err(_) => generated_stream(if full { 2_000_000 } else { 20_000 }, 50),
    };
    println!(
        "replay of an alloc/free stream over {} devices ({} steps; ALLOC_BENCH_STREAM: a file from a trace), best of {} rounds",
        fresh_devices(&stream).len(),
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
        let compact = generated_stream(if full { 2_000_000 } else { 20_000 }, 0);
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
