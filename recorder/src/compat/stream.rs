//! Splitting a byte stream into validated 112-byte messages, and the
//! diagnosis of a stream that does not frame (another struct size, garbage).

use super::message::{Message, MsgType, MESSAGE_SIZE};
use std::fmt;
use std::io::Read;

/// A stream that does not frame as 112-byte messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Misframe {
    /// Stream offset of the first byte that does not fit.
    pub offset: u64,
    pub problem: String,
    pub likely_cause: String,
}

impl fmt::Display for Misframe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "misframed allocation-server stream at byte offset {}: {}; likely cause: {}",
            self.offset, self.problem, self.likely_cause
        )
    }
}

impl std::error::Error for Misframe {}

/// Other struct sizes seen in the wild, and who sends them.
const KNOWN_SIZES: [(usize, &str); 2] = [
    (
        128,
        "the peer sends 128-byte messages (the memory-monitor branch's later AllocMessage with cb_allocated/kernel_allocated); ttalloc speaks the 112-byte protocol of allocation_server_poc",
    ),
    (
        72,
        "the peer sends 72-byte messages (the first AllocMessage, still used by allocation_monitor_client of that branch); ttalloc speaks the 112-byte protocol",
    ),
];

/// Whether 20 bytes at `b` look like a request header: a request type and
/// zero padding.
fn plausible_header(b: &[u8]) -> bool {
    b.len() >= 21
        && MsgType::from_u8(b[0]).is_some_and(MsgType::is_request)
        && b[1..4] == [0, 0, 0]
        && b[17..20] == [0, 0, 0]
}

/// Bytes of the stream kept for diagnosing misframing.
const HEAD_KEPT: usize = 4096;

/// Splits a byte stream into validated 112-byte messages.
#[derive(Default)]
pub struct StreamDecoder {
    /// Bytes received; `buf[start..end]` are not decoded yet. Messages are
    /// read in place at `start`; the unread tail moves to the front only
    /// when more bytes come in.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Stream offset of `buf[start]`.
    offset: u64,
    /// The first bytes of the stream (for the diagnosis).
    head: Vec<u8>,
    failed: bool,
}

/// Bytes one [`StreamDecoder::read_from`] asks for.
const READ_CHUNK: usize = 64 * 1024;

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes received.
    pub fn feed(&mut self, data: &[u8]) {
        self.make_room(data.len());
        self.buf[self.end..self.end + data.len()].copy_from_slice(data);
        self.received(data.len());
    }

    /// Reads once from `r` straight into the buffer (no copy through a
    /// caller's buffer); returns what `read` returned (0 at EOF).
    pub fn read_from(&mut self, r: &mut impl Read) -> std::io::Result<usize> {
        self.make_room(READ_CHUNK);
        let n = r.read(&mut self.buf[self.end..])?;
        self.received(n);
        Ok(n)
    }

    /// Moves the unread bytes to the front and makes `n` bytes free after them.
    fn make_room(&mut self, n: usize) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() < self.end + n {
            self.buf.resize(self.end + n, 0);
        }
    }

    fn received(&mut self, n: usize) {
        if self.head.len() < HEAD_KEPT {
            let k = (HEAD_KEPT - self.head.len()).min(n);
            self.head
                .extend_from_slice(&self.buf[self.end..self.end + k]);
        }
        self.end += n;
    }

    /// The bytes received and not decoded yet.
    fn unread(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Bytes received that do not make a whole message yet.
    pub fn pending(&self) -> usize {
        self.end - self.start
    }

    /// Stream offset of the next message.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next whole message, `Ok(None)` if more bytes are needed. After an
    /// error the decoder stays failed (a misframed stream cannot be resynced).
    pub fn next_message(&mut self) -> Result<Option<Message>, Misframe> {
        if self.failed {
            return Err(self.misframe(self.offset, "the stream was already misframed".into()));
        }
        if self.pending() < MESSAGE_SIZE {
            return Ok(None);
        }
        let chunk: &[u8; MESSAGE_SIZE] = self.buf[self.start..self.start + MESSAGE_SIZE]
            .try_into()
            .expect("MESSAGE_SIZE bytes");
        if let Err(e) = self.validate(chunk) {
            self.failed = true;
            return Err(e);
        }
        let msg = Message::decode(chunk);
        self.start += MESSAGE_SIZE;
        self.offset += MESSAGE_SIZE as u64;
        Ok(Some(msg))
    }

    fn validate(&self, b: &[u8; MESSAGE_SIZE]) -> Result<(), Misframe> {
        let at = self.offset;
        let kind = match MsgType::from_u8(b[0]) {
            Some(k) => k,
            None => {
                return Err(self.misframe(at, format!("message type {} is out of range 1-12", b[0])))
            }
        };
        if !kind.is_request() {
            return Err(self.misframe(
                at,
                format!("a client sent a response message (type {})", b[0]),
            ));
        }
        // Both checks look at every byte at once, then find the culprit
        // only in a bad message: byte by byte they were a sixth of the
        // reader's instructions.
        if b[1] | b[2] | b[3] | b[17] | b[18] | b[19] != 0 {
            let i = (1..4)
                .chain(17..20)
                .find(|&i| b[i] != 0)
                .expect("a non-zero byte");
            return Err(self.misframe(
                at + i as u64,
                format!("padding byte {i} of the message is {:#04x}, not 0", b[i]),
            ));
        }
        // Clients zero the response and device-info fields (memset / struct.pack).
        const _: () = assert!((MESSAGE_SIZE - 40).is_multiple_of(8));
        let response = b[40..].chunks_exact(8).fold(0u64, |acc, w| {
            acc | u64::from_ne_bytes(w.try_into().expect("8 bytes"))
        });
        if response != 0 {
            let i = (40..MESSAGE_SIZE)
                .find(|&i| b[i] != 0)
                .expect("a non-zero byte");
            return Err(self.misframe(
                at + i as u64,
                format!("byte {i} of a request (in the response/device-info fields, which clients leave 0) is {:#04x}", b[i]),
            ));
        }
        Ok(())
    }

    /// Builds the error, guessing the peer's struct size from where plausible
    /// headers sit in the bytes seen.
    fn misframe(&self, offset: u64, problem: String) -> Misframe {
        Misframe {
            offset,
            problem,
            likely_cause: self.likely_cause(),
        }
    }

    fn likely_cause(&self) -> String {
        // Known bytes: the head of the stream, and the buffer at `self.offset`.
        let byte_at = |pos: u64| -> Option<&[u8]> {
            if pos + 21 <= self.head.len() as u64 {
                return Some(&self.head[pos as usize..]);
            }
            if pos >= self.offset && pos - self.offset + 21 <= self.pending() as u64 {
                return Some(&self.unread()[(pos - self.offset) as usize..]);
            }
            None
        };
        let end = self.offset + self.pending() as u64;
        for (size, cause) in KNOWN_SIZES {
            let mut checked = 0;
            let mut all_plausible = true;
            let mut pos = size as u64;
            while pos < end {
                if !pos.is_multiple_of(MESSAGE_SIZE as u64) {
                    if let Some(b) = byte_at(pos) {
                        checked += 1;
                        all_plausible &= plausible_header(b);
                    }
                }
                pos += size as u64;
            }
            if checked > 0 && all_plausible {
                return cause.to_owned();
            }
        }
        let pending = self.pending() % MESSAGE_SIZE;
        if self.offset == 0 && self.pending() < MESSAGE_SIZE && pending > 0 {
            return format!(
                "the peer sent {pending} bytes and then nothing: it uses a {pending}-byte message, not the 112-byte protocol"
            );
        }
        "the peer is not speaking the 112-byte allocation-server protocol (another struct size, or not a tt-metal client)"
            .to_owned()
    }

    /// Diagnosis for a stream that stopped (EOF or a long pause) in the
    /// middle of a message.
    pub fn stalled(&self) -> Option<Misframe> {
        let pending = self.pending();
        if pending == 0 || pending >= MESSAGE_SIZE {
            return None;
        }
        let cause = match KNOWN_SIZES.iter().find(|(s, _)| pending.is_multiple_of(*s) && (self.offset + pending as u64).is_multiple_of(*s as u64)) {
            Some((_, cause)) => cause.to_string(),
            None => format!("the peer sent a {pending}-byte partial message: not the 112-byte protocol, or it died mid-send"),
        };
        Some(Misframe {
            offset: self.offset,
            problem: format!("the stream stops {pending} bytes into a 112-byte message"),
            likely_cause: cause,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compat::message::tests::alloc;

    #[test]
    fn decodes_messages_split_anywhere() {
        let msgs: Vec<Message> = (0..5)
            .map(|i| alloc(i, 1024 * (i as u64 + 1), 0, 42, 0x1000 * i as u64))
            .collect();
        let bytes: Vec<u8> = msgs.iter().flat_map(|m| m.encode()).collect();
        for step in [1, 7, 111, 112, 113, 1000] {
            let mut d = StreamDecoder::new();
            let mut out = Vec::new();
            for piece in bytes.chunks(step) {
                d.feed(piece);
                while let Some(m) = d.next_message().unwrap() {
                    out.push(m);
                }
            }
            assert_eq!(out, msgs, "step {step}");
            assert_eq!(d.pending(), 0);
            assert!(d.stalled().is_none());
        }
    }

    /// Encodes `m`'s header (first 40 bytes) into a struct of `size` bytes, as
    /// a peer with another struct layout would.
    fn other_size(m: &Message, size: usize) -> Vec<u8> {
        let mut v = m.encode()[..40].to_vec();
        v.resize(size, 0);
        v
    }

    #[test]
    fn a_128_byte_stream_is_detected_after_its_first_message() {
        let msgs: Vec<Message> = (0..4).map(|i| alloc(0, 4096, 1, 9, 0x2000 + i)).collect();
        let bytes: Vec<u8> = msgs.iter().flat_map(|m| other_size(m, 128)).collect();
        let mut d = StreamDecoder::new();
        d.feed(&bytes);
        // The first 112 bytes of a 128-byte message are a valid message.
        assert_eq!(d.next_message().unwrap(), Some(msgs[0].clone()));
        let err = d.next_message().unwrap_err();
        assert_eq!(err.offset, 112);
        assert!(err.problem.contains("out of range"), "{err}");
        assert!(err.likely_cause.contains("128-byte"), "{err}");
        assert!(d.next_message().is_err(), "a failed decoder stays failed");
    }

    #[test]
    fn a_72_byte_stream_is_detected_at_once() {
        let msgs: Vec<Message> = (0..4).map(|i| alloc(1, 64, 0, 9, 0x40 * (i + 1))).collect();
        let bytes: Vec<u8> = msgs.iter().flat_map(|m| other_size(m, 72)).collect();
        let mut d = StreamDecoder::new();
        d.feed(&bytes);
        let err = d.next_message().unwrap_err();
        assert_eq!(err.offset, 72, "{err}");
        assert!(err.likely_cause.contains("72-byte"), "{err}");
    }

    #[test]
    fn a_lone_72_byte_query_is_diagnosed_when_the_peer_waits() {
        let q = Message {
            msg_type: MsgType::Query as u8,
            device_id: 0,
            ..Default::default()
        };
        let mut d = StreamDecoder::new();
        d.feed(&other_size(&q, 72));
        assert_eq!(d.next_message().unwrap(), None);
        let err = d.stalled().unwrap();
        assert_eq!(err.offset, 0);
        assert!(err.likely_cause.contains("72-byte"), "{err}");
    }

    #[test]
    fn bad_type_and_padding_are_reported_with_offsets() {
        let good = alloc(0, 64, 0, 1, 64).encode();
        let mut bad_pad = good;
        bad_pad[18] = 0x5a;
        let mut d = StreamDecoder::new();
        d.feed(&good);
        d.feed(&bad_pad);
        assert!(d.next_message().unwrap().is_some());
        let err = d.next_message().unwrap_err();
        assert_eq!(err.offset, 112 + 18);
        assert!(err.problem.contains("padding"), "{err}");

        for t in [0u8, 13, 255, 4, 7] {
            let mut b = good;
            b[0] = t;
            let mut d = StreamDecoder::new();
            d.feed(&b);
            let err = d.next_message().unwrap_err();
            assert_eq!(err.offset, 0);
            assert!(err.to_string().contains("byte offset 0"), "{err}");
        }
    }
}

#[cfg(test)]
mod garbage {
    use super::*;
    use crate::compat::message::tests::alloc;

    #[test]
    fn random_streams_never_panic_and_fail_for_good() {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for _ in 0..200 {
            let len = (next() % 600) as usize;
            let data: Vec<u8> = (0..len)
                // Mostly zeros, so that some chunks pass as headers.
                .map(|_| if next() % 4 == 0 { next() as u8 } else { 0 })
                .collect();
            let mut d = StreamDecoder::new();
            let mut failed = false;
            for piece in data.chunks(1 + (next() % 200) as usize) {
                d.feed(piece);
                loop {
                    match d.next_message() {
                        Ok(Some(m)) => {
                            assert!(!failed);
                            assert!(m.kind().is_some_and(MsgType::is_request));
                        }
                        Ok(None) => break,
                        Err(e) => {
                            assert!(!e.likely_cause.is_empty());
                            failed = true;
                            break;
                        }
                    }
                }
            }
            let _ = d.stalled();
        }
    }

    /// A reader that hands out at most `step` bytes per read.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(self.data.len()).min(out.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn read_from_decodes_messages_split_across_short_reads() {
        // Three messages, then a 128-byte-struct peer's message: with reads of
        // 50 bytes, every message straddles reads. The three come out whole,
        // in order; the fourth is misframed at byte 3 * 112 + 40 (its first
        // non-zero byte among the response fields: the 128-byte struct's
        // size field ends where the 112-byte one has dram_allocated).
        let msgs = [
            alloc(0, 4096, 1, 7, 0x1000),
            alloc(1, 8192, 0, 7, 0x2000),
            alloc(2, 64, 3, 7, 0x3000),
        ];
        let mut stream: Vec<u8> = msgs.iter().flat_map(|m| m.encode()).collect();
        let mut bad = alloc(0, 1, 1, 7, 0x4000).encode();
        bad[40] = 9;
        stream.extend_from_slice(&bad);
        let mut reader = Trickle {
            data: &stream,
            step: 50,
        };
        let mut d = StreamDecoder::new();
        let mut got = Vec::new();
        let err = loop {
            let n = d.read_from(&mut reader).unwrap();
            assert!(n > 0, "the misframe must come before the end of the stream");
            match d.next_message() {
                Ok(Some(m)) => got.push(m),
                Ok(None) => {}
                Err(e) => break e,
            }
            while let Ok(Some(m)) = d.next_message() {
                got.push(m);
            }
        };
        assert_eq!(got, msgs);
        assert_eq!(err.offset, 3 * 112 + 40);
    }
}
