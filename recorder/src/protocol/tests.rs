use super::decoder::State;
use super::*;
use ttalloc_model::{
    Arch, BufferId, BufferType, DeviceConfig, DeviceId, Event, EventKind, EventTag, Frame, FrameId,
    Layout, Pid, ProgramId, SiteId, StackNode, StringId, TraceId,
};

fn sample_events() -> Vec<Event> {
    let cfg = DeviceConfig {
        dram_banks: Some(12),
        l1_small_size: Some(32768),
        ..Default::default()
    };
    let kinds = vec![
        EventKind::DeviceOpen {
            device: DeviceId(3),
            arch: Arch::WormholeB0,
            config: Box::new(cfg),
        },
        EventKind::BufferAlloc {
            device: DeviceId(3),
            buffer: BufferId(7),
            buffer_type: BufferType::L1Small,
            address: Some(0x1000),
            size: 4096,
            page_size: None,
            layout: Layout::BlockSharded,
            num_cores: Some(8),
            per_bank_size: None,
            label: StringId::EMPTY,
            site: SiteId(1),
        },
        EventKind::BufferFree {
            device: DeviceId(3),
            buffer: BufferId(7),
            site: SiteId(0),
        },
        EventKind::CbAlloc {
            device: DeviceId(3),
            address: 99,
            size: 8192,
            cores: None,
            globally_allocated: true,
            site: SiteId(1),
        },
        EventKind::CbFreeAll {
            device: DeviceId(3),
        },
        EventKind::ProgramLoad {
            device: DeviceId(3),
            program: ProgramId(5),
            binary_size: 20480,
            site: SiteId(1),
        },
        EventKind::ProgramUnload {
            device: DeviceId(3),
            program: ProgramId(5),
        },
        EventKind::TraceCapture {
            device: DeviceId(3),
            trace_id: TraceId(2),
            size: 1 << 20,
            site: SiteId(0),
        },
        EventKind::TraceRelease {
            device: DeviceId(3),
            trace_id: TraceId(2),
        },
        EventKind::OpBegin { name: StringId(1) },
        EventKind::OpEnd,
        EventKind::Marker { label: StringId(2) },
        EventKind::DeviceClose {
            device: DeviceId(3),
        },
        // Protocol 1.1: BUFFER_ALLOC2 (both new fields, then one) and ALLOC_REFUSED.
        EventKind::BufferAlloc {
            device: DeviceId(3),
            buffer: BufferId(8),
            buffer_type: BufferType::L1,
            address: Some(0x2000),
            size: 3000,
            page_size: Some(1024),
            layout: Layout::HeightSharded,
            num_cores: Some(2),
            per_bank_size: Some(2048),
            label: StringId(3),
            site: SiteId(1),
        },
        EventKind::BufferAlloc {
            device: DeviceId(3),
            buffer: BufferId(9),
            buffer_type: BufferType::Dram,
            address: None,
            size: 64,
            page_size: None,
            layout: Layout::Interleaved,
            num_cores: None,
            per_bank_size: Some(64),
            label: StringId::EMPTY,
            site: SiteId(0),
        },
        EventKind::AllocRefused {
            device: DeviceId(3),
            buffer_type: BufferType::L1,
            size: 1 << 30,
            page_size: Some(2048),
            layout: Layout::Interleaved,
            num_cores: None,
            per_bank_size: Some(1 << 24),
            message: StringId(2),
            site: SiteId(1),
        },
    ];
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| Event {
            ts: 1000 + i as u64,
            pid: Pid(42),
            kind,
        })
        .collect()
}

fn decode_all(bytes: &[u8], d: &mut Decoder) -> Result<Vec<Item>, ProtocolError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let h = FrameHeader::parse(bytes[pos..pos + HEADER_LEN].try_into().unwrap());
        d.check_header(&h)?;
        let p = &bytes[pos + HEADER_LEN..pos + HEADER_LEN + h.len as usize];
        out.push(d.decode(&h, p)?);
        pos += HEADER_LEN + h.len as usize;
    }
    Ok(out)
}

fn stream(events: &[Event]) -> Vec<u8> {
    let mut e = Encoder::new();
    e.hello(42, 1, 5, "test", "0", &["python", "t.py"]);
    e.strings(&["ttnn.matmul", "run 2", "alloc", "t.py"]);
    e.frames(&[Frame {
        function: StringId(3),
        file: StringId(4),
        line: 10,
    }]);
    e.stacks(&[StackNode {
        parent: SiteId(0),
        frame: FrameId(0),
    }]);
    e.events(events);
    e.goodbye(Some(3));
    e.buf
}

#[test]
fn round_trips_every_kind() {
    let events = sample_events();
    let bytes = stream(&events);
    let items = decode_all(&bytes, &mut Decoder::new()).unwrap();
    assert_eq!(items.len(), 6);
    match &items[0] {
        Item::Hello(h) => {
            assert_eq!(h.pid, 42);
            assert_eq!(h.argv, vec!["python", "t.py"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(items[4], Item::Events(events));
    assert_eq!(items[5], Item::Goodbye(Some(3)));
}

#[test]
fn new_kinds_are_sent_only_when_needed_and_validated() {
    let events = sample_events();
    let mut kinds = Vec::new();
    for e in &events {
        let mut out = Vec::new();
        encode_event(e, &mut out);
        kinds.push(out[0]);
    }
    // A plain alloc stays BUFFER_ALLOC (what a 1.0 client sends too);
    // only the allocs with a 1.1 field use BUFFER_ALLOC2.
    assert_eq!(kinds[1], EventTag::BufferAlloc as u8);
    assert_eq!(&kinds[13..], [BUFFER_ALLOC2, BUFFER_ALLOC2, ALLOC_REFUSED]);

    // A label or message that names an undefined string is refused.
    for (i, what) in [(13, "label"), (15, "message")] {
        let mut bad = events.clone();
        match &mut bad[i].kind {
            EventKind::BufferAlloc { label: s, .. }
            | EventKind::AllocRefused { message: s, .. } => *s = StringId(99),
            _ => unreachable!(),
        }
        let err = decode_all(&stream(&bad), &mut Decoder::new()).unwrap_err();
        assert!(err.message.contains(what), "{err}");
    }
    // BUFFER_ALLOC's own flags stay 3 bits: bit 3 belongs to BUFFER_ALLOC2.
    let bytes = stream(&events[..2]);
    let mut d = Decoder::new();
    let at = bytes.len() - (HEADER_LEN + 8) - (EVENT_HEADER_LEN + 44);
    let mut bad = bytes.clone();
    assert_eq!(bad[at], EventTag::BufferAlloc as u8);
    bad[at + 1] |= ext::ALLOC2_HAS_PER_BANK_SIZE;
    let err = decode_all(&bad, &mut d).unwrap_err();
    assert!(err.message.contains("unknown flags"), "{err}");
}

#[test]
fn id_base_prefixes_buffers_and_programs() {
    let events = sample_events();
    let bytes = stream(&events);
    let mut d = Decoder::new();
    d.set_id_base(5 << 40);
    let items = decode_all(&bytes, &mut d).unwrap();
    let Item::Events(ev) = &items[4] else {
        panic!()
    };
    assert!(
        matches!(ev[1].kind, EventKind::BufferAlloc { buffer: BufferId(b), .. } if b == (5 << 40) | 7)
    );
    assert!(
        matches!(ev[5].kind, EventKind::ProgramLoad { program: ProgramId(p), .. } if p == (5 << 40) | 5)
    );
}

#[test]
fn rejects_dangling_references_and_bad_fields() {
    let mut bad_site = sample_events();
    if let EventKind::BufferAlloc { site, .. } = &mut bad_site[1].kind {
        *site = SiteId(2);
    }
    let err = decode_all(&stream(&bad_site), &mut Decoder::new()).unwrap_err();
    assert!(err.message.contains("site id 2 is not defined"), "{err}");

    let mut bad_str = sample_events();
    bad_str[11].kind = EventKind::Marker { label: StringId(9) };
    let err = decode_all(&stream(&bad_str), &mut Decoder::new()).unwrap_err();
    assert!(err.message.contains("marker label string id 9"), "{err}");

    // Corrupt the buffer type byte of the alloc record.
    let bytes = stream(&sample_events());
    let mut d = Decoder::new();
    let ok = decode_all(&bytes, &mut d);
    assert!(ok.is_ok());
    let mut e = Encoder::new();
    e.events(&sample_events()[1..2]);
    let mut raw = e.buf.clone();
    raw[HEADER_LEN + EVENT_HEADER_LEN + 40] = 9;
    let mut d = Decoder::new();
    let mut hello = Encoder::new();
    hello.hello(1, 0, 0, "x", "y", &[]);
    hello.strings(&["f"]);
    hello.frames(&[Frame {
        function: StringId(1),
        file: StringId(1),
        line: 1,
    }]);
    hello.stacks(&[StackNode {
        parent: SiteId(0),
        frame: FrameId(0),
    }]);
    hello.buf.extend_from_slice(&raw);
    let err = decode_all(&hello.buf, &mut d).unwrap_err();
    assert!(err.message.contains("buffer type 9 out of range"), "{err}");
}

#[test]
fn rejects_missing_hello_and_oversized_frames() {
    let mut e = Encoder::new();
    e.strings(&["x"]);
    let err = decode_all(&e.buf, &mut Decoder::new()).unwrap_err();
    assert!(err.message.contains("first frame must be HELLO"));
    let h = FrameHeader {
        len: MAX_PAYLOAD + 1,
        frame_type: 5,
        flags: 0,
        count: 0,
    };
    let mut d = Decoder::new();
    d.state = State::Open;
    assert!(d
        .check_header(&h)
        .unwrap_err()
        .message
        .contains("exceeds the limit"));
}

#[test]
fn rejects_stack_cycles_and_process_events() {
    let mut e = Encoder::new();
    e.hello(1, 0, 0, "x", "y", &[]);
    e.strings(&["f"]);
    e.frames(&[Frame {
        function: StringId(1),
        file: StringId(1),
        line: 1,
    }]);
    e.stacks(&[StackNode {
        parent: SiteId(1),
        frame: FrameId(0),
    }]);
    let err = decode_all(&e.buf, &mut Decoder::new()).unwrap_err();
    assert!(
        err.message.contains("parent 1 is not an earlier stack"),
        "{err}"
    );

    let mut e = Encoder::new();
    e.hello(1, 0, 0, "x", "y", &[]);
    let at = e.buf.len();
    e.events(&[Event {
        ts: 0,
        pid: Pid(1),
        kind: EventKind::OpEnd,
    }]);
    e.buf[at + HEADER_LEN] = EventTag::ProcessExit as u8;
    let err = decode_all(&e.buf, &mut Decoder::new()).unwrap_err();
    assert!(err.message.contains("cannot be sent by a client"), "{err}");
}

#[test]
fn truncated_payloads_are_errors_not_panics() {
    let bytes = stream(&sample_events());
    // Feed every frame with its payload cut short by one byte.
    let mut pos = 0;
    let mut d = Decoder::new();
    while pos < bytes.len() {
        let h = FrameHeader::parse(bytes[pos..pos + HEADER_LEN].try_into().unwrap());
        let p = &bytes[pos + HEADER_LEN..pos + HEADER_LEN + h.len as usize];
        if !p.is_empty() {
            let mut short = h;
            short.len -= 1;
            let mut probe = d_clone(&d);
            assert!(
                probe.decode(&short, &p[..p.len() - 1]).is_err(),
                "frame type {}",
                h.frame_type
            );
        }
        d.decode(&h, p).unwrap();
        pos += HEADER_LEN + h.len as usize;
    }
}

/// Decodes a stream the way a connection does (frame by frame, stopping
/// at the first error); must never panic whatever the bytes.
fn decode_stream(bytes: &[u8]) -> Result<usize, ProtocolError> {
    let mut d = Decoder::new();
    let mut pos = 0;
    let mut n = 0;
    while bytes.len() - pos >= HEADER_LEN {
        let h = FrameHeader::parse(bytes[pos..pos + HEADER_LEN].try_into().unwrap());
        d.check_header(&h)?;
        let end = pos + HEADER_LEN + h.len as usize;
        if end > bytes.len() {
            break;
        }
        d.decode(&h, &bytes[pos + HEADER_LEN..end])?;
        pos = end;
        n += 1;
    }
    Ok(n)
}

#[test]
fn random_corruption_never_panics() {
    let good = stream(&sample_events());
    assert_eq!(decode_stream(&good), Ok(6));
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut errors = 0;
    for _ in 0..20_000 {
        let mut b = good.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() % b.len() as u64) as usize;
            b[i] = next() as u8;
        }
        if next() % 8 == 0 {
            b.truncate((next() % b.len() as u64) as usize);
        }
        if decode_stream(&b).is_err() {
            errors += 1;
        }
    }
    assert!(errors > 10_000, "most corruptions are detected ({errors})");
}

fn d_clone(d: &Decoder) -> Decoder {
    Decoder {
        state: d.state,
        offset: d.offset,
        strings: d.strings,
        frames: d.frames,
        stacks: d.stacks,
        pid: d.pid,
        id_base: d.id_base,
    }
}
