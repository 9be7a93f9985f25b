//! Property test of the circular buffers' fit-only check: a replay counts
//! clashes with `cb_alloc_fits` / `cb_place_fits` and describes the first
//! with `cb_clash_now`; both must agree with `cb_alloc` / `cb_place` on
//! every CB, with L1 buffers placed and freed around them.

use proptest::prelude::*;
use ttalloc_model::alloc::{AllocRequest, Device};
use ttalloc_model::{Arch, BufferId, BufferType, Layout, ProgramId};

mod common;
use common::small_config;

#[derive(Clone, Debug)]
enum Op {
    /// An L1 buffer of `pages` 1 KiB pages, top-down unless `bottom_up`.
    L1 {
        pages: u64,
        bottom_up: bool,
    },
    /// Frees the `which`-th live L1 buffer (by id order).
    Free {
        which: usize,
    },
    /// A CB whose static region would end `delta` bytes from the lowest
    /// L1 buffer (or from worker L1's end when there is none).
    Cb {
        delta: i64,
        size: u64,
        cores: Option<u32>,
        global: bool,
    },
    /// A CB placed where the program's CB allocator would.
    Place {
        size: u64,
        cores: Option<u32>,
    },
    FreeAll,
    Program {
        id: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let delta = prop_oneof![Just(0i64), Just(16), Just(-16), -4096i64..4096];
    prop_oneof![
        3 => (1u64..24, any::<bool>()).prop_map(|(pages, bottom_up)| Op::L1 { pages, bottom_up }),
        2 => any::<usize>().prop_map(|which| Op::Free { which }),
        4 => (delta, 1u64..8192, prop::option::of(1u32..64), prop::bool::weighted(0.2))
            .prop_map(|(delta, size, cores, global)| Op::Cb { delta, size, cores, global }),
        1 => (1u64..8192, prop::option::of(1u32..64)).prop_map(|(size, cores)| Op::Place { size, cores }),
        1 => Just(Op::FreeAll),
        1 => (1u64..4).prop_map(|id| Op::Program { id }),
    ]
}

/// The lowest allocated L1 address, as the CB check sees it.
fn lowest_l1(d: &Device) -> Option<u64> {
    d.memory_view(BufferType::L1)
        .iter()
        .filter(|b| b.allocated)
        .map(|b| b.address)
        .min()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn fit_only_checks_agree_with_cb_alloc(ops in prop::collection::vec(op(), 1..120)) {
        let cfg = small_config();
        // `full` takes the checks that build each clash, `fits` the fit-only ones.
        let mut full = Device::new(Arch::WormholeB0, &cfg).unwrap();
        let mut fits = Device::new(Arch::WormholeB0, &cfg).unwrap();
        let mut live: Vec<BufferId> = Vec::new();
        let mut next = 0u64;
        for op in &ops {
            match *op {
                Op::L1 { pages, bottom_up } => {
                    next += 1;
                    let req = AllocRequest {
                        buffer_type: BufferType::L1,
                        size: pages * 1024,
                        page_size: Some(1024),
                        layout: Layout::Interleaved,
                        num_cores: None,
                        bottom_up: Some(bottom_up),
                        per_bank_size: None,
                    };
                    let a = full.allocate(BufferId(next), &req).map(|p| p.address).ok();
                    let b = fits.allocate(BufferId(next), &req).map(|p| p.address).ok();
                    prop_assert_eq!(a, b);
                    if a.is_some() {
                        live.push(BufferId(next));
                    }
                }
                Op::Free { which } => {
                    if live.is_empty() {
                        continue;
                    }
                    let id = live.remove(which % live.len());
                    prop_assert!(full.deallocate(id).is_some());
                    prop_assert!(fits.deallocate(id).is_some());
                }
                Op::Cb { delta, size, cores, global } => {
                    let limit = lowest_l1(&full).unwrap_or(4096 + (32 << 10));
                    let end = (limit as i64 + delta).max(size as i64) as u64;
                    let address = end - size;
                    let expect = full.cb_alloc(address, size, cores, global);
                    let got = fits.cb_alloc_fits(address, size, cores, global);
                    prop_assert_eq!(got, expect.is_ok(), "{:?}", op);
                    if let Err(clash) = expect {
                        prop_assert_eq!(fits.cb_clash_now(cores), Some(clash));
                    } else if !global {
                        prop_assert_eq!(fits.cb_clash_now(cores), None);
                    }
                }
                Op::Place { size, cores } => {
                    let expect = full.cb_place(size, cores);
                    let got = fits.cb_place_fits(size, cores);
                    prop_assert_eq!(got, expect.is_ok());
                    match expect {
                        Err(clash) => prop_assert_eq!(fits.cb_clash_now(cores), Some(clash)),
                        Ok(_) => prop_assert_eq!(fits.cb_clash_now(cores), None),
                    }
                }
                Op::FreeAll => {
                    full.cb_free_all();
                    fits.cb_free_all();
                    prop_assert_eq!(fits.cb_clash_now(None), None);
                }
                Op::Program { id } => {
                    let a = full.load_program(ProgramId(id), 2048).is_ok();
                    let b = fits.load_program(ProgramId(id), 2048).is_ok();
                    prop_assert_eq!(a, b);
                }
            }
            prop_assert_eq!(full.cb_count(), fits.cb_count());
            prop_assert_eq!(full.cb_region_end(), fits.cb_region_end());
            prop_assert_eq!(full.cb_static_bytes(), fits.cb_static_bytes());
        }
    }
}
