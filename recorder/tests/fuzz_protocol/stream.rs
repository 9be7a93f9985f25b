//! Decoding a byte stream the way the listener does.

use super::alloc_watch::*;
use super::*;

// ---------------------------------------------------------------------------
// Stream decoding the way the listener does it.

/// The result of decoding a byte stream frame by frame.
#[derive(Debug)]
pub(crate) struct Decoded {
    /// Each decoded frame with its stream offset.
    pub(crate) items: Vec<(u64, Item)>,
    pub(crate) error: Option<ProtocolError>,
    /// Bytes at the end that do not make a whole frame (a cut stream).
    pub(crate) incomplete: usize,
}

/// Decodes like `listener.rs`: header check before the payload is buffered,
/// stop at the first error, a partial frame at the end is left over. Also
/// checks, frame by frame, that no single allocation exceeds the budget.
pub(crate) fn decode_stream(bytes: &[u8]) -> Decoded {
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

pub(crate) fn assert_error_is_clear(e: &ProtocolError, stream_len: usize) {
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
