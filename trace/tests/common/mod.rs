//! Shared helpers for the trace crate's tests: a small interned vocabulary,
//! proptest strategies for every event kind, and writing a trace.
#![allow(dead_code)]

use proptest::prelude::*;
use std::path::Path;
use ttalloc_model::*;
use ttalloc_trace::{TraceHeader, TraceWriter, WriterOptions};

pub const N_STRINGS: u32 = 6;
pub const N_SITES: u32 = 4;

/// Interns a fixed vocabulary: strings 0..N_STRINGS and sites 0..N_SITES exist.
pub fn vocabulary(t: &mut InternTables) {
    for s in ["ttnn.matmul", "run 1", "python\0test.py", "ttnn.add", "x"] {
        t.intern_string(s);
    }
    let a = t.intern_stack_str(&[("alloc", "buf.py", 10), ("run", "test.py", 5)]);
    let b = t.intern_stack_str(&[("free", "buf.py", 20), ("run", "test.py", 5)]);
    assert!(a.0 < N_SITES && b.0 < N_SITES);
    assert!(t.num_strings() as u32 >= N_STRINGS);
    assert_eq!(t.num_sites() as u32, N_SITES);
}

fn opt<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    prop_oneof![Just(None), s.prop_map(Some)].boxed()
}

pub fn config() -> impl Strategy<Value = DeviceConfig> {
    (
        opt(any::<u32>()),
        opt(any::<u64>()),
        opt(1u32..4096),
        opt(any::<u64>()),
        opt(any::<u64>()),
        opt(any::<u64>()),
    )
        .prop_map(|(b, s, a, base, l1s, tr)| DeviceConfig {
            dram_banks: b,
            dram_bank_size: s,
            dram_alignment: a,
            dram_unreserved_base: base,
            l1_small_size: l1s,
            trace_region_size: tr,
            ..Default::default()
        })
}

pub fn kind() -> impl Strategy<Value = EventKind> {
    // Devices at or above 1024 share the address slots of device 0 (FORMAT.md
    // §5.1, ADDR): mix them with device 0 so that blocks hold both.
    let dev = || {
        prop_oneof![
            4 => 0u32..10,
            2 => 1024u32..1030,
            1 => Just(u32::MAX),
            1 => any::<u32>(),
        ]
        .prop_map(DeviceId)
    };
    let site = || (0..N_SITES).prop_map(SiteId);
    let string = || (0..N_STRINGS).prop_map(StringId);
    let bt = || (0u8..5).prop_map(|v| BufferType::from_u8(v).unwrap());
    let layout = || (0u8..4).prop_map(|v| Layout::from_u8(v).unwrap());
    prop_oneof![
        (any::<u32>(), string()).prop_map(|(p, a)| EventKind::ProcessStart {
            ppid: Pid(p),
            argv: a
        }),
        opt(any::<i32>()).prop_map(|status| EventKind::ProcessExit { status }),
        (dev(), 0u8..5, config()).prop_map(|(device, a, c)| EventKind::DeviceOpen {
            device,
            arch: Arch::from_u8(a).unwrap(),
            config: Box::new(c)
        }),
        dev().prop_map(|device| EventKind::DeviceClose { device }),
        (
            (
                dev(),
                0u64..40,
                bt(),
                opt(any::<u64>()),
                any::<u64>(),
                opt(any::<u64>()),
                layout(),
                opt(any::<u32>()),
                site()
            ),
            // Format 2.1 fields: absent, either or both.
            (
                opt(any::<u64>()),
                prop_oneof![Just(StringId::EMPTY), string()]
            )
        )
            .prop_map(
                |(
                    (device, b, buffer_type, address, size, page_size, layout, num_cores, site),
                    (per_bank_size, label),
                )| {
                    EventKind::BufferAlloc {
                        device,
                        buffer: BufferId(b),
                        buffer_type,
                        address,
                        size,
                        page_size,
                        layout,
                        num_cores,
                        per_bank_size,
                        label,
                        site,
                    }
                }
            ),
        (
            dev(),
            bt(),
            any::<u64>(),
            opt(any::<u64>()),
            layout(),
            opt(any::<u32>()),
            opt(any::<u64>()),
            string(),
            site()
        )
            .prop_map(
                |(
                    device,
                    buffer_type,
                    size,
                    page_size,
                    layout,
                    num_cores,
                    per_bank_size,
                    message,
                    site,
                )| {
                    EventKind::AllocRefused {
                        device,
                        buffer_type,
                        size,
                        page_size,
                        layout,
                        num_cores,
                        per_bank_size,
                        message,
                        site,
                    }
                }
            ),
        (dev(), any::<u64>(), site()).prop_map(|(device, b, site)| EventKind::BufferFree {
            device,
            buffer: BufferId(b),
            site
        }),
        (
            dev(),
            any::<u64>(),
            any::<u64>(),
            opt(any::<u32>()),
            any::<bool>(),
            site()
        )
            .prop_map(|(device, address, size, cores, globally_allocated, site)| {
                EventKind::CbAlloc {
                    device,
                    address,
                    size,
                    cores,
                    globally_allocated,
                    site,
                }
            }),
        dev().prop_map(|device| EventKind::CbFreeAll { device }),
        (dev(), any::<u64>(), any::<u64>(), site()).prop_map(|(device, p, binary_size, site)| {
            EventKind::ProgramLoad {
                device,
                program: ProgramId(p),
                binary_size,
                site,
            }
        }),
        (dev(), any::<u64>()).prop_map(|(device, p)| EventKind::ProgramUnload {
            device,
            program: ProgramId(p)
        }),
        (dev(), any::<u32>(), any::<u64>(), site()).prop_map(|(device, t, size, site)| {
            EventKind::TraceCapture {
                device,
                trace_id: TraceId(t),
                size,
                site,
            }
        }),
        (dev(), any::<u32>()).prop_map(|(device, t)| EventKind::TraceRelease {
            device,
            trace_id: TraceId(t)
        }),
        string().prop_map(|name| EventKind::OpBegin { name }),
        Just(EventKind::OpEnd),
        string().prop_map(|label| EventKind::Marker { label }),
    ]
}

pub fn event() -> impl Strategy<Value = Event> {
    (any::<u64>(), prop_oneof![Just(7u32), any::<u32>()], kind()).prop_map(|(ts, pid, kind)| {
        Event {
            ts,
            pid: Pid(pid),
            kind,
        }
    })
}

pub fn header() -> TraceHeader {
    TraceHeader {
        format_major: 0,
        format_minor: 0,
        ttalloc_version: "test".into(),
        argv: vec!["python".into(), "test.py".into()],
        start_time_ns: 1_700_000_000_000_000_000,
        hostname: "host".into(),
    }
}

/// Writes `events` with the fixed vocabulary, `block_events` per block.
pub fn write(path: &Path, events: &[Event], block_events: usize) {
    let opts = WriterOptions {
        block_events,
        ..Default::default()
    };
    let mut w = TraceWriter::create(path, header(), opts).unwrap();
    vocabulary(w.interner_mut());
    for e in events {
        w.push(e).unwrap();
    }
    w.finish().unwrap();
}

/// A small deterministic workload touching every kind.
pub fn sample_events(n: usize) -> Vec<Event> {
    let mut out = Vec::new();
    let mut ts = 1_700_000_000_000_000_000u64;
    let mut i = 0u64;
    while out.len() < n {
        ts += 1000 + (i * 37) % 500;
        let kind = match i % 9 {
            0 => EventKind::OpBegin { name: StringId(1) },
            1 | 2 => EventKind::BufferAlloc {
                device: DeviceId((i % 3) as u32),
                buffer: BufferId(i),
                buffer_type: BufferType::Dram,
                address: Some(0x1000 * (i % 16)),
                size: 2048 * (1 + i % 7),
                page_size: Some(2048),
                layout: Layout::Interleaved,
                num_cores: None,
                // Every other alloc carries the 2.1 fields (ALLOC_EXT).
                per_bank_size: (i % 9 == 2).then_some(4096),
                label: StringId(if i % 9 == 2 { 5 } else { 0 }),
                site: SiteId(2),
            },
            3 => EventKind::BufferFree {
                device: DeviceId(((i - 2) % 3) as u32),
                buffer: BufferId(i - 2),
                site: SiteId(3),
            },
            4 => EventKind::CbAlloc {
                device: DeviceId(0),
                address: 0x4000,
                size: 4096,
                cores: Some(8),
                globally_allocated: false,
                site: SiteId(3),
            },
            5 => EventKind::Marker { label: StringId(2) },
            6 => EventKind::DeviceOpen {
                device: DeviceId(1),
                arch: Arch::WormholeB0,
                config: Box::new(DeviceConfig {
                    dram_banks: Some(12),
                    ..Default::default()
                }),
            },
            7 => EventKind::TraceCapture {
                device: DeviceId(2),
                trace_id: TraceId(i as u32),
                size: 1 << 20,
                site: SiteId(3),
            },
            _ => EventKind::OpEnd,
        };
        out.push(Event {
            ts,
            pid: Pid(4242),
            kind,
        });
        i += 1;
    }
    out
}
