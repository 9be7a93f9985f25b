//! Property tests over a whole simulated device with small banks (so that
//! out-of-memory and fragmentation happen often): accounting, no overlap,
//! block tables, OOM figures and `close`.

use proptest::prelude::*;
use std::collections::BTreeMap;
use ttalloc_model::alloc::{AllocError, AllocRequest, Device, Owner, Placement};
use ttalloc_model::{Arch, BufferId, BufferType, DeviceConfig, Layout};

mod common;
use common::small_config;

#[derive(Clone, Debug)]
enum Op {
    Alloc {
        bt: BufferType,
        pages: u64,
        page: u64,
        sharded: Option<u32>,
        dir: Option<bool>,
    },
    Free {
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
        3 => (bt, 1u64..40, prop_oneof![Just(2048u64), Just(1024), 1u64..3000], prop::option::of(1u32..8), prop::option::of(any::<bool>()))
            .prop_map(|(bt, pages, page, sharded, dir)| Op::Alloc { bt, pages, page, sharded, dir }),
        2 => any::<usize>().prop_map(|which| Op::Free { which }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn device_accounting_holds(ops in prop::collection::vec(op(), 1..200)) {
        let mut d = Device::new(Arch::WormholeB0, &small_config()).unwrap();
        let mut live: BTreeMap<BufferId, (BufferType, Placement)> = BTreeMap::new();
        let mut next = 0u64;
        for op in &ops {
            match *op {
                Op::Alloc { bt, pages, page, sharded, dir } => {
                    next += 1;
                    let id = BufferId(next);
                    let req = AllocRequest {
                        buffer_type: bt,
                        size: pages * page,
                        page_size: Some(page),
                        layout: if sharded.is_some() { Layout::BlockSharded } else { Layout::Interleaved },
                        num_cores: sharded,
                        bottom_up: dir,
                        per_bank_size: None,
                    };
                    let before = d.stats(bt);
                    match d.allocate(id, &req) {
                        Ok(p) => { live.insert(id, (bt, p)); }
                        Err(AllocError::OutOfMemory(oom)) => {
                            // The error carries the manager's figures at the time.
                            prop_assert_eq!(oom.allocated, before.allocated);
                            prop_assert_eq!(oom.free, before.free);
                            prop_assert_eq!(oom.largest_free, before.largest_free);
                            prop_assert!(oom.alloc_size > oom.largest_free);
                            prop_assert_eq!(oom.is_fragmentation(), oom.free >= oom.alloc_size);
                            prop_assert_eq!(d.stats(bt), before, "a failed allocation changes nothing");
                            prop_assert!(!d.is_live(id));
                        }
                        Err(e) => return Err(TestCaseError::fail(format!("unexpected {e}"))),
                    }
                }
                Op::Free { which } => {
                    if live.is_empty() { continue; }
                    let id = *live.keys().nth(which % live.len()).unwrap();
                    let (bt, p) = live.remove(&id).unwrap();
                    let r = d.deallocate(id).unwrap();
                    prop_assert_eq!((r.buffer, r.buffer_type, r.address), (Some(id), bt, p.address));
                    prop_assert!(d.deallocate(id).is_none());
                }
            }
            for bt in BufferType::DEVICE {
                let st = d.stats(bt);
                prop_assert_eq!(st.allocated + st.free, st.total_allocatable);
                prop_assert!(st.largest_free <= st.free);
                // Live buffers of one type never overlap (same address in every bank).
                let mut ranges: Vec<(u64, u64)> = live.values().filter(|(t, _)| *t == bt)
                    .map(|(_, p)| (p.address, p.address + p.per_bank)).collect();
                ranges.sort();
                for w in ranges.windows(2) { prop_assert!(w[0].1 <= w[1].0, "{:?}", w); }
                let used: u64 = ranges.iter().map(|r| r.1 - r.0).sum();
                prop_assert_eq!(used, st.allocated);
                // The block table shows each live buffer under its owner.
                let view = d.memory_view(bt);
                let owned: Vec<(u64, u64, Owner)> = view.iter().filter(|b| b.allocated)
                    .map(|b| (b.address, b.address + b.size, b.owner.unwrap())).collect();
                let mut expect: Vec<(u64, u64, Owner)> = live.iter().filter(|(_, (t, _))| *t == bt)
                    .map(|(id, (_, p))| (p.address, p.address + p.per_bank, Owner::Buffer(*id))).collect();
                expect.sort();
                prop_assert_eq!(owned, expect);
            }
        }
        let released = d.close();
        let mut got: Vec<BufferId> = released.iter().filter_map(|r| r.buffer).collect();
        got.sort();
        prop_assert_eq!(got, live.keys().copied().collect::<Vec<_>>());
        for bt in BufferType::DEVICE {
            let view = d.memory_view(bt);
            prop_assert!(view.len() <= 1 && view.iter().all(|b| !b.allocated));
        }
    }
}

fn any_config() -> impl Strategy<Value = DeviceConfig> {
    // Mostly unknown (the preset fills it), sometimes anything.
    let q = || {
        prop::option::weighted(
            0.25,
            prop_oneof![
                0u64..5,
                0u64..100_000,
                Just(u64::MAX),
                Just(u64::MAX / 2),
                any::<u64>()
            ],
        )
    };
    let n = || {
        prop::option::of(prop_oneof![
            0u32..3,
            1u32..200,
            Just(u32::MAX),
            any::<u32>()
        ])
    };
    ((n(), q(), n(), q()), (n(), q(), n(), q()), (q(), q(), q())).prop_map(
        |((db, dbs, da, dub), (lb, lbs, la, lub), (ls, tr, w))| DeviceConfig {
            dram_banks: db,
            dram_bank_size: dbs,
            dram_alignment: da,
            dram_unreserved_base: dub,
            l1_banks: lb,
            l1_bank_size: lbs,
            l1_alignment: la,
            l1_unreserved_base: lub,
            l1_small_size: ls,
            trace_region_size: tr,
            worker_l1_size: w,
        },
    )
}

/// A preset with a few fields moved the way real machines and `--set`
/// move them: fewer banks, another alignment, a different L1_SMALL or
/// trace region, bank sizes left unknown (derived) or recorded smaller.
/// Every such config is one tt-metal could run with: it must build.
fn perturbed_preset() -> impl Strategy<Value = (Arch, DeviceConfig)> {
    let arch = prop_oneof![Just(Arch::WormholeB0), Just(Arch::Blackhole)];
    let fraction = || prop::option::of(1u64..=100);
    let alignment = || prop::option::of(prop_oneof![Just(16u32), Just(32), Just(64)]);
    (
        arch,
        (fraction(), fraction(), fraction(), fraction()),
        (alignment(), alignment()),
        (
            prop::option::of(0u64..=(512 << 10)),
            prop::option::of(0u64..=(256 << 20)),
        ),
    )
        .prop_map(|(arch, (db, dbs, lb, lbs), (da, la), (small, trace))| {
            let p = ttalloc_model::alloc::preset(arch);
            let pct = |v: Option<u64>, f: Option<u64>| f.map(|f| (v.unwrap() * f / 100).max(1));
            let mut c = DeviceConfig {
                dram_banks: pct(p.dram_banks.map(u64::from), db).map(|v| v as u32),
                l1_banks: pct(p.l1_banks.map(u64::from), lb).map(|v| v as u32),
                dram_alignment: da,
                l1_alignment: la,
                l1_small_size: small,
                trace_region_size: trace,
                ..DeviceConfig::default()
            };
            // A recorded bank size is at most what is left beside the
            // (possibly moved) L1_SMALL / trace regions.
            if let Some(f) = dbs {
                let room = p.dram_bank_size.unwrap() + p.trace_region_size.unwrap()
                    - trace.unwrap_or(p.trace_region_size.unwrap());
                c.dram_bank_size = Some((room * f / 100).max(1));
            }
            if let Some(f) = lbs {
                let room = p.l1_bank_size.unwrap() + p.l1_small_size.unwrap()
                    - small.unwrap_or(p.l1_small_size.unwrap());
                c.l1_bank_size = Some((room * f / 100).max(1));
            }
            (arch, c)
        })
}

type Request = (u64, Option<u64>, Option<u32>, u8, u64);

fn requests() -> impl Strategy<Value = Vec<Request>> {
    prop::collection::vec(
        (
            any::<u64>(),
            prop::option::of(any::<u64>()),
            prop::option::of(any::<u32>()),
            0u8..5,
            any::<u64>(),
        ),
        0..20,
    )
}

/// Any request on `d` is placed or refused, never a panic, and the books of
/// every bank manager stay whole.
fn exercise(mut d: Device, reqs: Vec<Request>) -> Result<(), TestCaseError> {
    for (i, (size, page, cores, bt, addr)) in reqs.into_iter().enumerate() {
        let bt = BufferType::from_u8(bt).unwrap();
        let req = AllocRequest {
            buffer_type: bt,
            size: size >> (i % 64),
            page_size: page,
            layout: if cores.is_some() {
                Layout::WidthSharded
            } else {
                Layout::Interleaved
            },
            num_cores: cores,
            bottom_up: None,
            // Every third request carries a recorded per-bank size (trace 2.1).
            per_bank_size: (i % 3 == 1).then(|| (size >> (i % 64)) / 7 + 1),
        };
        let _ = d.allocate(BufferId(i as u64), &req);
        let _ = d.allocate_at(BufferId(1000 + i as u64), &req, addr >> (i % 64));
        let _ = d.cb_alloc(addr, size, cores, i % 2 == 0);
        let _ = d.cb_place(size >> (i % 64), cores);
        let _ = d.load_program(ttalloc_model::ProgramId(i as u64), size >> 20);
        let _ = d.capture_trace(ttalloc_model::TraceId(i as u32), size >> 24);
        for bt in BufferType::ALL {
            let st = d.stats(bt);
            if bt != BufferType::SystemMemory {
                prop_assert_eq!(st.allocated + st.free, st.total_allocatable);
            }
            let _ = d.memory_view(bt);
        }
    }
    d.close();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Configs near the presets build, and requests on them never panic.
    #[test]
    fn perturbed_presets_build_and_requests_never_panic(
        (arch, cfg) in perturbed_preset(),
        reqs in requests(),
    ) {
        let d = Device::new(arch, &cfg);
        prop_assert!(d.is_ok(), "{:?} {:?}: {}", arch, cfg, d.err().unwrap());
        exercise(d.unwrap(), reqs)?;
    }

    /// Bad input never panics: any config either builds a device or is a
    /// `ConfigError` (only a contradictory one is refused).
    #[test]
    fn arbitrary_configs_and_requests_never_panic(
        cfg in any_config(),
        arch in prop_oneof![Just(Arch::WormholeB0), Just(Arch::Blackhole), Just(Arch::Unknown)],
        reqs in requests(),
    ) {
        match Device::new(arch, &cfg) {
            Ok(d) => exercise(d, reqs)?,
            Err(_) => prop_assert!(!cfg.known().is_empty()),
        }
    }
}
