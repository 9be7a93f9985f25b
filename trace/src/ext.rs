//! What format 2.1 added to event blocks (FORMAT.md §5.1, §5.5): the
//! ALLOC_EXT column (a BufferAlloc's per-bank size and label) and the
//! AllocRefused kind, whose whole payload sits in EXT so a 2.0 reader skips
//! it. Both are coded here, apart from the hot 2.0 paths.

use crate::decode::{AllocExt, DecodeError, RefLimits};
use crate::varint::{self, Cursor};
use ttalloc_model::{BufferType, DeviceId, EventKind, EventTag, Layout, SiteId, StringId};

/// The 2.1 kind stored whole in EXT.
pub(crate) const REFUSED: EventTag = EventTag::AllocRefused;

/// ALLOC_EXT entry bits.
const EXT_PER_BANK: u64 = 1;
const EXT_LABEL: u64 = 2;

/// AllocRefused payload flags.
const REFUSED_PAGE: u64 = 1;
const REFUSED_CORES: u64 = 2;
const REFUSED_PER_BANK: u64 = 4;

/// Writes the ALLOC_EXT column: nothing while no alloc of the block has a
/// 2.1 field, then one entry per alloc (the allocs before the first such
/// one get a 0 entry when it arrives).
#[derive(Default)]
pub(crate) struct AllocExtEncoder {
    /// Allocs of the block so far.
    allocs: u32,
    /// Whether the column has started (every alloc since has an entry).
    started: bool,
}

impl AllocExtEncoder {
    pub(crate) fn push(&mut self, per_bank_size: Option<u64>, label: StringId, col: &mut Vec<u8>) {
        let has_ext = per_bank_size.is_some() || label != StringId::EMPTY;
        if has_ext && !self.started {
            self.started = true;
            col.resize(col.len() + self.allocs as usize, 0);
        }
        self.allocs += 1;
        if !self.started {
            return;
        }
        let bits = per_bank_size.map_or(0, |_| EXT_PER_BANK)
            | if label != StringId::EMPTY {
                EXT_LABEL
            } else {
                0
            };
        varint::put(col, bits);
        if let Some(p) = per_bank_size {
            varint::put(col, p);
        }
        if label != StringId::EMPTY {
            varint::put(col, label.0 as u64);
        }
    }

    pub(crate) fn clear(&mut self) {
        *self = AllocExtEncoder::default();
    }
}

/// Decodes the 2.1 fields of a block's `n` allocs from its ALLOC_EXT
/// column into `out`: nothing when the column is empty (no alloc has them),
/// else one entry per alloc.
pub(crate) fn decode_alloc_ext(
    bytes: &[u8],
    n: usize,
    out: &mut Vec<AllocExt>,
    limits: RefLimits,
) -> Result<(), DecodeError> {
    out.clear();
    if bytes.is_empty() {
        return Ok(());
    }
    let bad = |_| "column alloc ext ends early or holds a malformed varint".to_string();
    let mut c = Cursor::new(bytes);
    out.reserve(n);
    for _ in 0..n {
        let bits = c.varint().map_err(bad)?;
        if bits & !(EXT_PER_BANK | EXT_LABEL) != 0 {
            return Err(format!("alloc ext entry has undefined bits {bits:#x}"));
        }
        let mut ext = AllocExt::default();
        if bits & EXT_PER_BANK != 0 {
            ext.per_bank_size = Some(c.varint().map_err(bad)?);
        }
        if bits & EXT_LABEL != 0 {
            ext.label = string_id(c.varint().map_err(bad)?, limits)?;
        }
        out.push(ext);
    }
    if c.is_at_end() {
        Ok(())
    } else {
        Err("column alloc ext has bytes left after the last alloc".into())
    }
}

fn string_id(v: u64, limits: RefLimits) -> Result<StringId, DecodeError> {
    if v < limits.strings as u64 {
        Ok(StringId(v as u32))
    } else {
        Err(format!(
            "string id {v} is not defined (only {} known)",
            limits.strings
        ))
    }
}

/// Appends an AllocRefused's EXT entry: varint length, then the payload
/// (device, buffer type byte, layout byte, flags, size, page?, cores?,
/// per_bank?, site, message).
pub(crate) fn put_refused(kind: &EventKind, ext: &mut Vec<u8>) {
    let EventKind::AllocRefused {
        device,
        buffer_type,
        size,
        page_size,
        layout,
        num_cores,
        per_bank_size,
        message,
        site,
    } = kind
    else {
        unreachable!("put_refused takes AllocRefused events");
    };
    let mut p = Vec::with_capacity(24);
    varint::put(&mut p, device.0 as u64);
    p.push(*buffer_type as u8);
    p.push(*layout as u8);
    let flags = page_size.map_or(0, |_| REFUSED_PAGE)
        | num_cores.map_or(0, |_| REFUSED_CORES)
        | per_bank_size.map_or(0, |_| REFUSED_PER_BANK);
    varint::put(&mut p, flags);
    varint::put(&mut p, *size);
    for v in [*page_size, num_cores.map(u64::from), *per_bank_size]
        .into_iter()
        .flatten()
    {
        varint::put(&mut p, v);
    }
    varint::put(&mut p, site.0 as u64);
    varint::put(&mut p, message.0 as u64);
    varint::put(ext, p.len() as u64);
    ext.extend_from_slice(&p);
}

/// Reads an AllocRefused's EXT entry (see [`put_refused`]).
pub(crate) fn decode_refused(
    ext: &mut Cursor,
    limits: RefLimits,
) -> Result<EventKind, DecodeError> {
    let early = |_| "alloc_refused payload ends early or holds a malformed varint".to_string();
    let n = ext.varint().map_err(early)?;
    let n = usize::try_from(n).map_err(|_| "ext length overflows".to_string())?;
    let mut c = Cursor::new(ext.take(n).map_err(early)?);
    let device = DeviceId(c.varint_u32().map_err(early)?);
    let bt = c.byte().map_err(early)?;
    let buffer_type = BufferType::from_u8(bt)
        .ok_or_else(|| format!("alloc_refused buffer type code {bt} is out of range"))?;
    let l = c.byte().map_err(early)?;
    let layout = Layout::from_u8(l)
        .ok_or_else(|| format!("alloc_refused layout code {l} is out of range"))?;
    let flags = c.varint().map_err(early)?;
    if flags & !(REFUSED_PAGE | REFUSED_CORES | REFUSED_PER_BANK) != 0 {
        return Err(format!("alloc_refused has undefined flags {flags:#x}"));
    }
    let size = c.varint().map_err(early)?;
    let page_size = match flags & REFUSED_PAGE {
        0 => None,
        _ => Some(c.varint().map_err(early)?),
    };
    let num_cores = match flags & REFUSED_CORES {
        0 => None,
        _ => Some(c.varint_u32().map_err(early)?),
    };
    let per_bank_size = match flags & REFUSED_PER_BANK {
        0 => None,
        _ => Some(c.varint().map_err(early)?),
    };
    let site = c.varint().map_err(early)?;
    if site >= limits.sites as u64 {
        return Err(format!(
            "site id {site} is not defined (only {} known)",
            limits.sites
        ));
    }
    let message = string_id(c.varint().map_err(early)?, limits)?;
    if !c.is_at_end() {
        return Err("alloc_refused payload has bytes left after its last field".into());
    }
    Ok(EventKind::AllocRefused {
        device,
        buffer_type,
        size,
        page_size,
        layout,
        num_cores,
        per_bank_size,
        message,
        site: SiteId(site as u32),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{col, BlockEncoder};
    use ttalloc_model::{BufferId, Event, Pid};

    fn alloc(buffer: u64, per_bank_size: Option<u64>, label: u32) -> Event {
        Event {
            ts: buffer,
            pid: Pid(1),
            kind: EventKind::BufferAlloc {
                device: DeviceId(0),
                buffer: BufferId(buffer),
                buffer_type: BufferType::L1,
                address: None,
                size: 4096,
                page_size: None,
                layout: Layout::Interleaved,
                num_cores: None,
                per_bank_size,
                label: StringId(label),
                site: SiteId(0),
            },
        }
    }

    fn column(enc: &mut BlockEncoder, id: u16) -> Option<Vec<u8>> {
        enc.take_columns()
            .into_iter()
            .find(|c| c.id == id)
            .map(|c| c.bytes)
    }

    #[test]
    fn alloc_ext_is_absent_until_needed_then_one_entry_per_alloc() {
        // Blocks without 2.1 fields have no ALLOC_EXT column: byte-identical to 2.0.
        let mut enc = BlockEncoder::default();
        enc.push(&alloc(1, None, 0));
        enc.push(&alloc(2, None, 0));
        assert_eq!(column(&mut enc, col::ALLOC_EXT), None);

        // Two plain allocs, one with both fields, one plain: entries
        // 0, 0, (3, 8192 = 0x80 0x40, label 5), 0.
        for e in [
            alloc(1, None, 0),
            alloc(2, None, 0),
            alloc(3, Some(8192), 5),
            alloc(4, None, 0),
        ] {
            enc.push(&e);
        }
        assert_eq!(
            column(&mut enc, col::ALLOC_EXT),
            Some(vec![0, 0, 3, 0x80, 0x40, 5, 0])
        );
        // The column restarts with every block.
        enc.push(&alloc(5, None, 0));
        enc.push(&alloc(6, None, 2));
        assert_eq!(column(&mut enc, col::ALLOC_EXT), Some(vec![0, 2, 2]));
    }

    #[test]
    fn a_refusal_is_a_length_prefixed_ext_entry_a_2_0_reader_can_skip() {
        let kind = EventKind::AllocRefused {
            device: DeviceId(3),
            buffer_type: BufferType::L1Small,
            size: 1000,
            page_size: None,
            layout: Layout::HeightSharded,
            num_cores: Some(8),
            per_bank_size: None,
            message: StringId(4),
            site: SiteId(2),
        };
        let mut ext = Vec::new();
        put_refused(&kind, &mut ext);
        // device 3, type 3, layout 1, flags 2 (cores), size 1000 (0xe8 0x07),
        // cores 8, site 2, message 4: 9 bytes after the length.
        assert_eq!(ext, [9, 3, 3, 1, 2, 0xe8, 0x07, 8, 2, 4]);
        let limits = RefLimits {
            strings: 5,
            sites: 3,
        };
        assert_eq!(decode_refused(&mut Cursor::new(&ext), limits), Ok(kind));
        // Undefined ids and flags are errors, not panics.
        let small = RefLimits {
            strings: 4,
            sites: 3,
        };
        assert!(decode_refused(&mut Cursor::new(&ext), small)
            .unwrap_err()
            .contains("string id 4"));
        let mut bad = ext.clone();
        bad[4] = 8;
        assert!(decode_refused(&mut Cursor::new(&bad), limits)
            .unwrap_err()
            .contains("undefined flags"));
        for cut in 0..ext.len() {
            assert!(decode_refused(&mut Cursor::new(&ext[..cut]), limits).is_err());
        }
    }
}
