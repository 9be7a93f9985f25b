//! A recorded per-bank size (tt-metal's `max_size_per_bank`, format 2.1)
//! overrides the model's own spread: tt-metal reserves whole shards, padding
//! included, which the size alone does not tell.

use ttalloc_model::alloc::{AllocError, AllocRequest, Device};
use ttalloc_model::{Arch, BufferId, BufferType, DeviceConfig, Layout};

/// A 3x3-tile tensor (9 pages of 2048 B) block-sharded on a 2x2 grid with
/// 2x2-tile shards: every core holds a full 4-tile shard, padding included,
/// so tt-metal reserves 4 * 2048 = 8192 B per bank; from the size alone the
/// model would spread 9 pages over 4 banks, ceil(9/4) = 3 pages = 6144 B.
fn padded_block_shard() -> AllocRequest {
    AllocRequest {
        buffer_type: BufferType::L1,
        size: 9 * 2048,
        page_size: Some(2048),
        layout: Layout::BlockSharded,
        num_cores: Some(4),
        bottom_up: None,
        per_bank_size: None,
    }
}

fn wormhole() -> Device {
    Device::new(Arch::WormholeB0, &DeviceConfig::default()).unwrap()
}

#[test]
fn a_recorded_per_bank_size_moves_the_buffer_and_the_next_one() {
    // L1 is top-down from the bank's end, 1499136 on Wormhole.
    let mut computed = wormhole();
    let a = computed
        .allocate(BufferId(1), &padded_block_shard())
        .unwrap();
    assert_eq!((a.per_bank, a.address), (6144, 1_499_136 - 6144));

    let mut recorded = wormhole();
    let req = padded_block_shard().with_per_bank_size(8192);
    let b = recorded.allocate(BufferId(1), &req).unwrap();
    assert_eq!((b.per_bank, b.num_banks), (8192, 4));
    assert_eq!(b.address, 1_499_136 - 8192);

    // The next buffer (one 2048 B page per bank) lands below each: the
    // recorded size shifted it by the 2048 B of padding.
    let next = AllocRequest::interleaved(BufferType::L1, 64 * 2048, Some(2048));
    let c1 = computed.allocate(BufferId(2), &next).unwrap();
    let c2 = recorded.allocate(BufferId(2), &next).unwrap();
    assert_eq!(c1.address, 1_499_136 - 6144 - 2048);
    assert_eq!(c2.address, 1_499_136 - 8192 - 2048);
    assert_eq!(recorded.stats(BufferType::L1).allocated, 8192 + 2048);
}

#[test]
fn a_recorded_size_is_rounded_to_the_alignment_and_placed_at_its_address() {
    // 8200 B is not a multiple of the free list's 32 B alignment: 8224 B.
    let mut d = wormhole();
    let req = padded_block_shard().with_per_bank_size(8200);
    let p = d.allocate(BufferId(1), &req).unwrap();
    assert_eq!((p.per_bank, p.address), (8224, 1_499_136 - 8224));

    // Placing at a recorded address reserves the recorded size too.
    let mut e = wormhole();
    let req = padded_block_shard().with_per_bank_size(8192);
    let q = e.allocate_at(BufferId(1), &req, 1_000_000).unwrap();
    assert_eq!((q.address, q.per_bank), (1_000_000, 8192));
    assert_eq!(e.stats(BufferType::L1).allocated, 8192);
}

#[test]
fn out_of_memory_with_a_recorded_size_prints_tt_metals_figures() {
    // tt-metal's sharded aligned size counts every shard's pages: 4 shards of
    // 2 GiB per bank is 8 GiB, and each bank needs the recorded 2 GiB (more
    // than an L1 bank of 1364928 B).
    let mut d = wormhole();
    let req = padded_block_shard().with_per_bank_size(1 << 31);
    let Err(AllocError::OutOfMemory(oom)) = d.allocate(BufferId(1), &req) else {
        panic!("2 GiB per L1 bank cannot fit");
    };
    let text = oom.to_string();
    assert!(
        text.starts_with(
            "Out of Memory: Not enough space to allocate 8589934592 B L1 buffer across 4 banks, \
             where each bank needs to store 2147483648 B"
        ),
        "{text}"
    );
}
