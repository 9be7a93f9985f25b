//! The native wire protocol (`recorder/PROTOCOL.md` is the normative text).
//!
//! Little-endian, length-prefixed frames over a stream socket. Every frame
//! starts with a 12-byte header `{u32 len, u16 type, u16 flags, u32 count}`;
//! the first frame is a HELLO, then any number of STRINGS / FRAMES / STACKS
//! (intern definitions, ids implicit and sequential per connection) and
//! EVENTS frames, then a GOODBYE. Every field is validated: a peer can never
//! make the recorder panic or record an event that refers to nothing.

mod ext;

pub use ext::{ALLOC_REFUSED, BUFFER_ALLOC2};
use std::fmt;
use ttalloc_model::{
    Arch, BufferId, BufferType, DeviceConfig, DeviceId, Event, EventKind, EventTag, Frame, FrameId,
    Layout, Pid, ProgramId, SiteId, StackNode, StringId, TraceId,
};

/// "TTAL" read as a little-endian u32.
pub const MAGIC: u32 = u32::from_le_bytes(*b"TTAL");
pub const VERSION_MAJOR: u16 = 1;
/// 1.1 added ALLOC_REFUSED and BUFFER_ALLOC2 (see `protocol/ext.rs`).
pub const VERSION_MINOR: u16 = 1;
pub const HEADER_LEN: usize = 12;
/// Largest payload accepted in one frame (bounds the recorder's memory per connection).
pub const MAX_PAYLOAD: u32 = 1 << 20;
/// Buffer and program ids a client sends must be below this (the recorder
/// prefixes them with the connection number to make them unique in the trace).
pub const LOCAL_ID_LIMIT: u64 = 1 << 40;
/// Size of the common event header `{u8 kind, u8 flags, u16 reserved, u32 device, u64 ts}`.
pub const EVENT_HEADER_LEN: usize = 16;

pub mod frame_type {
    pub const HELLO: u16 = 1;
    pub const STRINGS: u16 = 2;
    pub const FRAMES: u16 = 3;
    pub const STACKS: u16 = 4;
    pub const EVENTS: u16 = 5;
    pub const GOODBYE: u16 = 6;

    /// The frame type's name in `PROTOCOL.md` (for error messages).
    pub fn name(t: u16) -> &'static str {
        match t {
            HELLO => "HELLO",
            STRINGS => "STRINGS",
            FRAMES => "FRAMES",
            STACKS => "STACKS",
            EVENTS => "EVENTS",
            GOODBYE => "GOODBYE",
            _ => "unknown",
        }
    }
}

/// Event flag bits (meaning depends on the kind).
pub mod flags {
    pub const ALLOC_HAS_ADDRESS: u8 = 1;
    pub const ALLOC_HAS_PAGE_SIZE: u8 = 2;
    pub const ALLOC_HAS_NUM_CORES: u8 = 4;
    pub const CB_HAS_CORES: u8 = 1;
    pub const CB_GLOBALLY_ALLOCATED: u8 = 2;
    pub const GOODBYE_HAS_STATUS: u32 = 1;
}

/// Body length (after the 16-byte event header) of each client-sendable kind;
/// `None` for kinds a client may not send (process start/exit come from
/// HELLO/GOODBYE).
pub fn body_len(tag: EventTag) -> Option<usize> {
    Some(match tag {
        EventTag::ProcessStart | EventTag::ProcessExit => return None,
        EventTag::DeviceOpen => 8 + 8 * DEVICE_CONFIG_FIELDS,
        EventTag::DeviceClose | EventTag::CbFreeAll | EventTag::OpEnd => 0,
        EventTag::BufferAlloc => 44,
        EventTag::BufferFree => 12,
        EventTag::CbAlloc => 24,
        EventTag::ProgramLoad => 20,
        EventTag::ProgramUnload => 8,
        EventTag::TraceCapture => 16,
        EventTag::TraceRelease | EventTag::OpBegin | EventTag::Marker => 4,
        EventTag::AllocRefused => ext::ALLOC_REFUSED_LEN,
    })
}

/// The device-config fields carried by DEVICE_OPEN, in wire order (bit i of
/// the presence mask = field i). Fixed by protocol version 1.
pub const DEVICE_CONFIG_KEYS: [&str; 11] = [
    "dram_banks",
    "dram_bank_size",
    "dram_alignment",
    "dram_unreserved_base",
    "l1_banks",
    "l1_bank_size",
    "l1_alignment",
    "l1_unreserved_base",
    "l1_small_size",
    "trace_region_size",
    "worker_l1_size",
];
pub const DEVICE_CONFIG_FIELDS: usize = DEVICE_CONFIG_KEYS.len();

fn config_to_wire(c: &DeviceConfig) -> (u32, [u64; DEVICE_CONFIG_FIELDS]) {
    let vals = [
        c.dram_banks.map(u64::from),
        c.dram_bank_size,
        c.dram_alignment.map(u64::from),
        c.dram_unreserved_base,
        c.l1_banks.map(u64::from),
        c.l1_bank_size,
        c.l1_alignment.map(u64::from),
        c.l1_unreserved_base,
        c.l1_small_size,
        c.trace_region_size,
        c.worker_l1_size,
    ];
    let mut mask = 0u32;
    let mut out = [0u64; DEVICE_CONFIG_FIELDS];
    for (i, v) in vals.iter().enumerate() {
        if let Some(v) = v {
            mask |= 1 << i;
            out[i] = *v;
        }
    }
    (mask, out)
}

fn config_from_wire(mask: u32, vals: &[u64; DEVICE_CONFIG_FIELDS]) -> Result<DeviceConfig, String> {
    let mut c = DeviceConfig::default();
    for (i, key) in DEVICE_CONFIG_KEYS.iter().enumerate() {
        if mask & (1 << i) != 0 {
            c.set(key, &vals[i].to_string())?;
        }
    }
    Ok(c)
}

/// A protocol violation, with the byte offset in the connection's stream
/// where the offending frame starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError {
    pub offset: u64,
    pub message: String,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "protocol error at byte offset {}: {}",
            self.offset, self.message
        )
    }
}

impl std::error::Error for ProtocolError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub len: u32,
    pub frame_type: u16,
    pub flags: u16,
    pub count: u32,
}

impl FrameHeader {
    pub fn parse(b: &[u8; HEADER_LEN]) -> FrameHeader {
        FrameHeader {
            len: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            frame_type: u16::from_le_bytes([b[4], b[5]]),
            flags: u16::from_le_bytes([b[6], b[7]]),
            count: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
        }
    }
}

/// What a HELLO says about the connecting process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    pub version_major: u16,
    pub version_minor: u16,
    pub pid: u32,
    pub ppid: u32,
    pub ts: u64,
    pub client_name: String,
    pub client_version: String,
    pub argv: Vec<String>,
}

/// One decoded frame. Ids in definitions and events are the connection's
/// local ids (validated: every reference is to something already defined).
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Hello(Hello),
    Strings(Vec<String>),
    Frames(Vec<Frame>),
    Stacks(Vec<StackNode>),
    Events(Vec<Event>),
    Goodbye(Option<i32>),
}

/// Little-endian cursor over one payload; every read is bounds-checked.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.buf.len() - self.pos < n {
            return Err(format!(
                "payload ends after {} bytes, {} more needed at payload offset {}",
                self.buf.len(),
                n,
                self.pos
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    fn str(&mut self, what: &str) -> Result<String, String> {
        let n = self.u32().map_err(|e| format!("{what} length: {e}"))? as usize;
        let b = self.take(n).map_err(|e| format!("{what}: {e}"))?;
        String::from_utf8(b.to_vec()).map_err(|e| format!("{what} is not valid UTF-8: {e}"))
    }
    fn rest(&self) -> usize {
        self.buf.len() - self.pos
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    ExpectHello,
    Open,
    Closed,
}

/// Per-connection decoder: validates frames and keeps the counts of the
/// connection's intern definitions so every reference can be checked.
pub struct Decoder {
    state: State,
    offset: u64,
    strings: u32,
    frames: u32,
    stacks: u32,
    pid: Pid,
    /// Added to every buffer / program id (the connection's prefix in the trace).
    id_base: u64,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder {
            state: State::ExpectHello,
            offset: 0,
            strings: 1,
            frames: 0,
            stacks: 1,
            pid: Pid(0),
            id_base: 0,
        }
    }

    /// Byte offset of the next frame in the stream.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Sets the prefix added to buffer and program ids (after the HELLO, once
    /// the connection is registered).
    pub fn set_id_base(&mut self, base: u64) {
        self.id_base = base;
    }

    /// Files the connection's events under `pid` instead of the pid its
    /// HELLO claimed (the listener passes the kernel's peer-credential pid).
    pub fn set_pid(&mut self, pid: Pid) {
        self.pid = pid;
    }

    /// Validates a header before its payload is read.
    pub fn check_header(&self, h: &FrameHeader) -> Result<(), ProtocolError> {
        let err = |m: String| {
            Err(ProtocolError {
                offset: self.offset,
                message: m,
            })
        };
        if h.len > MAX_PAYLOAD {
            return err(format!(
                "frame payload of {} bytes exceeds the limit of {MAX_PAYLOAD} (misframed stream?)",
                h.len
            ));
        }
        if h.flags != 0 {
            return err(format!(
                "frame flags must be 0 in protocol version 1, got {:#x}",
                h.flags
            ));
        }
        if !(frame_type::HELLO..=frame_type::GOODBYE).contains(&h.frame_type) {
            return err(format!(
                "unknown frame type {} (misframed stream?)",
                h.frame_type
            ));
        }
        match self.state {
            State::ExpectHello if h.frame_type != frame_type::HELLO => err(format!(
                "first frame must be HELLO (type 1), got type {}",
                h.frame_type
            )),
            State::Open if h.frame_type == frame_type::HELLO => {
                err("second HELLO on one connection".into())
            }
            State::Closed => err("frame after GOODBYE".into()),
            _ => Ok(()),
        }
    }

    /// Decodes one frame (header already checked with [`check_header`]).
    pub fn decode(&mut self, h: &FrameHeader, payload: &[u8]) -> Result<Item, ProtocolError> {
        self.check_header(h)?;
        let start = self.offset;
        let r = self.decode_inner(h, payload);
        self.offset += (HEADER_LEN + payload.len()) as u64;
        r.map_err(|message| ProtocolError {
            offset: start,
            message: format!("{} frame: {message}", frame_type::name(h.frame_type)),
        })
    }

    fn decode_inner(&mut self, h: &FrameHeader, payload: &[u8]) -> Result<Item, String> {
        if payload.len() != h.len as usize {
            return Err(format!(
                "payload has {} bytes, header says {}",
                payload.len(),
                h.len
            ));
        }
        if h.count != 0 && matches!(h.frame_type, frame_type::HELLO | frame_type::GOODBYE) {
            return Err(format!(
                "frame count must be 0 for HELLO and GOODBYE, got {}",
                h.count
            ));
        }
        let mut c = Cursor {
            buf: payload,
            pos: 0,
        };
        let item = match h.frame_type {
            frame_type::HELLO => {
                let magic = c.u32()?;
                if magic != MAGIC {
                    return Err(format!("bad HELLO magic {magic:#010x} (expected \"TTAL\")"));
                }
                let version_major = c.u16()?;
                let version_minor = c.u16()?;
                if version_major != VERSION_MAJOR {
                    return Err(format!(
                        "protocol version {version_major}.{version_minor} is not supported (this recorder speaks {VERSION_MAJOR}.x)"
                    ));
                }
                let pid = c.u32()?;
                let ppid = c.u32()?;
                let ts = c.u64()?;
                let client_name = c.str("client name")?;
                let client_version = c.str("client version")?;
                let argc = c.u32()?;
                if argc as usize > payload.len() / 4 {
                    return Err(format!(
                        "argc {argc} cannot fit in a {}-byte payload",
                        payload.len()
                    ));
                }
                let mut argv = Vec::with_capacity(argc as usize);
                for i in 0..argc {
                    argv.push(c.str(&format!("argv[{i}]"))?);
                }
                // A newer minor version may append fields; version 1.0 has none.
                let newer_minor = version_minor > VERSION_MINOR;
                if c.rest() != 0 && !newer_minor {
                    return Err(format!("{} unexpected trailing bytes in HELLO", c.rest()));
                }
                self.pid = Pid(pid);
                self.state = State::Open;
                Item::Hello(Hello {
                    version_major,
                    version_minor,
                    pid,
                    ppid,
                    ts,
                    client_name,
                    client_version,
                    argv,
                })
            }
            frame_type::STRINGS => {
                // Every string takes at least its 4-byte length: a count the
                // payload cannot hold must not reserve memory.
                let mut out = Vec::with_capacity((h.count as usize).min(payload.len() / 4));
                for i in 0..h.count {
                    out.push(c.str(&format!("string #{i}"))?);
                }
                self.no_trailing(&c)?;
                self.strings = self
                    .strings
                    .checked_add(h.count)
                    .filter(|&n| n < u32::MAX)
                    .ok_or("too many strings")?;
                Item::Strings(out)
            }
            frame_type::FRAMES => {
                self.exact_len(h, 12)?;
                let mut out = Vec::with_capacity(h.count as usize);
                for i in 0..h.count {
                    let function = c.u32()?;
                    let file = c.u32()?;
                    let line = c.u32()?;
                    for (what, id) in [("function", function), ("file", file)] {
                        if id >= self.strings {
                            return Err(format!(
                                "frame #{i}: {what} string id {id} is not defined (only {} strings)",
                                self.strings
                            ));
                        }
                    }
                    out.push(Frame {
                        function: StringId(function),
                        file: StringId(file),
                        line,
                    });
                }
                self.frames = self
                    .frames
                    .checked_add(h.count)
                    .filter(|&n| n < u32::MAX)
                    .ok_or("too many frames")?;
                Item::Frames(out)
            }
            frame_type::STACKS => {
                self.exact_len(h, 8)?;
                let mut out = Vec::with_capacity(h.count as usize);
                for i in 0..h.count {
                    let parent = c.u32()?;
                    let frame = c.u32()?;
                    let id = self.stacks.saturating_add(i);
                    if parent >= id {
                        return Err(format!(
                            "stack {id}: parent {parent} is not an earlier stack"
                        ));
                    }
                    if frame >= self.frames {
                        return Err(format!(
                            "stack {id}: frame id {frame} is not defined (only {} frames)",
                            self.frames
                        ));
                    }
                    out.push(StackNode {
                        parent: SiteId(parent),
                        frame: FrameId(frame),
                    });
                }
                self.stacks = self
                    .stacks
                    .checked_add(h.count)
                    .filter(|&n| n < u32::MAX)
                    .ok_or("too many stacks")?;
                Item::Stacks(out)
            }
            frame_type::EVENTS => {
                let mut out = Vec::with_capacity((h.len as usize / 20).min(h.count as usize));
                for i in 0..h.count {
                    let ev = self
                        .event(&mut c)
                        .map_err(|e| format!("event #{i} of the frame: {e}"))?;
                    out.push(ev);
                }
                self.no_trailing(&c)?;
                Item::Events(out)
            }
            frame_type::GOODBYE => {
                let fl = c.u32()?;
                let status = c.u32()? as i32;
                self.no_trailing(&c)?;
                if fl & !flags::GOODBYE_HAS_STATUS != 0 {
                    return Err(format!("unknown GOODBYE flags {fl:#x}"));
                }
                self.state = State::Closed;
                Item::Goodbye((fl & flags::GOODBYE_HAS_STATUS != 0).then_some(status))
            }
            _ => unreachable!("checked by check_header"),
        };
        Ok(item)
    }

    fn no_trailing(&self, c: &Cursor) -> Result<(), String> {
        if c.rest() != 0 {
            return Err(format!(
                "{} trailing bytes after the frame's {} records",
                c.rest(),
                c.pos
            ));
        }
        Ok(())
    }

    fn exact_len(&self, h: &FrameHeader, rec: u64) -> Result<(), String> {
        if h.count as u64 * rec != h.len as u64 {
            return Err(format!(
                "{} records of {rec} bytes do not make {} bytes",
                h.count, h.len
            ));
        }
        Ok(())
    }

    fn string_ref(&self, id: u32, what: &str) -> Result<StringId, String> {
        if id >= self.strings {
            return Err(format!(
                "{what} string id {id} is not defined (only {} strings)",
                self.strings
            ));
        }
        Ok(StringId(id))
    }

    fn site_ref(&self, id: u32) -> Result<SiteId, String> {
        if id >= self.stacks {
            return Err(format!(
                "site id {id} is not defined (only {} stacks)",
                self.stacks
            ));
        }
        Ok(SiteId(id))
    }

    fn local_id(&self, id: u64, what: &str) -> Result<u64, String> {
        if id >= LOCAL_ID_LIMIT {
            return Err(format!("{what} id {id} is not below 2^40"));
        }
        Ok(self.id_base | id)
    }

    fn event(&self, c: &mut Cursor) -> Result<Event, String> {
        let kind = c.u8()?;
        let fl = c.u8()?;
        let reserved = c.u16()?;
        let device = DeviceId(c.u32()?);
        let ts = c.u64()?;
        if reserved != 0 {
            return Err(format!("reserved event bytes must be 0, got {reserved:#x}"));
        }
        // BUFFER_ALLOC2 (1.1) is a BUFFER_ALLOC with a 16-byte tail.
        let alloc2 = kind == ext::BUFFER_ALLOC2;
        let tag = if alloc2 {
            EventTag::BufferAlloc
        } else {
            EventTag::from_u8(kind).ok_or_else(|| format!("unknown event kind {kind}"))?
        };
        let len = match body_len(tag) {
            _ if alloc2 => ext::BUFFER_ALLOC2_LEN,
            Some(len) => len,
            None => {
                return Err(format!(
                    "event kind {kind} ({tag}) cannot be sent by a client"
                ))
            }
        };
        let name = if alloc2 {
            "buffer_alloc2".to_string()
        } else {
            tag.to_string()
        };
        if c.rest() < len {
            return Err(format!(
                "{name} needs {len} body bytes, only {} left",
                c.rest()
            ));
        }
        let allowed_flags = match tag {
            _ if alloc2 => ext::ALLOC2_FLAGS,
            EventTag::BufferAlloc => 7,
            EventTag::CbAlloc => 3,
            EventTag::AllocRefused => ext::REFUSED_FLAGS,
            _ => 0,
        };
        if fl & !allowed_flags != 0 {
            return Err(format!("unknown flags {fl:#x} for {name}"));
        }
        let kind = match tag {
            EventTag::DeviceOpen => {
                let arch = c.u8()?;
                let pad = [c.u8()?, c.u8()?, c.u8()?];
                let mask = c.u32()?;
                let mut vals = [0u64; DEVICE_CONFIG_FIELDS];
                for v in vals.iter_mut() {
                    *v = c.u64()?;
                }
                if pad != [0, 0, 0] {
                    return Err("device_open padding must be 0".into());
                }
                let arch = Arch::from_u8(arch).ok_or_else(|| format!("unknown arch {arch}"))?;
                if mask >> DEVICE_CONFIG_FIELDS != 0 {
                    return Err(format!(
                        "device_open presence mask {mask:#x} has undefined bits"
                    ));
                }
                let config =
                    config_from_wire(mask, &vals).map_err(|e| format!("device_open: {e}"))?;
                EventKind::DeviceOpen {
                    device,
                    arch,
                    config: Box::new(config),
                }
            }
            EventTag::DeviceClose => EventKind::DeviceClose { device },
            EventTag::BufferAlloc => {
                let buffer = c.u64()?;
                let size = c.u64()?;
                let address = c.u64()?;
                let page_size = c.u64()?;
                let num_cores = c.u32()?;
                let site = c.u32()?;
                let bt = c.u8()?;
                let layout = c.u8()?;
                let pad = c.u16()?;
                if pad != 0 {
                    return Err("buffer_alloc padding must be 0".into());
                }
                let mut alloc = EventKind::BufferAlloc {
                    device,
                    buffer: BufferId(self.local_id(buffer, "buffer")?),
                    buffer_type: BufferType::from_u8(bt)
                        .ok_or_else(|| format!("buffer type {bt} out of range 0-4"))?,
                    address: (fl & flags::ALLOC_HAS_ADDRESS != 0).then_some(address),
                    size,
                    page_size: (fl & flags::ALLOC_HAS_PAGE_SIZE != 0).then_some(page_size),
                    layout: Layout::from_u8(layout)
                        .ok_or_else(|| format!("layout {layout} out of range 0-3"))?,
                    num_cores: (fl & flags::ALLOC_HAS_NUM_CORES != 0).then_some(num_cores),
                    per_bank_size: None,
                    label: StringId::EMPTY,
                    site: self.site_ref(site)?,
                };
                if alloc2 {
                    self.buffer_alloc2_tail(c, fl, &mut alloc)?;
                }
                alloc
            }
            EventTag::BufferFree => {
                let buffer = c.u64()?;
                let site = c.u32()?;
                EventKind::BufferFree {
                    device,
                    buffer: BufferId(self.local_id(buffer, "buffer")?),
                    site: self.site_ref(site)?,
                }
            }
            EventTag::CbAlloc => {
                let address = c.u64()?;
                let size = c.u64()?;
                let cores = c.u32()?;
                let site = c.u32()?;
                EventKind::CbAlloc {
                    device,
                    address,
                    size,
                    cores: (fl & flags::CB_HAS_CORES != 0).then_some(cores),
                    globally_allocated: fl & flags::CB_GLOBALLY_ALLOCATED != 0,
                    site: self.site_ref(site)?,
                }
            }
            EventTag::CbFreeAll => EventKind::CbFreeAll { device },
            EventTag::ProgramLoad => {
                let program = c.u64()?;
                let binary_size = c.u64()?;
                let site = c.u32()?;
                EventKind::ProgramLoad {
                    device,
                    program: ProgramId(self.local_id(program, "program")?),
                    binary_size,
                    site: self.site_ref(site)?,
                }
            }
            EventTag::ProgramUnload => {
                let program = c.u64()?;
                EventKind::ProgramUnload {
                    device,
                    program: ProgramId(self.local_id(program, "program")?),
                }
            }
            EventTag::TraceCapture => {
                let trace_id = c.u32()?;
                let size = c.u64()?;
                let site = c.u32()?;
                EventKind::TraceCapture {
                    device,
                    trace_id: TraceId(trace_id),
                    size,
                    site: self.site_ref(site)?,
                }
            }
            EventTag::TraceRelease => EventKind::TraceRelease {
                device,
                trace_id: TraceId(c.u32()?),
            },
            EventTag::OpBegin => EventKind::OpBegin {
                name: self.string_ref(c.u32()?, "op name")?,
            },
            EventTag::OpEnd => EventKind::OpEnd,
            EventTag::Marker => EventKind::Marker {
                label: self.string_ref(c.u32()?, "marker label")?,
            },
            EventTag::AllocRefused => self.alloc_refused(c, fl, device)?,
            EventTag::ProcessStart | EventTag::ProcessExit => unreachable!("rejected by body_len"),
        };
        Ok(Event {
            ts,
            pid: self.pid,
            kind,
        })
    }
}

// ---------------------------------------------------------------------------
// Encoder (used by tests, the load generator and any Rust client).

/// Builds frames into a byte vector.
#[derive(Default)]
pub struct Encoder {
    pub buf: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Encoder {
        Encoder { buf: Vec::new() }
    }

    fn begin(&mut self, frame_type: u16, count: u32) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_le_bytes());
        self.buf.extend_from_slice(&frame_type.to_le_bytes());
        self.buf.extend_from_slice(&0u16.to_le_bytes());
        self.buf.extend_from_slice(&count.to_le_bytes());
        at
    }

    fn end(&mut self, at: usize) {
        let len = (self.buf.len() - at - HEADER_LEN) as u32;
        self.buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }

    fn put_str(&mut self, s: &str) {
        self.buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(s.as_bytes());
    }

    pub fn hello(
        &mut self,
        pid: u32,
        ppid: u32,
        ts: u64,
        client: &str,
        version: &str,
        argv: &[&str],
    ) {
        let at = self.begin(frame_type::HELLO, 0);
        self.buf.extend_from_slice(&MAGIC.to_le_bytes());
        self.buf.extend_from_slice(&VERSION_MAJOR.to_le_bytes());
        self.buf.extend_from_slice(&VERSION_MINOR.to_le_bytes());
        self.buf.extend_from_slice(&pid.to_le_bytes());
        self.buf.extend_from_slice(&ppid.to_le_bytes());
        self.buf.extend_from_slice(&ts.to_le_bytes());
        self.put_str(client);
        self.put_str(version);
        self.buf
            .extend_from_slice(&(argv.len() as u32).to_le_bytes());
        for a in argv {
            self.put_str(a);
        }
        self.end(at);
    }

    pub fn strings(&mut self, strings: &[&str]) {
        let at = self.begin(frame_type::STRINGS, strings.len() as u32);
        for s in strings {
            self.put_str(s);
        }
        self.end(at);
    }

    pub fn frames(&mut self, frames: &[Frame]) {
        let at = self.begin(frame_type::FRAMES, frames.len() as u32);
        for f in frames {
            for v in [f.function.0, f.file.0, f.line] {
                self.buf.extend_from_slice(&v.to_le_bytes());
            }
        }
        self.end(at);
    }

    pub fn stacks(&mut self, nodes: &[StackNode]) {
        let at = self.begin(frame_type::STACKS, nodes.len() as u32);
        for n in nodes {
            self.buf.extend_from_slice(&n.parent.0.to_le_bytes());
            self.buf.extend_from_slice(&n.frame.0.to_le_bytes());
        }
        self.end(at);
    }

    /// One EVENTS frame. Buffer and program ids are the client's local ids;
    /// process start/exit events are skipped (they are not sendable).
    pub fn events<'a>(&mut self, events: impl IntoIterator<Item = &'a Event>) {
        let at = self.begin(frame_type::EVENTS, 0);
        let mut n = 0u32;
        for e in events {
            if encode_event(e, &mut self.buf) {
                n += 1;
            }
        }
        self.buf[at + 8..at + 12].copy_from_slice(&n.to_le_bytes());
        self.end(at);
    }

    pub fn goodbye(&mut self, status: Option<i32>) {
        let at = self.begin(frame_type::GOODBYE, 0);
        let fl = if status.is_some() {
            flags::GOODBYE_HAS_STATUS
        } else {
            0
        };
        self.buf.extend_from_slice(&fl.to_le_bytes());
        self.buf
            .extend_from_slice(&status.unwrap_or(0).to_le_bytes());
        self.end(at);
    }
}

/// Appends one event record; returns false for kinds a client cannot send.
pub fn encode_event(e: &Event, out: &mut Vec<u8>) -> bool {
    let tag = e.kind.tag();
    if body_len(tag).is_none() {
        return false;
    }
    let mut fl = 0u8;
    let device = e.kind.device().map_or(0, |d| d.0);
    let hdr = out.len();
    out.extend_from_slice(&[tag as u8, 0, 0, 0]);
    out.extend_from_slice(&device.to_le_bytes());
    out.extend_from_slice(&e.ts.to_le_bytes());
    let u32le = |out: &mut Vec<u8>, v: u32| out.extend_from_slice(&v.to_le_bytes());
    let u64le = |out: &mut Vec<u8>, v: u64| out.extend_from_slice(&v.to_le_bytes());
    match &e.kind {
        EventKind::DeviceOpen { arch, config, .. } => {
            let (mask, vals) = config_to_wire(config);
            out.extend_from_slice(&[*arch as u8, 0, 0, 0]);
            u32le(out, mask);
            for v in vals {
                u64le(out, v);
            }
        }
        EventKind::BufferAlloc {
            buffer,
            buffer_type,
            address,
            size,
            page_size,
            layout,
            num_cores,
            per_bank_size,
            label,
            site,
            ..
        } => {
            if address.is_some() {
                fl |= flags::ALLOC_HAS_ADDRESS;
            }
            if page_size.is_some() {
                fl |= flags::ALLOC_HAS_PAGE_SIZE;
            }
            if num_cores.is_some() {
                fl |= flags::ALLOC_HAS_NUM_CORES;
            }
            u64le(out, buffer.0);
            u64le(out, *size);
            u64le(out, address.unwrap_or(0));
            u64le(out, page_size.unwrap_or(0));
            u32le(out, num_cores.unwrap_or(0));
            u32le(out, site.0);
            out.extend_from_slice(&[*buffer_type as u8, *layout as u8, 0, 0]);
            // Only allocations with a 1.1 field need the 1.1 kind.
            if per_bank_size.is_some() || *label != StringId::EMPTY {
                out[hdr] = ext::BUFFER_ALLOC2;
                fl |= ext::encode_buffer_alloc2_tail(*per_bank_size, *label, out);
            }
        }
        EventKind::AllocRefused { .. } => fl = ext::encode_alloc_refused(&e.kind, out),
        EventKind::BufferFree { buffer, site, .. } => {
            u64le(out, buffer.0);
            u32le(out, site.0);
        }
        EventKind::CbAlloc {
            address,
            size,
            cores,
            globally_allocated,
            site,
            ..
        } => {
            if cores.is_some() {
                fl |= flags::CB_HAS_CORES;
            }
            if *globally_allocated {
                fl |= flags::CB_GLOBALLY_ALLOCATED;
            }
            u64le(out, *address);
            u64le(out, *size);
            u32le(out, cores.unwrap_or(0));
            u32le(out, site.0);
        }
        EventKind::ProgramLoad {
            program,
            binary_size,
            site,
            ..
        } => {
            u64le(out, program.0);
            u64le(out, *binary_size);
            u32le(out, site.0);
        }
        EventKind::ProgramUnload { program, .. } => u64le(out, program.0),
        EventKind::TraceCapture {
            trace_id,
            size,
            site,
            ..
        } => {
            u32le(out, trace_id.0);
            u64le(out, *size);
            u32le(out, site.0);
        }
        EventKind::TraceRelease { trace_id, .. } => u32le(out, trace_id.0),
        EventKind::OpBegin { name } => u32le(out, name.0),
        EventKind::Marker { label } => u32le(out, label.0),
        EventKind::DeviceClose { .. } | EventKind::CbFreeAll { .. } | EventKind::OpEnd => {}
        EventKind::ProcessStart { .. } | EventKind::ProcessExit { .. } => unreachable!(),
    }
    out[hdr + 1] = fl;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
