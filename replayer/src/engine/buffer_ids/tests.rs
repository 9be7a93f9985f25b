//! `BufferIds` against a plain map of live ids and set of freed ids, on id
//! streams of every shape: dense rising runs (windows that slide, evicting
//! long-lived and freed ids), several runs at once, old ids allocated
//! again, and sparse ids (windows retired).

use super::{BufferIds, FREED, MAX_WINDOWS, NONE, RUN_SHIFT, WINDOW};
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};

#[derive(Clone, Debug)]
enum Op {
    /// Allocates the next id of run `run` (ids rise by `gap`).
    AllocNext {
        run: u8,
        gap: u64,
    },
    /// Allocates the `back`-th id before the newest of run `run` again.
    AllocOld {
        run: u8,
        back: u64,
    },
    /// Frees / removes / probes the `back`-th id before the newest of `run`.
    Free {
        run: u8,
        back: u64,
    },
    Remove {
        run: u8,
        back: u64,
    },
    Probe {
        run: u8,
        back: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let run = 0u8..(MAX_WINDOWS as u8 + 2);
    // Most lookups near the newest ids; some far back (evicted).
    let back = prop_oneof![4 => 0u64..64, 1 => 0u64..3 * WINDOW];
    let gap = prop_oneof![8 => Just(1u64), 1 => 1u64..64, 1 => Just(WINDOW + 5)];
    prop_oneof![
        6 => (run.clone(), gap).prop_map(|(run, gap)| Op::AllocNext { run, gap }),
        1 => (run.clone(), back.clone()).prop_map(|(run, back)| Op::AllocOld { run, back }),
        5 => (run.clone(), back.clone()).prop_map(|(run, back)| Op::Free { run, back }),
        1 => (run.clone(), back.clone()).prop_map(|(run, back)| Op::Remove { run, back }),
        1 => (run, back).prop_map(|(run, back)| Op::Probe { run, back }),
    ]
}

/// Replays `ops` on a `BufferIds` and on the reference; every answer must agree.
fn check(ops: &[Op]) {
    let mut ids = BufferIds::default();
    let mut live: HashMap<u64, u32> = HashMap::new();
    let mut freed: HashSet<u64> = HashSet::new();
    let mut newest: HashMap<u8, u64> = HashMap::new();
    let mut next_slot = 0u32;
    let id_of = |newest: &HashMap<u8, u64>, run: u8, back: u64| {
        let top = newest.get(&run).copied().unwrap_or(0);
        ((run as u64) << RUN_SHIFT) + top.saturating_sub(back)
    };
    for op in ops {
        match *op {
            Op::AllocNext { run, gap } => {
                let n = newest.entry(run).or_insert(0);
                *n += gap;
                let id = ((run as u64) << RUN_SHIFT) + *n;
                let slot = next_slot;
                next_slot += 1;
                assert_eq!(ids.slot(id), live.get(&id).copied(), "{id}");
                ids.set_live(id, slot);
                live.insert(id, slot);
                freed.remove(&id);
            }
            Op::AllocOld { run, back } => {
                let id = id_of(&newest, run, back);
                // The engine's way: the place found once when the window
                // used last has it (only ever for an id not live).
                if live.contains_key(&id) {
                    assert!(ids.vacant_entry(id).is_none(), "vacant_entry {id}");
                    continue;
                }
                let slot = next_slot;
                next_slot += 1;
                match ids.vacant_entry(id) {
                    Some(entry) => *entry = BufferIds::live_entry(slot),
                    None => ids.set_live(id, slot),
                }
                live.insert(id, slot);
                freed.remove(&id);
            }
            Op::Free { run, back } => {
                let id = id_of(&newest, run, back);
                let want = live.remove(&id);
                if want.is_some() {
                    freed.insert(id);
                }
                assert_eq!(ids.free(id), want, "free {id}");
            }
            Op::Remove { run, back } => {
                let id = id_of(&newest, run, back);
                assert_eq!(ids.remove(id), live.remove(&id), "remove {id}");
            }
            Op::Probe { run, back } => {
                let id = id_of(&newest, run, back);
                assert_eq!(ids.slot(id), live.get(&id).copied(), "slot {id}");
                assert_eq!(ids.was_freed(id), freed.contains(&id), "freed {id}");
                // Just above the newest id: never allocated.
                let above = id_of(&newest, run, 0) + 1 + back;
                assert_eq!(ids.slot(above), live.get(&above).copied(), "slot {above}");
                assert_eq!(ids.was_freed(above), freed.contains(&above));
            }
        }
    }
    for (&id, &slot) in &live {
        assert_eq!(ids.slot(id), Some(slot), "live {id} at the end");
    }
    for &id in &freed {
        assert!(ids.was_freed(id), "freed {id} at the end");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn agrees_with_a_map_and_a_set(ops in prop::collection::vec(op(), 1..3000)) {
        check(&ops);
    }
}

#[test]
fn a_long_dense_run_keeps_its_long_lived_and_freed_ids() {
    // 200k rising ids, each freed 10 ids later except every 1000th (kept:
    // 0, 1000, ..., 199000). After id 199999 the window starts at
    // ceil((199999 - 16383) / 1024) * 1024 = 184320, so the 15 kept ids from
    // 185000 on are in it and the other 185 live on in the overflow map;
    // the freed ids that left the window are in the freed set.
    let mut ids = BufferIds::default();
    for id in 0..200_000u64 {
        ids.set_live(id, (id % 1_000_000) as u32);
        if id >= 10 && (id - 10) % 1000 != 0 {
            assert_eq!(ids.free(id - 10), Some(((id - 10) % 1_000_000) as u32));
        }
    }
    assert!(!ids.front.retired);
    assert_eq!(ids.front.base, 184_320);
    assert_eq!(ids.overflow.len(), 185);
    for id in (0..199_990u64).step_by(1000) {
        assert_eq!(ids.slot(id), Some(id as u32));
        assert_eq!(ids.free(id), Some(id as u32));
        assert!(ids.was_freed(id));
    }
    assert!(ids.was_freed(5) && ids.was_freed(150_001) && !ids.was_freed(200_005));
}

#[test]
fn sparse_ids_retire_the_window() {
    // Ids 2^20 apart: the window would scan a whole window per allocation.
    let mut ids = BufferIds::default();
    for i in 0..100u64 {
        ids.set_live(i << 20, i as u32);
    }
    assert!(ids.front.retired);
    for i in 0..100u64 {
        assert_eq!(ids.slot(i << 20), Some(i as u32));
    }
    assert_eq!(ids.free(7 << 20), Some(7));
    assert!(ids.was_freed(7 << 20) && !ids.was_freed(8 << 20));
}

#[test]
fn the_freed_mask_marks_freed_entries_and_sees_live_ones() {
    // Entry i: FREED when i % 3 == 0, NONE otherwise: bits 0, 3, 6, ...
    let mut group = [NONE; 64];
    for i in (0..64).step_by(3) {
        group[i] = FREED;
    }
    let want = (0..64).step_by(3).fold(0u64, |m, i| m | 1 << i);
    assert_eq!(super::freed_mask(&group), (want, false));
    // One live entry (slot 7 + 1) in each place: seen, and not freed.
    for at in 0..64 {
        let mut g = group;
        g[at] = 8;
        assert_eq!(
            super::freed_mask(&g),
            (want & !(1 << at), true),
            "live at {at}"
        );
    }
}
