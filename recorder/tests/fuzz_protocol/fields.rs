//! Field extremes, one frame at a time.

use super::alloc_watch::*;
use super::generators::*;
use super::*;

// ---------------------------------------------------------------------------
// Field extremes, one frame at a time.

/// A decoder that has seen `preamble` (and `argv` = ["python"]).
pub(crate) fn open_decoder() -> (Decoder, u64) {
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

pub(crate) fn decode_one(
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
pub(crate) fn huge_counts_do_not_reserve_memory() {
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
pub(crate) fn huge_lengths_are_refused_before_the_payload_is_read() {
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
pub(crate) fn hello_payload(name_len: u32, argc: u32, tail: &[u8]) -> Vec<u8> {
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
pub(crate) fn hello_with_huge_string_lengths_and_argc() {
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
pub(crate) fn record(kind: u8, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut r = vec![kind, flags, 0, 0];
    r.extend_from_slice(&0u32.to_le_bytes());
    r.extend_from_slice(&9u64.to_le_bytes());
    r.extend_from_slice(body);
    r
}

#[test]
pub(crate) fn out_of_range_fields_name_the_field() {
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
pub(crate) fn long_strings() {
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
pub(crate) fn allocation_watch_sees_allocations() {
    let (v, largest) = largest_alloc(|| vec![1u8; 3 << 20]);
    assert_eq!(v.len(), 3 << 20);
    assert!(largest >= 3 << 20, "{largest}");
    let ((), none) = largest_alloc(|| ());
    assert_eq!(none, 0);
}
