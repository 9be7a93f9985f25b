//! The event kinds protocol 1.1 added (PROTOCOL.md): ALLOC_REFUSED (15),
//! an allocation tt-metal refused with its message, and BUFFER_ALLOC2 (16),
//! a BUFFER_ALLOC with the per-bank size tt-metal reserved and a label. A
//! 1.0 client never sends them; a 1.1 client sends BUFFER_ALLOC2 only for
//! allocations that carry one of the new fields.

use super::{flags, Cursor, Decoder};
use ttalloc_model::{BufferType, DeviceId, EventKind, Layout};

/// Wire kind of ALLOC_REFUSED (the same number as the event tag).
pub const ALLOC_REFUSED: u8 = 15;
/// Wire kind of BUFFER_ALLOC2 (no event tag of its own: it decodes to a BufferAlloc).
pub const BUFFER_ALLOC2: u8 = 16;

/// `u64 size, u64 page_size, u64 per_bank_size, u32 num_cores, u32 site,
/// u32 message_string, u8 buffer_type, u8 layout, u16 pad`.
pub const ALLOC_REFUSED_LEN: usize = 40;
/// BUFFER_ALLOC's 44 bytes, then `u64 per_bank_size, u32 label_string, u32 pad`.
pub const BUFFER_ALLOC2_LEN: usize = 44 + 16;

pub const REFUSED_HAS_PAGE_SIZE: u8 = 1;
pub const REFUSED_HAS_NUM_CORES: u8 = 2;
pub const REFUSED_HAS_PER_BANK_SIZE: u8 = 4;
pub const ALLOC2_HAS_PER_BANK_SIZE: u8 = 8;
pub const ALLOC2_HAS_LABEL: u8 = 16;

/// Flags each new kind may set.
pub const REFUSED_FLAGS: u8 =
    REFUSED_HAS_PAGE_SIZE | REFUSED_HAS_NUM_CORES | REFUSED_HAS_PER_BANK_SIZE;
pub const ALLOC2_FLAGS: u8 = flags::ALLOC_HAS_ADDRESS
    | flags::ALLOC_HAS_PAGE_SIZE
    | flags::ALLOC_HAS_NUM_CORES
    | ALLOC2_HAS_PER_BANK_SIZE
    | ALLOC2_HAS_LABEL;

impl Decoder {
    /// An ALLOC_REFUSED body (its length was checked by the caller).
    pub(super) fn alloc_refused(
        &self,
        c: &mut Cursor,
        fl: u8,
        device: DeviceId,
    ) -> Result<EventKind, String> {
        let size = c.u64()?;
        let page_size = c.u64()?;
        let per_bank_size = c.u64()?;
        let num_cores = c.u32()?;
        let site = c.u32()?;
        let message = c.u32()?;
        let bt = c.u8()?;
        let layout = c.u8()?;
        if c.u16()? != 0 {
            return Err("alloc_refused padding must be 0".into());
        }
        Ok(EventKind::AllocRefused {
            device,
            buffer_type: BufferType::from_u8(bt)
                .ok_or_else(|| format!("alloc_refused buffer type {bt} out of range 0-4"))?,
            size,
            page_size: (fl & REFUSED_HAS_PAGE_SIZE != 0).then_some(page_size),
            layout: Layout::from_u8(layout)
                .ok_or_else(|| format!("alloc_refused layout {layout} out of range 0-3"))?,
            num_cores: (fl & REFUSED_HAS_NUM_CORES != 0).then_some(num_cores),
            per_bank_size: (fl & REFUSED_HAS_PER_BANK_SIZE != 0).then_some(per_bank_size),
            message: self.string_ref(message, "alloc_refused message")?,
            site: self.site_ref(site)?,
        })
    }

    /// The 16 bytes BUFFER_ALLOC2 appends to a BUFFER_ALLOC body, filled into `kind`.
    pub(super) fn buffer_alloc2_tail(
        &self,
        c: &mut Cursor,
        fl: u8,
        kind: &mut EventKind,
    ) -> Result<(), String> {
        let per_bank = c.u64()?;
        let label_string = c.u32()?;
        if c.u32()? != 0 {
            return Err("buffer_alloc2 padding must be 0".into());
        }
        if let EventKind::BufferAlloc {
            per_bank_size,
            label,
            ..
        } = kind
        {
            *per_bank_size = (fl & ALLOC2_HAS_PER_BANK_SIZE != 0).then_some(per_bank);
            if fl & ALLOC2_HAS_LABEL != 0 {
                *label = self.string_ref(label_string, "buffer_alloc2 label")?;
            }
        }
        Ok(())
    }
}

/// Appends an ALLOC_REFUSED body; returns its flags.
pub(super) fn encode_alloc_refused(kind: &EventKind, out: &mut Vec<u8>) -> u8 {
    let EventKind::AllocRefused {
        buffer_type,
        size,
        page_size,
        layout,
        num_cores,
        per_bank_size,
        message,
        site,
        ..
    } = kind
    else {
        return 0;
    };
    let mut fl = 0;
    for (present, bit) in [
        (page_size.is_some(), REFUSED_HAS_PAGE_SIZE),
        (num_cores.is_some(), REFUSED_HAS_NUM_CORES),
        (per_bank_size.is_some(), REFUSED_HAS_PER_BANK_SIZE),
    ] {
        if present {
            fl |= bit;
        }
    }
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&page_size.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&per_bank_size.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&num_cores.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&site.0.to_le_bytes());
    out.extend_from_slice(&message.0.to_le_bytes());
    out.extend_from_slice(&[*buffer_type as u8, *layout as u8, 0, 0]);
    fl
}

/// Appends BUFFER_ALLOC2's tail; returns its flag bits.
pub(super) fn encode_buffer_alloc2_tail(
    per_bank_size: Option<u64>,
    label: ttalloc_model::StringId,
    out: &mut Vec<u8>,
) -> u8 {
    out.extend_from_slice(&per_bank_size.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&label.0.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    per_bank_size.map_or(0, |_| ALLOC2_HAS_PER_BANK_SIZE)
        | if label != ttalloc_model::StringId::EMPTY {
            ALLOC2_HAS_LABEL
        } else {
            0
        }
}
