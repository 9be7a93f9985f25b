use super::*;

#[test]
fn the_reciprocal_division_rounds_up_exactly_where_a_division_does() {
    // Bank counts of real devices (12 DRAM banks on Wormhole, 7 on
    // Blackhole...), every count of the reciprocal table, and awkward ones
    // past it; numerators at the edges of the 32-bit fast path and beyond it.
    let mut counts: Vec<u32> = (0..=256).collect();
    counts.extend([1000, 65_536, u32::MAX]);
    for d in counts {
        // A count of 0 divides as 1 (`size_per_bank` takes it so).
        let d64 = u64::from(d.max(1));
        let mut nums = vec![0u64, 1, 2, 11, 12, 13, 4095, 4096, 1 << 31];
        nums.extend([u32::MAX as u64 - 1, u32::MAX as u64, 1 << 32, u64::MAX]);
        nums.extend([d64 - 1, d64, d64 + 1, d64 * 3, d64 * 3 + 1]);
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            nums.push(x >> 32);
            nums.push(x >> (x & 31));
        }
        for a in nums {
            assert_eq!(div_ceil_by(a, d), a.div_ceil(d64), "ceil({a} / {d})");
        }
    }
}

#[test]
fn an_interleaved_spread_is_size_per_bank_over_every_bank() {
    // 12 banks (Wormhole DRAM): the spread's own arithmetic must agree
    // with `size_per_bank` for every page size, known or not.
    let m = BankManager::new(BufferType::Dram, 12, 0, 1 << 30, 32, 32).unwrap();
    for size in [
        0u64,
        1,
        31,
        32,
        2048,
        2049,
        12 * 2048,
        12 * 2048 + 1,
        1 << 33,
    ] {
        for page in [
            None,
            Some(0),
            Some(1),
            Some(32),
            Some(100),
            Some(2048),
            Some(4096),
        ] {
            let (per_bank, aligned) = size_per_bank(size, page, 12, 32);
            assert_eq!(
                m.spread(size, page, None),
                (per_bank, aligned, 12),
                "{size} B in pages of {page:?}"
            );
        }
    }
    // Sharded: over the shards, not the banks.
    assert_eq!(m.spread(8 * 2048, Some(2048), Some(8)).2, 8);
}

#[test]
fn the_recent_shape_spreads_as_spread_recorded_does() {
    // Requests that change page size and shard count between calls (so
    // the remembered shape is refreshed and reused), on a manager with
    // an alignment that is not a power of two and one that is.
    for (banks, align) in [(12u32, 32u64), (64, 16), (7, 48)] {
        let mut m = BankManager::new(BufferType::L1, banks, 0, 1 << 30, align, 32).unwrap();
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let size = [0, 1, 2048, x >> 40, x >> 20, x][(x % 6) as usize];
            let page = [
                None,
                Some(0),
                Some(2048),
                Some(32),
                Some(100),
                Some(x >> 50),
            ][((x >> 8) % 6) as usize];
            let shards =
                [None, Some(0), Some(8), Some(64), Some(3), Some(300)][((x >> 16) % 6) as usize];
            let recorded = [None, None, Some(4096), Some(x >> 44)][((x >> 24) % 4) as usize];
            let (per_bank, _, n) = m.spread_recorded(size, page, shards, recorded);
            assert_eq!(
                m.spread_recent(size, page, shards.unwrap_or(0), recorded),
                (per_bank, n),
                "{size} B, page {page:?}, shards {shards:?}, recorded {recorded:?}"
            );
        }
    }
}

#[test]
fn the_reserved_bytes_are_the_free_lists_rounding_of_spread_recorded() {
    // What an allocation reserves (`reserve_recent`, with its tile-page
    // shortcuts) against the plain arithmetic: `spread_recorded`, then the
    // free list's rounding. Bank counts of real devices and awkward ones;
    // tile pages whose row (a page in every bank) is near or past 2^32,
    // where the interleaved shortcut must step aside; sizes at the edges
    // of its 32-bit range.
    for (banks, align, fl_align) in [
        (12u32, 32u64, 32u64),
        (64, 16, 32),
        (7, 64, 32),
        (1, 32, 32),
    ] {
        let mut m = BankManager::new(BufferType::L1, banks, 0, 1 << 30, align, fl_align).unwrap();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..40_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let size = [
                0,
                1,
                2048,
                u64::from(u32::MAX),
                u64::from(u32::MAX) + 1,
                x >> 40,
                x >> 20,
                x >> (x & 63),
            ][(x % 8) as usize];
            let page = [
                None,
                Some(0),
                Some(2048),
                Some(32),
                Some(4096),
                Some(1 << 26),
                Some(1 << 27),
                Some(1 << (x >> 58)),
            ][((x >> 8) % 8) as usize];
            let shards =
                [None, None, Some(0), Some(8), Some(3), Some(300)][((x >> 16) % 6) as usize];
            let recorded = [None, None, None, Some(4096), Some(x >> 44)][((x >> 24) % 5) as usize];
            let (per_bank, _, n) = m.spread_recorded(size, page, shards, recorded);
            let want = (m.free_list().alloc_size(per_bank), n);
            assert_eq!(
                m.reserve_recent(size, page, shards.unwrap_or(0), recorded),
                want,
                "{banks} banks, {size} B, page {page:?}, shards {shards:?}, recorded {recorded:?}"
            );
        }
    }
}
