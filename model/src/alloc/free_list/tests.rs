use super::bucket_bits::BucketBits;
use super::*;

#[test]
fn bucket_bits_find_the_last_member_like_a_scan() {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for &n in &[1usize, 63, 64, 65, 4096, 4097, 300_000] {
        let mut bits = BucketBits::new(n);
        let mut v = vec![false; n];
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x % n as u64) as usize;
            if x & (1 << 40) != 0 {
                bits.insert(i);
                v[i] = true;
            } else {
                bits.remove(i);
                v[i] = false;
            }
            let pos = ((x >> 20) % n as u64) as usize;
            let naive = (0..=pos).rev().find(|&k| v[k]);
            assert_eq!(bits.last_at_or_before(pos), naive, "n {n} pos {pos}");
        }
    }
}

#[test]
fn block_at_finds_blocks_starting_many_buckets_back() {
    // 1 GiB at 32 B: 4 KiB buckets. A 512 MiB buffer spans 131072 buckets.
    let mut fl = FreeList::new(0, 1 << 30, 32, 32).unwrap();
    let a = fl.allocate(512 << 20, true).unwrap();
    assert_eq!(a, 0);
    let s = fl.block_at((512 << 20) - 1).unwrap();
    assert_eq!((s.address, s.size, s.allocated), (0, 512 << 20, true));
    let s = fl.block_at((1 << 30) - 1).unwrap();
    assert_eq!(
        (s.address, s.size, s.allocated),
        (512 << 20, 512 << 20, false)
    );
    // Closing resets only what was used, and leaves a list as good as new.
    fl.deallocate_all();
    fl.check_invariants().unwrap();
    assert_eq!(fl.largest_free(), Some((0, 1 << 30)));
    assert_eq!(fl.allocate(64, false), Some((1 << 30) - 64));
    fl.check_invariants().unwrap();
}

/// A list in `u32` words (range below 2^31) and one in `u64` words (the
/// same range 4 GiB up) place held allocations alike, in and out of
/// compact mode, and agree with the plain allocation path.
#[test]
fn held_allocations_place_alike_in_both_word_widths() {
    const HIGH: u64 = 1 << 32;
    let mut lists = [
        FreeList::new(64, 1 << 20, 32, 32).unwrap(),
        FreeList::new(HIGH + 64, 1 << 20, 32, 32).unwrap(),
        FreeList::new(64, 1 << 20, 32, 32).unwrap(),
    ];
    assert!(lists[0].free.narrow && !lists[1].free.narrow);
    let mut live: Vec<[(BlockRef, u32, u64); 2]> = Vec::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut seen = [false; 2];
    for step in 0..6000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Phases of growth and shrinkage, to cross the compact limit.
        let grow = (step / 1500) % 2 == 0;
        if live.is_empty() || (x % 8 < if grow { 6 } else { 2 }) {
            let bytes = lists[0].alloc_size(32 * (1 + (x >> 8) % 40));
            let bottom_up = x & (1 << 20) != 0;
            let a = lists[0].allocate_held(bytes, bottom_up, step, bytes, 1);
            let b = lists[1].allocate_held(bytes, bottom_up, step, bytes, 1);
            let plain = lists[2].allocate(bytes, bottom_up);
            assert_eq!(a.map(|p| p.0), b.map(|p| p.0 - HIGH), "step {step}");
            assert_eq!(a.map(|p| p.0), plain, "step {step}");
            if let (Some(a), Some(b)) = (a, b) {
                live.push([(a.1, a.2, a.0), (b.1, b.2, b.0)]);
            }
        } else {
            let [a, b] = live.swap_remove((x >> 16) as usize % live.len());
            let fa = lists[0].free_held(a.0, a.1);
            assert_eq!(fa, lists[1].free_held(b.0, b.1), "step {step}");
            assert_eq!(fa, lists[2].deallocate(a.2), "step {step}");
        }
        seen[usize::from(lists[0].is_compact())] = true;
        assert_eq!(lists[0].is_compact(), lists[1].is_compact());
        if step % 100 == 0 {
            for l in &lists {
                l.check_invariants().unwrap();
            }
        }
    }
    assert_eq!(seen, [true, true], "compact and bucketed");
}
