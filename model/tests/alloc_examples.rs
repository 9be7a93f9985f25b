//! Worked examples of tt-metal's buffer placement rules (per-bank sizes,
//! alignment, directions, coalescing, out-of-memory text, recorded
//! addresses, statistics), computed by hand in the comments (reference:
//! ../shared/reference/tt-metal-memory.md §5 and tt-metal's
//! `bank_manager.cpp`, `free_list_opt.cpp`, `allocator.cpp`). Programs,
//! traces, circular buffers, close and presets: `device_examples.rs`.

use ttalloc_model::alloc::{
    size_per_bank, AllocError, AllocRequest, BankManager, Device, FreeList, Owner, Span,
};
use ttalloc_model::{Arch, BufferId, BufferType, DeviceConfig};

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
