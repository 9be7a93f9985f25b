//! The block decoder's driver: kind histogram, timestamps, pids, devices
//! and buffer ids, then the per-kind decoders.

use super::allocs::decode_allocs;
use super::columns::BlockColumns;
use super::others::decode_others;
use super::packed::{
    all_below, all_below_u32, column_values, column_values_u32, narrow_planes, one_byte_plane,
};
use super::scratch::DecodeScratch;
use super::{end, overrun, DecodeError, RefLimits};
use crate::codec::{col, ColumnLayout};
use crate::records::ArchivedBlockRec;
use crate::ts_by_kind::KindBases;
use crate::varint::{unzigzag, Cursor};
use ttalloc_model::{EventTag, StringId};

/// Whether events of a kind code carry a device (DEVICE column).
pub(super) const HAS_DEVICE: [bool; 256] = {
    let mut t = [false; 256];
    let mut k = EventTag::DeviceOpen as usize;
    while k <= EventTag::TraceRelease as usize {
        t[k] = true;
        k += 1;
    }
    t
};

/// Whether events of a kind code are decoded by `decode_others` (every kind
/// but alloc, free, op begin/end and marker; unknown kinds included).
pub(super) const IS_OTHER: [bool; 256] = {
    let mut t = [true; 256];
    t[EventTag::BufferAlloc as usize] = false;
    t[EventTag::BufferFree as usize] = false;
    t[EventTag::OpBegin as usize] = false;
    t[EventTag::OpEnd as usize] = false;
    t[EventTag::Marker as usize] = false;
    t
};

/// Which coding a field's columns use: `codings` lists, oldest first, the
/// layout that introduced each coding and its column (FORMAT.md §5.1); a
/// block holds at most one of them, and one holding none (no events use
/// the field) reads as the oldest.
pub(super) fn coded_as(
    cols: &[&[u8]; col::COUNT],
    codings: &[(ColumnLayout, u16)],
    what: &str,
) -> Result<ColumnLayout, DecodeError> {
    let mut present = codings
        .iter()
        .filter(|(_, id)| !cols[*id as usize].is_empty());
    match (present.next(), present.next()) {
        (Some(_), Some(_)) => Err(format!("block holds {what} in more than one coding")),
        (Some(&(layout, _)), None) => Ok(layout),
        (None, _) => Ok(codings[0].0),
    }
}

/// Decodes `block` into `out` (cleared first), with the working arrays `s`.
pub fn decode_columns(
    block: &ArchivedBlockRec,
    limits: RefLimits,
    s: &mut DecodeScratch,
    out: &mut BlockColumns,
) -> Result<(), DecodeError> {
    decode(block, limits, s, out, false).map(|_whole| ())
}

/// Like [`decode_columns`], leaving out the block's buffer allocs and
/// frees (`out.allocs` and `out.frees` stay empty, their columns unread
/// and unchecked): for a pass that skips them (a cycle scan), which then
/// costs a third of a whole decode. Blocks before format 2.3 hand every
/// kind its device in one walk: they are decoded whole. Returns whether
/// `out` holds the block whole.
pub fn decode_columns_non_buffer(
    block: &ArchivedBlockRec,
    limits: RefLimits,
    s: &mut DecodeScratch,
    out: &mut BlockColumns,
) -> Result<bool, DecodeError> {
    decode(block, limits, s, out, true)
}

/// [`decode_columns`], or without allocs and frees when `non_buffer` and
/// the block's layout allows; returns whether the block was decoded whole.
fn decode(
    block: &ArchivedBlockRec,
    limits: RefLimits,
    s: &mut DecodeScratch,
    out: &mut BlockColumns,
    non_buffer: bool,
) -> Result<bool, DecodeError> {
    out.clear();
    let mut cols: [&[u8]; col::COUNT] = [&[]; col::COUNT];
    for c in block.columns.iter() {
        let id = c.id.to_native() as usize;
        if id < col::COUNT {
            cols[id] = c.bytes.as_slice();
        }
    }
    let count = block.count.to_native() as usize;
    out.first_event = block.first_event.to_native();
    let tags = cols[col::TAG as usize];
    if tags.len() != count {
        return Err(format!(
            "kind column holds {} events, block says {count}",
            tags.len(),
        ));
    }
    out.tags.extend_from_slice(tags);
    // Where each kind sits: allocs, frees and names are counted by
    // popcount, the other kinds (rare) one by one.
    let [n_alloc, n_free, n_names, n_cb_alloc, n_dev] = super::kind_words(tags, &mut s.vals.kinds);
    s.cb_allocs = n_cb_alloc;
    // The other kinds' positions, each written in place (no capacity
    // check per event).
    let n_other: usize = s
        .vals
        .kinds
        .iter()
        .map(|w| w.other.count_ones() as usize)
        .sum();
    super::overwrite_len(&mut s.other_pos, n_other);
    {
        let (other_pos, mut k) = (&mut s.other_pos[..], 0usize);
        super::kinds::for_each_of(
            &s.vals.kinds,
            |w| w.other,
            |p| {
                debug_assert!(k < other_pos.len());
                // SAFETY: `k` counts the other bits before this one, fewer
                // than all of them, `n_other = other_pos.len()`.
                unsafe { *other_pos.get_unchecked_mut(k) = p as u32 };
                k += 1;
            },
        );
    }
    let counts = KindCounts {
        dev: n_dev,
        alloc: n_alloc,
        free: n_free,
        other: n_other,
    };
    if non_buffer && by_kind_layout(&cols)? {
        let vals = &mut s.vals;
        names(&cols, n_names, limits, &mut vals.name)?;
        other_devices(&cols, counts, s, &out.tags)?;
        others_and_times(block, &cols, limits, s, out)?;
        return Ok(false);
    }
    let vals = &mut s.vals;
    // Alloc buffer ids: a zigzag delta chain.
    super::chain::chain_u64(
        cols[col::ALLOC_BUF as usize],
        n_alloc,
        "alloc buffer",
        &mut vals.alloc_buf,
    )?;
    // Names before allocs: 2.4 codes an alloc's site by the op name it runs under.
    names(&cols, n_names, limits, &mut vals.name)?;
    if !cols[col::SITE_BY_NAME as usize].is_empty() {
        alloc_sites_by_name(&cols, s, out)?;
    } else if !cols[col::SITE_NEW as usize].is_empty() {
        return Err("block holds new sites without their site places".into());
    }
    if by_kind_layout(&cols)? {
        hand_out_by_kind(&cols, counts, s, out)?;
    } else {
        hand_out_by_walk(&cols, counts, s, out)?;
    }
    let vals = &mut s.vals;
    decode_allocs(&cols, &mut s.alloc_devices, limits, vals, &mut out.allocs)?;

    let frees = &mut out.frees;
    // The sites straight into the frees' column, as 32-bit values (no
    // 64-bit copy to write, read and narrow). A value past 32 bits is no
    // defined site: the 64-bit decode then names it.
    let free_sites = cols[col::FREE_SITE as usize];
    if !column_values_u32(free_sites, n_free, "free site", &mut frees.site)? {
        column_values(free_sites, n_free, "free site", &mut vals.free_site)?;
        all_below(&vals.free_site, limits.sites, "site")?;
        return Err("free sites do not fit 32 bits".into());
    }
    all_below_u32(&frees.site, limits.sites, "site")?;
    // The frees' other arrays: the resolved devices and ids change places
    // with the output's (both are overwritten whole by the next block).
    std::mem::swap(&mut frees.device, &mut s.free_devices);
    std::mem::swap(&mut frees.buffer, &mut vals.free_ids);
    frees.filled(n_free);

    others_and_times(block, &cols, limits, s, out)?;
    Ok(true)
}

/// The names (decoded into `s.vals.name`), timestamps, pids and the other
/// kinds of a block whose other kinds have their devices (`s.other_dev`).
fn others_and_times(
    block: &ArchivedBlockRec,
    cols: &[&[u8]; col::COUNT],
    limits: RefLimits,
    s: &mut DecodeScratch,
    out: &mut BlockColumns,
) -> Result<(), DecodeError> {
    out.names.extend(s.vals.name.iter().map(|&v| StringId(v)));
    // Timestamps and pids last, right before the other kinds, which read
    // them at their positions (still in cache then).
    times_and_pids(block, cols, out)?;
    if !s.other_pos.is_empty() {
        decode_others(cols, limits, s, out)?;
    } else if !cols[col::MISC as usize].is_empty() || !cols[col::EXT as usize].is_empty() {
        return Err("a column holds more values than the block's events use".into());
    }
    Ok(())
}

/// The NAME column's `n` values into `out`, as 32-bit string ids (half
/// the bytes of 64-bit values to write and read), checked against the
/// interned strings. A value past 32 bits is no defined string: the 64-bit
/// decode then names it.
fn names(
    cols: &[&[u8]; col::COUNT],
    n: usize,
    limits: RefLimits,
    out: &mut Vec<u32>,
) -> Result<(), DecodeError> {
    let bytes = cols[col::NAME as usize];
    if !column_values_u32(bytes, n, "name", out)? {
        let mut wide = Vec::new();
        column_values(bytes, n, "name", &mut wide)?;
        all_below(&wide, limits.strings, "string")?;
        return Err("names do not fit 32 bits".into());
    }
    all_below_u32(out, limits.strings, "string")
}

/// Every event's timestamp and pid (into `out.times`, `out.pids`).
fn times_and_pids(
    block: &ArchivedBlockRec,
    cols: &[&[u8]; col::COUNT],
    out: &mut BlockColumns,
) -> Result<(), DecodeError> {
    let count = out.tags.len();
    // Timestamps: deltas from the block's first timestamp since 2.2.
    let ts_codings = [
        (ColumnLayout::V20, col::TS),
        (ColumnLayout::V22, col::TS_REL),
        (ColumnLayout::V23, col::TS_KIND),
        (ColumnLayout::V24, col::TS_TICKS),
    ];
    let (ts_col, mut ts) = match coded_as(cols, &ts_codings, "ts")? {
        ColumnLayout::V20 => (col::TS, 0),
        ColumnLayout::V22 => (col::TS_REL, block.first_ts.to_native()),
        ColumnLayout::V23 => (col::TS_KIND, block.first_ts.to_native()),
        // (No coding names 2.5: `coded_as` returns one of the above.)
        ColumnLayout::V24 | ColumnLayout::V25 => (col::TS_TICKS, block.first_ts.to_native()),
    };
    // 2.3+: gaps less their kind's base (in ticks since 2.4), kept coded:
    // the time of each chunk of events is summed, not of each event
    // (`times.rs`). Before: deltas, prefix-summed here.
    let coded = ts_col == col::TS_KIND || ts_col == col::TS_TICKS;
    // Coded times keep 32-bit codes when they fit (nearly every block);
    // codes that do not are made plain values below.
    // Codes in up to 4 byte planes (nearly every block) are made gaps as
    // they are read (`Times::coded_from_planes`), the others read first.
    let ts_planes = coded.then(|| narrow_planes(cols[ts_col as usize], count, "ts"));
    let ts_planes = ts_planes.transpose()?.flatten();
    let narrow = ts_planes.is_some()
        || coded && column_values_u32(cols[ts_col as usize], count, "ts", out.times.codes_mut())?;
    if !narrow {
        out.times.codes_mut().clear();
        column_values(cols[ts_col as usize], count, "ts", out.times.values_mut())?;
    }
    let unit = if ts_col == col::TS_TICKS {
        crate::ts_by_kind::read_unit(cols[col::TS_UNIT as usize])?
    } else if !cols[col::TS_UNIT as usize].is_empty() {
        return Err("block holds a ts unit column without its ts column".into());
    } else {
        1
    };
    out.clock_tick_ns = unit;
    if coded {
        let bases = KindBases::read(cols[col::TS_BASE as usize])?;
        if let Some((w, planes)) = ts_planes {
            out.times
                .coded_from_planes(w, planes, ts, unit, &bases.base, &out.tags);
        } else if narrow {
            out.times.coded(ts, unit, &bases.base, &out.tags);
        } else {
            out.times.plain_from_codes(ts, unit, &bases.base, &out.tags);
        }
    } else {
        if !cols[col::TS_BASE as usize].is_empty() {
            return Err("block holds a ts base column without its ts column".into());
        }
        for t in out.times.values_mut().iter_mut() {
            ts = ts.wrapping_add(*t);
            *t = ts;
        }
    }
    // Pids: (delta, run length) pairs, kept as runs.
    let mut c = Cursor::new(cols[col::PID as usize]);
    let mut pid = 0u32;
    while out.pids.len() < count {
        pid = pid.wrapping_add(c.zigzag().map_err(overrun("pid"))? as u32);
        let run = c.varint().map_err(overrun("pid"))?;
        if run == 0 || run > (count - out.pids.len()) as u64 {
            return Err(format!("pid run of {run} events does not fit the block"));
        }
        out.pids.push(pid, run as usize);
    }
    end(&c, "pid")?;
    Ok(())
}

/// 2.4: every alloc's site (into `out.allocs.site`) from its place among
/// the recent sites of the name (OpBegin, Marker) it runs under; names are
/// decoded (`vals.name`).
fn alloc_sites_by_name(
    cols: &[&[u8]; col::COUNT],
    s: &mut DecodeScratch,
    out: &mut BlockColumns,
) -> Result<(), DecodeError> {
    if !cols[col::ALLOC_SITE as usize].is_empty() {
        return Err("block holds alloc sites in more than one coding".into());
    }
    let vals = &mut s.vals;
    let sites = &mut vals.sites_by_name;
    let places = cols[col::SITE_BY_NAME as usize];
    // (`decode_sites` checks the largest place.)
    let (n_new, _) = crate::site_by_name::new_and_max(places);
    column_values(
        cols[col::SITE_NEW as usize],
        n_new,
        "new site",
        &mut sites.new,
    )?;
    crate::site_by_name::decode_sites(
        &vals.kinds,
        &vals.name,
        places,
        &mut sites.new,
        &mut sites.cache,
        &mut out.allocs.site,
    )
}

/// How many events of a block use each hand-out list.
#[derive(Clone, Copy)]
struct KindCounts {
    /// Events with a device (DeviceOpen..=TraceRelease).
    dev: usize,
    alloc: usize,
    free: usize,
    /// Events `decode_others` decodes (`IS_OTHER`).
    other: usize,
}

/// Whether the block keeps a device chain per kind and chains its frees'
/// buffers (2.3) rather than one DEVICE chain and frees relative to allocs
/// (2.0–2.2); a block holding columns of both is corrupt.
fn by_kind_layout(cols: &[&[u8]; col::COUNT]) -> Result<bool, DecodeError> {
    let new = [
        col::ALLOC_DEV,
        col::FREE_DEV,
        col::OTHER_DEV,
        col::FREE_CHAIN,
        col::FREE_BY_DEV,
        col::FREE_FAR,
        col::FREE_DEV_NEAR,
    ];
    let old = [col::DEVICE, col::FREE_BUF];
    let has = |ids: &[u16]| ids.iter().any(|&c| !cols[c as usize].is_empty());
    match (has(&old), has(&new)) {
        (true, true) => {
            Err("block holds devices or freed buffers in both its 2.2 and its 2.3 columns".into())
        }
        (_, by_kind) => Ok(by_kind),
    }
}

/// Decodes a packed column of zigzag deltas into its running sum (as u32)
/// in `out`, through the scratch `vals` if it must (`chain.rs`).
fn device_chain(
    bytes: &[u8],
    n: usize,
    what: &str,
    vals: &mut Vec<u64>,
    out: &mut Vec<u32>,
) -> Result<(), DecodeError> {
    super::chain::chain_u32(bytes, n, what, vals, out)
}

/// 2.3: every kind has its own device chain and frees chain their buffers,
/// so each list is a prefix sum; only the other kinds' positions take a
/// pass over the kinds (a store per event, no branch).
fn hand_out_by_kind(
    cols: &[&[u8]; col::COUNT],
    n: KindCounts,
    s: &mut DecodeScratch,
    out: &mut BlockColumns,
) -> Result<(), DecodeError> {
    let vals = &mut s.vals;
    device_chain(
        cols[col::ALLOC_DEV as usize],
        n.alloc,
        "alloc device",
        &mut vals.device,
        &mut s.alloc_devices,
    )?;
    let free_dev_codings = [
        (ColumnLayout::V23, col::FREE_DEV),
        (ColumnLayout::V24, col::FREE_DEV_NEAR),
    ];
    if coded_as(cols, &free_dev_codings, "free devices")? == ColumnLayout::V24 {
        // 2.4: against the latest alloc's device; a column of one byte
        // plane (nearly every block) read in place.
        let fd = &mut vals.free_by_device;
        let bytes = cols[col::FREE_DEV_NEAR as usize];
        if let Some(codes) = one_byte_plane(bytes, n.free, "free device")? {
            crate::free_by_device::decode_free_devices_bytes(
                &vals.kinds,
                &s.alloc_devices,
                codes,
                &mut s.free_devices,
            )?;
        } else {
            column_values(bytes, n.free, "free device", &mut fd.dev_codes)?;
            crate::free_by_device::decode_free_devices(
                &vals.kinds,
                &s.alloc_devices,
                &fd.dev_codes,
                &mut s.free_devices,
            )?;
        }
    } else {
        device_chain(
            cols[col::FREE_DEV as usize],
            n.free,
            "free device",
            &mut vals.device,
            &mut s.free_devices,
        )?;
    }
    let free_codings = [
        (ColumnLayout::V23, col::FREE_CHAIN),
        (ColumnLayout::V24, col::FREE_BY_DEV),
    ];
    if coded_as(cols, &free_codings, "freed buffers")? == ColumnLayout::V24 {
        // 2.4: by the ordinal of their alloc among the device's; a
        // column of one byte plane (nearly every block) read in place.
        let fd = &mut vals.free_by_device;
        let bytes = cols[col::FREE_BY_DEV as usize];
        if let Some(codes) = one_byte_plane(bytes, n.free, "free ordinal")? {
            let n_far = crate::free_by_device::count_far_bytes(codes);
            column_values(cols[col::FREE_FAR as usize], n_far, "far free", &mut fd.far)?;
            crate::free_by_device::decode_free_ids_bytes(
                &s.alloc_devices,
                &vals.alloc_buf,
                &s.free_devices,
                codes,
                &fd.far,
                &mut fd.scratch,
                &mut fd.codes,
                &mut vals.free_ids,
            )?;
        } else {
            column_values(bytes, n.free, "free ordinal", &mut fd.codes)?;
            let n_far = crate::free_by_device::count_far(&fd.codes);
            column_values(cols[col::FREE_FAR as usize], n_far, "far free", &mut fd.far)?;
            crate::free_by_device::decode_free_ids(
                &s.alloc_devices,
                &vals.alloc_buf,
                &s.free_devices,
                &fd.codes,
                &fd.far,
                &mut fd.scratch,
                &mut vals.free_ids,
            )?;
        }
    } else {
        if !cols[col::FREE_FAR as usize].is_empty() {
            return Err("block holds far frees without their free ordinals".into());
        }
        super::chain::chain_u64(
            cols[col::FREE_CHAIN as usize],
            n.free,
            "free buffer",
            &mut vals.free_ids,
        )?;
    }
    other_devices(cols, n, s, &out.tags)
}

/// 2.3+: the device of every other kind (into `s.other_dev`, in the order
/// of `s.other_pos`; those without one get 0) from their chain.
fn other_devices(
    cols: &[&[u8]; col::COUNT],
    n: KindCounts,
    s: &mut DecodeScratch,
    tags: &[u8],
) -> Result<(), DecodeError> {
    device_chain(
        cols[col::OTHER_DEV as usize],
        n.dev - n.alloc - n.free,
        "other device",
        &mut s.vals.device,
        &mut s.devices,
    )?;
    // `s.other_pos` holds the other kinds' positions (`decode_columns`).
    debug_assert_eq!(s.other_pos.len(), n.other);
    if n.dev - n.alloc - n.free == n.other {
        // Every other kind has a device (no process start or exit in the
        // block: nearly every block), so the chain is theirs, in order.
        std::mem::swap(&mut s.other_dev, &mut s.devices);
        return Ok(());
    }
    // The other kinds that have a device take the next one of their chain
    // (`n.dev - n.alloc - n.free` of them, so the chain has one slot to spare).
    s.devices.push(0);
    s.other_dev.clear();
    let mut kd = 0usize;
    let devices = &s.devices;
    // (One extend of a known length: no capacity check per event.)
    s.other_dev.extend(s.other_pos.iter().map(|&pos| {
        let d = devices[kd];
        kd += HAS_DEVICE[tags[pos as usize] as usize] as usize;
        d
    }));
    s.devices.pop();
    Ok(())
}

/// 2.0–2.2: one device chain over every event that has a device (events of
/// one op share it, so deltas are mostly 0) and frees relative to the
/// latest alloc before them: one walk over the kinds hands devices to
/// allocs, frees and the other kinds and resolves a free's buffer (= id of
/// the latest alloc before it in the block − distance).
fn hand_out_by_walk(
    cols: &[&[u8]; col::COUNT],
    n: KindCounts,
    s: &mut DecodeScratch,
    out: &mut BlockColumns,
) -> Result<(), DecodeError> {
    let vals = &mut s.vals;
    device_chain(
        cols[col::DEVICE as usize],
        n.dev,
        "device",
        &mut vals.device,
        &mut s.devices,
    )?;
    column_values(
        cols[col::FREE_BUF as usize],
        n.free,
        "free buffer",
        &mut vals.free_buf,
    )?;
    for v in vals.free_buf.iter_mut() {
        *v = unzigzag(*v) as u64;
    }
    // Branch-free (the kind sequence is unpredictable): every list gets a
    // store per event, into a slack slot past its end when the event is
    // not of its kind.
    let (n_dev, n_alloc, n_free, n_other) = (n.dev, n.alloc, n.free, n.other);
    s.devices.push(0);
    vals.alloc_buf.push(0);
    vals.free_buf.push(0);
    s.alloc_devices.resize(n_alloc + 1, 0);
    s.free_devices.resize(n_free + 1, 0);
    vals.free_ids.resize(n_free + 1, 0);
    s.other_pos.resize(n_other + 1, 0);
    s.other_dev.resize(n_other + 1, 0);
    {
        let devices = &s.devices[..];
        let alloc_ids = &vals.alloc_buf[..];
        let dist = &vals.free_buf[..];
        let alloc_devices = &mut s.alloc_devices[..];
        let free_devices = &mut s.free_devices[..];
        let free_ids = &mut vals.free_ids[..];
        let other_pos = &mut s.other_pos[..];
        let other_dev = &mut s.other_dev[..];
        let (mut kd, mut ka, mut kf, mut ko) = (0usize, 0usize, 0usize, 0usize);
        let mut latest = 0u64;
        debug_assert!(devices.len() == n_dev + 1 && alloc_ids.len() == n_alloc + 1);
        debug_assert!(dist.len() == n_free + 1 && free_ids.len() == n_free + 1);
        debug_assert!(alloc_devices.len() == n_alloc + 1 && free_devices.len() == n_free + 1);
        debug_assert!(other_pos.len() == n_other + 1 && other_dev.len() == n_other + 1);
        for (pos, &t) in out.tags.iter().enumerate() {
            // SAFETY: the counts are those of `out.tags` (kind words), so before any
            // event each counter is at most the number of its kind in the
            // block: `kd <= n_dev`, `ka <= n_alloc`, `kf <= n_free`,
            // `ko <= n_other` (`n_dev` counts exactly the kinds `HAS_DEVICE`
            // marks, `n_other` exactly those `IS_OTHER` marks), and every
            // list indexed by a counter has one slot more than that count.
            unsafe {
                let d = *devices.get_unchecked(kd);
                let is_alloc = t == EventTag::BufferAlloc as u8;
                let is_free = t == EventTag::BufferFree as u8;
                *alloc_devices.get_unchecked_mut(ka) = d;
                // Branch-free select (an alloc replaces `latest`).
                let keep = (is_alloc as u64).wrapping_sub(1);
                latest = (latest & keep) | (*alloc_ids.get_unchecked(ka) & !keep);
                ka += is_alloc as usize;
                *free_devices.get_unchecked_mut(kf) = d;
                *free_ids.get_unchecked_mut(kf) = latest.wrapping_sub(*dist.get_unchecked(kf));
                kf += is_free as usize;
                *other_pos.get_unchecked_mut(ko) = pos as u32;
                *other_dev.get_unchecked_mut(ko) = d;
                ko += IS_OTHER[t as usize] as usize;
                kd += HAS_DEVICE[t as usize] as usize;
            }
        }
    }
    s.devices.pop();
    vals.alloc_buf.pop();
    vals.free_buf.pop();
    s.alloc_devices.truncate(n_alloc);
    s.free_devices.truncate(n_free);
    vals.free_ids.truncate(n_free);
    s.other_pos.truncate(n_other);
    s.other_dev.truncate(n_other);
    Ok(())
}
