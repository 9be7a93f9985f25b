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
