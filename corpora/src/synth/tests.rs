//! The generator's contract: determinism, shape, first-fit addresses, leaks, reopen.

use super::*;
use std::collections::{BTreeSet, HashMap};
use ttalloc_model::{BufferType, EventKind, EventTag, SiteId};

#[test]
fn is_deterministic_and_seed_dependent() {
    let opts = SynthOptions {
        events: 5_000,
        seed: 42,
        ..Default::default()
    };
    let (_, a, sa) = generate(&opts);
    let (_, b, sb) = generate(&opts);
    assert_eq!(a, b);
    assert_eq!(sa, sb);
    let (_, c, _) = generate(&SynthOptions { seed: 43, ..opts });
    assert_ne!(a, c);
}

#[test]
fn counts_and_shape_match_the_spec() {
    let opts = SynthOptions {
        events: 50_000,
        seed: 5,
        ..Default::default()
    };
    let (t, events, stats) = generate(&opts);
    assert_eq!(stats.events, events.len() as u64);
    assert!(
        events.len().abs_diff(50_000) < 200,
        "about N events: {}",
        events.len()
    );
    let mut by_kind: BTreeMap<String, u64> = EventTag::ALL
        .iter()
        .map(|k| (k.name().to_string(), 0))
        .collect();
    let mut devices = BTreeSet::new();
    let mut alloc_sites = BTreeSet::new();
    let mut layouts = BTreeSet::new();
    for e in &events {
        *by_kind.get_mut(e.kind.tag().name()).unwrap() += 1;
        if let EventKind::BufferAlloc {
            device,
            size,
            page_size,
            layout,
            site,
            num_cores,
            ..
        } = &e.kind
        {
            devices.insert(device.0);
            alloc_sites.insert(*site);
            layouts.insert(*layout as u8);
            assert_eq!(*page_size, Some(TILE_PAGE));
            assert_eq!(size % TILE_PAGE, 0);
            assert!((32 << 10..=64 << 20).contains(size), "size {size}");
            assert_eq!(num_cores.is_some(), layout.is_sharded());
        }
    }
    assert_eq!(by_kind, stats.by_kind);
    assert_eq!(devices.len(), 8);
    assert!(
        alloc_sites.len() >= 50,
        "{} call sites used",
        alloc_sites.len()
    );
    assert_eq!(
        layouts.len(),
        4,
        "interleaved and the three sharded layouts"
    );
    assert!(stats.call_sites >= 50);
    assert!(by_kind["op_begin"] > 1000 && by_kind["op_begin"] == by_kind["op_end"]);
    assert!(by_kind["marker"] >= 3);
    // Stacks look like Python tracebacks.
    let frames = t.resolve(*alloc_sites.iter().next().unwrap());
    assert!(frames.len() >= 5 && frames.iter().all(|f| f.file.ends_with(".py")));
    // No leak requested: everything allocated is freed.
    assert_eq!(stats.buffers_allocated, stats.buffers_freed);
    assert_eq!(stats.leaked_buffers, 0);
}

/// Live buffers of one device and buffer type never overlap, and freed
/// addresses are handed out again (first fit reuses holes).
#[test]
fn addresses_behave_like_a_first_fit_allocator() {
    let (_, events, _) = generate(&SynthOptions {
        events: 30_000,
        seed: 9,
        ..Default::default()
    });
    let mut live: HashMap<u64, (u32, BufferType, u64, u64)> = HashMap::new();
    let mut seen_addr: HashMap<(u32, u8, u64), u32> = HashMap::new();
    for e in &events {
        match &e.kind {
            EventKind::BufferAlloc {
                device,
                buffer,
                buffer_type,
                address,
                size,
                num_cores,
                ..
            } => {
                let a = address.expect("synthetic allocs have addresses");
                let shards = num_cores.map_or(
                    if *buffer_type == BufferType::Dram {
                        12
                    } else {
                        64
                    },
                    |c| c as u64,
                );
                let per_bank = (size / TILE_PAGE).div_ceil(shards) * TILE_PAGE;
                for (d, bt, s, l) in live.values() {
                    if *d == device.0 && bt == buffer_type {
                        assert!(a + per_bank <= *s || *s + *l <= a, "overlap at {a:#x}");
                    }
                }
                live.insert(buffer.0, (device.0, *buffer_type, a, per_bank));
                *seen_addr
                    .entry((device.0, *buffer_type as u8, a))
                    .or_default() += 1;
            }
            EventKind::BufferFree { buffer, .. } => {
                assert!(live.remove(&buffer.0).is_some(), "free of a live buffer");
            }
            EventKind::DeviceClose { device } => live.retain(|_, b| b.0 != device.0),
            _ => {}
        }
    }
    let reused = seen_addr.values().filter(|n| **n > 1).count();
    assert!(reused > 100, "addresses are reused ({reused})");
}

#[test]
fn leak_site_buffers_are_never_freed_from_its_cycle_on() {
    let opts = SynthOptions {
        events: 40_000,
        seed: 2,
        cycles: 4,
        leak_site: Some(LeakSite {
            site: 7,
            from_cycle: 3,
        }),
        ..Default::default()
    };
    let (t, events, stats) = generate(&opts);
    let leak = SiteId(stats.leak_site_id.unwrap());
    assert!(!t.resolve(leak).is_empty());
    let labels: Vec<&str> = events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Marker { label } => Some(t.string(label)),
            _ => None,
        })
        .filter(|l| l.starts_with("cycle "))
        .collect();
    assert_eq!(labels, ["cycle 1", "cycle 2", "cycle 3", "cycle 4"]);
    let mut cycle = 0;
    let mut open: HashMap<u64, (u32, u64)> = HashMap::new();
    let mut leaked_bytes_per_cycle = vec![0u64; 4];
    for e in &events {
        match &e.kind {
            EventKind::Marker { label } if t.string(*label).starts_with("cycle ") => cycle += 1,
            EventKind::BufferAlloc {
                buffer, site, size, ..
            } if *site == leak => {
                open.insert(buffer.0, (cycle, *size));
            }
            EventKind::BufferFree { buffer, .. } => {
                if let Some((c, _)) = open.remove(&buffer.0) {
                    assert!(c < 3, "a buffer of the leak site from cycle {c} was freed");
                }
            }
            _ => {}
        }
    }
    for (c, size) in open.values() {
        assert!(*c >= 3);
        leaked_bytes_per_cycle[*c as usize - 1] += size;
    }
    assert!(stats.leaked_buffers > 0);
    assert_eq!(stats.leaked_buffers, open.len() as u64);
    assert_eq!(stats.leaked_bytes_per_cycle, leaked_bytes_per_cycle);
    assert_eq!(
        stats.leaked_bytes,
        leaked_bytes_per_cycle.iter().sum::<u64>()
    );
    assert_eq!(
        stats.buffers_allocated,
        stats.buffers_freed + stats.leaked_buffers
    );
}

#[test]
fn reopen_closes_and_opens_devices_every_cycle() {
    let opts = SynthOptions {
        events: 20_000,
        cycles: 3,
        reopen_devices: true,
        ..Default::default()
    };
    let (_, _, stats) = generate(&opts);
    assert_eq!(stats.by_kind["device_open"], 24);
    assert_eq!(stats.by_kind["device_close"], 24);
}
