//! The per-connection frame decoder: connection state, HELLO, intern
//! definitions, EVENTS framing and GOODBYE, with every reference checked.

use super::{
    flags, frame_type, Cursor, FrameHeader, Hello, Item, ProtocolError, HEADER_LEN, LOCAL_ID_LIMIT,
    MAGIC, MAX_PAYLOAD, VERSION_MAJOR, VERSION_MINOR,
};
use ttalloc_model::{Frame, FrameId, Pid, SiteId, StackNode, StringId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum State {
    ExpectHello,
    Open,
    Closed,
}

/// Per-connection decoder: validates frames and keeps the counts of the
/// connection's intern definitions so every reference can be checked.
pub struct Decoder {
    pub(super) state: State,
    pub(super) offset: u64,
    pub(super) strings: u32,
    pub(super) frames: u32,
    pub(super) stacks: u32,
    pub(super) pid: Pid,
    /// Added to every buffer / program id (the connection's prefix in the trace).
    pub(super) id_base: u64,
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

    pub(super) fn no_trailing(&self, c: &Cursor) -> Result<(), String> {
        if c.rest() != 0 {
            return Err(format!(
                "{} trailing bytes after the frame's {} records",
                c.rest(),
                c.pos
            ));
        }
        Ok(())
    }

    pub(super) fn exact_len(&self, h: &FrameHeader, rec: u64) -> Result<(), String> {
        if h.count as u64 * rec != h.len as u64 {
            return Err(format!(
                "{} records of {rec} bytes do not make {} bytes",
                h.count, h.len
            ));
        }
        Ok(())
    }

    pub(super) fn string_ref(&self, id: u32, what: &str) -> Result<StringId, String> {
        if id >= self.strings {
            return Err(format!(
                "{what} string id {id} is not defined (only {} strings)",
                self.strings
            ));
        }
        Ok(StringId(id))
    }

    pub(super) fn site_ref(&self, id: u32) -> Result<SiteId, String> {
        if id >= self.stacks {
            return Err(format!(
                "site id {id} is not defined (only {} stacks)",
                self.stacks
            ));
        }
        Ok(SiteId(id))
    }

    pub(super) fn local_id(&self, id: u64, what: &str) -> Result<u64, String> {
        if id >= LOCAL_ID_LIMIT {
            return Err(format!("{what} id {id} is not below 2^40"));
        }
        Ok(self.id_base | id)
    }
}
