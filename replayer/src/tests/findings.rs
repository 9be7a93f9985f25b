//! One test per finding kind: leaks of each class, bad frees, out of
//! memory, circular-buffer clashes, divergences, ids allocated again.

use super::*;

#[test]
fn buffer_live_at_its_device_close_outlived_it() {
    let mut t = Trace::new();
    let s = t.site(&[
        ("mesh_device_initialize", "w.py", 25),
        ("<module>", "w.py", 40),
    ]);
    t.open(0);
    t.alloc(0, 1, BufferType::Dram, 65536, s);
    let leaked = t.alloc(0, 2, BufferType::Dram, 36864, s);
    t.free(0, 1);
    let close = t.close(0);
    let r = t.replay(&ReplayOptions::default());
    assert_eq!(r.leaks.len(), 1);
    let l = &r.leaks[0];
    assert_eq!(
        (l.class, l.buffer, l.size, l.event, l.closed_at),
        (LeakClass::OutlivedDevice, 2, 36864, leaked, Some(close))
    );
    assert_eq!(l.buffer_type, "DRAM");
    assert_eq!(l.site.frames[0].function, "mesh_device_initialize");
    assert_eq!(l.site.frames[1].function, "<module>");
    // The model placed it: DRAM is bottom-up, so it sits right above buffer 1's 65536 B
    // (65536 B over 12 banks = 32 pages -> 3 pages of 2048 B per bank = 6144 B).
    assert!(l.address.is_some());
    assert!(r.fails(&[FailKind::Leak]) && r.fails(&[FailKind::Any]));
    assert!(!r.fails(&[
        FailKind::Oom,
        FailKind::UnknownFree,
        FailKind::DoubleFree,
        FailKind::Divergence
    ]));
}

#[test]
fn buffer_live_at_end_of_trace_outside_cycles_was_never_freed() {
    let mut t = Trace::new();
    let s = t.site(&[("load_weights", "w.py", 3)]);
    t.open(3);
    let ev = t.alloc(3, 7, BufferType::L1, 4096, s);
    let r = t.replay(&ReplayOptions::default());
    assert_eq!(r.leaks.len(), 1);
    assert_eq!(
        (r.leaks[0].class, r.leaks[0].device, r.leaks[0].event),
        (LeakClass::NeverFreed, 3, ev)
    );
    assert_eq!(r.leaks[0].cycle, None);
    assert_eq!(r.devices, vec![3]);
}

#[test]
fn allocation_alive_after_its_cycle_and_never_freed_is_left_behind() {
    let mut t = Trace::new();
    let s = t.site(&[("step", "w.py", 9)]);
    t.open(0);
    t.marker("run 1");
    t.alloc(0, 1, BufferType::Dram, 2048, s);
    t.free(0, 1);
    t.marker("run 2");
    let ev = t.alloc(0, 2, BufferType::Dram, 4096, s);
    let r = t.replay(&ReplayOptions::default());
    assert_eq!(r.cycle_kind, "marker");
    assert_eq!(r.cycles.len(), 2);
    assert_eq!(r.leaks.len(), 1);
    assert_eq!(
        (r.leaks[0].class, r.leaks[0].cycle, r.leaks[0].event),
        (LeakClass::LeftBehind, Some(2), ev)
    );
    assert_eq!(r.cycles[0].left_behind_bytes, 0);
    assert_eq!(r.cycles[1].left_behind_bytes, 4096);
}

#[test]
fn long_cycles_find_what_they_left_behind_among_many_allocations() {
    // 20,000 buffers allocated and freed in each of two runs (the engine
    // compacts its list of the cycle's allocations as it goes); in run 2,
    // buffers 25,000 and 39,999 (2048 B each) and a re-allocation of
    // 30,000 (the first copy freed, the second 4096 B kept) stay live.
    let mut t = Trace::new();
    let s = t.site(&[("step", "w.py", 9)]);
    let keep = t.site(&[("keep", "w.py", 12)]);
    t.open(0);
    t.marker("run 1");
    for id in 1..=20_000 {
        t.alloc(0, id, BufferType::Dram, 2048, s);
        t.free(0, id);
    }
    t.marker("run 2");
    let mut first = 0;
    for id in 20_001..=40_000 {
        let kept = id == 25_000 || id == 39_999;
        let ev = t.alloc(0, id, BufferType::Dram, 2048, if kept { keep } else { s });
        if id == 25_000 {
            first = ev;
        }
        if !kept {
            t.free(0, id);
        }
    }
    t.alloc(0, 30_000, BufferType::Dram, 4096, keep);
    t.marker("run 3");
    let r = t.replay(&ReplayOptions {
        bisect: true,
        ..ReplayOptions::default()
    });
    assert_eq!(r.cycles.len(), 3);
    assert_eq!(
        (
            r.cycles[0].left_behind_buffers,
            r.cycles[0].left_behind_bytes
        ),
        (0, 0)
    );
    assert_eq!(
        (
            r.cycles[1].left_behind_buffers,
            r.cycles[1].left_behind_bytes
        ),
        (3, 2048 + 2048 + 4096)
    );
    let b = r.bisect.as_ref().unwrap();
    assert_eq!((b.first_cycle, b.first_event), (Some(2), Some(first)));
}

#[test]
fn unknown_and_double_frees_are_told_apart() {
    let mut t = Trace::new();
    let s = t.site(&[("f", "w.py", 1)]);
    t.open(0);
    t.alloc(0, 1, BufferType::Dram, 2048, s);
    t.free(0, 1);
    let double = t.free(0, 1);
    let unknown = t.free(0, 99);
    t.free(0, 1);
    t.close(0);
    let r = t.replay(&ReplayOptions::default());
    assert_eq!((r.double_frees, r.unknown_frees), (2, 1));
    assert_eq!(r.first_double_free.as_ref().unwrap().event, double);
    assert_eq!(r.first_unknown_free.as_ref().unwrap().event, unknown);
    assert!(r.leaks.is_empty());
    assert!(r.fails(&[FailKind::DoubleFree]) && r.fails(&[FailKind::UnknownFree]));
    assert!(!r.fails(&[FailKind::Leak]));
}

#[test]
fn reallocated_id_after_free_is_not_a_double_free_later() {
    let mut t = Trace::new();
    let s = t.site(&[("f", "w.py", 1)]);
    t.open(0);
    t.alloc(0, 5, BufferType::Dram, 2048, s);
    t.free(0, 5);
    t.alloc(0, 5, BufferType::Dram, 2048, s);
    t.free(0, 5);
    t.close(0);
    let r = t.replay(&ReplayOptions::default());
    assert_eq!((r.double_frees, r.unknown_frees), (0, 0));
    assert!(!r.has_findings());
}

#[test]
fn out_of_memory_by_fragmentation_has_tt_metals_text_and_figures() {
    // The fragmentation_oom scenario: 64 L1 banks of 1364928 B. Ten 8 MiB
    // buffers take 131072 B per bank each, top-down: buffer i occupies
    // [1364928 - 131072(i+1), 1364928 - 131072 i). Freeing 1,3,5,7,9 leaves
    // four 131072 B holes plus buffer 9's hole merged with the bottom
    // 1364928 - 10*131072 = 54208 B: 185280 B. Free = 4*131072 + 185280 =
    // 709568 B, allocated 5*131072 = 655360 B. 12 MiB = 6144 pages = 96 per
    // bank = 196608 B per bank: no block is large enough.
    let mut t = Trace::new();
    let fill = t.site(&[("fill_kv_cache", "w.py", 15)]);
    let grow = t.site(&[("grow", "w.py", 26)]);
    t.open_with(
        0,
        DeviceConfig {
            l1_banks: Some(64),
            l1_bank_size: Some(1364928),
            l1_alignment: Some(16),
            l1_unreserved_base: Some(134208),
            l1_small_size: Some(0),
            worker_l1_size: Some(1499136),
            ..Default::default()
        },
    );
    t.marker("fill");
    for i in 0..10 {
        t.alloc(0, i, BufferType::L1, 8 << 20, fill);
    }
    t.marker("evict");
    for i in (1..10).step_by(2) {
        t.free(0, i);
    }
    t.marker("grow");
    let bad = t.alloc(0, 100, BufferType::L1, 12 << 20, grow);
    let r = t.replay(&bisecting());
    let oom = r.oom.as_ref().expect("an out-of-memory");
    assert_eq!(oom.event, bad);
    assert_eq!(
        oom.message,
        "Out of Memory: Not enough space to allocate 12582912 B L1 buffer across 64 banks, where each bank needs to store 196608 B, but bank size is 1364928 B (allocated: 655360 B, free: 709568 B, largest free block: 185280 B)"
    );
    assert_eq!(
        (oom.free_bytes, oom.largest_free_block, oom.fragmentation),
        (Some(709568), Some(185280), true)
    );
    assert_eq!(oom.site.frames[0].function, "grow");
    // The failed allocation never existed: it is not a leak. The five kept
    // buffers are (allocated in cycle "fill", never freed).
    assert_eq!(r.leaks.len(), 5);
    assert!(r
        .leaks
        .iter()
        .all(|l| l.class == LeakClass::LeftBehind && l.cycle == Some(1)));
    // Delta debugging: releasing the kv-cache buffers at the end of their
    // cycle ("fill") makes the out-of-memory disappear.
    let m = r
        .bisect
        .as_ref()
        .unwrap()
        .minimal_sites
        .as_ref()
        .expect("ddmin ran");
    assert_eq!(m.failure, "oom");
    assert_eq!(m.sites.len(), 1);
    assert_eq!(m.sites[0].frames[0].function, "fill_kv_cache");
    assert!(r.fails(&[FailKind::Oom]));
}

#[test]
fn circular_buffers_clashing_with_l1_buffers_are_reported() {
    let mut t = Trace::new();
    let s = t.site(&[("matmul", "w.py", 3)]);
    t.open_with(0, tiny_l1());
    // Top-down: a 61440 B buffer in a 65536 B bank starts at 4096 + 4096 = 8192.
    t.alloc(0, 1, BufferType::L1, 61440, s);
    // CBs from 4096 up: 2048 B end at 6144 (fine), then 4096 more end at 10240 > 8192.
    t.push(EventKind::CbAlloc {
        device: DeviceId(0),
        address: 4096,
        size: 2048,
        cores: Some(1),
        globally_allocated: false,
        site: s,
    });
    let clash = t.push(EventKind::CbAlloc {
        device: DeviceId(0),
        address: 6144,
        size: 4096,
        cores: Some(1),
        globally_allocated: false,
        site: s,
    });
    t.push(EventKind::CbFreeAll {
        device: DeviceId(0),
    });
    t.free(0, 1);
    t.close(0);
    let r = t.replay(&ReplayOptions::default());
    assert_eq!(r.cb_clashes, 1);
    let c = r.first_cb_clash.as_ref().unwrap();
    assert_eq!(c.event, clash);
    assert!(c.message.contains("clash with L1 buffers"), "{}", c.message);
    assert!(r.fails(&[FailKind::Any]));
    assert!(!r.fails(&[FailKind::Leak, FailKind::Oom]));
}

#[test]
fn recorded_addresses_are_checked_and_the_first_divergence_reported() {
    let mut t = Trace::new();
    let s = t.site(&[("f", "w.py", 1)]);
    t.open_with(0, tiny_l1());
    // Top-down in [4096, 69632): a 2048 B buffer (one page) lands at 69632 - 2048 = 67584.
    t.alloc_full(0, 1, BufferType::L1, 2048, Some(67584), s);
    // The next one would land at 65536; the recording says 60000.
    let bad = t.alloc_full(0, 2, BufferType::L1, 2048, Some(60000), s);
    // Re-synced on the recording (buffer 2 at [60000, 62048)), the model agrees
    // again: the highest free block is [62048, 67584), so 67584 - 2048 = 65536.
    t.alloc_full(0, 3, BufferType::L1, 2048, Some(65536), s);
    let r = t.replay(&ReplayOptions::default());
    assert_eq!(r.divergences, 1);
    let d = r.first_divergence.as_ref().unwrap();
    assert_eq!(
        (d.event, d.buffer, d.recorded, d.model),
        (bad, 2, 60000, Some(65536))
    );
    assert!(r.fails(&[FailKind::Divergence]));
}

#[test]
fn an_id_allocated_again_replaces_the_first_buffer() {
    let mut t = Trace::new();
    let s = t.site(&[("f", "w.py", 1)]);
    t.open(0);
    t.open(1);
    t.alloc(0, 1, BufferType::Dram, 4096, s);
    // Same device, same id: the first one is gone; peaks never hold both.
    t.alloc(0, 1, BufferType::Dram, 8192, s);
    // Another device, same id: moves there.
    let last = t.alloc(1, 1, BufferType::L1, 2048, s);
    t.push(EventKind::ProgramLoad {
        device: DeviceId(0),
        program: ProgramId(7),
        binary_size: 1000,
        site: s,
    });
    t.push(EventKind::ProgramLoad {
        device: DeviceId(0),
        program: ProgramId(7),
        binary_size: 3000,
        site: s,
    });
    let r = t.replay(&ReplayOptions::default());
    assert_eq!(r.duplicate_allocs, 3);
    // Device 0 held the 8192 B buffer (never with the 4096 B one), then only
    // binaries once the id moved to device 1.
    assert_eq!(r.peak["0"].dram, 8192);
    assert_eq!(r.leaks.len(), 2, "{:?}", r.leaks);
    let buf = r
        .leaks
        .iter()
        .find(|l| l.object == ObjectKind::Buffer)
        .unwrap();
    assert_eq!((buf.device, buf.size, buf.event), (1, 2048, last));
    let prog = r
        .leaks
        .iter()
        .find(|l| l.object == ObjectKind::Program)
        .unwrap();
    assert_eq!(prog.size, 3000);
    assert_eq!(r.rejected_allocs, 0, "{:?}", r.first_rejection);
}

#[test]
fn dram_without_page_size_spreads_and_its_oom_hint_names_a_dram_setting() {
    // Twenty 100 MiB DRAM buffers (2 GiB of a 12 GiB wormhole_b0) with no
    // page size fit: unknown page size spreads a buffer over all 12 banks.
    let mut t = Trace::new();
    t.open(0);
    for b in 0..20 {
        t.push(EventKind::BufferAlloc {
            device: DeviceId(0),
            buffer: BufferId(b),
            buffer_type: BufferType::Dram,
            address: None,
            size: 100 << 20,
            page_size: None,
            layout: Layout::Interleaved,
            num_cores: None,
            per_bank_size: None,
            label: StringId::EMPTY,
            site: SiteId::UNKNOWN,
        });
    }
    let r = t.replay(&ReplayOptions::default());
    assert!(r.oom.is_none(), "{}", r.render_human());
    // 11 GiB more cannot fit (12 x 1 GiB banks hold 2 GiB already). The
    // preset has no trace region (0 B) and L1_SMALL is L1's neighbour, not
    // DRAM's: the hint suggests shrinking neither.
    t.push(EventKind::BufferAlloc {
        device: DeviceId(0),
        buffer: BufferId(99),
        buffer_type: BufferType::Dram,
        address: None,
        size: 11 << 30,
        page_size: None,
        layout: Layout::Interleaved,
        num_cores: None,
        per_bank_size: None,
        label: StringId::EMPTY,
        site: SiteId::UNKNOWN,
    });
    let r = t.replay(&ReplayOptions::default());
    assert!(r.oom.is_some());
    let human = r.render_human();
    assert!(
        human.contains("hint: the DRAM banks are full: free what is left behind\n"),
        "{human}"
    );
    assert!(!human.contains("l1_small_size"), "{human}");
    // With a 32 MiB trace region carved from DRAM, the hint names it.
    let r = t.replay(&ReplayOptions {
        overrides: {
            let mut c = DeviceConfig::default();
            c.set("trace_region_size", "32M").unwrap();
            c
        },
        ..ReplayOptions::default()
    });
    let human = r.render_human();
    assert!(
        human.contains("shrink the trace region (now 33,554,432 B per bank)"),
        "{human}"
    );
}

#[test]
fn a_warmup_longer_than_the_trace_says_growth_was_not_analysed() {
    // Three device-span cycles; a warm-up of 10 leaves none to analyse.
    let (t, _) = mesh_runs(1);
    let r = t.replay(&ReplayOptions {
        warmup: 10,
        ..ReplayOptions::default()
    });
    assert!(r.growth.is_empty());
    let human = r.render_human();
    assert!(
        human.contains("growth was not analysed: the warm-up of 10 cycles excludes all 3 cycles"),
        "{human}"
    );
}
