//! Stream properties: round trips, damage keeps the intact prefix, cut streams.

use super::generators::*;
use super::stream::*;
use super::*;

/// Frames of `items` that end at or before `limit`.
pub(crate) fn frames_before(items: &[(u64, Item)], ends: &[u64], limit: u64) -> usize {
    items
        .iter()
        .zip(ends)
        .take_while(|(_, &end)| end <= limit)
        .count()
}

/// End offset of each frame of a well-formed stream.
pub(crate) fn frame_ends(bytes: &[u8]) -> Vec<u64> {
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
pub(crate) fn assert_prefix(got: &Decoded, want: &[(u64, Item)], n: usize) {
    assert!(
        got.items.len() >= n,
        "only {} of the {n} intact frames decoded (error: {:?})",
        got.items.len(),
        got.error
    );
    assert_eq!(&got.items[..n], &want[..n]);
}

#[derive(Clone, Debug)]
pub(crate) enum Mutation {
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

pub(crate) fn mutation() -> impl Strategy<Value = Mutation> {
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
