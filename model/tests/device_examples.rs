//! Worked examples of what a tt-metal device holds besides buffers and
//! how it reports it: program binaries and traces (directions, page
//! sizes), circular buffers against L1 buffers, `close`, the memory view,
//! presets and overrides. Hand-computed in the comments (reference:
//! ../shared/reference/tt-metal-memory.md §5, tt-metal's `allocator.cpp`
//! and `program.cpp`). Buffer placement examples: `alloc_examples.rs`.

use ttalloc_model::alloc::{preset, trace_page_size, AllocRequest, CbClashKind, Device, Owner};
use ttalloc_model::{Arch, BufferId, BufferType, DeviceConfig, Layout, ProgramId, TraceId};

fn wormhole() -> Device {
    Device::new(Arch::WormholeB0, &DeviceConfig::default()).unwrap()
}

#[test]
fn default_directions_programs_and_traces() {
    // Trace region of 1 MiB: the DRAM bank shrinks by it
    // (1073741792 - 1048576 = 1072693216) and the trace region starts at
    // 32 + 1072693216 = 1072693248.
    let cfg = DeviceConfig {
        trace_region_size: Some(1 << 20),
        ..Default::default()
    };
    let mut d = Device::new(Arch::WormholeB0, &cfg).unwrap();
    assert_eq!(d.config().dram_bank_size, Some(1_072_693_216));
    // Trace of 12 * 2048 B: 2048 B per bank, bottom-up in the trace region.
    let t = d.capture_trace(TraceId(1), 12 * 2048).unwrap();
    assert_eq!((t.address, t.per_bank), (1_072_693_248, 2048));
    // Program binaries: DRAM top-down. 24 KiB in 2048 B pages = 12 pages,
    // one per bank, at the top of the DRAM bank: 1072693248 - 2048.
    let p = d.load_program(ProgramId(3), 24 * 1024).unwrap();
    assert_eq!(p.address, 1_072_693_248 - 2048);
    let rel = d.unload_program(ProgramId(3)).unwrap();
    assert_eq!(
        (rel.owner, rel.buffer_type, rel.address),
        (Owner::Program(ProgramId(3)), BufferType::Dram, p.address)
    );
    assert!(d.unload_program(ProgramId(3)).is_none());

    // tt-metal picks the trace page among 1024/2048/4096 B: the largest
    // with the least padding to whole pages in all 12 banks.
    // 98304 B = 8 x 12 x 1024 = 4 x 12 x 2048 = 2 x 12 x 4096: no padding, 4096.
    assert_eq!(trace_page_size(98_304, 12), 4096);
    // 100000 B pads to 110592 (1024 B pages), 122880 (2048), 147456 (4096): 1024.
    assert_eq!(trace_page_size(100_000, 12), 1024);
    // Without a trace region, traces go top-down in DRAM.
    let mut w = wormhole();
    let t = w.capture_trace(TraceId(1), 12 * 2048).unwrap();
    assert_eq!(t.address, 32 + 1_073_741_792 - 2048);
    let rel = w.release_trace(TraceId(1)).unwrap();
    assert_eq!(rel.buffer_type, BufferType::Dram);
    assert_eq!(w.stats(BufferType::Dram).allocated, 0);

    // L1_SMALL (64 KiB) sits at the top of L1, above the shrunk L1 bank:
    // l1_bank_size = 1499136 - 134208 - 65536 = 1299392, base 134208 + 1299392 = 1433600.
    let cfg = DeviceConfig {
        l1_small_size: Some(64 << 10),
        ..Default::default()
    };
    let mut s = Device::new(Arch::WormholeB0, &cfg).unwrap();
    assert_eq!(s.config().l1_bank_size, Some(1_299_392));
    let req = AllocRequest::sharded(BufferType::L1Small, 4 * 2048, Some(2048), 4);
    // One page per shard, top-down: 1433600 + 65536 - 2048 = 1497088.
    assert_eq!(s.allocate(BufferId(1), &req).unwrap().address, 1_497_088);
    // Interleaved L1_SMALL: tt-metal refuses; recordings often lack the
    // layout, so it is allowed unless the device is strict.
    let inter = AllocRequest::interleaved(BufferType::L1Small, 2048, Some(2048));
    assert!(s.allocate(BufferId(2), &inter).is_ok());
    s.set_strict(true);
    let err = s.allocate(BufferId(3), &inter).unwrap_err();
    assert_eq!(
        err.to_string(),
        "L1_SMALL only supports sharded allocations, see validate_num_banks"
    );
    // An explicit direction overrides the default: L1 bottom-up starts at the base.
    let up = AllocRequest::interleaved(BufferType::L1, 64 * 2048, Some(2048)).with_bottom_up(true);
    assert_eq!(s.allocate(BufferId(4), &up).unwrap().address, 134_208);
}

#[test]
fn circular_buffers_clash_with_low_l1_buffers() {
    let mut d = wormhole();
    d.load_program(ProgramId(7), 2048).unwrap();
    // CBs from the L1 base up: [134208, 134208 + 8192) ends at 142400. L1 empty: fine.
    d.cb_alloc(134_208, 8192, Some(64), false).unwrap();
    d.cb_free_all();
    // An L1 buffer reaching down to 134208 + 4096 = 138304: 1364928 - 4096 =
    // 1360832 B per bank, sharded over 64 cores, top-down from 1499136.
    let big = AllocRequest::sharded(BufferType::L1, 64 * 1_360_832, Some(1_360_832), 64);
    assert_eq!(big.layout, Layout::HeightSharded);
    let p = d.allocate(BufferId(1), &big).unwrap();
    assert_eq!(p.address, 138_304);
    let clash = d.cb_alloc(134_208, 8192, Some(64), false).unwrap_err();
    assert_eq!(
        clash.kind,
        CbClashKind::L1Buffer {
            l1_buffer_address: 138_304
        }
    );
    assert_eq!(
        clash.to_string(),
        "Statically allocated circular buffers in program 7 clash with L1 buffers on core range [64 cores]. L1 buffer \
         allocated at 138304 and static circular buffer region ends at 142400"
    );
    // A region ending right at the L1 buffer does not clash.
    d.cb_free_all();
    d.cb_alloc(134_208, 4096, Some(64), false).unwrap();
    // CBs without a recorded address stack up from the L1 base:
    // 134208, then 134208 + 1000 = 135208 rounded up to 16 B = 135216.
    d.cb_free_all();
    d.deallocate(BufferId(1)).unwrap();
    assert_eq!(d.cb_place(1000, None), Ok(134_208));
    assert_eq!(d.cb_place(64, None), Ok(135_216));
    assert_eq!(d.cb_region_end(), Some(135_280));
    d.allocate(BufferId(1), &big).unwrap();
    // Globally allocated CBs live inside L1 buffers: no check.
    assert!(d.cb_alloc(140_000, 4096, None, true).is_ok());
    // A region past the top of worker L1 (1499136).
    d.cb_free_all();
    d.deallocate(BufferId(1)).unwrap();
    let beyond = d.cb_alloc(1_490_000, 10_000, None, false).unwrap_err();
    assert_eq!(
        beyond.to_string(),
        "Statically allocated circular buffers on core range [all cores] grow to 1500000 B which is beyond max L1 \
         size of 1499136 B"
    );
    // One ending right at the top of worker L1 does not.
    d.cb_free_all();
    d.cb_alloc(1_490_000, 9_136, None, false).unwrap();
}

#[test]
fn circular_buffers_are_counted_until_their_free_all() {
    let mut d = wormhole();
    assert_eq!(d.cb_count(), 0);
    // Every CB counts: static, globally allocated, placed, clashing or not
    // (a clashing CB was still created by its program), through the full
    // check and the fit-only one alike.
    d.cb_alloc(134_208, 8192, Some(64), false).unwrap();
    d.cb_alloc(140_000, 4096, None, true).unwrap();
    assert_eq!(d.cb_place(1000, None), Ok(142_400));
    assert!(d.cb_alloc_fits(134_208, 64, None, false));
    assert!(d.cb_alloc(1_490_000, 10_000, None, false).is_err());
    assert!(!d.cb_alloc_fits(1_490_000, 10_000, None, false));
    // Placed at the region's end, 1500000: beyond worker L1 too.
    assert!(!d.cb_place_fits(64, None));
    assert!(d.cb_alloc_fits(0, 4096, None, true));
    assert_eq!(d.cb_count(), 8);
    // Static bytes: 8192 + 1000 + 64 + 10000 + 10000 + 64; the globally
    // allocated CBs live inside L1 buffers and add none.
    assert_eq!(d.cb_static_bytes(), 29_320);
    d.cb_free_all();
    assert_eq!(d.cb_count(), 0);
    assert_eq!(d.cb_region_end(), None);
    d.cb_alloc(140_000, 4096, None, true).unwrap();
    assert_eq!(d.cb_count(), 1);
    d.close();
    assert_eq!(d.cb_count(), 0);
}

#[test]
fn close_releases_everything_still_live() {
    let mut d = wormhole();
    let dram = AllocRequest::interleaved(BufferType::Dram, 12 * 2048, Some(2048));
    let l1 = AllocRequest::interleaved(BufferType::L1, 64 * 2048, Some(2048));
    d.allocate(BufferId(1), &dram).unwrap(); // DRAM at 32
    d.allocate(BufferId(2), &dram).unwrap(); // DRAM at 2080
    d.allocate(BufferId(3), &l1).unwrap(); // L1 at 1499136 - 2048 = 1497088
    d.allocate(
        BufferId(4),
        &AllocRequest::interleaved(BufferType::SystemMemory, 500, None),
    )
    .unwrap();
    d.load_program(ProgramId(1), 2048).unwrap();
    assert_eq!(d.deallocate(BufferId(2)).unwrap().address, 2080);
    assert!(
        d.deallocate(BufferId(2)).is_none(),
        "a second free is ignored"
    );
    assert!(
        d.deallocate(BufferId(99)).is_none(),
        "unknown buffers are ignored"
    );
    assert_eq!(d.stats(BufferType::SystemMemory).allocated, 500);

    // Before closing, the same set is visible as live.
    let mut live: Vec<Owner> = d.live_all().map(|r| r.owner).collect();
    live.sort();
    assert_eq!(
        live,
        vec![
            Owner::Buffer(BufferId(1)),
            Owner::Buffer(BufferId(3)),
            Owner::Buffer(BufferId(4)),
            Owner::Program(ProgramId(1))
        ]
    );
    let released = d.close();
    let summary: Vec<(Owner, BufferType, u64)> = released
        .iter()
        .map(|r| (r.owner, r.buffer_type, r.address))
        .collect();
    assert_eq!(
        summary,
        vec![
            (Owner::Buffer(BufferId(1)), BufferType::Dram, 32),
            (
                Owner::Program(ProgramId(1)),
                BufferType::Dram,
                1_073_741_824 - 2048
            ),
            (Owner::Buffer(BufferId(3)), BufferType::L1, 1_497_088),
            (Owner::Buffer(BufferId(4)), BufferType::SystemMemory, 0),
        ]
    );
    assert_eq!(released[0].device_bytes(), 12 * 2048);
    for bt in BufferType::DEVICE {
        let st = d.stats(bt);
        assert_eq!((st.allocated, st.free), (0, st.total_allocatable), "{bt}");
    }
    assert!(!d.is_live(BufferId(1)));
}

#[test]
fn memory_view_names_owners() {
    let mut d = wormhole();
    let dram = AllocRequest::interleaved(BufferType::Dram, 12 * 2048, Some(2048));
    d.allocate(BufferId(10), &dram).unwrap();
    d.allocate(BufferId(11), &dram).unwrap();
    d.deallocate(BufferId(10));
    let view = d.memory_view(BufferType::Dram);
    // [32, 2080) free, [2080, 4128) buffer 11, the rest free.
    assert_eq!(view.len(), 3);
    assert_eq!(
        (
            view[0].address,
            view[0].size,
            view[0].allocated,
            view[0].owner
        ),
        (32, 2048, false, None)
    );
    assert_eq!(view[1].owner, Some(Owner::Buffer(BufferId(11))));
    assert_eq!(
        (view[2].address, view[2].size),
        (4128, 1_073_741_824 - 4128)
    );
    let st = d.stats(BufferType::Dram);
    assert_eq!(st.largest_free_address, Some(4128));
    assert_eq!(st.fragmented_bytes(), 2048);
    assert!(d.memory_view(BufferType::SystemMemory).is_empty());
}

#[test]
fn presets_and_overrides() {
    let wh = preset(Arch::WormholeB0);
    assert_eq!(wh.dram_banks, Some(12));
    assert_eq!(wh.dram_bank_size, Some(1_073_741_792));
    assert_eq!(wh.worker_l1_size, Some(1_499_136));
    assert_eq!(preset(Arch::Unknown), wh);
    let bh = preset(Arch::Blackhole);
    assert_eq!(
        (bh.dram_banks, bh.dram_alignment, bh.worker_l1_size),
        (Some(8), Some(64), Some(1_572_864))
    );
    // Every field of the presets is known.
    assert_eq!(wh.known().len(), DeviceConfig::KEYS.len());
    assert_eq!(bh.known().len(), DeviceConfig::KEYS.len());

    // Explicit values win over derived ones.
    let mut cfg = DeviceConfig::default();
    cfg.set("l1_banks", "56").unwrap();
    cfg.set("dram_bank_size", "1G").unwrap();
    cfg.set("trace_region_size", "16M").unwrap();
    let d = Device::new(Arch::WormholeB0, &cfg).unwrap();
    assert_eq!(d.config().dram_bank_size, Some(1 << 30));
    assert_eq!(
        d.bank_manager(BufferType::Trace).unwrap().base(),
        32 + (1 << 30)
    );
    assert_eq!(d.bank_manager(BufferType::L1).unwrap().num_banks(), 56);

    // "Would it have fit with a 1 MiB L1_SMALL?" (README's what-if): the L1
    // bank gives way, 1499136 - 134208 - 1048576 = 316352 B per core, and
    // L1_SMALL sits above it.
    let cfg = DeviceConfig {
        l1_small_size: Some(1 << 20),
        ..Default::default()
    };
    let d = Device::new(Arch::WormholeB0, &cfg).unwrap();
    assert_eq!(d.config().l1_bank_size, Some(316_352));
    assert_eq!(
        d.bank_manager(BufferType::L1Small).unwrap().base(),
        134_208 + 316_352
    );
    // A 2 MiB L1_SMALL cannot exist on a 1464 KiB core: a clear error.
    let cfg = DeviceConfig {
        l1_small_size: Some(2 << 20),
        ..Default::default()
    };
    let err = Device::new(Arch::WormholeB0, &cfg).unwrap_err();
    assert!(
        err.to_string().contains("exceed worker_l1_size 1499136"),
        "{err}"
    );
    // A recorded L1 bank size and base plus a what-if L1_SMALL region
    // overflow the core: 134208 + 1364928 + 65536 > 1499136.
    let cfg = DeviceConfig {
        l1_unreserved_base: Some(134_208),
        l1_bank_size: Some(1_364_928),
        l1_small_size: Some(64 << 10),
        ..Default::default()
    };
    let err = Device::new(Arch::WormholeB0, &cfg).unwrap_err();
    assert!(
        err.to_string().contains("leave l1_bank_size unknown"),
        "{err}"
    );
    // A bank size without its base (what ttnn's get_memory_view tells)
    // derives the base below it instead: 1499136 - 1364928 - 65536 = 68672.
    let cfg = DeviceConfig {
        l1_bank_size: Some(1_364_928),
        l1_small_size: Some(64 << 10),
        ..Default::default()
    };
    let d = Device::new(Arch::WormholeB0, &cfg).unwrap();
    assert_eq!(d.config().l1_unreserved_base, Some(68_672));
    let cfg = DeviceConfig {
        dram_alignment: Some(0),
        ..Default::default()
    };
    assert!(Device::new(Arch::WormholeB0, &cfg).is_err());
}

#[test]
fn circular_buffer_totals_follow_allocations_and_free_all() {
    let mut d = wormhole();
    // Two static CBs, the higher one recorded first, and a globally
    // allocated one (inside an L1 buffer: counted in neither figure).
    d.cb_alloc(0x2_0000, 1024, Some(64), false).unwrap();
    d.cb_alloc(0x1_9000, 4096, Some(64), false).unwrap();
    d.cb_alloc(0x8_0000, 65536, None, true).unwrap();
    // 1024 + 4096 B per core; the region ends at the highest end,
    // 0x2_0000 + 1024 = 0x2_0400, not at the last CB's 0x1_a000.
    assert_eq!(d.cb_static_bytes(), 5120);
    assert_eq!(d.cb_region_end(), Some(0x2_0400));
    d.cb_free_all();
    assert_eq!((d.cb_static_bytes(), d.cb_region_end()), (0, None));
    d.cb_alloc(0x1_9000, 2048, None, false).unwrap();
    assert_eq!(d.cb_static_bytes(), 2048);
    assert_eq!(d.cb_region_end(), Some(0x1_9800));
}
