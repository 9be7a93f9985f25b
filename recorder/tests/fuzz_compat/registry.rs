//! The registry: survives extremes and agrees with a reference model.

use super::*;

/// Ids handed out by the registry (and checked for uniqueness).
#[derive(Default)]
struct Ids {
    buffers: Vec<u64>,
    programs: Vec<u64>,
}

impl IdSource for Ids {
    fn buffer_id(&mut self, local: u64) -> BufferId {
        self.buffers.push(local);
        BufferId(local)
    }
    fn program_id(&mut self, local: u64) -> ProgramId {
        self.programs.push(local);
        ProgramId(local)
    }
}

#[derive(Clone, Debug)]
enum Step {
    Msg(Message, i32),
    DropOwner(i32),
    Report,
}

fn step(msg: BoxedStrategy<Message>) -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (msg, 1..4i32).prop_map(|(m, o)| Step::Msg(m, o)),
        1 => (1..4i32).prop_map(Step::DropOwner),
        1 => Just(Step::Report),
    ]
}

/// Any request type, raw type bytes too, with extreme fields; a small pool of
/// devices and ids so keys collide.
fn wild_message() -> BoxedStrategy<Message> {
    (
        prop_oneof![4 => (0..REQUESTS.len()).prop_map(|t| REQUESTS[t] as u8), 1 => any::<u8>()],
        prop_oneof![3 => 0..3i32, 1 => edge_i32()],
        edge_u64(),
        prop_oneof![3 => 0..5u8, 1 => any::<u8>()],
        prop_oneof![3 => 0..4u64, 1 => edge_u64()],
    )
        .prop_map(
            |(msg_type, device_id, size, buffer_type, buffer_id)| Message {
                msg_type,
                device_id,
                size,
                buffer_type,
                process_id: 1,
                buffer_id,
                ..Default::default()
            },
        )
        .boxed()
}

/// Ordinary values: what the reference model can sum without overflow.
fn tame_message() -> BoxedStrategy<Message> {
    (
        0..REQUESTS.len(),
        -1..3i32,
        0..1_000_000u64,
        0..6u8,
        0..4u64,
    )
        .prop_map(|(t, device_id, size, buffer_type, buffer_id)| Message {
            msg_type: REQUESTS[t] as u8,
            device_id,
            size,
            buffer_type,
            process_id: 1,
            buffer_id,
            ..Default::default()
        })
        .boxed()
}

fn run_reports(r: &mut Registry, ids: &mut Ids) {
    let dump = r.dump_remaining();
    assert!(dump
        .iter()
        .any(|l| l.starts_with("Total tracked allocations")));
    let _ = r.statistics();
    for d in [-1, 0, 1, i32::MAX, i32::MIN] {
        let q = Message {
            msg_type: MsgType::DeviceInfoQuery as u8,
            device_id: d,
            ..Default::default()
        };
        let reply = r
            .apply(&q, 1, ids)
            .reply
            .expect("DEVICE_INFO_QUERY is answered");
        assert_eq!(reply.msg_type, MsgType::DeviceInfoResponse as u8);
        assert_eq!(reply.device_id, d);
    }
}

/// (device, buffer_id): the registry's key.
type Key = (i32, u64);
/// A live buffer: (owner, size, type, refs, trace id).
type LiveBuffer = (i32, u64, BufferType, u32, BufferId);

/// The reference model: live keys with refcounts.
#[derive(Default)]
struct Model {
    buffers: HashMap<Key, LiveBuffer>,
    /// (owner, size, refs)
    cbs: HashMap<Key, (i32, u64, u32)>,
    /// (owner, size, refs, program)
    kernels: HashMap<Key, (i32, u64, u32, ProgramId)>,
    unknown_frees: u64,
}

impl Model {
    fn bytes(&self, device: i32) -> [u64; 4] {
        let mut out = [0u64; 4];
        for (&(d, _), &(_, size, bt, _, _)) in &self.buffers {
            if d == device {
                let slot = match bt {
                    BufferType::Dram => 0,
                    BufferType::L1 => 1,
                    BufferType::SystemMemory | BufferType::L1Small => 2,
                    BufferType::Trace => 3,
                };
                out[slot] += size;
            }
        }
        out
    }

    fn drop_owner(&mut self, owner: i32) -> (u64, u64) {
        let gone: Vec<_> = self
            .buffers
            .iter()
            .filter(|(_, v)| v.0 == owner)
            .map(|(k, v)| (*k, v.1))
            .collect();
        for (k, _) in &gone {
            self.buffers.remove(k);
        }
        self.cbs.retain(|_, v| v.0 != owner);
        self.kernels.retain(|_, v| v.0 != owner);
        (gone.len() as u64, gone.iter().map(|(_, s)| s).sum())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Any sequence of messages with extreme values: no panic (no overflow in
    /// the counters, the DUMP_REMAINING totals, the statistics or the device
    /// count), ids unique, every event on a valid device.
    #[test]
    fn registry_survives_extremes(
        steps in proptest::collection::vec(step(wild_message()), 0..60),
        python in any::<bool>(),
    ) {
        let numbering = if python { Numbering::PythonDemo } else { Numbering::TtMetal };
        let mut r = Registry::new(numbering);
        let mut ids = Ids::default();
        for s in &steps {
            match s {
                Step::Msg(m, owner) => {
                    let out = r.apply(m, *owner, &mut ids);
                    for e in &out.events {
                        let dev = e.device().expect("compat events have a device");
                        assert_eq!(i64::from(dev.0), i64::from(m.device_id), "{e:?}");
                    }
                    if m.kind().is_none() {
                        assert!(out.rejected && out.events.is_empty());
                    }
                    if let Some(reply) = out.reply {
                        assert!(matches!(
                            reply.kind(),
                            Some(MsgType::Response | MsgType::DeviceInfoResponse)
                        ));
                    }
                }
                Step::DropOwner(o) => {
                    let _ = r.drop_owner(*o);
                }
                Step::Report => run_reports(&mut r, &mut ids),
            }
        }
        run_reports(&mut r, &mut ids);
        // A free of an unknown address carries the address in its id (to be
        // named by it), so two of those at one address share it; every other
        // id is handed out once.
        let by_address = |id: &u64| id & ttalloc_model::buffer_name::COMPAT_ADDRESS_LOCAL != 0;
        let mut all: Vec<u64> = ids.buffers.iter().chain(&ids.programs).copied().filter(|i| !by_address(i)).collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "ids handed out twice");
    }

    /// Ordinary values: QUERY answers, active allocations, unknown frees and
    /// the trace events agree with a reference model of ref-counted keys.
    #[test]
    fn registry_matches_the_model(
        steps in proptest::collection::vec(step(tame_message()), 0..80),
    ) {
        let mut r = Registry::new(Numbering::TtMetal);
        let mut ids = Ids::default();
        let mut m = Model::default();
        for s in &steps {
            match s {
                Step::Msg(msg, owner) => {
                    let out = r.apply(msg, *owner, &mut ids);
                    check_message(&mut m, msg, *owner, &out.events, out.rejected);
                }
                Step::DropOwner(o) => assert_eq!(r.drop_owner(*o), m.drop_owner(*o)),
                Step::Report => run_reports(&mut r, &mut ids),
            }
            assert_eq!(r.active_allocations(), m.buffers.len());
            assert_eq!(r.unknown_frees, m.unknown_frees);
            for d in 0..3 {
                let q = Message { msg_type: MsgType::Query as u8, device_id: d, ..Default::default() };
                let a = r.apply(&q, 1, &mut ids).reply.unwrap();
                assert_eq!(
                    [a.dram_allocated, a.l1_allocated, a.l1_small_allocated, a.trace_allocated],
                    m.bytes(d),
                    "device {d}"
                );
                let c = r.counters(d);
                let cb: u64 = m.cbs.iter().filter(|(k, _)| k.0 == d).map(|(_, v)| v.1).sum();
                let kernel: u64 = m.kernels.iter().filter(|(k, _)| k.0 == d).map(|(_, v)| v.1).sum();
                assert_eq!((c.cb, c.kernel), (cb, kernel), "device {d}");
            }
        }
    }
}

/// Applies `msg` to the model and checks the registry's events against it.
fn check_message(m: &mut Model, msg: &Message, owner: i32, events: &[EventKind], rejected: bool) {
    let key = (msg.device_id, msg.buffer_id);
    let kind = msg.kind().unwrap();
    let needs_device = !matches!(
        kind,
        MsgType::DeviceInfoQuery | MsgType::Query | MsgType::DumpRemaining | MsgType::DumpKernels
    );
    if needs_device && msg.device_id < 0 {
        assert!(rejected && events.is_empty());
        return;
    }
    let dev = DeviceId(msg.device_id.max(0) as u32);
    match kind {
        MsgType::Alloc => match BufferType::from_u8(msg.buffer_type) {
            None => assert!(rejected && events.is_empty()),
            Some(bt) => match m.buffers.get_mut(&key) {
                Some(e) => {
                    e.3 += 1;
                    assert!(events.is_empty());
                }
                None => {
                    let [EventKind::BufferAlloc {
                        device,
                        buffer,
                        buffer_type,
                        address,
                        size,
                        ..
                    }] = events
                    else {
                        panic!("{events:?}")
                    };
                    assert_eq!(
                        (*device, *buffer_type, *address, *size),
                        (dev, bt, Some(msg.buffer_id), msg.size)
                    );
                    m.buffers.insert(key, (owner, msg.size, bt, 1, *buffer));
                }
            },
        },
        MsgType::Free => match m.buffers.get_mut(&key) {
            None => {
                m.unknown_frees += 1;
                let [EventKind::BufferFree { device, buffer, .. }] = events else {
                    panic!("{events:?}")
                };
                assert_eq!(*device, dev);
                assert!(
                    m.buffers.values().all(|v| v.4 != *buffer),
                    "an unknown free hit a live id"
                );
            }
            Some(e) => {
                e.3 -= 1;
                if e.3 == 0 {
                    let id = e.4;
                    m.buffers.remove(&key);
                    assert_eq!(
                        events,
                        [EventKind::BufferFree {
                            device: dev,
                            buffer: id,
                            site: ttalloc_model::SiteId::UNKNOWN
                        }]
                    );
                } else {
                    assert!(events.is_empty());
                }
            }
        },
        MsgType::CbAlloc => match m.cbs.get_mut(&key) {
            Some(e) => {
                e.2 += 1;
                assert!(events.is_empty());
            }
            None => {
                m.cbs.insert(key, (owner, msg.size, 1));
                assert!(
                    matches!(events, [EventKind::CbAlloc { device, size, .. }] if *device == dev && *size == msg.size),
                    "{events:?}"
                );
            }
        },
        MsgType::CbFree => match m.cbs.get_mut(&key) {
            None => assert!(events.is_empty()),
            Some(e) => {
                e.2 -= 1;
                if e.2 == 0 {
                    m.cbs.remove(&key);
                    if m.cbs.keys().any(|k| k.0 == msg.device_id) {
                        assert!(events.is_empty());
                    } else {
                        assert_eq!(events, [EventKind::CbFreeAll { device: dev }]);
                    }
                } else {
                    assert!(events.is_empty());
                }
            }
        },
        MsgType::KernelLoad => match m.kernels.get_mut(&key) {
            Some(e) => {
                e.2 += 1;
                assert!(events.is_empty());
            }
            None => {
                let [EventKind::ProgramLoad {
                    device,
                    program,
                    binary_size,
                    ..
                }] = events
                else {
                    panic!("{events:?}")
                };
                assert_eq!((*device, *binary_size), (dev, msg.size));
                m.kernels.insert(key, (owner, msg.size, 1, *program));
            }
        },
        MsgType::KernelUnload => match m.kernels.get_mut(&key) {
            None => assert!(events.is_empty()),
            Some(e) => {
                e.2 -= 1;
                if e.2 == 0 {
                    let program = e.3;
                    m.kernels.remove(&key);
                    assert_eq!(
                        events,
                        [EventKind::ProgramUnload {
                            device: dev,
                            program
                        }]
                    );
                } else {
                    assert!(events.is_empty());
                }
            }
        },
        _ => assert!(events.is_empty()),
    }
}

/// The overflows the extremes property found, pinned down.
#[test]
fn extreme_sizes_do_not_overflow() {
    let mut r = Registry::new(Numbering::TtMetal);
    let mut ids = Ids::default();
    let msg = |t: MsgType, device_id: i32, size: u64, buffer_type: u8, buffer_id: u64| Message {
        msg_type: t as u8,
        device_id,
        size,
        buffer_type,
        process_id: 1,
        buffer_id,
        ..Default::default()
    };
    for id in 0..2 {
        for t in [MsgType::Alloc, MsgType::CbAlloc, MsgType::KernelLoad] {
            r.apply(&msg(t, 0, u64::MAX, 0, id), 1, &mut ids);
        }
        // DRAM and L1 both full: the statistics total must not overflow.
        r.apply(&msg(MsgType::Alloc, 0, u64::MAX, 1, 100 + id), 1, &mut ids);
    }
    r.apply(&msg(MsgType::Alloc, i32::MAX, 1, 0, 0), 1, &mut ids);
    let c = r.counters(0);
    assert_eq!(
        (c.dram, c.l1, c.cb, c.kernel),
        (u64::MAX, u64::MAX, u64::MAX, u64::MAX)
    );
    let stats = r.statistics();
    assert!(stats.contains("Device 0:"), "{stats}");
    let dump = r.dump_remaining().join("\n");
    assert!(dump.contains("DRAM: 2 buffers"), "{dump}");
    let info = r
        .apply(&msg(MsgType::DeviceInfoQuery, -1, 0, 0, 0), 1, &mut ids)
        .reply
        .unwrap();
    assert_eq!(info.num_devices, 1u32 << 31, "devices 0..=i32::MAX");
    let (count, bytes) = r.drop_owner(1);
    assert_eq!((count, bytes), (5, u64::MAX));
}
