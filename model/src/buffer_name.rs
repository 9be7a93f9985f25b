//! How a buffer is named for people, on every surface (replay, bisect, `cat`,
//! reports, exports, repro comments, the recorder's warnings):
//! `process 4242 buffer 0x999000 (input_tensor)`.
//!
//! The id shown is the one the client gave, in the form it gave it:
//! - a trace's `BufferId` is the recorder's source number (bits 40 and up)
//!   over the id the client sent (bits 0-39); the native clients send small
//!   numbers, shown in decimal (`process 4242 buffer 7`);
//! - the allocation server's clients (the compat listener) name a buffer by
//!   its device address. The listener still numbers buffers itself (an
//!   address is reused after a free), with [`COMPAT_LOCAL`] set, and keeps
//!   the address in the alloc; a free of an address it never saw allocated
//!   carries the address in the id itself ([`COMPAT_ADDRESS_LOCAL`]). Both
//!   are shown as the address in hex (`process 4242 buffer 0x999000`).
//!
//! JSON outputs keep the raw numeric fields and add this text as `name`.

use crate::hash::FastMap;
use crate::{BufferId, Event, EventKind, InternTables, Pid};
use std::fmt;

/// Bits of a trace buffer id that hold the id the client sent.
pub const LOCAL_BITS: u32 = 40;
pub const LOCAL_MASK: u64 = (1 << LOCAL_BITS) - 1;
/// Set in the local ids the compat listener gives its buffers. A native
/// client sending ids this large (at or above 2^39) has them shown the same
/// way: by their address when the alloc recorded one.
pub const COMPAT_LOCAL: u64 = 1 << 39;
/// With [`COMPAT_LOCAL`]: the rest of the local id is the address the client
/// named (a free of a buffer the listener never saw allocated).
pub const COMPAT_ADDRESS_LOCAL: u64 = 1 << 38;
/// Addresses that fit a [`COMPAT_ADDRESS_LOCAL`] id.
pub const COMPAT_ADDRESS_MASK: u64 = COMPAT_ADDRESS_LOCAL - 1;

/// The id a client gave a buffer, in the form it gave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientId {
    /// A native client's number.
    Number(u64),
    /// An allocation-server client's address.
    Address(u64),
}

impl ClientId {
    /// The client's id for trace buffer `id`; `address` is the address the
    /// alloc recorded (compat ids are shown by it).
    pub fn of(id: BufferId, address: Option<u64>) -> ClientId {
        let local = id.get() & LOCAL_MASK;
        if local & COMPAT_LOCAL == 0 {
            return ClientId::Number(local);
        }
        if local & COMPAT_ADDRESS_LOCAL != 0 {
            return ClientId::Address(local & COMPAT_ADDRESS_MASK);
        }
        match address {
            Some(a) => ClientId::Address(a),
            None => ClientId::Number(local & !COMPAT_LOCAL),
        }
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientId::Number(n) => write!(f, "{n}"),
            ClientId::Address(a) => write!(f, "{a:#x}"),
        }
    }
}

/// A buffer as people are told about it. `Display` gives
/// `process P buffer K (LABEL)`; without a known process, `buffer K (LABEL)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferName<'a> {
    pub pid: Option<Pid>,
    pub id: ClientId,
    /// The buffer's label; empty when it has none.
    pub label: &'a str,
}

impl<'a> BufferName<'a> {
    /// The name of trace buffer `id` (its alloc recorded `address`, if any).
    pub fn new(pid: Option<Pid>, id: BufferId, address: Option<u64>, label: &'a str) -> Self {
        BufferName {
            pid,
            id: ClientId::of(id, address),
            label,
        }
    }

    /// An allocation-server client's buffer, by the address it sent.
    pub fn compat(pid: impl Into<Pid>, address: u64) -> BufferName<'static> {
        BufferName {
            pid: Some(pid.into()),
            id: ClientId::Address(address),
            label: "",
        }
    }
}

impl fmt::Display for BufferName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = self.pid {
            write!(f, "process {p} ")?;
        }
        write!(f, "buffer {}", self.id)?;
        if !self.label.is_empty() {
            write!(f, " ({})", self.label)?;
        }
        Ok(())
    }
}

/// Names the buffers of a stream of events read in order (`cat`): a free
/// carries no address, so the addresses of compat-numbered buffers are
/// remembered from their allocs until freed.
#[derive(Default)]
pub struct StreamNames {
    addresses: FastMap<u64, u64>,
}

impl StreamNames {
    /// The name of the buffer `e` allocates or frees, if it is one of those.
    pub fn name(&mut self, e: &Event, t: &InternTables) -> Option<String> {
        let compat_numbered =
            |b: BufferId| b.get() & (COMPAT_LOCAL | COMPAT_ADDRESS_LOCAL) == COMPAT_LOCAL;
        let (buffer, address, label) = match &e.kind {
            EventKind::BufferAlloc {
                buffer,
                address,
                label,
                ..
            } => {
                if let (true, Some(a)) = (compat_numbered(*buffer), address) {
                    self.addresses.insert(buffer.get(), *a);
                }
                (*buffer, *address, t.string(*label))
            }
            EventKind::BufferFree { buffer, .. } => {
                let address = if compat_numbered(*buffer) {
                    self.addresses.remove(&buffer.get())
                } else {
                    None
                };
                (*buffer, address, "")
            }
            _ => return None,
        };
        Some(BufferName::new(Some(e.pid), buffer, address, label).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_ids_are_the_clients_number_without_the_source_prefix() {
        // Source 1's buffer 9: the trace id is 1 << 40 | 9 = 1099511627785.
        let name = BufferName::new(Some(Pid(4242)), BufferId((1 << 40) | 9), Some(0x2000), "");
        assert_eq!(name.to_string(), "process 4242 buffer 9");
    }

    #[test]
    fn compat_ids_are_the_address_in_hex_and_labels_follow() {
        let id = BufferId((3 << 40) | COMPAT_LOCAL | 5);
        let name = BufferName::new(Some(Pid(4242)), id, Some(0x999000), "input_tensor");
        assert_eq!(
            name.to_string(),
            "process 4242 buffer 0x999000 (input_tensor)"
        );
        // The recorder's own warning names it identically.
        assert_eq!(
            BufferName::compat(4242u32, 0x999000).to_string(),
            "process 4242 buffer 0x999000"
        );
    }

    #[test]
    fn a_stream_names_a_compat_free_by_its_allocs_address() {
        let t = InternTables::default();
        let id = BufferId((1 << 40) | COMPAT_LOCAL | 1);
        let ev = |kind| Event {
            ts: 0,
            pid: Pid(7),
            kind,
        };
        let alloc = ev(EventKind::BufferAlloc {
            device: crate::DeviceId(0),
            buffer: id,
            buffer_type: crate::BufferType::Dram,
            address: Some(0x4000),
            size: 64,
            page_size: None,
            layout: crate::Layout::Interleaved,
            num_cores: None,
            per_bank_size: None,
            label: crate::StringId::EMPTY,
            site: crate::SiteId::UNKNOWN,
        });
        let free = ev(EventKind::BufferFree {
            device: crate::DeviceId(0),
            buffer: id,
            site: crate::SiteId::UNKNOWN,
        });
        let mut names = StreamNames::default();
        let want = Some("process 7 buffer 0x4000".to_string());
        assert_eq!(names.name(&alloc, &t), want);
        assert_eq!(names.name(&free, &t), want);
        // Forgotten once freed: a stray second free shows the listener's number.
        assert_eq!(names.name(&free, &t).as_deref(), Some("process 7 buffer 1"));
    }

    #[test]
    fn a_compat_free_of_an_unknown_address_carries_it_in_the_id() {
        let id = BufferId((2 << 40) | COMPAT_LOCAL | COMPAT_ADDRESS_LOCAL | 0x1000);
        assert_eq!(ClientId::of(id, None), ClientId::Address(0x1000));
        assert_eq!(
            BufferName::new(None, id, None, "").to_string(),
            "buffer 0x1000"
        );
    }
}
