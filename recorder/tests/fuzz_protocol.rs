//! Hostile-input tests of the native protocol decoder (`recorder/PROTOCOL.md`).
//!
//! Properties, for any bytes a peer can send:
//! - decoding never panics;
//! - an error names the byte offset of the frame it is about, and that offset
//!   is the start of a frame inside what was received;
//! - every frame before the first bad one decodes exactly as it would have
//!   without the damage (nothing good before the damage is lost);
//! - decoding one frame never makes a single allocation much larger than the
//!   frame itself (a count or length field cannot reserve gigabytes).

use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::cell::Cell;
use ttalloc_model::{
    Arch, BufferId, BufferType, DeviceConfig, DeviceId, Event, EventKind, Frame, FrameId, Layout,
    Pid, ProgramId, SiteId, StackNode, StringId, TraceId,
};
use ttalloc_recorder::protocol::{
    frame_type, Decoder, Encoder, FrameHeader, Item, ProtocolError, HEADER_LEN, LOCAL_ID_LIMIT,
    MAX_PAYLOAD,
};

// ---------------------------------------------------------------------------
// Allocation watch: the largest single allocation made by this thread while
// tracking is on (other test threads do not count).

struct Watch;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note_alloc(size: usize) {
    let _ = TRACKING.try_with(|t| {
        if t.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    });
}

unsafe impl GlobalAlloc for Watch {
    unsafe fn alloc(&self, layout: AllocLayout) -> *mut u8 {
        note_alloc(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: AllocLayout) -> *mut u8 {
        note_alloc(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: AllocLayout, new_size: usize) -> *mut u8 {
        note_alloc(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: AllocLayout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Watch = Watch;

/// Runs `f` and returns its result with the largest single allocation it made.
fn largest_alloc<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    TRACKING.with(|t| t.set(true));
    let r = f();
    TRACKING.with(|t| t.set(false));
    (r, LARGEST.with(|l| l.get()))
}

/// What decoding one frame of `payload_len` bytes may allocate at once: the
/// decoded records (a `String` is 24 bytes for at least 4 wire bytes, an
/// `Event` about 48-64 bytes for at least 16) plus the error text.
fn alloc_budget(payload_len: usize) -> usize {
    8 * payload_len + 64 * 1024
}

// ---------------------------------------------------------------------------
// Stream decoding the way the listener does it.

/// The result of decoding a byte stream frame by frame.
#[derive(Debug)]
struct Decoded {
    /// Each decoded frame with its stream offset.
    items: Vec<(u64, Item)>,
    error: Option<ProtocolError>,
    /// Bytes at the end that do not make a whole frame (a cut stream).
    incomplete: usize,
}

/// Decodes like `listener.rs`: header check before the payload is buffered,
/// stop at the first error, a partial frame at the end is left over. Also
/// checks, frame by frame, that no single allocation exceeds the budget.
fn decode_stream(bytes: &[u8]) -> Decoded {
    let mut d = Decoder::new();
    let mut pos = 0usize;
    let mut items = Vec::new();
    loop {
        if bytes.len() - pos < HEADER_LEN {
            return Decoded {
                items,
                error: None,
                incomplete: bytes.len() - pos,
            };
        }
        let h = FrameHeader::parse(bytes[pos..pos + HEADER_LEN].try_into().unwrap());
        if let Err(e) = d.check_header(&h) {
            assert_eq!(e.offset, pos as u64, "header error names its frame");
            return Decoded {
                items,
                error: Some(e),
                incomplete: 0,
            };
        }
        assert!(h.len <= MAX_PAYLOAD, "check_header let {} through", h.len);
        let end = pos + HEADER_LEN + h.len as usize;
        if end > bytes.len() {
            return Decoded {
                items,
                error: None,
                incomplete: bytes.len() - pos,
            };
        }
        let payload = &bytes[pos + HEADER_LEN..end];
        let (r, largest) = largest_alloc(|| d.decode(&h, payload));
        assert!(
            largest <= alloc_budget(payload.len()),
            "decoding a {}-byte frame (type {}, count {}) allocated {largest} bytes at once",
            payload.len(),
            h.frame_type,
            h.count
        );
        assert_eq!(d.offset(), end as u64, "decoder offset follows the stream");
        match r {
            Ok(item) => items.push((pos as u64, item)),
            Err(e) => {
                assert_eq!(e.offset, pos as u64, "payload error names its frame");
                let name = frame_type::name(h.frame_type);
                assert!(
                    e.message.starts_with(&format!("{name} frame: ")),
                    "payload error names its frame type: {e}"
                );
                return Decoded {
                    items,
                    error: Some(e),
                    incomplete: 0,
                };
            }
        }
        pos = end;
    }
}

fn assert_error_is_clear(e: &ProtocolError, stream_len: usize) {
    let text = e.to_string();
    assert!(
        text.contains(&format!("byte offset {}", e.offset)),
        "error does not name its offset: {text}"
    );
    assert!(!e.message.is_empty());
    assert!(
        e.offset <= stream_len as u64,
        "{text} (stream {stream_len})"
    );
}

// ---------------------------------------------------------------------------
// Valid streams.

const PID: u32 = 4242;
/// Strings defined by `preamble` (ids 1..=STRINGS).
const STRINGS: u32 = 4;
/// Stacks defined by `preamble` (ids 1..=STACKS).
const STACKS: u32 = 2;

/// HELLO and the intern definitions every generated event may refer to.
fn preamble(e: &mut Encoder, argv: &[&str]) {
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
fn edge_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => any::<u64>(),
        1 => Just(0u64),
        1 => Just(u64::MAX),
        1 => Just(u64::from(u32::MAX)),
        1 => Just(1u64 << 32),
    ]
}

fn edge_u32() -> impl Strategy<Value = u32> {
    prop_oneof![3 => any::<u32>(), 1 => Just(0u32), 1 => Just(u32::MAX)]
}

fn local_id() -> impl Strategy<Value = u64> {
    prop_oneof![
        2 => 0..LOCAL_ID_LIMIT,
        1 => Just(LOCAL_ID_LIMIT - 1),
        1 => Just(0u64),
    ]
}

fn site() -> impl Strategy<Value = SiteId> {
    (0..=STACKS).prop_map(SiteId)
}

fn string() -> impl Strategy<Value = StringId> {
    (0..=STRINGS).prop_map(StringId)
}

fn config() -> impl Strategy<Value = DeviceConfig> {
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
fn event() -> impl Strategy<Value = Event> {
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
fn valid_stream(
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

fn batches() -> impl Strategy<Value = Vec<Vec<Event>>> {
    proptest::collection::vec(proptest::collection::vec(event(), 0..12), 0..4)
}

fn argv() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(".{0,12}", 0..4)
}

/// Frames of `items` that end at or before `limit`.
fn frames_before(items: &[(u64, Item)], ends: &[u64], limit: u64) -> usize {
    items
        .iter()
        .zip(ends)
        .take_while(|(_, &end)| end <= limit)
        .count()
}

/// End offset of each frame of a well-formed stream.
fn frame_ends(bytes: &[u8]) -> Vec<u64> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + HEADER_LEN <= bytes.len() {
        let h = FrameHeader::parse(bytes[pos..pos + HEADER_LEN].try_into().unwrap());
        pos += HEADER_LEN + h.len as usize;
        out.push(pos as u64);
    }
    out
}

/// The first `n` decoded items must be exactly `want`'s first `n`.
fn assert_prefix(got: &Decoded, want: &[(u64, Item)], n: usize) {
    assert!(
        got.items.len() >= n,
        "only {} of the {n} intact frames decoded (error: {:?})",
        got.items.len(),
        got.error
    );
    assert_eq!(&got.items[..n], &want[..n]);
}

#[derive(Clone, Debug)]
enum Mutation {
    /// XOR a byte with a non-zero mask.
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
    /// Overwrite a little-endian u32 (a length, count or id field) with an extreme.
    Field32(usize, u32),
    /// Overwrite a little-endian u64 (a size, address or id) with an extreme.
    Field64(usize, u64),
}

impl Mutation {
    /// Applies the mutation (positions are taken modulo the length) and
    /// returns the first byte offset whose content changed.
    fn apply(&self, b: &mut Vec<u8>) -> usize {
        let n = b.len().max(1);
        match self {
            Mutation::Flip(i, m) => {
                let i = i % n;
                if let Some(x) = b.get_mut(i) {
                    *x ^= m;
                }
                i
            }
            Mutation::Insert(i, bytes) => {
                let i = i % (b.len() + 1);
                b.splice(i..i, bytes.iter().copied());
                i
            }
            Mutation::Delete(i, len) => {
                let i = i % n;
                let end = (i + len).min(b.len());
                b.drain(i.min(b.len())..end);
                i
            }
            Mutation::Truncate(i) => {
                let i = i % (b.len() + 1);
                b.truncate(i);
                i
            }
            Mutation::Field32(i, v) => {
                let i = i % n;
                let end = (i + 4).min(b.len());
                let v = v.to_le_bytes();
                b[i..end].copy_from_slice(&v[..end - i]);
                i
            }
            Mutation::Field64(i, v) => {
                let i = i % n;
                let end = (i + 8).min(b.len());
                let v = v.to_le_bytes();
                b[i..end].copy_from_slice(&v[..end - i]);
                i
            }
        }
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let extreme32 = prop_oneof![
        Just(u32::MAX),
        Just(u32::MAX - 1),
        Just(MAX_PAYLOAD),
        Just(MAX_PAYLOAD + 1),
        Just(1u32 << 31),
        Just(0u32),
        any::<u32>(),
    ];
    let extreme64 = prop_oneof![
        Just(u64::MAX),
        Just(LOCAL_ID_LIMIT),
        Just(1u64 << 32),
        Just(0u64),
        any::<u64>()
    ];
    prop_oneof![
        3 => (any::<usize>(), 1..=255u8).prop_map(|(i, m)| Mutation::Flip(i, m)),
        1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        1 => (any::<usize>(), 1..32usize).prop_map(|(i, l)| Mutation::Delete(i, l)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        2 => (any::<usize>(), extreme32).prop_map(|(i, v)| Mutation::Field32(i, v)),
        1 => (any::<usize>(), extreme64).prop_map(|(i, v)| Mutation::Field64(i, v)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// (1) Arbitrary bytes: no panic, a clear error or a clean stop.
    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let d = decode_stream(&bytes);
        if let Some(e) = &d.error {
            assert_error_is_clear(e, bytes.len());
        }
    }

    /// (1b) Arbitrary frames after a valid HELLO and definitions: every frame
    /// type's payload parser sees garbage (a random header alone would almost
    /// never get past the HELLO check).
    #[test]
    fn arbitrary_frames_after_hello(
        frames in proptest::collection::vec(
            (1..=6u16, prop_oneof![Just(0u32), Just(u32::MAX), 0..64u32],
             proptest::collection::vec(any::<u8>(), 0..200)),
            1..6),
    ) {
        let mut e = Encoder::new();
        preamble(&mut e, &["python"]);
        let intact = frame_ends(&e.buf).len();
        let good = decode_stream(&e.buf);
        for (t, count, payload) in &frames {
            e.buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            e.buf.extend_from_slice(&t.to_le_bytes());
            e.buf.extend_from_slice(&0u16.to_le_bytes());
            e.buf.extend_from_slice(&count.to_le_bytes());
            e.buf.extend_from_slice(payload);
        }
        let d = decode_stream(&e.buf);
        assert_prefix(&d, &good.items, intact);
        if let Some(err) = &d.error {
            assert_error_is_clear(err, e.buf.len());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Valid streams round-trip, extremes included.
    #[test]
    fn valid_streams_round_trip(
        b in batches(),
        a in argv(),
        status in proptest::option::of(proptest::option::of(any::<i32>())),
    ) {
        let (bytes, items) = valid_stream(&b, &a, status);
        let Item::Hello(h) = &items[0].1 else { panic!("{:?}", items[0]) };
        assert_eq!(h.pid, PID);
        assert_eq!(&h.argv, &a);
        if let Some(status) = status {
            assert_eq!(items.last().unwrap().1, Item::Goodbye(status));
        }
        assert_eq!(frame_ends(&bytes).last().copied(), Some(bytes.len() as u64));
    }

    /// (2) Structure-aware damage: every frame that ends before the first
    /// changed byte decodes exactly as before; the rest is a clear error or
    /// (for a cut stream) an incomplete frame.
    #[test]
    fn mutated_streams_keep_the_intact_prefix(
        b in batches(),
        a in argv(),
        muts in proptest::collection::vec(mutation(), 1..4),
    ) {
        let (mut bytes, items) = valid_stream(&b, &a, Some(Some(0)));
        let ends = frame_ends(&bytes);
        let mut first_change = usize::MAX;
        for m in &muts {
            first_change = first_change.min(m.apply(&mut bytes));
        }
        let d = decode_stream(&bytes);
        let intact = frames_before(&items, &ends, first_change as u64);
        assert_prefix(&d, &items, intact);
        if let Some(e) = &d.error {
            assert_error_is_clear(e, bytes.len());
            assert!(
                e.offset >= ends[..intact].last().copied().unwrap_or(0),
                "error at {} inside an intact frame: {e}", e.offset
            );
        }
    }

    /// (3) A valid prefix followed by garbage: every event before the garbage
    /// is decoded, and an error (if the garbage is not accidentally valid)
    /// names an offset at or after the garbage's start.
    #[test]
    fn garbage_after_a_valid_prefix(
        b in batches(),
        a in argv(),
        garbage in proptest::collection::vec(any::<u8>(), 1..256),
    ) {
        let (mut bytes, items) = valid_stream(&b, &a, None);
        let valid_len = bytes.len();
        bytes.extend_from_slice(&garbage);
        let d = decode_stream(&bytes);
        assert_prefix(&d, &items, items.len());
        if let Some(e) = &d.error {
            assert_error_is_clear(e, bytes.len());
            assert!(e.offset >= valid_len as u64, "{e}");
        }
        // Garbage that starts with an impossible frame type fails right there.
        let mut bytes = bytes[..valid_len].to_vec();
        let mut hdr = garbage.clone();
        hdr.resize(HEADER_LEN.max(hdr.len()), 0);
        hdr[..4].copy_from_slice(&0u32.to_le_bytes()); // len
        let bad_type = 7 + u16::from(hdr[4]);
        hdr[4..6].copy_from_slice(&bad_type.to_le_bytes()); // type
        hdr[6..8].copy_from_slice(&0u16.to_le_bytes()); // flags
        bytes.extend_from_slice(&hdr);
        let d = decode_stream(&bytes);
        assert_prefix(&d, &items, items.len());
        let e = d.error.expect("an unknown frame type is an error");
        assert_eq!(e.offset, valid_len as u64);
        assert!(e.message.contains("unknown frame type"), "{e}");
    }

    /// A stream cut anywhere keeps every complete frame and reports the cut
    /// as an incomplete frame, never as an error inside the good part.
    #[test]
    fn cut_streams_keep_every_complete_frame(b in batches(), cut in any::<usize>()) {
        let (bytes, items) = valid_stream(&b, &["python".into()], Some(None));
        let ends = frame_ends(&bytes);
        let cut = cut % (bytes.len() + 1);
        let d = decode_stream(&bytes[..cut]);
        let complete = frames_before(&items, &ends, cut as u64);
        assert!(d.error.is_none(), "{:?}", d.error);
        assert_eq!(d.items.len(), complete);
        assert_prefix(&d, &items, complete);
        let done = ends[..complete].last().copied().unwrap_or(0) as usize;
        assert_eq!(d.incomplete, cut - done);
    }
}

// ---------------------------------------------------------------------------
// Field extremes, one frame at a time.

/// A decoder that has seen `preamble` (and `argv` = ["python"]).
fn open_decoder() -> (Decoder, u64) {
    let mut e = Encoder::new();
    preamble(&mut e, &["python"]);
    let mut d = Decoder::new();
    let mut pos = 0;
    while pos < e.buf.len() {
        let h = FrameHeader::parse(e.buf[pos..pos + HEADER_LEN].try_into().unwrap());
        let end = pos + HEADER_LEN + h.len as usize;
        d.decode(&h, &e.buf[pos + HEADER_LEN..end]).unwrap();
        pos = end;
    }
    (d, pos as u64)
}

fn decode_one(
    d: &mut Decoder,
    frame_type: u16,
    count: u32,
    payload: &[u8],
) -> Result<Item, ProtocolError> {
    let h = FrameHeader {
        len: payload.len() as u32,
        frame_type,
        flags: 0,
        count,
    };
    d.check_header(&h)?;
    let (r, largest) = largest_alloc(|| d.decode(&h, payload));
    assert!(
        largest <= alloc_budget(payload.len()),
        "type {frame_type} count {count} payload {}: one allocation of {largest} bytes",
        payload.len()
    );
    r
}

#[test]
fn huge_counts_do_not_reserve_memory() {
    for t in [
        frame_type::STRINGS,
        frame_type::FRAMES,
        frame_type::STACKS,
        frame_type::EVENTS,
        frame_type::GOODBYE,
    ] {
        for count in [u32::MAX, u32::MAX / 8, 1 << 20, 65_536, 1] {
            for payload in [&[][..], &[0u8; 4][..], &[0u8; 64][..]] {
                let (mut d, at) = open_decoder();
                if let Err(e) = decode_one(&mut d, t, count, payload) {
                    assert_eq!(e.offset, at, "{e}");
                    assert!(e.to_string().contains(&format!("byte offset {at}")), "{e}");
                }
            }
        }
    }
}

#[test]
fn huge_lengths_are_refused_before_the_payload_is_read() {
    let (d, at) = open_decoder();
    for len in [MAX_PAYLOAD + 1, 1 << 31, u32::MAX] {
        let h = FrameHeader {
            len,
            frame_type: frame_type::EVENTS,
            flags: 0,
            count: 1,
        };
        let e = d.check_header(&h).unwrap_err();
        assert_eq!(e.offset, at);
        assert!(e.message.contains("exceeds the limit"), "{e}");
    }
}

/// A HELLO with the given string lengths / argc fields (the bytes after
/// them are whatever `tail` holds).
fn hello_payload(name_len: u32, argc: u32, tail: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(b"TTAL");
    p.extend_from_slice(&1u16.to_le_bytes());
    p.extend_from_slice(&0u16.to_le_bytes());
    p.extend_from_slice(&1u32.to_le_bytes());
    p.extend_from_slice(&1u32.to_le_bytes());
    p.extend_from_slice(&0u64.to_le_bytes());
    p.extend_from_slice(&name_len.to_le_bytes());
    if name_len < 64 {
        p.extend(std::iter::repeat_n(b'a', name_len as usize));
        p.extend_from_slice(&0u32.to_le_bytes()); // client_version ""
        p.extend_from_slice(&argc.to_le_bytes());
    }
    p.extend_from_slice(tail);
    p
}

#[test]
fn hello_with_huge_string_lengths_and_argc() {
    for (name_len, argc, what) in [
        (u32::MAX, 0, "client name"),
        (1 << 30, 0, "client name"),
        (3, u32::MAX, "argc"),
        (3, 1 << 20, "argc"),
        (3, 2, "argv[0]"),
    ] {
        let payload = hello_payload(name_len, argc, &[0xff; 3]);
        let mut d = Decoder::new();
        let e = decode_one(&mut d, frame_type::HELLO, 0, &payload).unwrap_err();
        assert_eq!(e.offset, 0);
        assert!(e.message.contains(what), "{what}: {e}");
    }
    // argc as large as the payload allows: 59,999 empty arguments, then one
    // whose length field is cut short.
    let payload = hello_payload(0, 60_000, &[0u8; 239_998]);
    let mut d = Decoder::new();
    let e = decode_one(&mut d, frame_type::HELLO, 0, &payload).unwrap_err();
    assert!(e.message.contains("argv[59999]"), "{e}");
    // A bad UTF-8 argument names itself.
    let mut tail = 2u32.to_le_bytes().to_vec();
    tail.extend_from_slice(&[0xc3, 0x28]);
    let payload = hello_payload(0, 1, &tail);
    let e = decode_one(&mut Decoder::new(), frame_type::HELLO, 0, &payload).unwrap_err();
    assert!(e.message.contains("argv[0] is not valid UTF-8"), "{e}");
}

/// One EVENTS record: header plus body.
fn record(kind: u8, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut r = vec![kind, flags, 0, 0];
    r.extend_from_slice(&0u32.to_le_bytes());
    r.extend_from_slice(&9u64.to_le_bytes());
    r.extend_from_slice(body);
    r
}

#[test]
fn out_of_range_fields_name_the_field() {
    let u64s = |v: &[u64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let alloc = |buffer: u64, site: u32, bt: u8, layout: u8| {
        let mut b = u64s(&[buffer, u64::MAX, u64::MAX, u64::MAX]);
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        b.extend_from_slice(&site.to_le_bytes());
        b.extend_from_slice(&[bt, layout, 0, 0]);
        b
    };
    // ALLOC_REFUSED: size, page_size, per_bank_size, num_cores, site, message, type, layout, pad.
    let refused = |bt: u8, message: u32| {
        let mut b = u64s(&[u64::MAX, 0, 0]);
        b.extend_from_slice(&[0u32, 0, message].map(u32::to_le_bytes).concat());
        b.extend_from_slice(&[bt, 0, 0, 0]);
        b
    };
    // BUFFER_ALLOC2: a valid BUFFER_ALLOC body, then per_bank_size, label, pad.
    let alloc2_tail = |label: u32| {
        let mut b = alloc(1, 0, 0, 0);
        b.extend_from_slice(&u64s(&[4096]));
        b.extend_from_slice(&label.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b
    };
    let device_open = |mask: u32, first: u64| {
        let mut b = vec![2, 0, 0, 0];
        b.extend_from_slice(&mask.to_le_bytes());
        b.extend_from_slice(&u64s(&[first; 11]));
        b
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            record(4, 0, &alloc(LOCAL_ID_LIMIT, 0, 0, 0)),
            "buffer id 1099511627776 is not below 2^40",
        ),
        (record(4, 0, &alloc(u64::MAX, 0, 0, 0)), "is not below 2^40"),
        (
            record(4, 0, &alloc(1, u32::MAX, 0, 0)),
            "site id 4294967295 is not defined",
        ),
        (
            record(4, 0, &alloc(1, 0, 255, 0)),
            "buffer type 255 out of range",
        ),
        (record(4, 0, &alloc(1, 0, 0, 4)), "layout 4 out of range"),
        (record(4, 8, &alloc(1, 0, 0, 0)), "unknown flags 0x8"),
        (
            record(4, 0, &alloc(1, 0, 0, 0)[..43]),
            "needs 44 body bytes",
        ),
        (record(2, 0, &device_open(1, u64::MAX)), "dram_banks"),
        (record(2, 0, &device_open(1 << 6, 1 << 32)), "l1_alignment"),
        (record(2, 0, &device_open(1 << 11, 0)), "presence mask"),
        (record(0, 0, &[]), "cannot be sent by a client"),
        (record(1, 0, &[]), "cannot be sent by a client"),
        (record(17, 0, &[]), "unknown event kind 17"),
        (record(15, 0, &[]), "alloc_refused needs 40 body bytes"),
        (
            record(15, 8, &[0; 40]),
            "unknown flags 0x8 for alloc_refused",
        ),
        (record(15, 0, &refused(5, 0)), "alloc_refused buffer type 5"),
        (
            record(15, 0, &refused(0, STRINGS + 1)),
            "alloc_refused message string id 5",
        ),
        (
            record(16, 0, &alloc(1, 0, 0, 0)),
            "buffer_alloc2 needs 60 body bytes",
        ),
        (
            record(16, 0x20, &[alloc(1, 0, 0, 0), [0; 16].to_vec()].concat()),
            "unknown flags 0x20 for buffer_alloc2",
        ),
        (
            record(16, 0x10, &alloc2_tail(STRINGS + 1)),
            "buffer_alloc2 label string id 5",
        ),
        (record(255, 0, &[]), "unknown event kind 255"),
        (
            record(12, 0, &u32::MAX.to_le_bytes()),
            "op name string id 4294967295",
        ),
        (
            record(14, 0, &(STRINGS + 1).to_le_bytes()),
            "marker label string id 5",
        ),
        (record(9, 0, &u64::MAX.to_le_bytes()), "program id"),
    ];
    for (rec, want) in cases {
        let (mut d, at) = open_decoder();
        let e = decode_one(&mut d, frame_type::EVENTS, 1, &rec).unwrap_err();
        assert_eq!(e.offset, at);
        assert!(e.message.contains("event #0"), "{e}");
        assert!(e.message.contains(want), "want '{want}': {e}");
    }
    // Definitions that refer to what does not exist.
    let (mut d, _) = open_decoder();
    let frame = [u32::MAX, 1, 1]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect::<Vec<u8>>();
    let e = decode_one(&mut d, frame_type::FRAMES, 1, &frame).unwrap_err();
    assert!(e.message.contains("function string id 4294967295"), "{e}");
    let (mut d, _) = open_decoder();
    let stack = [0u32, u32::MAX]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect::<Vec<u8>>();
    let e = decode_one(&mut d, frame_type::STACKS, 1, &stack).unwrap_err();
    assert!(e.message.contains("frame id 4294967295"), "{e}");
    let (mut d, _) = open_decoder();
    let stack = [u32::MAX, 0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect::<Vec<u8>>();
    let e = decode_one(&mut d, frame_type::STACKS, 1, &stack).unwrap_err();
    assert!(e.message.contains("parent 4294967295"), "{e}");
    let (mut d, _) = open_decoder();
    let e = decode_one(&mut d, frame_type::STACKS, u32::MAX, &stack).unwrap_err();
    assert!(e.message.contains("records of 8 bytes"), "{e}");
}

/// A very long string is fine when it fits the frame, and a length field
/// pointing past the frame is an error naming the record.
#[test]
fn long_strings() {
    let (mut d, _) = open_decoder();
    let s = "é".repeat(200_000);
    let mut p = (s.len() as u32).to_le_bytes().to_vec();
    p.extend_from_slice(s.as_bytes());
    let Item::Strings(got) = decode_one(&mut d, frame_type::STRINGS, 1, &p).unwrap() else {
        panic!()
    };
    assert_eq!(got, [s]);
    let mut p = u32::MAX.to_le_bytes().to_vec();
    p.extend_from_slice(b"abc");
    let (mut d, _) = open_decoder();
    let e = decode_one(&mut d, frame_type::STRINGS, 1, &p).unwrap_err();
    assert!(e.message.contains("string #0"), "{e}");
}

/// The allocation watch itself works (else the budget checks prove nothing).
#[test]
fn allocation_watch_sees_allocations() {
    let (v, largest) = largest_alloc(|| vec![1u8; 3 << 20]);
    assert_eq!(v.len(), 3 << 20);
    assert!(largest >= 3 << 20, "{largest}");
    let ((), none) = largest_alloc(|| ());
    assert_eq!(none, 0);
}
