//! One event record of an EVENTS frame: the common header, then the body of
//! its kind, every field validated.

use super::device_config::config_from_wire;
use super::{body_len, ext, flags, Cursor, Decoder, DEVICE_CONFIG_FIELDS};
use ttalloc_model::{
    Arch, BufferId, BufferType, DeviceId, Event, EventKind, EventTag, Layout, ProgramId, StringId,
    TraceId,
};

impl Decoder {
    /// One event record (header and body) at the cursor.
    pub(super) fn event(&self, c: &mut Cursor) -> Result<Event, String> {
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
