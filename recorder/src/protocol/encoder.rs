//! Frame and event encoding (used by tests, the load generator and any Rust
//! client).

use super::device_config::config_to_wire;
use super::{body_len, ext, flags, frame_type, HEADER_LEN, MAGIC, VERSION_MAJOR, VERSION_MINOR};
use ttalloc_model::{Event, EventKind, Frame, StackNode, StringId};

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
