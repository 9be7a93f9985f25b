//! Free-list level and device level benchmarks at a steady number of live
//! buffers (synthetic mixes, not a trace).

use super::timing::{best_of_rounds, Best, Rng, Timer, ROUNDS};
use std::hint::black_box;
use ttalloc_model::alloc::{AllocRequest, Device, FreeList};
use ttalloc_model::{Arch, BufferId, BufferType, DeviceConfig};

/// Per-bank size of a typical buffer: mostly one or two tiles per bank.
#[inline]
fn tile_pages(r: u64) -> u64 {
    const PAGES: [u64; 8] = [1, 1, 1, 1, 2, 2, 4, 8];
    PAGES[(r & 7) as usize] * 2048
}

/// Free-list level, worst case for caches: every free hits a uniformly
/// random live buffer. Wormhole DRAM geometry (1073741792 B at 32 B alignment).
pub fn free_list_steady(live_target: usize, ops_per_round: u64) -> (Best, u64) {
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
    let mut failed = 0;
    let best = best_of_rounds(ops_per_round, || {
        let r = rng.next();
        // Free a random live buffer, then allocate one: live count stays put.
        let i = (r >> 32) as usize % live.len();
        let a = live.swap_remove(i);
        black_box(fl.deallocate(a));
        match fl.allocate(tile_pages(r), r & 256 == 0) {
            Some(a) => live.push(a),
            None => failed += 1,
        }
        2
    });
    assert_eq!(fl.num_allocated(), live.len());
    (best, failed)
}

/// The realistic mix: `live_target` long-lived buffers (weights, caches)
/// stay allocated while short-lived ones (activations) churn through a
/// window of 64: each step allocates one (half bottom-up like DRAM, half
/// top-down like L1 and program binaries) and frees a random one of the
/// window. What ttnn models do between ops.
pub fn free_list_churn(live_target: usize, ops_per_round: u64) -> Best {
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
    let best = best_of_rounds(ops_per_round, || {
        let r = rng.next();
        if let Some(a) = fl.allocate(tile_pages(r), r & 256 == 0) {
            window.push(a);
        }
        if window.len() > WINDOW {
            let a = window.swap_remove((r >> 32) as usize % window.len());
            black_box(fl.deallocate(a));
            return 2;
        }
        1
    });
    assert_eq!(fl.num_allocated(), live_target + window.len());
    best
}

/// Replay at recorded addresses (`allocate_at`, what a replay of a trace
/// with addresses does): the realistic mix is recorded once, then replayed
/// into a fresh free list placing every buffer at its recorded address.
pub fn free_list_replay_at(live_target: usize, ops_per_round: u64) -> Best {
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
pub fn device_churn(live_target: usize, ops_per_round: u64) -> Best {
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
    best_of_rounds(ops_per_round, || {
        let r = rng.next();
        next += 1;
        let req = if r & 256 == 0 { dram(r) } else { l1(r) };
        if d.allocate(BufferId(next), &req).is_ok() {
            window.push(BufferId(next));
        }
        if window.len() > 64 {
            let id = window.swap_remove((r >> 32) as usize % window.len());
            black_box(d.deallocate(id));
            return 2;
        }
        1
    })
}

/// Device level: buffer ids, lockstep interleaved DRAM buffers of 12-96
/// tiles over 12 banks (1-8 pages per bank), plus top-down L1 buffers.
pub fn device_steady(live_target: usize, ops_per_round: u64) -> Best {
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
    best_of_rounds(ops_per_round, || {
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
        2
    })
}
