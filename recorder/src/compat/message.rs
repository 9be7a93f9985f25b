//! The allocation server's 112-byte `AllocMessage` (tt-metal memory-monitor
//! branch): packed little-endian, no length prefix, one message after the
//! other on a stream socket.
//!
//! | offset | field |
//! |---|---|
//! | 0 | type u8, then 3 bytes padding |
//! | 4 | device_id i32 |
//! | 8 | size u64 |
//! | 16 | buffer_type u8, then 3 bytes padding |
//! | 20 | process_id i32 |
//! | 24 | buffer_id u64 (the C++ client sends the buffer's address) |
//! | 32 | timestamp u64 (ns since the epoch; 0 on FREE) |
//! | 40 | dram, l1, l1_small, trace allocated: 4 x u64 (responses) |
//! | 72 | total_dram_size, total_l1_size: 2 x u64 (device info) |
//! | 88 | arch_type, num_dram_channels, dram_size_per_channel, l1_size_per_core, is_available, num_devices: 6 x u32 |

use std::fmt;

/// Size of one message on the wire.
pub const MESSAGE_SIZE: usize = 112;

/// Message types. 8-11 come from the later branch versions (whose struct is
/// 128 bytes; their header, bytes 0-39, is the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MsgType {
    Alloc = 1,
    Free = 2,
    Query = 3,
    Response = 4,
    DumpRemaining = 5,
    DeviceInfoQuery = 6,
    DeviceInfoResponse = 7,
    CbAlloc = 8,
    CbFree = 9,
    KernelLoad = 10,
    KernelUnload = 11,
    /// `tt_smi`'s request to list kernels; acknowledged, nothing to record.
    DumpKernels = 12,
}

impl MsgType {
    pub fn from_u8(v: u8) -> Option<MsgType> {
        use MsgType::*;
        Some(match v {
            1 => Alloc,
            2 => Free,
            3 => Query,
            4 => Response,
            5 => DumpRemaining,
            6 => DeviceInfoQuery,
            7 => DeviceInfoResponse,
            8 => CbAlloc,
            9 => CbFree,
            10 => KernelLoad,
            11 => KernelUnload,
            12 => DumpKernels,
            _ => return None,
        })
    }

    /// Types a client sends (responses only ever go server -> client).
    pub fn is_request(self) -> bool {
        !matches!(self, MsgType::Response | MsgType::DeviceInfoResponse)
    }
}

/// One decoded message (all fields, requests and responses alike).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    pub msg_type: u8,
    pub device_id: i32,
    pub size: u64,
    pub buffer_type: u8,
    pub process_id: i32,
    pub buffer_id: u64,
    pub timestamp: u64,
    pub dram_allocated: u64,
    pub l1_allocated: u64,
    pub l1_small_allocated: u64,
    pub trace_allocated: u64,
    pub total_dram_size: u64,
    pub total_l1_size: u64,
    pub arch_type: u32,
    pub num_dram_channels: u32,
    pub dram_size_per_channel: u32,
    pub l1_size_per_core: u32,
    pub is_available: u32,
    pub num_devices: u32,
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

impl Message {
    pub fn kind(&self) -> Option<MsgType> {
        MsgType::from_u8(self.msg_type)
    }

    /// Decodes the fields without any validation (see [`StreamDecoder`]).
    pub fn decode(b: &[u8; MESSAGE_SIZE]) -> Message {
        Message {
            msg_type: b[0],
            device_id: u32_at(b, 4) as i32,
            size: u64_at(b, 8),
            buffer_type: b[16],
            process_id: u32_at(b, 20) as i32,
            buffer_id: u64_at(b, 24),
            timestamp: u64_at(b, 32),
            dram_allocated: u64_at(b, 40),
            l1_allocated: u64_at(b, 48),
            l1_small_allocated: u64_at(b, 56),
            trace_allocated: u64_at(b, 64),
            total_dram_size: u64_at(b, 72),
            total_l1_size: u64_at(b, 80),
            arch_type: u32_at(b, 88),
            num_dram_channels: u32_at(b, 92),
            dram_size_per_channel: u32_at(b, 96),
            l1_size_per_core: u32_at(b, 100),
            is_available: u32_at(b, 104),
            num_devices: u32_at(b, 108),
        }
    }

    pub fn encode(&self) -> [u8; MESSAGE_SIZE] {
        let mut b = [0u8; MESSAGE_SIZE];
        b[0] = self.msg_type;
        b[4..8].copy_from_slice(&self.device_id.to_le_bytes());
        b[8..16].copy_from_slice(&self.size.to_le_bytes());
        b[16] = self.buffer_type;
        b[20..24].copy_from_slice(&self.process_id.to_le_bytes());
        b[24..32].copy_from_slice(&self.buffer_id.to_le_bytes());
        b[32..40].copy_from_slice(&self.timestamp.to_le_bytes());
        let u64s = [
            self.dram_allocated,
            self.l1_allocated,
            self.l1_small_allocated,
            self.trace_allocated,
            self.total_dram_size,
            self.total_l1_size,
        ];
        for (i, v) in u64s.iter().enumerate() {
            b[40 + 8 * i..48 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        let u32s = [
            self.arch_type,
            self.num_dram_channels,
            self.dram_size_per_channel,
            self.l1_size_per_core,
            self.is_available,
            self.num_devices,
        ];
        for (i, v) in u32s.iter().enumerate() {
            b[88 + 4 * i..92 + 4 * i].copy_from_slice(&v.to_le_bytes());
        }
        b
    }
}

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
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    offset: u64,
    /// The first bytes of the stream (for the diagnosis).
    head: Vec<u8>,
    failed: bool,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn feed(&mut self, data: &[u8]) {
        if self.head.len() < HEAD_KEPT {
            let n = (HEAD_KEPT - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..n]);
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes received that do not make a whole message yet.
    pub fn pending(&self) -> usize {
        self.buf.len()
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
        if self.buf.len() < MESSAGE_SIZE {
            return Ok(None);
        }
        let chunk: [u8; MESSAGE_SIZE] = self.buf[..MESSAGE_SIZE].try_into().unwrap();
        if let Err(e) = self.validate(&chunk) {
            self.failed = true;
            return Err(e);
        }
        self.buf.drain(..MESSAGE_SIZE);
        self.offset += MESSAGE_SIZE as u64;
        Ok(Some(Message::decode(&chunk)))
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
        if let Some(i) = (1..4).chain(17..20).find(|&i| b[i] != 0) {
            return Err(self.misframe(
                at + i as u64,
                format!("padding byte {i} of the message is {:#04x}, not 0", b[i]),
            ));
        }
        // Clients zero the response and device-info fields (memset / struct.pack).
        if let Some(i) = (40..MESSAGE_SIZE).find(|&i| b[i] != 0) {
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
            if pos >= self.offset && pos - self.offset + 21 <= self.buf.len() as u64 {
                return Some(&self.buf[(pos - self.offset) as usize..]);
            }
            None
        };
        let end = self.offset + self.buf.len() as u64;
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
        let pending = self.buf.len() % MESSAGE_SIZE;
        if self.offset == 0 && self.buf.len() < MESSAGE_SIZE && pending > 0 {
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
        let pending = self.buf.len();
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

    fn alloc(device: i32, size: u64, bt: u8, pid: i32, addr: u64) -> Message {
        Message {
            msg_type: MsgType::Alloc as u8,
            device_id: device,
            size,
            buffer_type: bt,
            process_id: pid,
            buffer_id: addr,
            timestamp: 1_700_000_000_000_000_000,
            ..Default::default()
        }
    }

    #[test]
    fn layout_matches_the_python_struct_format() {
        // '=BxxxiQBxxxiQQQQQQQQIIIIII' with type=1, device=3, size=0x1122,
        // buffer_type=4, pid=77, buffer_id=0xdead, ts=5, counters 6..9,
        // totals 10, 11, then 12..17.
        let m = Message {
            msg_type: 1,
            device_id: 3,
            size: 0x1122,
            buffer_type: 4,
            process_id: 77,
            buffer_id: 0xdead,
            timestamp: 5,
            dram_allocated: 6,
            l1_allocated: 7,
            l1_small_allocated: 8,
            trace_allocated: 9,
            total_dram_size: 10,
            total_l1_size: 11,
            arch_type: 12,
            num_dram_channels: 13,
            dram_size_per_channel: 14,
            l1_size_per_core: 15,
            is_available: 16,
            num_devices: 17,
        };
        let b = m.encode();
        assert_eq!(b.len(), 112);
        assert_eq!(b[0], 1);
        assert_eq!(&b[4..8], &3i32.to_le_bytes());
        assert_eq!(&b[8..16], &0x1122u64.to_le_bytes());
        assert_eq!(b[16], 4);
        assert_eq!(&b[20..24], &77i32.to_le_bytes());
        assert_eq!(&b[24..32], &0xdeadu64.to_le_bytes());
        assert_eq!(&b[64..72], &9u64.to_le_bytes());
        assert_eq!(&b[80..88], &11u64.to_le_bytes());
        assert_eq!(&b[88..92], &12u32.to_le_bytes());
        assert_eq!(&b[108..112], &17u32.to_le_bytes());
        assert_eq!(Message::decode(&b), m);
        let neg = Message {
            msg_type: 6,
            device_id: -1,
            ..Default::default()
        };
        assert_eq!(Message::decode(&neg.encode()).device_id, -1);
    }

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
}
