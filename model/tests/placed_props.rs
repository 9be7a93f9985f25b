//! The placed API (`allocate_placed` / `deallocate_placed`, the caller keeps
//! the ids) places and frees exactly as the id-keyed API does: same
//! addresses, same out-of-memory, same block tables, same `close`; a handle
//! whose buffer is gone frees nothing.

use proptest::prelude::*;
use ttalloc_model::alloc::{manager_slot, AllocRequest, Device, Handle, Owner};
use ttalloc_model::{Arch, BufferId, BufferType, DeviceConfig, Layout, ProgramId};

mod common;
use common::small_config;

#[derive(Clone, Debug)]
enum Op {
    Alloc {
        bt: BufferType,
        pages: u64,
        sharded: Option<u32>,
        dir: Option<bool>,
        /// Which of [`PAGES`], bytes past the whole pages, and a recorded
        /// per-bank size: the placed API's tile-page shortcut and its
        /// general arithmetic must both reserve what the id-keyed API does.
        shape: (usize, u64, Option<u64>),
    },
    /// Places at the address the id-keyed device chose for an earlier,
    /// since freed buffer (often taken by now: both must refuse alike).
    AllocAt {
        pages: u64,
        which: usize,
    },
    Free {
        which: usize,
    },
    /// Frees a handle whose buffer is already gone.
    FreeStale {
        which: usize,
    },
    /// Loads a program binary (a DRAM block held by no buffer: the live
    /// buffers must not count or list it), or unloads a loaded one.
    Program {
        load: bool,
        which: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let bt = prop_oneof![
        Just(BufferType::Dram),
        Just(BufferType::L1),
        Just(BufferType::L1Small),
        Just(BufferType::Trace),
        Just(BufferType::SystemMemory)
    ];
    prop_oneof![
        4 => (bt, 0u64..30, prop::option::of(1u32..8), prop::option::of(any::<bool>()), shape())
            .prop_map(|(bt, pages, sharded, dir, shape)| Op::Alloc { bt, pages, sharded, dir, shape }),
        1 => (1u64..8, any::<usize>()).prop_map(|(pages, which)| Op::AllocAt { pages, which }),
        3 => any::<usize>().prop_map(|which| Op::Free { which }),
        1 => any::<usize>().prop_map(|which| Op::FreeStale { which }),
        1 => (any::<bool>(), any::<usize>()).prop_map(|(load, which)| Op::Program { load, which }),
    ]
}

/// Page sizes: tiles (powers of two at or past the alignments), unknown
/// ones, and pages the alignments do not divide.
const PAGES: [Option<u64>; 8] = [
    Some(2048),
    Some(2048),
    Some(4096),
    Some(32),
    None,
    Some(0),
    Some(100),
    Some(16),
];

fn shape() -> impl Strategy<Value = (usize, u64, Option<u64>)> {
    (
        0..PAGES.len(),
        prop_oneof![3 => Just(0u64), 1 => 1u64..100],
        prop_oneof![5 => Just(None), 1 => (1u64..5000).prop_map(Some)],
    )
}

fn request(bt: BufferType, pages: u64, sharded: Option<u32>, dir: Option<bool>) -> AllocRequest {
    shaped_request(bt, pages, sharded, dir, (0, 0, None))
}

fn shaped_request(
    bt: BufferType,
    pages: u64,
    sharded: Option<u32>,
    dir: Option<bool>,
    (page, extra, recorded): (usize, u64, Option<u64>),
) -> AllocRequest {
    let page_size = PAGES[page];
    AllocRequest {
        buffer_type: bt,
        size: pages * page_size.filter(|&p| p > 0).unwrap_or(32) + extra,
        page_size,
        layout: if sharded.is_some() {
            Layout::BlockSharded
        } else {
            Layout::Interleaved
        },
        num_cores: sharded,
        bottom_up: dir,
        per_bank_size: recorded,
    }
}

const PLACED_TYPES: [BufferType; 4] = [
    BufferType::Dram,
    BufferType::L1,
    BufferType::L1Small,
    BufferType::Trace,
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn placed_and_id_keyed_devices_agree(ops in prop::collection::vec(op(), 1..250)) {
        let mut by_id = Device::new(Arch::WormholeB0, &small_config()).unwrap();
        let mut placed = Device::new(Arch::WormholeB0, &small_config()).unwrap();
        // (id, handle, address) of every live buffer, in allocation order:
        // the reference the devices' live buffers are checked against.
        let mut live: Vec<(BufferId, Handle, u64)> = Vec::new();
        let mut programs: Vec<ProgramId> = Vec::new();
        let mut gone: Vec<(Handle, u64)> = Vec::new();
        let mut next = 0u64;
        for op in &ops {
            match *op {
                Op::Alloc { bt, pages, sharded, dir, shape } => {
                    next += 1;
                    let id = BufferId(next);
                    let req = shaped_request(bt, pages, sharded, dir, shape);
                    let a = by_id.allocate(id, &req);
                    // Every other device buffer goes in by its bank
                    // manager's slot, as a replay places them.
                    let b = match manager_slot(bt) {
                        Some(slot) if next.is_multiple_of(2) => placed.allocate_placed_in(slot, id, &req),
                        _ => placed.allocate_placed(id, &req),
                    };
                    prop_assert_eq!(a.as_ref().ok(), b.as_ref().ok().map(|p| &p.placement));
                    prop_assert_eq!(a.err(), b.as_ref().err().cloned());
                    if let Ok(p) = b {
                        live.push((id, p.handle, p.placement.address));
                    }
                }
                Op::AllocAt { pages, which } => {
                    let Some(&(_, address)) = gone.get(which % gone.len().max(1)) else { continue };
                    next += 1;
                    let id = BufferId(next);
                    let req = request(BufferType::Dram, pages, None, None);
                    let a = by_id.allocate_at(id, &req, address);
                    let b = placed.allocate_placed_at(id, &req, address);
                    prop_assert_eq!(a.as_ref().ok(), b.as_ref().ok().map(|p| &p.placement));
                    prop_assert_eq!(a.err(), b.as_ref().err().cloned());
                    if let Ok(p) = b {
                        live.push((id, p.handle, p.placement.address));
                    }
                }
                Op::Free { which } => {
                    if live.is_empty() { continue }
                    let (id, handle, _) = live.remove(which % live.len());
                    prop_assert_eq!(placed.live_placed(handle), by_id.live(id));
                    let a = by_id.deallocate(id);
                    prop_assert!(a.is_some());
                    // Every other free discards what left (the replay's way).
                    if which % 2 == 0 {
                        let b = placed.deallocate_placed(handle);
                        prop_assert_eq!(a, b);
                    } else {
                        prop_assert!(placed.discard_placed(handle));
                    }
                    gone.push((handle, a.unwrap().address));
                }
                Op::FreeStale { which } => {
                    let Some(&(handle, _)) = gone.get(which % gone.len().max(1)) else { continue };
                    prop_assert_eq!(placed.deallocate_placed(handle), None);
                    prop_assert!(!placed.discard_placed(handle));
                    prop_assert_eq!(placed.live_placed(handle), None);
                }
                Op::Program { load: true, .. } => {
                    next += 1;
                    let program = ProgramId(next);
                    let a = by_id.load_program(program, 3000);
                    let b = placed.load_program(program, 3000);
                    prop_assert_eq!(&a, &b);
                    if a.is_ok() {
                        programs.push(program);
                    }
                }
                Op::Program { load: false, which } => {
                    if programs.is_empty() { continue }
                    let program = programs.remove(which % programs.len());
                    prop_assert_eq!(by_id.unload_program(program), placed.unload_program(program));
                }
            }
            prop_assert_eq!(placed.num_live_buffers(), live.len());
            prop_assert_eq!(by_id.num_live_buffers(), live.len());
            let mut expected: Vec<(Owner, u64)> = live
                .iter()
                .map(|&(id, _, address)| (Owner::Buffer(id), address))
                .collect();
            expected.sort();
            for d in [&by_id, &placed] {
                let mut held: Vec<(Owner, u64)> = d
                    .live_all()
                    .filter(|r| matches!(r.owner, Owner::Buffer(_)))
                    .map(|r| (r.owner, r.address))
                    .collect();
                held.sort();
                prop_assert_eq!(&held, &expected);
            }
        }
        for bt in PLACED_TYPES {
            prop_assert_eq!(placed.memory_view(bt), by_id.memory_view(bt));
            prop_assert_eq!(placed.stats(bt), by_id.stats(bt));
        }
        let mut all_a: Vec<_> = by_id.live_all().collect();
        let mut all_b: Vec<_> = placed.live_all().collect();
        all_a.sort_by_key(|r| (r.buffer_type, r.address, r.owner));
        all_b.sort_by_key(|r| (r.buffer_type, r.address, r.owner));
        prop_assert_eq!(all_a, all_b);
        prop_assert_eq!(by_id.close(), placed.close());
        // After close every handle is stale, and the device is as new.
        for (_, handle, _) in live {
            prop_assert_eq!(placed.deallocate_placed(handle), None);
        }
        prop_assert_eq!(placed.num_live_buffers(), 0);
    }
}

#[test]
fn a_placed_buffer_is_not_visible_by_id_and_frees_by_handle() {
    let mut d = Device::new(Arch::WormholeB0, &DeviceConfig::default()).unwrap();
    let req = AllocRequest::interleaved(BufferType::Dram, 12 * 2048, Some(2048));
    let p = d.allocate_placed(BufferId(7), &req).unwrap();
    // The placed API keeps no id index: the caller owns the id.
    assert!(!d.is_live(BufferId(7)));
    assert_eq!(d.deallocate(BufferId(7)), None);
    // It is live all the same: in the block table with its owner, and freed by handle.
    let view = d.memory_view(BufferType::Dram);
    let held = view.iter().find(|b| b.allocated).unwrap();
    assert_eq!(held.address, p.placement.address);
    assert_eq!(held.owner, Some(Owner::Buffer(BufferId(7))));
    let released = d.deallocate_placed(p.handle).unwrap();
    assert_eq!(released.owner, Owner::Buffer(BufferId(7)));
    // 12 pages of 2048 B over 12 banks: one page per bank.
    assert_eq!((released.per_bank, released.num_banks), (2048, 12));
    assert_eq!(d.deallocate_placed(p.handle), None);
    assert_eq!(d.stats(BufferType::Dram).num_allocated_blocks, 0);
}

/// A handle names the free-list block its buffer got and how many times
/// that block had been freed: the block's entry is reused by whatever is
/// allocated next, so the old handle must not reach the newcomer.
#[test]
fn a_freed_buffers_handle_does_not_reach_the_program_that_reuses_its_block() {
    let mut d = Device::new(Arch::WormholeB0, &DeviceConfig::default()).unwrap();
    let req = AllocRequest::interleaved(BufferType::Dram, 12 * 2048, Some(2048));
    let old = d.allocate_placed(BufferId(1), &req).unwrap();
    assert!(d.discard_placed(old.handle));
    // The next DRAM allocation takes the freed block's entry (the last
    // freed is reused first); a program binary goes top-down, elsewhere.
    let program = d.load_program(ProgramId(9), 4096).unwrap();
    assert_ne!(program.address, old.placement.address);
    assert!(!d.discard_placed(old.handle));
    assert_eq!(d.live_placed(old.handle), None);
    assert_eq!(d.deallocate_placed(old.handle), None);
    // The program is untouched: still held, and unloaded by its id.
    let held: Vec<Owner> = d.live_all().map(|r| r.owner).collect();
    assert_eq!(held, vec![Owner::Program(ProgramId(9))]);
    assert_eq!(
        d.unload_program(ProgramId(9)).map(|r| r.address),
        Some(program.address)
    );
    assert_eq!(d.stats(BufferType::Dram).num_allocated_blocks, 0);
}

/// `close` frees every block; a handle from before it stays stale even
/// when a new buffer lands in the same block at the same address.
#[test]
fn a_handle_from_before_close_does_not_free_the_buffer_placed_after_it() {
    let mut d = Device::new(Arch::WormholeB0, &DeviceConfig::default()).unwrap();
    let req = AllocRequest::interleaved(BufferType::L1, 64 * 2048, Some(2048));
    let before = d.allocate_placed(BufferId(1), &req).unwrap();
    assert_eq!(d.close().len(), 1);
    let after = d.allocate_placed(BufferId(2), &req).unwrap();
    // Same request on an empty device: same place.
    assert_eq!(after.placement, before.placement);
    assert!(!d.discard_placed(before.handle));
    assert_eq!(d.num_live_buffers(), 1);
    let released = d.deallocate_placed(after.handle).unwrap();
    assert_eq!(released.owner, Owner::Buffer(BufferId(2)));
    assert_eq!(d.num_live_buffers(), 0);
}

/// A program binary that lands in the block entry a freed buffer held
/// (top-down, in the highest hole, of the hole's size) is not a buffer:
/// with few blocks (the compact list) and with many (the bucketed one,
/// where a freed block keeps its entry and its old payload).
#[test]
fn a_program_in_a_freed_buffers_block_is_not_a_live_buffer() {
    for count in [16u64, 400] {
        let mut d = Device::new(Arch::WormholeB0, &DeviceConfig::default()).unwrap();
        // One 2048 B page per DRAM bank, top-down: the holes end up above
        // the free space, where a top-down program of the same size goes.
        let req = AllocRequest {
            bottom_up: Some(false),
            ..AllocRequest::interleaved(BufferType::Dram, 12 * 2048, Some(2048))
        };
        let mut live: Vec<(BufferId, Handle, u64)> = (0..count)
            .map(|i| {
                let p = d.allocate_placed(BufferId(i), &req).unwrap();
                (BufferId(i), p.handle, p.placement.address)
            })
            .collect();
        let mut holes = Vec::new();
        for k in (0..live.len()).rev().step_by(2) {
            let (_, handle, address) = live.remove(k);
            assert!(d.discard_placed(handle));
            holes.push(address);
        }
        for p in 0..holes.len() as u64 {
            let program = d.load_program(ProgramId(p), 12 * 2048).unwrap();
            assert!(holes.contains(&program.address), "count {count}");
        }
        assert_eq!(d.num_live_buffers(), live.len(), "count {count}");
        let mut held: Vec<(Owner, u64)> = d
            .live_all()
            .filter(|r| matches!(r.owner, Owner::Buffer(_)))
            .map(|r| (r.owner, r.address))
            .collect();
        held.sort();
        let mut expected: Vec<(Owner, u64)> = live
            .iter()
            .map(|&(id, _, address)| (Owner::Buffer(id), address))
            .collect();
        expected.sort();
        assert_eq!(held, expected, "count {count}");
        assert_eq!(d.close().len(), live.len() + holes.len());
    }
}
