//! The writer thread's live accounting (`stats::Accounting`) against
//! arbitrary event streams, sizes up to `u64::MAX` included: it never panics
//! (a panic kills the writer thread and leaves the trace unsealed) and its
//! sums are exact, saturated to `u64::MAX` only while they do not fit.

use proptest::prelude::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Duration;
use ttalloc_model::{
    BufferId, BufferType, DeviceId, Event, EventKind, Layout, Pid, ProgramId, SiteId, TraceId,
};
use ttalloc_recorder::protocol::Encoder;
use ttalloc_recorder::stats::Accounting;
use ttalloc_recorder::{Session, SessionOptions};

const HALF: u64 = 1 << 63;

fn event(kind: EventKind) -> Event {
    Event {
        ts: 0,
        pid: Pid(1),
        kind,
    }
}

fn alloc(device: u32, buffer: u64, buffer_type: BufferType, size: u64) -> Event {
    event(EventKind::BufferAlloc {
        device: DeviceId(device),
        buffer: BufferId(buffer),
        buffer_type,
        address: None,
        size,
        page_size: None,
        layout: Layout::Interleaved,
        num_cores: None,
        per_bank_size: None,
        label: ttalloc_model::StringId::EMPTY,
        site: SiteId(0),
    })
}

fn free(device: u32, buffer: u64) -> Event {
    event(EventKind::BufferFree {
        device: DeviceId(device),
        buffer: BufferId(buffer),
        site: SiteId(0),
    })
}

#[test]
fn two_half_range_allocations_saturate_then_come_back_exactly() {
    let mut a = Accounting::default();
    a.apply(&alloc(0, 1, BufferType::Dram, HALF));
    a.apply(&alloc(0, 2, BufferType::Dram, HALF));
    // 2^64 B does not fit: the most a u64 can say, never a wrapped 0.
    let d = &a.snap.devices[&DeviceId(0)];
    assert_eq!(
        (d.live_buffers, d.dram(), d.total()),
        (2, u64::MAX, u64::MAX)
    );
    assert_eq!(a.snap.dram(), u64::MAX);
    assert!(
        a.snap.left_behind().starts_with("device 0: 2 buffers"),
        "{}",
        a.snap.left_behind()
    );
    // Freeing one leaves exactly the other: the sum was kept exact.
    a.apply(&free(0, 1));
    assert_eq!(a.snap.devices[&DeviceId(0)].dram(), HALF);
    a.apply(&free(0, 2));
    assert_eq!(a.snap.left_behind(), "nothing");
}

/// The same through a real session: the writer thread survives, the trace is
/// sealed, and the summary says what is left.
#[test]
fn a_session_survives_allocations_whose_sum_overflows() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("huge.zst");
    let session = Session::start(SessionOptions::new(&out, vec!["test".into()])).unwrap();
    let mut stream = UnixStream::connect(session.socket_path()).unwrap();
    let mut enc = Encoder::new();
    enc.hello(4242, 1, 1, "stats_props", "1", &["stats_props"]);
    let events = [
        alloc(0, 1, BufferType::Dram, HALF),
        alloc(0, 2, BufferType::Dram, HALF),
        alloc(0, 3, BufferType::L1, u64::MAX),
    ];
    let events: Vec<Event> = events
        .into_iter()
        .map(|mut e| {
            e.pid = Pid(4242);
            e
        })
        .collect();
    enc.events(&events);
    enc.goodbye(Some(0));
    stream.write_all(&enc.buf).unwrap();
    drop(stream);
    let summary = session.finish(Duration::from_secs(5)).unwrap();
    assert_eq!(summary.write_error, None);
    let d = &summary.snapshot.devices[&DeviceId(0)];
    assert_eq!((d.live_buffers, d.dram(), d.l1()), (3, u64::MAX, u64::MAX));
    let reader = ttalloc_trace::TraceReader::open(&out).expect("the trace is readable");
    assert!(reader.truncation().is_none(), "the trace is sealed");
    let allocs = reader
        .events()
        .filter_map(Result::ok)
        .filter(|e| matches!(e.kind, EventKind::BufferAlloc { .. }))
        .count();
    assert_eq!(allocs, 3);
}

/// One step of a random stream: small ids so that frees, re-allocations of
/// live ids, unloads and releases hit live objects often.
fn step() -> impl Strategy<Value = Event> {
    let size = prop_oneof![0..4096u64, Just(HALF), Just(u64::MAX), any::<u64>()];
    let bt = prop::sample::select(BufferType::ALL.to_vec());
    let dev = 0..3u32;
    prop_oneof![
        4 => (dev.clone(), 0..8u64, bt, size.clone()).prop_map(|(d, b, t, s)| alloc(d, b, t, s)),
        3 => (dev.clone(), 0..10u64).prop_map(|(d, b)| free(d, b)),
        1 => (dev.clone(), size.clone()).prop_map(|(d, s)| event(EventKind::CbAlloc {
            device: DeviceId(d),
            address: 0,
            size: s,
            cores: None,
            globally_allocated: false,
            site: SiteId(0),
        })),
        1 => dev.clone().prop_map(|d| event(EventKind::CbFreeAll { device: DeviceId(d) })),
        1 => dev.clone().prop_map(|d| event(EventKind::DeviceClose { device: DeviceId(d) })),
        1 => (dev.clone(), 0..3u64, size.clone()).prop_map(|(d, p, s)| event(EventKind::ProgramLoad {
            device: DeviceId(d),
            program: ProgramId(p),
            binary_size: s,
            site: SiteId(0),
        })),
        1 => (dev.clone(), 0..3u64).prop_map(|(d, p)| event(EventKind::ProgramUnload {
            device: DeviceId(d),
            program: ProgramId(p),
        })),
        1 => (dev.clone(), 0..3u32, size).prop_map(|(d, t, s)| event(EventKind::TraceCapture {
            device: DeviceId(d),
            trace_id: TraceId(t),
            size: s,
            site: SiteId(0),
        })),
        1 => (dev, 0..3u32).prop_map(|(d, t)| event(EventKind::TraceRelease {
            device: DeviceId(d),
            trace_id: TraceId(t),
        })),
    ]
}

/// What is live, kept the obvious way: the objects themselves.
#[derive(Default)]
struct Reference {
    buffers: BTreeMap<u64, (u32, BufferType, u64)>,
    cbs: BTreeMap<u32, Vec<u64>>,
    programs: BTreeMap<(u32, u64), u64>,
    traces: BTreeMap<(u32, u32), u64>,
}

impl Reference {
    fn apply(&mut self, e: &Event) {
        match e.kind {
            EventKind::BufferAlloc {
                device,
                buffer,
                buffer_type,
                size,
                ..
            } => {
                self.buffers.insert(buffer.0, (device.0, buffer_type, size));
            }
            EventKind::BufferFree { buffer, .. } => {
                self.buffers.remove(&buffer.0);
            }
            EventKind::CbAlloc { device, size, .. } => {
                self.cbs.entry(device.0).or_default().push(size)
            }
            // Circular buffers die with their programs at a device close;
            // buffers live at the close outlived it and stay counted.
            EventKind::CbFreeAll { device } | EventKind::DeviceClose { device } => {
                self.cbs.remove(&device.0);
            }
            EventKind::ProgramLoad {
                device,
                program,
                binary_size,
                ..
            } => {
                self.programs.insert((device.0, program.0), binary_size);
            }
            EventKind::ProgramUnload { device, program } => {
                self.programs.remove(&(device.0, program.0));
            }
            EventKind::TraceCapture {
                device,
                trace_id,
                size,
                ..
            } => {
                self.traces.insert((device.0, trace_id.0), size);
            }
            EventKind::TraceRelease { device, trace_id } => {
                self.traces.remove(&(device.0, trace_id.0));
            }
            _ => {}
        }
    }
}

/// An exact sum, as a `u64` when it fits.
fn sum(sizes: impl Iterator<Item = u64>) -> u64 {
    u64::try_from(sizes.map(u128::from).sum::<u128>()).unwrap_or(u64::MAX)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sums_are_exact_or_saturated_after_any_stream(steps in prop::collection::vec(step(), 0..64)) {
        let mut acc = Accounting::default();
        let mut reference = Reference::default();
        for e in &steps {
            acc.apply(e);
            reference.apply(e);
            for (dev, d) in &acc.snap.devices {
                let dev = dev.0;
                let live = || reference.buffers.values().filter(move |b| b.0 == dev);
                prop_assert_eq!(d.live_buffers, live().count() as u64);
                for bt in BufferType::ALL {
                    let want = sum(live().filter(|b| b.1 == bt).map(|b| b.2));
                    prop_assert_eq!(d.bytes(bt), want, "device {} {}", dev, bt);
                }
                prop_assert_eq!(d.total(), sum(live().map(|b| b.2)));
                let cbs = reference.cbs.get(&dev).cloned().unwrap_or_default();
                prop_assert_eq!((d.cbs, d.cb_bytes()), (cbs.len() as u64, sum(cbs.into_iter())));
                let programs = reference.programs.iter().filter(|(k, _)| k.0 == dev);
                prop_assert_eq!(d.programs, programs.clone().count() as u64);
                prop_assert_eq!(d.program_bytes(), sum(programs.map(|(_, s)| *s)));
                let traces = reference.traces.iter().filter(|(k, _)| k.0 == dev);
                prop_assert_eq!(d.traces, traces.clone().count() as u64);
                prop_assert_eq!(d.trace_bytes(), sum(traces.map(|(_, s)| *s)));
            }
            // The text forms sum too: they must not panic either.
            acc.snap.left_behind();
            acc.snap.server_lines();
        }
    }
}
