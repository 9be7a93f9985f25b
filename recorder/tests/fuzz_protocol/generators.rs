//! Generators of valid streams.

use super::stream::*;
use super::*;

// ---------------------------------------------------------------------------
// Valid streams.

pub(crate) const PID: u32 = 4242;
/// Strings defined by `preamble` (ids 1..=STRINGS).
pub(crate) const STRINGS: u32 = 4;
/// Stacks defined by `preamble` (ids 1..=STACKS).
pub(crate) const STACKS: u32 = 2;

/// HELLO and the intern definitions every generated event may refer to.
pub(crate) fn preamble(e: &mut Encoder, argv: &[&str]) {
    e.hello(PID, 1, 7, "ttalloc-fuzz", "0.1.0", argv);
    e.strings(&["ttnn.matmul", "run 2", "alloc", "t.py"]);
    e.frames(&[
        Frame {
            function: StringId(3),
            file: StringId(4),
            line: 7,
        },
        Frame {
            function: StringId(1),
            file: StringId(4),
            line: u32::MAX,
        },
    ]);
    e.stacks(&[
        StackNode {
            parent: SiteId(0),
            frame: FrameId(0),
        },
        StackNode {
            parent: SiteId(1),
            frame: FrameId(1),
        },
    ]);
}

/// Integers with the edge values over-represented.
pub(crate) fn edge_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => any::<u64>(),
        1 => Just(0u64),
        1 => Just(u64::MAX),
        1 => Just(u64::from(u32::MAX)),
        1 => Just(1u64 << 32),
    ]
}

pub(crate) fn edge_u32() -> impl Strategy<Value = u32> {
    prop_oneof![3 => any::<u32>(), 1 => Just(0u32), 1 => Just(u32::MAX)]
}

pub(crate) fn local_id() -> impl Strategy<Value = u64> {
    prop_oneof![
        2 => 0..LOCAL_ID_LIMIT,
        1 => Just(LOCAL_ID_LIMIT - 1),
        1 => Just(0u64),
    ]
}

pub(crate) fn site() -> impl Strategy<Value = SiteId> {
    (0..=STACKS).prop_map(SiteId)
}

pub(crate) fn string() -> impl Strategy<Value = StringId> {
    (0..=STRINGS).prop_map(StringId)
}

pub(crate) fn config() -> impl Strategy<Value = DeviceConfig> {
    let c32 = || proptest::option::of(edge_u32());
    let c64 = || proptest::option::of(edge_u64());
    (
        (c32(), c64(), c32(), c64(), c32(), c64()),
        (c32(), c64(), c64(), c64(), c64()),
    )
        .prop_map(|((a, b, c, d, e, f), (g, h, i, j, k))| DeviceConfig {
            dram_banks: a,
            dram_bank_size: b,
            dram_alignment: c,
            dram_unreserved_base: d,
            l1_banks: e,
            l1_bank_size: f,
            l1_alignment: g,
            l1_unreserved_base: h,
            l1_small_size: i,
            trace_region_size: j,
            worker_l1_size: k,
        })
}

/// Any event a client may send, with fields that refer only to what
/// `preamble` defines, and values up to their type's extremes.
pub(crate) fn event() -> impl Strategy<Value = Event> {
    let dev = || edge_u32().prop_map(DeviceId);
    let kind = prop_oneof![
        (dev(), 0..Arch::ALL.len(), config()).prop_map(|(device, a, c)| EventKind::DeviceOpen {
            device,
            arch: Arch::ALL[a],
            config: Box::new(c),
        }),
        dev().prop_map(|device| EventKind::DeviceClose { device }),
        (
            (
                dev(),
                local_id(),
                0..BufferType::ALL.len(),
                proptest::option::of(edge_u64()),
                edge_u64(),
                proptest::option::of(edge_u64()),
                0..Layout::ALL.len(),
                proptest::option::of(edge_u32()),
                site(),
            ),
            // Protocol 1.1 (BUFFER_ALLOC2 when either is present).
            (proptest::option::of(edge_u64()), string()),
        )
            .prop_map(
                |(
                    (device, b, bt, address, size, page_size, l, num_cores, site),
                    (per_bank_size, label),
                )| {
                    EventKind::BufferAlloc {
                        device,
                        buffer: BufferId(b),
                        buffer_type: BufferType::ALL[bt],
                        address,
                        size,
                        page_size,
                        layout: Layout::ALL[l],
                        num_cores,
                        per_bank_size,
                        label,
                        site,
                    }
                }
            ),
        (
            dev(),
            0..BufferType::ALL.len(),
            edge_u64(),
            proptest::option::of(edge_u64()),
            0..Layout::ALL.len(),
            proptest::option::of(edge_u32()),
            proptest::option::of(edge_u64()),
            string(),
            site(),
        )
            .prop_map(
                |(device, bt, size, page_size, l, num_cores, per_bank_size, message, site)| {
                    EventKind::AllocRefused {
                        device,
                        buffer_type: BufferType::ALL[bt],
                        size,
                        page_size,
                        layout: Layout::ALL[l],
                        num_cores,
                        per_bank_size,
                        message,
                        site,
                    }
                }
            ),
        (dev(), local_id(), site()).prop_map(|(device, b, site)| EventKind::BufferFree {
            device,
            buffer: BufferId(b),
            site,
        }),
        (
            dev(),
            edge_u64(),
            edge_u64(),
            proptest::option::of(edge_u32()),
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
        (dev(), local_id(), edge_u64(), site()).prop_map(|(device, p, binary_size, site)| {
            EventKind::ProgramLoad {
                device,
                program: ProgramId(p),
                binary_size,
                site,
            }
        }),
        (dev(), local_id()).prop_map(|(device, p)| EventKind::ProgramUnload {
            device,
            program: ProgramId(p),
        }),
        (dev(), edge_u32(), edge_u64(), site()).prop_map(|(device, t, size, site)| {
            EventKind::TraceCapture {
                device,
                trace_id: TraceId(t),
                size,
                site,
            }
        }),
        (dev(), edge_u32()).prop_map(|(device, t)| EventKind::TraceRelease {
            device,
            trace_id: TraceId(t),
        }),
        string().prop_map(|name| EventKind::OpBegin { name }),
        Just(EventKind::OpEnd),
        string().prop_map(|label| EventKind::Marker { label }),
    ];
    (edge_u64(), kind).prop_map(|(ts, kind)| Event {
        ts,
        pid: Pid(PID),
        kind,
    })
}

/// A valid stream (HELLO, definitions, some EVENTS frames, optionally
/// GOODBYE) and the items it must decode to.
pub(crate) fn valid_stream(
    batches: &[Vec<Event>],
    argv: &[String],
    goodbye: Option<Option<i32>>,
) -> (Vec<u8>, Vec<(u64, Item)>) {
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut e = Encoder::new();
    preamble(&mut e, &argv);
    for b in batches {
        e.events(b);
    }
    if let Some(status) = goodbye {
        e.goodbye(status);
    }
    let want = decode_stream(&e.buf);
    assert!(want.error.is_none(), "{:?}", want.error);
    assert_eq!(want.incomplete, 0);
    // The decoded events are exactly the ones encoded.
    let decoded: Vec<&Vec<Event>> = want
        .items
        .iter()
        .filter_map(|(_, i)| match i {
            Item::Events(ev) => Some(ev),
            _ => None,
        })
        .collect();
    assert_eq!(decoded.len(), batches.len());
    for (got, sent) in decoded.iter().zip(batches) {
        assert_eq!(*got, sent);
    }
    (e.buf, want.items)
}

pub(crate) fn batches() -> impl Strategy<Value = Vec<Vec<Event>>> {
    proptest::collection::vec(proptest::collection::vec(event(), 0..12), 0..4)
}

pub(crate) fn argv() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(".{0,12}", 0..4)
}
