//! Property tests: the fast `FreeList` against a deliberately simple
//! reference (a sorted `Vec` of blocks scanned linearly) that spells out
//! tt-metal's first-fit rules, plus the structural invariants.

use proptest::prelude::*;
use ttalloc_model::alloc::{FreeList, Span};

/// tt-metal's `FreeListOpt` FIRST policy, written the obvious way.
struct RefList {
    size: u64,
    alignment: u64,
    min_allocation: u64,
    /// (address, size, allocated), sorted by address, tiling the range.
    blocks: Vec<(u64, u64, bool)>,
}

impl RefList {
    fn new(base: u64, size: u64, alignment: u64, min_allocation: u64) -> RefList {
        let blocks = if size > 0 {
            vec![(base, size, false)]
        } else {
            vec![]
        };
        RefList {
            size,
            alignment,
            min_allocation: min_allocation.max(1),
            blocks,
        }
    }

    fn alloc_size(&self, size: u64) -> u64 {
        let s = size.max(self.min_allocation);
        s.div_ceil(self.alignment) * self.alignment
    }

    /// Splits free block `i` so that `[addr, addr + a)` becomes allocated.
    fn carve(&mut self, i: usize, addr: u64, a: u64) -> u64 {
        let (b_addr, b_size, _) = self.blocks[i];
        let mut pieces = Vec::new();
        if addr > b_addr {
            pieces.push((b_addr, addr - b_addr, false));
        }
        pieces.push((addr, a, true));
        if addr + a < b_addr + b_size {
            pieces.push((addr + a, b_addr + b_size - addr - a, false));
        }
        self.blocks.splice(i..=i, pieces);
        addr
    }

    fn allocate(&mut self, size: u64, bottom_up: bool) -> Option<u64> {
        let a = self.alloc_size(size);
        let fits = |b: &&(u64, u64, bool)| !b.2 && b.1 >= a;
        let i = if bottom_up {
            self.blocks.iter().position(|b| fits(&b))?
        } else {
            self.blocks.iter().rposition(|b| fits(&b))?
        };
        let (addr, bsize, _) = self.blocks[i];
        let at = if bottom_up { addr } else { addr + bsize - a };
        Some(self.carve(i, at, a))
    }

    fn allocate_at(&mut self, addr: u64, size: u64) -> Option<u64> {
        let a = self.alloc_size(size);
        let i = self
            .blocks
            .iter()
            .position(|&(b, s, _)| b <= addr && addr < b + s)?;
        let (b, s, allocated) = self.blocks[i];
        if allocated || addr + a > b + s {
            return None;
        }
        Some(self.carve(i, addr, a))
    }

    fn deallocate(&mut self, addr: u64) -> Option<u64> {
        let i = self.blocks.iter().position(|&(b, _, al)| b == addr && al)?;
        let size = self.blocks[i].1;
        self.blocks[i].2 = false;
        if i + 1 < self.blocks.len() && !self.blocks[i + 1].2 {
            self.blocks[i].1 += self.blocks[i + 1].1;
            self.blocks.remove(i + 1);
        }
        if i > 0 && !self.blocks[i - 1].2 {
            self.blocks[i - 1].1 += self.blocks[i].1;
            self.blocks.remove(i);
        }
        Some(size)
    }

    fn largest_free(&self) -> Option<(u64, u64)> {
        let mut best: Option<(u64, u64)> = None;
        for &(a, s, al) in &self.blocks {
            if !al && best.is_none_or(|(_, bs)| s > bs) {
                best = Some((a, s));
            }
        }
        best
    }

    fn lowest_allocated(&self) -> Option<u64> {
        self.blocks.iter().find(|b| b.2).map(|b| b.0)
    }

    fn allocated(&self) -> Vec<u64> {
        self.blocks.iter().filter(|b| b.2).map(|b| b.0).collect()
    }
}

#[derive(Clone, Debug)]
enum Op {
    Alloc {
        size: u64,
        bottom_up: bool,
    },
    /// Place inside the `block`-th block (mod count) at `offset` (mod its size).
    AllocAt {
        block: usize,
        offset: u64,
        size: u64,
    },
    /// Free the `which`-th allocated block (mod count).
    Free {
        which: usize,
    },
    /// Free an address that is probably not a block start.
    FreeAny {
        addr: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u64..4000, any::<bool>()).prop_map(|(size, bottom_up)| Op::Alloc { size, bottom_up }),
        // Tile-sized requests, the common case in practice.
        3 => (1u64..6, any::<bool>()).prop_map(|(k, bottom_up)| Op::Alloc { size: k * 2048, bottom_up }),
        2 => (any::<usize>(), 0u64..5000, 0u64..2000).prop_map(|(block, offset, size)| Op::AllocAt { block, offset, size }),
        4 => any::<usize>().prop_map(|which| Op::Free { which }),
        1 => (0u64..40_000).prop_map(|addr| Op::FreeAny { addr }),
    ]
}

#[derive(Clone, Debug)]
struct Setup {
    base: u64,
    size: u64,
    alignment: u64,
    min_allocation: u64,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        prop_oneof![Just(1u64), Just(16), Just(32), Just(48), Just(64)],
        0u64..4,
        prop_oneof![Just(0u64), 1u64..100],
        prop_oneof![1u64..40_000, (1u64..1200).prop_map(|k| k * 32)],
        0u64..3,
    )
        .prop_map(
            |(alignment, base_units, base_extra, size, min_kind)| Setup {
                // tt-metal asserts the offset is aligned; an unaligned one must work too.
                base: base_units * alignment * 1000 + if base_units == 3 { base_extra } else { 0 },
                size,
                alignment,
                min_allocation: match min_kind {
                    0 => alignment,
                    1 => 1,
                    _ => 3 * alignment,
                },
            },
        )
}

/// The most blocks a list keeps compact: the default, always bucketed,
/// always compact, or small enough that a stream switches back and forth.
fn compact_limit() -> impl Strategy<Value = Option<usize>> {
    prop_oneof![
        Just(None),
        Just(Some(0)),
        Just(Some(usize::MAX)),
        (1usize..16).prop_map(Some),
    ]
}

fn ref_spans(r: &RefList) -> Vec<Span> {
    r.blocks
        .iter()
        .map(|&(address, size, allocated)| Span {
            address,
            size,
            allocated,
        })
        .collect()
}

fn check_same(fast: &FreeList, r: &RefList) -> Result<(), TestCaseError> {
    fast.check_invariants().map_err(TestCaseError::fail)?;
    let spans: Vec<Span> = fast.blocks().collect();
    prop_assert_eq!(&spans, &ref_spans(r));
    // No two live blocks overlap (the spans tile the range in order).
    for w in spans.windows(2) {
        prop_assert!(w[0].address + w[0].size <= w[1].address);
    }
    let allocated: u64 = spans.iter().filter(|s| s.allocated).map(|s| s.size).sum();
    let free: u64 = spans.iter().filter(|s| !s.allocated).map(|s| s.size).sum();
    prop_assert_eq!(fast.allocated_bytes(), allocated);
    prop_assert_eq!(fast.free_bytes(), free);
    prop_assert_eq!(fast.allocated_bytes() + fast.free_bytes(), r.size);
    prop_assert_eq!(fast.largest_free(), r.largest_free());
    prop_assert_eq!(fast.lowest_allocated(), r.lowest_allocated());
    // Every block is found by its first and (for small ranges) its last byte.
    for sp in &spans {
        prop_assert_eq!(fast.block_at(sp.address), Some(*sp));
        prop_assert_eq!(
            fast.allocated_size(sp.address),
            sp.allocated.then_some(sp.size)
        );
        if r.size < 1 << 20 {
            prop_assert_eq!(fast.block_at(sp.address + sp.size - 1), Some(*sp));
        }
    }
    prop_assert_eq!(fast.block_at(fast.end()), None);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn fast_free_list_matches_the_reference(s in setup(), ops in prop::collection::vec(op(), 1..250), order in any::<u64>(), limit in compact_limit()) {
        let mut fast = FreeList::new(s.base, s.size, s.alignment, s.min_allocation).unwrap();
        if let Some(limit) = limit { fast.set_compact_limit(limit); }
        let mut r = RefList::new(s.base, s.size, s.alignment, s.min_allocation);
        check_same(&fast, &r)?;
        for op in &ops {
            match *op {
                Op::Alloc { size, bottom_up } => {
                    prop_assert_eq!(fast.allocate(size, bottom_up), r.allocate(size, bottom_up), "{:?}", op);
                }
                Op::AllocAt { block, offset, size } => {
                    if r.blocks.is_empty() { continue; }
                    let (b, bs, _) = r.blocks[block % r.blocks.len()];
                    let addr = b + offset % bs;
                    prop_assert_eq!(fast.allocate_at(addr, size), r.allocate_at(addr, size), "{:?}", op);
                }
                Op::Free { which } => {
                    let live = r.allocated();
                    if live.is_empty() { continue; }
                    let addr = live[which % live.len()];
                    prop_assert_eq!(fast.deallocate(addr), r.deallocate(addr));
                }
                Op::FreeAny { addr } => {
                    let addr = s.base + addr;
                    prop_assert_eq!(fast.deallocate(addr), r.deallocate(addr));
                }
            }
            check_same(&fast, &r)?;
        }
        // Freeing everything (in a scrambled order) restores one free block.
        let mut live = r.allocated();
        let n = live.len().max(1);
        live.rotate_left((order as usize) % n);
        if order & 1 == 1 { live.reverse(); }
        for addr in live {
            prop_assert!(fast.deallocate(addr).is_some());
            r.deallocate(addr);
            check_same(&fast, &r)?;
        }
        let spans: Vec<Span> = fast.blocks().collect();
        if s.size > 0 {
            prop_assert_eq!(spans, vec![Span { address: s.base, size: s.size, allocated: false }]);
            prop_assert_eq!(fast.largest_free(), Some((s.base, s.size)));
        } else {
            prop_assert!(spans.is_empty());
        }
        prop_assert_eq!(fast.allocated_bytes(), 0);
        prop_assert_eq!(fast.num_free_blocks(), usize::from(s.size > 0));
    }

}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Large ranges use multi-unit buckets (several blocks start in one
    /// bucket): the same agreement must hold there.
    #[test]
    fn bucketed_ranges_match_the_reference(ops in prop::collection::vec(op(), 1..300), big in 0u64..3, limit in compact_limit()) {
        // 2^26 units of 32 B: 256 units per bucket.
        let size = (1u64 << 31) + big * 4096 + if big == 2 { 7 } else { 0 };
        let mut fast = FreeList::new(64, size, 32, 32).unwrap();
        if let Some(limit) = limit { fast.set_compact_limit(limit); }
        let mut r = RefList::new(64, size, 32, 32);
        for op in &ops {
            match *op {
                Op::Alloc { size, bottom_up } => {
                    prop_assert_eq!(fast.allocate(size, bottom_up), r.allocate(size, bottom_up));
                }
                Op::AllocAt { block, offset, size } => {
                    let (b, bs, _) = r.blocks[block % r.blocks.len()];
                    let addr = b + offset % bs;
                    prop_assert_eq!(fast.allocate_at(addr, size), r.allocate_at(addr, size));
                }
                Op::Free { which } => {
                    let live = r.allocated();
                    if live.is_empty() { continue; }
                    let addr = live[which % live.len()];
                    prop_assert_eq!(fast.deallocate(addr), r.deallocate(addr));
                }
                Op::FreeAny { addr } => {
                    prop_assert_eq!(fast.deallocate(64 + addr), r.deallocate(64 + addr));
                }
            }
            check_same(&fast, &r)?;
        }
    }
}

/// A deterministic stream that grows to `peak` live buffers (tile-page
/// sizes, half bottom-up, half top-down, random frees), then frees them
/// all in a scrambled order. Each list is driven the same way; every
/// address must agree with the first list's.
fn same_placements(lists: &mut [FreeList], peak: usize, seed: u64) {
    let mut x = seed;
    let mut rng = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut live: Vec<u64> = Vec::new();
    let mut step = 0u64;
    let check = |lists: &mut [FreeList], step: u64| {
        if step.is_multiple_of(4096) {
            for fl in lists.iter() {
                fl.check_invariants().unwrap();
            }
        }
    };
    // Grow (two allocations per free), then shrink (two frees per allocation).
    for phase in 0..2 {
        loop {
            let r = rng();
            let grow = if phase == 0 { r % 3 != 0 } else { r % 3 == 0 };
            if grow {
                let size = [1u64, 1, 2, 3, 4, 8][(r >> 8) as usize % 6] * 2048 + (r >> 16) % 3 * 32;
                let bottom_up = r & (1 << 40) != 0;
                let got: Vec<Option<u64>> = lists
                    .iter_mut()
                    .map(|fl| fl.allocate(size, bottom_up))
                    .collect();
                assert!(got.iter().all(|a| *a == got[0]), "step {step}: {got:?}");
                live.extend(got[0]);
            } else if !live.is_empty() {
                let a = live.swap_remove((r >> 20) as usize % live.len());
                let freed: Vec<Option<u64>> = lists.iter_mut().map(|fl| fl.deallocate(a)).collect();
                assert!(
                    freed.iter().all(|f| f.is_some() && *f == freed[0]),
                    "step {step}"
                );
            }
            step += 1;
            check(lists, step);
            // (A full range ends the growth too: then allocations fail alike.)
            let grown = live.len() >= peak || step >= 4 * peak as u64;
            if (phase == 0 && grown) || (phase == 1 && live.is_empty()) {
                break;
            }
        }
    }
    for fl in lists.iter() {
        fl.check_invariants().unwrap();
        assert_eq!(fl.num_allocated(), 0);
    }
}

#[test]
fn compact_and_bucketed_lists_place_alike_up_to_100k_live_buffers() {
    // Wormhole DRAM bank geometry; the default switches both ways.
    let new = || FreeList::new(32, 1_073_741_792, 32, 32).unwrap();
    let mut bucketed = new();
    bucketed.set_compact_limit(0);
    let mut flipping = new();
    flipping.set_compact_limit(8);
    let mut lists = [bucketed, new(), flipping];
    same_placements(&mut lists, 100_000, 0x2545_F491_4F6C_DD1D);
    assert!(!lists[0].is_compact());
    assert!(lists[1].is_compact(), "an empty list is compact again");
    assert!(lists[2].is_compact());
}

#[test]
fn an_always_compact_list_places_like_a_bucketed_one() {
    // 64 MiB (1 KiB buckets of 32 units): up to 2,000 live buffers.
    let new = || FreeList::new(0x1_9000, 64 << 20, 32, 32).unwrap();
    let mut bucketed = new();
    bucketed.set_compact_limit(0);
    let mut compact = new();
    compact.set_compact_limit(usize::MAX);
    same_placements(&mut [bucketed, compact], 2_000, 0x9E37_79B9_7F4A_7C15);
}
