//! The rarer kinds: payload in MISC, device in DEVICE, unknown kinds in EXT.

use super::columns::BlockColumns;
use super::packed::column_values;
use super::{end, overrun, site_of, string_of, DecodeError, RefLimits};
use crate::codec::{col, FIRST_UNKNOWN_TAG};
use crate::varint::{unzigzag, Cursor};
use ttalloc_model::{
    Arch, DeviceConfig, DeviceId, Event, EventKind, EventTag, Pid, ProgramId, TraceId,
};

/// The rarer kinds: payload in MISC, device in DEVICE, unknown kinds in EXT.
pub(super) fn decode_others(
    cols: &[&[u8]; col::COUNT],
    limits: RefLimits,
    out: &mut BlockColumns,
) -> Result<(), DecodeError> {
    let mut misc_c = Cursor::new(cols[col::MISC as usize]);
    let mut ext_c = Cursor::new(cols[col::EXT as usize]);
    macro_rules! misc {
        () => {
            misc_c.varint().map_err(overrun("misc"))?
        };
    }
    out.others.reserve(out.other_pos.len());
    out.cbs.reserve(out.other_pos.len());
    // 2.4: circular buffers in columns of their own.
    let cb_coded = cb_columns(cols, out)?;
    let mut kc = 0usize;
    let mut configs = false;
    for k in 0..out.other_pos.len() {
        let pos = out.other_pos[k] as usize;
        let tag = out.tags[pos];
        let dev = DeviceId(out.other_dev[k]);
        if tag >= FIRST_UNKNOWN_TAG {
            let n = ext_c.varint().map_err(overrun("ext"))?;
            let n = usize::try_from(n).map_err(|_| "ext length overflows".to_string())?;
            ext_c.take(n).map_err(overrun("ext"))?;
            match out.skipped.iter_mut().find(|(k, _)| *k == tag) {
                Some((_, c)) => *c += 1,
                None => out.skipped.push((tag, 1)),
            }
            continue;
        }
        // Circular buffers (the common other kinds) first, into `out.cbs`.
        if tag == EventTag::CbFreeAll as u8 {
            if cb_coded {
                out.vals.cb.predictor.free_all(dev.0);
            }
            out.cbs.push_free_all(pos as u32, dev);
            continue;
        }
        if tag == EventTag::CbAlloc as u8 && cb_coded {
            // As many CbAllocs as values in each column (`cb_columns`).
            let cb = &mut out.vals.cb;
            let predicted = cb.predictor.predict(dev.0);
            let address = predicted.wrapping_add(unzigzag(cb.addr[kc]) as u64);
            let size = cb.size[kc];
            cb.predictor.alloc(dev.0, address, size);
            let (cores, globally_allocated) = crate::cb_coding::from_flags(cb.flags[kc])?;
            let site = site_of(cb.predictor.site_of_code(dev.0, cb.site[kc]), limits)?;
            kc += 1;
            out.cbs.push_alloc(
                pos as u32,
                dev,
                address,
                size,
                cores,
                globally_allocated,
                site,
            );
            continue;
        }
        if tag == EventTag::CbAlloc as u8 {
            let device = dev;
            let address = misc_c.varint_long().map_err(overrun("misc"))?;
            let size = misc_c.varint_long().map_err(overrun("misc"))?;
            let cores = match misc!() {
                0 => None,
                c => Some(u32::try_from(c - 1).map_err(|_| "cb cores out of range".to_string())?),
            };
            let g = misc_c.byte().map_err(overrun("misc"))?;
            if g > 1 {
                return Err(format!("globally_allocated flag is {g}, not 0 or 1"));
            }
            let site = site_of(misc!(), limits)?;
            out.cbs
                .push_alloc(pos as u32, device, address, size, cores, g == 1, site);
            continue;
        }
        let kind = match EventTag::from_u8(tag).expect("codes below FIRST_UNKNOWN_TAG are defined")
        {
            EventTag::BufferAlloc
            | EventTag::BufferFree
            | EventTag::OpBegin
            | EventTag::OpEnd
            | EventTag::Marker
            | EventTag::CbAlloc
            | EventTag::CbFreeAll => continue, // handled above
            EventTag::ProcessStart => EventKind::ProcessStart {
                ppid: Pid(misc_c.varint_u32().map_err(overrun("misc"))?),
                argv: string_of(misc!(), limits)?,
            },
            EventTag::ProcessExit => {
                let v = misc!();
                let status = if v == 0 {
                    None
                } else {
                    let s = unzigzag(v - 1);
                    Some(i32::try_from(s).map_err(|_| format!("exit status {s} out of range"))?)
                };
                EventKind::ProcessExit { status }
            }
            EventTag::DeviceOpen => {
                configs = true;
                let device = dev;
                let a = misc_c.byte().map_err(overrun("misc"))?;
                let arch =
                    Arch::from_u8(a).ok_or_else(|| format!("arch code {a} is out of range"))?;
                let n = misc!();
                let mut config = DeviceConfig::default();
                for _ in 0..n {
                    let klen =
                        usize::try_from(misc!()).map_err(|_| "config key too long".to_string())?;
                    let key = misc_c.take(klen).map_err(overrun("misc"))?;
                    let value = misc!();
                    let key = std::str::from_utf8(key)
                        .map_err(|_| "config key is not UTF-8".to_string())?;
                    // A key a newer writer added is dropped (DeviceConfig has no slot for it).
                    if DeviceConfig::KEYS.contains(&key) {
                        config
                            .set(key, &value.to_string())
                            .map_err(|e| format!("device config: {e}"))?;
                    }
                }
                EventKind::DeviceOpen {
                    device,
                    arch,
                    config: Box::new(config),
                }
            }
            EventTag::DeviceClose => EventKind::DeviceClose { device: dev },
            EventTag::ProgramLoad => {
                let device = dev;
                let program = ProgramId(misc!());
                let binary_size = misc!();
                let site = site_of(misc!(), limits)?;
                EventKind::ProgramLoad {
                    device,
                    program,
                    binary_size,
                    site,
                }
            }
            EventTag::ProgramUnload => EventKind::ProgramUnload {
                device: dev,
                program: ProgramId(misc!()),
            },
            EventTag::TraceCapture => {
                let device = dev;
                let trace_id = TraceId(misc_c.varint_u32().map_err(overrun("misc"))?);
                let size = misc!();
                let site = site_of(misc!(), limits)?;
                EventKind::TraceCapture {
                    device,
                    trace_id,
                    size,
                    site,
                }
            }
            EventTag::TraceRelease => EventKind::TraceRelease {
                device: dev,
                trace_id: TraceId(misc_c.varint_u32().map_err(overrun("misc"))?),
            },
            EventTag::AllocRefused => crate::ext::decode_refused(&mut ext_c, limits)?,
        };
        out.others.push((
            pos as u32,
            Event {
                ts: out.ts[pos],
                pid: Pid(out.pid[pos]),
                kind,
            },
        ));
    }
    end(&misc_c, "misc")?;
    end(&ext_c, "ext")?;
    out.others_own_nothing = !configs;
    Ok(())
}

/// Whether the block stores its circular buffers in CB_ADDR, CB_SIZE,
/// CB_FLAGS and CB_SITE (2.4) rather than MISC; if so their values are
/// decoded into `out.vals.cb`, one per CbAlloc, and its predictor reset.
fn cb_columns(cols: &[&[u8]; col::COUNT], out: &mut BlockColumns) -> Result<bool, DecodeError> {
    let ids = [col::CB_ADDR, col::CB_SIZE, col::CB_FLAGS, col::CB_SITE];
    if ids.iter().all(|&c| cols[c as usize].is_empty()) {
        return Ok(false);
    }
    let n = out
        .other_pos
        .iter()
        .filter(|&&p| out.tags[p as usize] == EventTag::CbAlloc as u8)
        .count();
    let cb = &mut out.vals.cb;
    column_values(cols[col::CB_ADDR as usize], n, "cb address", &mut cb.addr)?;
    column_values(cols[col::CB_SIZE as usize], n, "cb size", &mut cb.size)?;
    column_values(cols[col::CB_FLAGS as usize], n, "cb flags", &mut cb.flags)?;
    column_values(cols[col::CB_SITE as usize], n, "cb site", &mut cb.site)?;
    cb.predictor.clear();
    Ok(true)
}
