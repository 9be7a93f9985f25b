//! Worked examples of tt-metal's allocator rules, computed by hand in the
//! comments (reference: ../shared/reference/tt-metal-memory.md §5 and
//! tt-metal's `bank_manager.cpp`, `free_list_opt.cpp`, `allocator.cpp`).

use ttalloc_model::alloc::{
    preset, size_per_bank, trace_page_size, AllocError, AllocRequest, BankManager, CbClashKind,
    Device, FreeList, Owner, Span,
};
use ttalloc_model::{Arch, BufferId, BufferType, DeviceConfig, Layout, ProgramId, TraceId};

fn wormhole() -> Device {
    Device::new(Arch::WormholeB0, &DeviceConfig::default()).unwrap()
}

fn span(address: u64, size: u64, allocated: bool) -> Span {
    Span {
        address,
        size,
        allocated,
    }
}

#[test]
fn per_bank_size_interleaved() {
    // 100 tiles of 2048 B over Wormhole's 12 DRAM banks:
    // ceil(100 / 12) = 9 pages per bank; 9 * round_up(2048, 32) = 18432 B.
    assert_eq!(
        size_per_bank(100 * 2048, Some(2048), 12, 32),
        (18432, 204800)
    );
    // A 100 B page rounds to 112 at 16 B (L1): 10 pages over 64 banks is one
    // page per bank = 112 B; tt-metal's aligned size is 10 * 112 = 1120 B.
    assert_eq!(size_per_bank(1000, Some(100), 64, 16), (112, 1120));
    // Page size unknown: the buffer spreads over all banks. ceil(1000 / 12)
    // = 84 B per bank, rounded up to 32 B = 96 B; the aligned total is
    // round_up(1000, 32) = 1024 B. A page size of 0 means the same.
    assert_eq!(size_per_bank(1000, None, 12, 32), (96, 1024));
    assert_eq!(size_per_bank(1000, Some(0), 12, 32), (96, 1024));

    let mut d = wormhole();
    let req = AllocRequest::interleaved(BufferType::Dram, 100 * 2048, Some(2048));
    // DRAM is bottom-up from the unreserved base (32 on Wormhole).
    let a = d.allocate(BufferId(1), &req).unwrap();
    assert_eq!((a.address, a.per_bank, a.num_banks), (32, 18432, 12));
    // The next one sits right above it: 32 + 18432 = 18464.
    let b = d.allocate(BufferId(2), &req).unwrap();
    assert_eq!(b.address, 18464);
    assert_eq!(d.stats(BufferType::Dram).allocated, 2 * 18432);
}

#[test]
fn per_bank_size_sharded() {
    // 32 tiles height-sharded over 8 cores: ceil(32 / 8) = 4 pages per shard
    // = 4 * 2048 = 8192 B per bank (the shard count replaces the 64 L1 banks).
    let mut d = wormhole();
    let req = AllocRequest::sharded(BufferType::L1, 32 * 2048, Some(2048), 8);
    let p = d.allocate(BufferId(1), &req).unwrap();
    assert_eq!((p.per_bank, p.num_banks), (8192, 8));
    // L1 is top-down: the bank spans [134208, 134208 + 1364928) = [134208,
    // 1499136), so the buffer lands at 1499136 - 8192 = 1490944.
    assert_eq!(p.address, 1_490_944);

    // The same buffer interleaved over all 64 banks: ceil(32 / 64) = 1 page.
    let q = d
        .allocate(
            BufferId(2),
            &AllocRequest::interleaved(BufferType::L1, 32 * 2048, Some(2048)),
        )
        .unwrap();
    assert_eq!(
        (q.per_bank, q.num_banks, q.address),
        (2048, 64, 1_490_944 - 2048)
    );
}

#[test]
fn alignment_rounding_and_minimum_allocation() {
    // A free list at 32 B alignment over [0, 1024).
    let mut fl = FreeList::new(0, 1024, 32, 32).unwrap();
    // 1 B -> max(1, 32) = 32 -> 32.   100 B -> ceil(100 / 32) * 32 = 128.
    assert_eq!(fl.alloc_size(1), 32);
    assert_eq!(fl.alloc_size(100), 128);
    assert_eq!(fl.alloc_size(0), 32);
    assert_eq!(fl.allocate(1, true), Some(0));
    assert_eq!(fl.allocate(100, true), Some(32));
    assert_eq!(fl.allocated_bytes(), 32 + 128);

    // L1 pages round to 16 B but tt-metal's free lists use the DRAM alignment
    // (32 B on Wormhole): a 100 B page becomes 112 B per bank, reserved as 128 B.
    let mut d = wormhole();
    let p = d
        .allocate(
            BufferId(7),
            &AllocRequest::interleaved(BufferType::L1, 1000, Some(100)),
        )
        .unwrap();
    assert_eq!(p.per_bank, 128);
    assert_eq!(p.address, 1_499_136 - 128);

    // Blackhole aligns DRAM to 64 B: a 1 B buffer takes 64 B at the P150's
    // DRAM base, 1048704 (= 16386 * 64, see preset::blackhole).
    let mut bh = Device::new(Arch::Blackhole, &DeviceConfig::default()).unwrap();
    let p = bh
        .allocate(
            BufferId(1),
            &AllocRequest::interleaved(BufferType::Dram, 1, None),
        )
        .unwrap();
    assert_eq!((p.address, p.per_bank, p.num_banks), (1_048_704, 64, 8));
}

#[test]
fn top_down_and_bottom_up_share_one_bank_manager() {
    // One manager, 4 banks of [0, 1024), 32 B alignment. Sizes are per bank
    // (sharded over 1 core so that size == per-bank size).
    let mut m = BankManager::new(BufferType::Dram, 4, 0, 1024, 32, 32).unwrap();
    let one = Some(1);
    // A: 100 B bottom-up -> 128 B at the bottom: [0, 128).
    assert_eq!(m.allocate(100, None, one, true).unwrap().address, 0);
    // B: 64 B top-down -> the top 64 B: 1024 - 64 = 960.
    assert_eq!(m.allocate(64, None, one, false).unwrap().address, 960);
    // C: 32 B bottom-up -> lowest fitting block [128, 960) -> 128.
    assert_eq!(m.allocate(32, None, one, true).unwrap().address, 128);
    // D: 200 B top-down -> 224 B from the top of [160, 960) -> 960 - 224 = 736.
    assert_eq!(m.allocate(200, None, one, false).unwrap().address, 736);
    // Allocated 128 + 64 + 32 + 224 = 448; free 1024 - 448 = 576, all in [160, 736).
    let st = m.statistics();
    assert_eq!(
        (
            st.allocated,
            st.free,
            st.largest_free,
            st.largest_free_address
        ),
        (448, 576, 576, Some(160))
    );
    assert_eq!(
        m.blocks().collect::<Vec<_>>(),
        vec![
            span(0, 128, true),
            span(128, 32, true),
            span(160, 576, false),
            span(736, 224, true),
            span(960, 64, true)
        ]
    );
}

#[test]
fn freeing_coalesces_with_both_neighbours() {
    let mut fl = FreeList::new(0, 1024, 32, 32).unwrap();
    let a = fl.allocate(128, true).unwrap(); // [0, 128)
    let b = fl.allocate(128, true).unwrap(); // [128, 256)
    let c = fl.allocate(128, true).unwrap(); // [256, 384), free [384, 1024)
    assert_eq!((a, b, c), (0, 128, 256));
    // Free A: no free neighbour below, B above is allocated: two free blocks.
    assert_eq!(fl.deallocate(a), Some(128));
    assert_eq!(fl.num_free_blocks(), 2);
    // Free C: merges with the free [384, 1024) above -> [256, 1024) = 768 B.
    fl.deallocate(c);
    assert_eq!(
        fl.blocks().collect::<Vec<_>>(),
        vec![
            span(0, 128, false),
            span(128, 128, true),
            span(256, 768, false)
        ]
    );
    // Free B: merges with both -> one block [0, 1024).
    fl.deallocate(b);
    assert_eq!(fl.blocks().collect::<Vec<_>>(), vec![span(0, 1024, false)]);
    assert_eq!(fl.largest_free_addresses(), vec![0]);
    // Freeing an unknown address is ignored, as in tt-metal.
    assert_eq!(fl.deallocate(512), None);
    assert_eq!(fl.largest_free(), Some((0, 1024)));
}

#[test]
fn out_of_memory_text_with_fragmentation() {
    // Rebuild the state behind a real tt-metal failure (tt-mlir #8044):
    // "Out of Memory: Not enough space to allocate 26542080 B L1 buffer across
    // 48 banks, where each bank needs to store 552960 B, but bank size is
    // 1329888 B (allocated: 417792 B, free: 912096 B, largest free block: 522240 B)".
    //
    // L1, 48 banks of 1329888 B, top-down. X and Y are 208896 B each
    // (allocated 2 * 208896 = 417792), with a 522240 B hole between them:
    //   Y at 1329888 - 208896 = 1120992, Z (522240) at 598752, X at 389856,
    //   then Z is freed: free = [0, 389856) + [598752, 1120992)
    //   = 389856 + 522240 = 912096 B, the largest block 522240 B.
    let mut m = BankManager::new(BufferType::L1, 48, 0, 1_329_888, 16, 32).unwrap();
    let one = Some(1);
    assert_eq!(
        m.allocate(208_896, None, one, false).unwrap().address,
        1_120_992
    );
    let z = m.allocate(522_240, None, one, false).unwrap().address;
    assert_eq!(z, 598_752);
    assert_eq!(
        m.allocate(208_896, None, one, false).unwrap().address,
        389_856
    );
    m.deallocate(z);

    // 26542080 B in 2048 B pages = 12960 pages; over 48 banks 270 pages =
    // 270 * 2048 = 552960 B per bank, more than the largest hole.
    let oom = m.allocate(26_542_080, Some(2048), None, false).unwrap_err();
    assert_eq!(
        oom.to_string(),
        "Out of Memory: Not enough space to allocate 26542080 B L1 buffer across 48 banks, where each bank needs to \
         store 552960 B, but bank size is 1329888 B (allocated: 417792 B, free: 912096 B, largest free block: 522240 B)"
    );
    // 912096 B are free (>= 552960) but no block holds 552960 B: fragmentation.
    assert!(oom.is_fragmentation());
    assert!(
        oom.verdict().starts_with("fragmentation"),
        "{}",
        oom.verdict()
    );
    // The failed attempt changed nothing.
    assert_eq!(m.statistics().allocated, 417_792);
}

#[test]
fn out_of_memory_from_exhaustion_is_not_fragmentation() {
    // Wormhole DRAM: 12 banks of 1073741792 B. 13 GiB in 2048 B pages is
    // 6815744 pages, ceil(6815744 / 12) = 567979 pages per bank
    // = 1163220992 B > 1073741792 B.
    let mut d = wormhole();
    let err = d
        .allocate(
            BufferId(1),
            &AllocRequest::interleaved(BufferType::Dram, 13 << 30, Some(2048)),
        )
        .unwrap_err();
    let AllocError::OutOfMemory(oom) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        err.to_string(),
        "Out of Memory: Not enough space to allocate 13958643712 B DRAM buffer across 12 banks, where each bank needs \
         to store 1163220992 B, but bank size is 1073741792 B (allocated: 0 B, free: 1073741792 B, largest free block: \
         1073741792 B)"
    );
    assert!(!oom.is_fragmentation());
    assert!(!d.is_live(BufferId(1)));
}

#[test]
fn allocate_at_a_recorded_address() {
    let mut d = wormhole();
    let req = AllocRequest::interleaved(BufferType::Dram, 12 * 2048, Some(2048)); // 2048 B per bank
                                                                                  // Place at 32 + 4096 (recorded), leaving a 4096 B hole below it.
    let p = d.allocate_at(BufferId(1), &req, 4128).unwrap();
    assert_eq!((p.address, p.per_bank), (4128, 2048));
    // First fit now takes the hole: 32, then 32 + 2048 = 2080, then above: 4128 + 2048 = 6176.
    assert_eq!(d.allocate(BufferId(2), &req).unwrap().address, 32);
    assert_eq!(d.allocate(BufferId(3), &req).unwrap().address, 2080);
    assert_eq!(d.allocate(BufferId(4), &req).unwrap().address, 6176);
    // A second buffer at 5000 (inside buffer 1's [4128, 6176)) is refused
    // and points at the block in the way.
    let err = d.allocate_at(BufferId(5), &req, 5000).unwrap_err();
    assert_eq!(
        err,
        AllocError::AddressTaken {
            buffer_type: BufferType::Dram,
            address: 5000,
            per_bank: 2048,
            blocking: Some((4128, 2048))
        }
    );
    assert_eq!(
        d.owner_at(BufferType::Dram, 4128),
        Some(Owner::Buffer(BufferId(1)))
    );
    // Free buffer 1: [4128, 6176) is free again. A range from 5152 starts in
    // that free block but runs into buffer 4 at 6176.
    d.deallocate(BufferId(1));
    let err = d.allocate_at(BufferId(5), &req, 5152).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("the range is not free (a 2048 B block is allocated at 6176)"),
        "{err}"
    );
    // Past the end of the bank (32 + 1073741792 = 1 GiB): out of memory.
    let err = d
        .allocate_at(BufferId(5), &req, (1 << 30) - 1024)
        .unwrap_err();
    assert!(err.out_of_memory().is_some(), "{err:?}");
    assert!(matches!(
        d.allocate(BufferId(2), &req),
        Err(AllocError::AlreadyLive { .. })
    ));
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
fn statistics_list_every_largest_free_block() {
    // Four 256 B blocks fill [0, 1024); freeing the 1st and 3rd leaves two
    // 256 B holes at 0 and 512: free 512 B, largest 256 B at 0 (and 512).
    let mut m = BankManager::new(BufferType::Dram, 1, 0, 1024, 32, 32).unwrap();
    let a: Vec<u64> = (0..4)
        .map(|_| m.allocate(256, None, None, true).unwrap().address)
        .collect();
    assert_eq!(a, vec![0, 256, 512, 768]);
    m.deallocate(0);
    m.deallocate(512);
    let st = m.statistics();
    assert_eq!(
        (st.free, st.largest_free, st.largest_free_address),
        (512, 256, Some(0))
    );
    assert_eq!(m.free_list().largest_free_addresses(), vec![0, 512]);
    // Half the free bytes are outside the largest block.
    assert_eq!(st.fragmented_bytes(), 256);
    assert_eq!(st.fragmentation(), 0.5);
}

#[test]
fn extreme_free_list_geometry_does_not_panic() {
    // One 2^63 B unit: one bucket ending past 2^64.
    let mut fl = FreeList::new(1 << 62, 1 << 63, 1 << 63, 1).unwrap();
    assert_eq!(fl.allocate(1, false), Some(1 << 62));
    assert_eq!(fl.allocate(1, true), None);
    assert_eq!(fl.deallocate(1 << 62), Some(1 << 63));
    // Too many units for the tree, or an empty range.
    assert!(FreeList::new(0, 1 << 40, 1, 1).is_err());
    assert!(FreeList::new(u64::MAX, 2, 1, 1).is_err());
    let mut empty = FreeList::new(0, 0, 32, 32).unwrap();
    assert_eq!(empty.allocate(1, true), None);
    assert_eq!(empty.largest_free(), None);
    assert_eq!(empty.blocks().count(), 0);
}

#[test]
fn buffers_without_a_page_size_spread_over_all_banks() {
    // Twenty 100 MiB DRAM buffers are 2 GiB of a 12 GiB wormhole_b0: they
    // fit. Each needs ceil(104857600 / 12) = 8738134 B per bank, rounded up
    // to 32 B = 8738144 B (20 of them: 174.8 MB of each 1 GiB bank). Taken
    // as one page stored whole in every bank, the 11th would not fit.
    let mut d = wormhole();
    for i in 0..20 {
        let req = AllocRequest::interleaved(BufferType::Dram, 100 << 20, None);
        let p = d
            .allocate(BufferId(i), &req)
            .unwrap_or_else(|e| panic!("buffer {i}: {e:?}"));
        assert_eq!((p.per_bank, p.num_banks), (8_738_144, 12));
    }
}
