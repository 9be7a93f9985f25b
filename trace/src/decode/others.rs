//! The rarer kinds: payload in MISC, device in DEVICE, unknown kinds in EXT.

use super::cb_columns::CbRow;
use super::columns::BlockColumns;
use super::packed::column_values;
use super::scratch::DecodeScratch;
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
    s: &mut DecodeScratch,
    out: &mut BlockColumns,
) -> Result<(), DecodeError> {
    // 2.4: circular buffers in columns of their own, filled in bulk; the
    // walk then visits only the rare kinds (unless a CB value is out of
    // range: the walk over every event then names the first).
    if has_cb_columns(cols) {
        let in_place = in_place(cols, s.cb_allocs, limits);
        if in_place.is_some() {
            let (cb, n) = (&mut s.vals.cb, s.cb_allocs);
            column_values(cols[col::CB_ADDR as usize], n, "cb address", &mut cb.addr)?;
            column_values(cols[col::CB_SIZE as usize], n, "cb size", &mut cb.size)?;
        } else {
            decode_cb_columns(cols, s.cb_allocs, s)?;
        }
        if in_place.is_some() || cb_values_valid(limits, &s.vals.cb) {
            cbs_in_bulk(s, out, in_place);
            let rare = std::mem::take(&mut s.vals.rare);
            // (No circular buffer among them.)
            let r = walk(
                cols,
                limits,
                s,
                out,
                rare.iter().map(|&k| k as usize),
                false,
            );
            s.vals.rare = rare;
            return r;
        }
        out.cbs.clear();
    }
    let n = s.other_pos.len();
    walk(cols, limits, s, out, 0..n, has_cb_columns(cols))
}

/// Decodes the other kinds at `ks` (indices into `s.other_pos`), in
/// order: `cb_coded` says whether CbAllocs among them take their values
/// from the CB_ columns (decoded into `s.vals.cb`) rather than MISC.
fn walk(
    cols: &[&[u8]; col::COUNT],
    limits: RefLimits,
    s: &mut DecodeScratch,
    out: &mut BlockColumns,
    ks: impl Iterator<Item = usize>,
    cb_coded: bool,
) -> Result<(), DecodeError> {
    let mut misc_c = Cursor::new(cols[col::MISC as usize]);
    let mut ext_c = Cursor::new(cols[col::EXT as usize]);
    macro_rules! misc {
        () => {
            misc_c.varint().map_err(overrun("misc"))?
        };
    }
    if cb_coded {
        s.vals.cb.predictor.clear();
    }
    out.others.reserve(ks.size_hint().0);
    out.cbs.reserve(ks.size_hint().0);
    let mut kc = 0usize;
    let mut configs = false;
    for k in ks {
        let pos = s.other_pos[k] as usize;
        let tag = out.tags[pos];
        let dev = DeviceId(s.other_dev[k]);
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
                s.vals.cb.predictor.free_all(dev.0);
            }
            out.cbs.push_free_all(pos as u32, dev);
            continue;
        }
        if tag == EventTag::CbAlloc as u8 && cb_coded {
            // As many CbAllocs as values in each column (`cb_columns`).
            let cb = &mut s.vals.cb;
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
                ts: out.ts_at(pos),
                pid: out.pid_at(pos),
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
/// CB_FLAGS and CB_SITE (2.4) rather than MISC.
fn has_cb_columns(cols: &[&[u8]; col::COUNT]) -> bool {
    let ids = [col::CB_ADDR, col::CB_SIZE, col::CB_FLAGS, col::CB_SITE];
    ids.iter().any(|&c| !cols[c as usize].is_empty())
}

/// Decodes the CB_ columns into `s.vals.cb`, one value per CbAlloc
/// (`n` of them).
fn decode_cb_columns(
    cols: &[&[u8]; col::COUNT],
    n: usize,
    s: &mut DecodeScratch,
) -> Result<(), DecodeError> {
    let cb = &mut s.vals.cb;
    column_values(cols[col::CB_ADDR as usize], n, "cb address", &mut cb.addr)?;
    column_values(cols[col::CB_SIZE as usize], n, "cb size", &mut cb.size)?;
    column_values(cols[col::CB_FLAGS as usize], n, "cb flags", &mut cb.flags)?;
    column_values(cols[col::CB_SITE as usize], n, "cb site", &mut cb.site)?;
    Ok(())
}

/// Whether every CbAlloc's values are in range: cores + 1 at most 2^32,
/// sites (`code - 1`) defined, and site 0 too (a device's first CbAlloc
/// may repeat it).
fn cb_values_valid(limits: RefLimits, cb: &crate::cb_coding::CbScratch) -> bool {
    // (Vector maxima: a scalar fold of 64-bit values costs a few
    // instructions per CbAlloc.)
    let max_flags = super::packed::max_of(&cb.flags);
    let max_site = super::packed::max_of(&cb.site);
    max_flags >> 1 <= u32::MAX as u64 + 1 && max_site <= limits.sites as u64 && limits.sites > 0
}

/// A block's CbAlloc site codes and flags read where they are stored:
/// the site codes' one byte plane and the flags' one value (nearly every
/// block), rather than unpacked into two `u64` arrays read back once.
#[derive(Clone, Copy)]
struct InPlace<'a> {
    site: &'a [u8],
    flags: u64,
}

/// [`InPlace`] for CB_SITE and CB_FLAGS of `n` values, when they are so
/// stored and every value is in range (as `cb_values_valid` checks);
/// `None` otherwise, malformed columns included (their decode reports
/// them).
fn in_place<'a>(cols: &[&'a [u8]; col::COUNT], n: usize, limits: RefLimits) -> Option<InPlace<'a>> {
    let flags = super::packed::constant_of(cols[col::CB_FLAGS as usize], n, "cb flags")?;
    let site = super::packed::one_byte_plane(cols[col::CB_SITE as usize], n, "cb site").ok()??;
    // (A byte max the compiler vectorises.)
    let max_site = site.iter().copied().fold(0u8, u8::max);
    let valid = flags >> 1 <= u32::MAX as u64 + 1
        && max_site as u64 <= limits.sites as u64
        && limits.sites > 0;
    valid.then_some(InPlace { site, flags })
}

/// How [`bulk`] reads CbAlloc `k`'s site code and flags.
///
/// # Safety (of both methods)
///
/// `k` is below the block's CbAllocs, as many as values each holds.
trait SiteFlags: Copy {
    unsafe fn site(self, k: usize) -> u64;
    unsafe fn flags(self, k: usize) -> u64;
}

/// Decoded into `u64` arrays (`decode_cb_columns`).
#[derive(Clone, Copy)]
struct Decoded<'a> {
    site: &'a [u64],
    flags: &'a [u64],
}

impl SiteFlags for Decoded<'_> {
    #[inline(always)]
    unsafe fn site(self, k: usize) -> u64 {
        debug_assert!(k < self.site.len());
        // SAFETY: `k` is below the CbAllocs, the column's values (`# Safety`).
        unsafe { *self.site.get_unchecked(k) }
    }
    #[inline(always)]
    unsafe fn flags(self, k: usize) -> u64 {
        debug_assert!(k < self.flags.len());
        // SAFETY: as above.
        unsafe { *self.flags.get_unchecked(k) }
    }
}

impl SiteFlags for InPlace<'_> {
    #[inline(always)]
    unsafe fn site(self, k: usize) -> u64 {
        debug_assert!(k < self.site.len());
        // SAFETY: `k` is below the CbAllocs, the plane's bytes (`# Safety`).
        unsafe { *self.site.get_unchecked(k) as u64 }
    }
    #[inline(always)]
    unsafe fn flags(self, _: usize) -> u64 {
        self.flags
    }
}

/// Splits the other kinds (`s.other_pos`, `s.other_dev`): the circular
/// buffers go to `out.cbs`, their values from the CB_ columns (decoded,
/// and valid by `cb_values_valid`; or site codes and flags `in_place`),
/// the indices (into `s.other_pos`) of the rest to `s.vals.rare`. One
/// pass, each array written whole.
fn cbs_in_bulk(s: &mut DecodeScratch, out: &mut BlockColumns, in_place: Option<InPlace>) {
    match in_place {
        Some(v) => bulk(s, out, v),
        None => {
            // (Taken out for the pass, which borrows the rest of `s`.)
            let site = std::mem::take(&mut s.vals.cb.site);
            let flags = std::mem::take(&mut s.vals.cb.flags);
            bulk(
                s,
                out,
                Decoded {
                    site: &site,
                    flags: &flags,
                },
            );
            s.vals.cb.site = site;
            s.vals.cb.flags = flags;
        }
    }
}

#[inline(always)]
fn bulk(s: &mut DecodeScratch, out: &mut BlockColumns, v: impl SiteFlags) {
    let n = s.other_pos.len();
    let (tags, cbs, cb, rare) = (
        &out.tags[..],
        &mut out.cbs,
        &mut s.vals.cb,
        &mut s.vals.rare,
    );
    // Written into the arrays' spare room: each entry once, none zeroed.
    let (o, o_flags) = cbs.spare_rows(n);
    super::clear_for(rare, n);
    let rare_out = &mut rare.spare_capacity_mut()[..n];
    debug_assert!(o.len() == n && o_flags.len() == n && s.other_dev.len() == n);
    let slots = cb.predictor.all_slots();
    let (addr, size) = (&cb.addr[..], &cb.size[..]);
    // The reads below go unchecked (a check each kept their lengths live
    // and spilled the loop's other values): `s.other_pos` holds positions
    // of `tags`, distinct, among them every CbAlloc's (`kind_words` counted
    // them: `s.cb_allocs`), and CB_ADDR, CB_SIZE and the site codes and
    // flags hold that many values each (decoded or read in place with
    // `n = s.cb_allocs`, checked), so `ka`, which counts the CbAllocs
    // before one, is below each length; a device's slot index is below
    // `CbPredictor::slot_index`'s bound, the slots' count.
    debug_assert!(addr.len() == s.cb_allocs && size.len() == s.cb_allocs);
    // (The rare kinds before an event are `k - kc`: a counter of their
    // own was one more value for the loop to keep.)
    let (mut ka, mut kc) = (0usize, 0usize);
    for (k, (&pos, &dev)) in s.other_pos.iter().zip(&s.other_dev).enumerate() {
        debug_assert!((pos as usize) < tags.len());
        // SAFETY: `pos` is a position of `tags` (see above the loop).
        let t = unsafe { *tags.get_unchecked(pos as usize) };
        // A branch per kind: a program's circular buffers come in groups
        // of several CbAllocs closed by a CbFreeAll, which a branch
        // predicts better than a select per field costs.
        if t == EventTag::CbAlloc as u8 {
            // `ka` counts the CbAllocs before this one (as many as values
            // each column holds).
            debug_assert!(ka < addr.len() && ka < size.len());
            let slot = crate::cb_coding::CbPredictor::slot_index(dev);
            debug_assert!(slot < slots.len());
            // SAFETY: `ka` is below the CbAllocs and `slot` below the
            // slots (see above the loop).
            let (d_addr, sz, fl, code, s) = unsafe {
                (
                    *addr.get_unchecked(ka),
                    *size.get_unchecked(ka),
                    v.flags(ka),
                    v.site(ka),
                    slots.get_unchecked_mut(slot),
                )
            };
            ka += 1;
            let predicted = std::hint::select_unpredictable(s.open, s.next, s.group_start);
            let address = predicted.wrapping_add(unzigzag(d_addr) as u64);
            // A select, not a branch: whether a CbAlloc repeats its
            // device's previous site (code 0) follows no pattern (a branch
            // here took 104k of the scan's 597k mispredicts under
            // cachegrind's predictor, 2M synthetic trace).
            let st =
                std::hint::select_unpredictable(code != 0, (code as u32).wrapping_sub(1), s.site);
            // (A select too: a group's first CbAlloc alternates with the
            // rest in no fixed pattern.)
            s.group_start = std::hint::select_unpredictable(s.open, s.group_start, address);
            s.next = address.wrapping_add(sz);
            s.site = st;
            s.open = true;
            let cores = fl >> 1;
            // SAFETY: `kc` counts events before this one (`k < n`), and
            // `o` and `o_flags` hold `n` entries.
            unsafe {
                o.get_unchecked_mut(kc).write(CbRow {
                    address,
                    size: sz,
                    pos,
                    device: dev,
                    cores: (cores as u32).wrapping_sub(1) & ((cores != 0) as u32).wrapping_neg(),
                    site: st,
                });
                o_flags
                    .get_unchecked_mut(kc)
                    .write(super::cb_columns::alloc_flags(cores != 0, fl & 1 == 1));
            };
            kc += 1;
        } else if t == EventTag::CbFreeAll as u8 {
            let slot = crate::cb_coding::CbPredictor::slot_index(dev);
            // SAFETY: `slot` is below the slots, and `kc` below `n` (as above).
            unsafe {
                slots.get_unchecked_mut(slot).open = false;
                o.get_unchecked_mut(kc).write(CbRow::free_all(pos, dev));
                o_flags
                    .get_unchecked_mut(kc)
                    .write(super::cb_columns::FREE_ALL);
            }
            kc += 1;
        } else {
            // SAFETY: `k - kc` counts the rare kinds before this one (the
            // events before it less the circular buffers), below `n`, and
            // `rare_out` holds `n` entries.
            unsafe { rare_out.get_unchecked_mut(k - kc).write(k as u32) };
        }
    }
    // SAFETY: both branches that count a circular buffer (`kc`) wrote its
    // row, and the other wrote an entry of `rare` for each of the
    // `n - kc` rare kinds (reserved for `n` above).
    unsafe {
        cbs.set_len(kc);
        rare.set_len(n - kc);
    }
}
