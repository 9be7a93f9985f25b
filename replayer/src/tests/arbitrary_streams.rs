//! Any event sequence — frees of unknown ids, closes of unopened devices,
//! absurd sizes, bad configs — replays without a panic, and the books
//! balance: a stream that frees everything it allocates and closes its
//! devices reports no leak.
use super::*;
use crate::cycles::CycleRule;
use crate::engine::{CycleInput, Engine, EngineSetup};
use proptest::prelude::*;
use ttalloc_model::hash::FastSet;

#[derive(Clone, Debug)]
enum Step {
    Open(u32, u8),
    Close(u32),
    Alloc(u32, u64, u8, u64, Option<u64>, u8, Option<u32>),
    Free(u32, u64),
    Cb(u32, u64, u64),
    CbFreeAll(u32),
    Load(u32, u64, u64),
    Unload(u32, u64),
    Capture(u32, u32, u64),
    Release(u32, u32),
    Marker(u8),
    OpBegin(u8),
    OpEnd,
}

fn size() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), 1u64..100_000, Just(u64::MAX), Just(1u64 << 40)]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u32..3, 0u8..4).prop_map(|(d, c)| Step::Open(d, c)),
        (0u32..3).prop_map(Step::Close),
        (
            0u32..3,
            0u64..20,
            0u8..5,
            size(),
            proptest::option::of(0u64..2_000_000),
            0u8..4,
            proptest::option::of(0u32..70)
        )
            .prop_map(|(d, b, t, s, a, l, c)| Step::Alloc(d, b, t, s, a, l, c)),
        (0u32..3, 0u64..20).prop_map(|(d, b)| Step::Free(d, b)),
        (0u32..3, 0u64..2_000_000, size()).prop_map(|(d, a, s)| Step::Cb(d, a, s)),
        (0u32..3).prop_map(Step::CbFreeAll),
        (0u32..3, 0u64..5, size()).prop_map(|(d, p, s)| Step::Load(d, p, s)),
        (0u32..3, 0u64..5).prop_map(|(d, p)| Step::Unload(d, p)),
        (0u32..3, 0u32..5, size()).prop_map(|(d, t, s)| Step::Capture(d, t, s)),
        (0u32..3, 0u32..5).prop_map(|(d, t)| Step::Release(d, t)),
        (0u8..3).prop_map(Step::Marker),
        (0u8..3).prop_map(Step::OpBegin),
        Just(Step::OpEnd),
    ]
}

/// `config` of a device with room in every region.
const ROOMY: u8 = 4;

fn config(c: u8) -> DeviceConfig {
    match c {
        0 => DeviceConfig::default(),
        ROOMY => DeviceConfig {
            l1_small_size: Some(256 << 10),
            trace_region_size: Some(64 << 20),
            ..Default::default()
        },
        1 => tiny_l1(),
        // Impossible: more L1 than the core has.
        2 => DeviceConfig {
            l1_bank_size: Some(1 << 30),
            worker_l1_size: Some(1 << 20),
            ..Default::default()
        },
        _ => DeviceConfig {
            trace_region_size: Some(0),
            l1_small_size: Some(65536),
            ..Default::default()
        },
    }
}

fn build(ops: &[Step]) -> Trace {
    let mut t = Trace::new();
    let s = t.site(&[("f", "w.py", 1)]);
    for o in ops {
        match *o {
            Step::Open(d, c) => {
                t.open_with(d, config(c));
            }
            Step::Close(d) => {
                t.close(d);
            }
            Step::Alloc(d, b, bt, size, address, layout, num_cores) => {
                t.push(EventKind::BufferAlloc {
                    device: DeviceId(d),
                    buffer: BufferId(b),
                    buffer_type: BufferType::from_u8(bt).unwrap(),
                    address,
                    size,
                    page_size: if size % 3 == 0 { None } else { Some(2048) },
                    layout: Layout::from_u8(layout).unwrap(),
                    num_cores,
                    per_bank_size: None,
                    label: StringId::EMPTY,
                    site: s,
                });
            }
            Step::Free(d, b) => {
                t.free(d, b);
            }
            Step::Cb(d, address, size) => {
                t.push(EventKind::CbAlloc {
                    device: DeviceId(d),
                    address,
                    size,
                    cores: Some(8),
                    globally_allocated: size % 2 == 0,
                    site: s,
                });
            }
            Step::CbFreeAll(d) => {
                t.push(EventKind::CbFreeAll {
                    device: DeviceId(d),
                });
            }
            Step::Load(d, p, size) => {
                t.push(EventKind::ProgramLoad {
                    device: DeviceId(d),
                    program: ProgramId(p),
                    binary_size: size,
                    site: s,
                });
            }
            Step::Unload(d, p) => {
                t.push(EventKind::ProgramUnload {
                    device: DeviceId(d),
                    program: ProgramId(p),
                });
            }
            Step::Capture(d, id, size) => {
                t.push(EventKind::TraceCapture {
                    device: DeviceId(d),
                    trace_id: TraceId(id),
                    size,
                    site: SiteId::UNKNOWN,
                });
            }
            Step::Release(d, id) => {
                t.push(EventKind::TraceRelease {
                    device: DeviceId(d),
                    trace_id: TraceId(id),
                });
            }
            Step::Marker(m) => {
                t.marker(&format!("run {m}"));
            }
            Step::OpBegin(n) => {
                t.op(&format!("ttnn.op{n}"));
            }
            Step::OpEnd => {
                t.op_end();
            }
        }
    }
    t
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn never_panics(ops in proptest::collection::vec(step(), 0..120), bisect in any::<bool>()) {
        let t = build(&ops);
        let opts = ReplayOptions { bisect, ..ReplayOptions::default() };
        // Bad configs may be refused (an error), never a panic.
        if let Ok(r) = replay_events(t.events.clone(), t.it.clone(), &opts) {
            prop_assert_eq!(r.events, t.events.len() as u64);
            let _ = r.render_human();
            let _ = r.to_json();
        }
    }

    /// A cycle's allocations found at its end by a scan of the records
    /// give the books a list of them gives (leaks, what each cycle left
    /// behind, per site, and the what-if release of a site).
    #[test]
    fn cycles_found_by_scan_or_by_list_agree(ops in proptest::collection::vec(step(), 0..200), release in any::<bool>()) {
        let t = build(&ops);
        let sites: FastSet<SiteId> = t.events.iter().filter_map(|e| match e.kind {
            EventKind::BufferAlloc { site, .. } => Some(site),
            _ => None,
        }).collect();
        let run = |scan: bool| {
            let overrides = DeviceConfig::default();
            let mut engine = Engine::new(EngineSetup {
                arch: Arch::WormholeB0,
                overrides: &overrides,
                warmup: 1,
                cycles: CycleInput::Online(CycleRule::MarkerAll),
                interner: &t.it,
                release_sites: release.then_some(&sites),
                stop_at_oom: false,
            });
            engine.force_cycle_scan(scan);
            let fed = engine.feed(0, &t.events).is_ok();
            (fed, engine.finish())
        };
        let (listed, scanned) = (run(false), run(true));
        prop_assert_eq!(listed, scanned);
    }

    /// Every allocation fits — each buffer type's sizes are bounded so
    /// that 60 of them fit on one device, L1_SMALL ones are sharded as
    /// tt-metal requires, and the frees all come last — so the books
    /// must balance exactly: nothing refused, no OOM, no leak.
    #[test]
    fn freeing_everything_leaves_nothing(allocs in proptest::collection::vec((0u32..3, 0usize..4, 0u64..1_000_000), 1..60)) {
        // (buffer type code, largest size): DRAM over 12 x 1 GiB banks;
        // L1 over 64 banks of 1499136 - 134208 - 262144 B; L1_SMALL on
        // 8 cores of 256 KiB; TRACE over 12 x 64 MiB trace regions.
        const TYPES: [(u8, u64); 4] = [(0, 5_000_000), (1, 800_000), (3, 30_000), (4, 4_000_000)];
        let mut ops: Vec<Step> = (0..3).map(|d| Step::Open(d, ROOMY)).collect();
        let mut used = std::collections::BTreeSet::new();
        for (i, &(d, t, fraction)) in allocs.iter().enumerate() {
            let (bt, largest) = TYPES[t];
            let size = 1 + fraction * largest / 1_000_000;
            let (layout, cores) = if bt == 3 { (1, Some(8)) } else { (0, None) };
            ops.push(Step::Alloc(d, i as u64, bt, size, None, layout, cores));
            used.insert((d, bt));
        }
        for (i, &(d, _, _)) in allocs.iter().enumerate().rev() {
            ops.push(Step::Free(d, i as u64));
        }
        ops.extend([Step::Close(0), Step::Close(1), Step::Close(2)]);
        let t = build(&ops);
        let r = t.replay(&ReplayOptions::default());
        prop_assert_eq!(r.ooms, 0, "{:?}", r.oom);
        prop_assert_eq!(r.rejected_allocs, 0, "{:?}", r.first_rejection);
        prop_assert!(r.leaks.is_empty(), "{:?}", r.leaks);
        prop_assert_eq!(r.unknown_frees + r.double_frees, 0);
        // Every buffer was placed: each (device, type) used has a peak.
        for (d, bt) in used {
            let p = &r.peak[&d.to_string()];
            let peak = [p.dram, p.l1, 0, p.l1_small, p.trace][bt as usize];
            prop_assert!(peak > 0, "device {} type {}: {:?}", d, bt, p);
        }
    }
}
