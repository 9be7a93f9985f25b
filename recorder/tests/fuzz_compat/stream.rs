//! The 112-byte stream decoder: never panics, pinpoints the first bad byte,
//! delivers every whole message before it.

use super::*;

/// Feeds `bytes` in pieces of the given sizes (cycled) and pulls messages
/// after each piece, the way a connection does.
struct Fed {
    messages: Vec<Message>,
    error: Option<ttalloc_recorder::compat::Misframe>,
}

fn feed(bytes: &[u8], pieces: &[usize]) -> Fed {
    let mut d = StreamDecoder::new();
    let mut messages = Vec::new();
    let mut error = None;
    let mut fed = 0usize;
    let mut sizes = pieces.iter().cycle();
    while fed < bytes.len() && error.is_none() {
        let n = (*sizes.next().unwrap()).clamp(1, bytes.len() - fed);
        d.feed(&bytes[fed..fed + n]);
        fed += n;
        loop {
            match d.next_message() {
                Ok(Some(m)) => {
                    assert!(m.kind().is_some_and(MsgType::is_request), "{m:?}");
                    assert_eq!(d.offset(), (MESSAGE_SIZE * (messages.len() + 1)) as u64);
                    messages.push(m);
                }
                Ok(None) => break,
                Err(e) => {
                    let text = e.to_string();
                    assert!(
                        text.contains(&format!("byte offset {}", e.offset)),
                        "{text}"
                    );
                    assert!(
                        !e.problem.is_empty() && !e.likely_cause.is_empty(),
                        "{text}"
                    );
                    assert!(e.offset < fed as u64, "{text} (fed {fed})");
                    assert!(
                        e.offset >= (MESSAGE_SIZE * messages.len()) as u64,
                        "{text}: inside a message already delivered"
                    );
                    // A failed decoder stays failed.
                    assert!(d.next_message().is_err());
                    error = Some(e);
                    break;
                }
            }
        }
    }
    if error.is_none() {
        if let Some(s) = d.stalled() {
            assert!(s.to_string().contains("byte offset"), "{s}");
            assert_eq!(s.offset, (MESSAGE_SIZE * messages.len()) as u64);
        }
    }
    Fed { messages, error }
}

fn pieces() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(
        prop_oneof![1..8usize, Just(MESSAGE_SIZE), 1..400usize],
        1..6,
    )
}

/// Where a 112-byte request must hold zeros (padding, response fields).
fn must_be_zero(i: usize) -> bool {
    (1..4).contains(&i) || (17..20).contains(&i) || i >= 40
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// (1) Arbitrary bytes, split anywhere.
    #[test]
    fn arbitrary_bytes(
        bytes in proptest::collection::vec(
            // Mostly zeros, so that some chunks pass as requests.
            prop_oneof![3 => Just(0u8), 1 => any::<u8>(), 1 => 1..13u8], 0..800),
        p in pieces(),
    ) {
        let f = feed(&bytes, &p);
        // The messages are exactly the stream's first 112-byte chunks.
        for (i, m) in f.messages.iter().enumerate() {
            let chunk: &[u8; MESSAGE_SIZE] =
                bytes[i * MESSAGE_SIZE..(i + 1) * MESSAGE_SIZE].try_into().unwrap();
            assert_eq!(m, &Message::decode(chunk));
            assert_eq!(&m.encode(), chunk);
        }
    }

    /// (3) Valid requests then garbage: every request arrives unchanged; an
    /// error is at or after the garbage.
    #[test]
    fn valid_prefix_then_garbage(
        msgs in proptest::collection::vec(request(), 0..8),
        garbage in proptest::collection::vec(any::<u8>(), 1..300),
        p in pieces(),
    ) {
        let mut bytes: Vec<u8> = msgs.iter().flat_map(|m| m.encode()).collect();
        let valid_len = bytes.len();
        bytes.extend_from_slice(&garbage);
        let f = feed(&bytes, &p);
        assert!(f.messages.len() >= msgs.len(), "{:?}", f.error);
        assert_eq!(&f.messages[..msgs.len()], &msgs[..]);
        if let Some(e) = &f.error {
            assert!(e.offset >= valid_len as u64, "{e}");
        }
        // Garbage whose first byte is not a request type fails right there.
        bytes[valid_len] = [0u8, 4, 7, 13, 255][garbage[0] as usize % 5];
        if bytes.len() - valid_len >= MESSAGE_SIZE {
            let f = feed(&bytes, &p);
            assert_eq!(&f.messages[..], &msgs[..]);
            let e = f.error.expect("a bad type byte is an error");
            assert_eq!(e.offset, valid_len as u64, "{e}");
        }
    }

    /// (2) One damaged byte: the messages before it arrive unchanged, and if
    /// the damage is detected the error names exactly that byte.
    #[test]
    fn damaged_byte_is_pinpointed(
        msgs in proptest::collection::vec(request(), 1..8),
        at in any::<usize>(),
        mask in 1..=255u8,
        p in pieces(),
    ) {
        let mut bytes: Vec<u8> = msgs.iter().flat_map(|m| m.encode()).collect();
        let at = at % bytes.len();
        bytes[at] ^= mask;
        let f = feed(&bytes, &p);
        let before = at / MESSAGE_SIZE;
        assert_eq!(&f.messages[..before], &msgs[..before]);
        match &f.error {
            Some(e) => assert_eq!(e.offset, at as u64, "{e}"),
            None => {
                assert!(!must_be_zero(at % MESSAGE_SIZE), "damage at {at} went unnoticed");
                assert_eq!(f.messages.len(), msgs.len());
            }
        }
        if must_be_zero(at % MESSAGE_SIZE) {
            assert!(f.error.is_some());
        }
    }

    /// (2) Structure-aware: other struct sizes (72, 128 bytes) and cut
    /// streams never panic and name an offset.
    #[test]
    fn other_struct_sizes_and_cuts(
        msgs in proptest::collection::vec(request(), 1..8),
        size in prop_oneof![Just(72usize), Just(128usize), 1..200usize],
        cut in any::<usize>(),
        p in pieces(),
    ) {
        let bytes: Vec<u8> = msgs
            .iter()
            .flat_map(|m| {
                let mut v = m.encode()[..40.min(size)].to_vec();
                v.resize(size, 0);
                v
            })
            .collect();
        let cut = cut % (bytes.len() + 1);
        let _ = feed(&bytes[..cut], &p);
    }
}
