//! The block decoder's driver: kind histogram, timestamps, pids, devices
//! and buffer ids, then the per-kind decoders.

use super::allocs::decode_allocs;
use super::columns::BlockColumns;
use super::hand_out::{
    by_kind_layout, hand_out_by_kind, hand_out_by_walk, other_devices, KindCounts,
};
use super::others::decode_others;
use super::packed::{all_below, all_below_u32, column_values, column_values_u32, narrow_planes};
use super::scratch::DecodeScratch;
use super::{end, overrun, DecodeError, RefLimits};
use crate::codec::{col, ColumnLayout};
use crate::records::{ArchivedBlockRec, ArchivedTimesRec};
use crate::ts_by_kind::KindBases;
use crate::varint::Cursor;
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

/// Where a block's timestamps are, for the decoder.
#[derive(Clone, Copy)]
pub enum BlockTimes<'a> {
    /// In the block's own columns (formats before 2.6).
    InBlock,
    /// In the block's times record (2.6: `TimesRec`, the next frame).
    Apart(&'a ArchivedTimesRec),
    /// Not decoded (the record not even read, from 2.6 on): every
    /// `ts_at` of the block is 0 and its `clock_tick_ns` 0. For passes
    /// that read no time, such as a replay.
    Skipped,
}

/// Decodes `block` into `out` (cleared first), with the working arrays `s`.
pub fn decode_columns(
    block: &ArchivedBlockRec,
    times: BlockTimes<'_>,
    limits: RefLimits,
    s: &mut DecodeScratch,
    out: &mut BlockColumns,
) -> Result<(), DecodeError> {
    decode(block, times, limits, s, out, false).map(|_whole| ())
}

/// Like [`decode_columns`], leaving out the block's buffer allocs and
/// frees (`out.allocs` and `out.frees` stay empty, their columns unread
/// and unchecked): for a pass that skips them (a cycle scan), which then
/// costs a third of a whole decode. Blocks before format 2.3 hand every
/// kind its device in one walk: they are decoded whole. Returns whether
/// `out` holds the block whole.
pub fn decode_columns_non_buffer(
    block: &ArchivedBlockRec,
    times: BlockTimes<'_>,
    limits: RefLimits,
    s: &mut DecodeScratch,
    out: &mut BlockColumns,
) -> Result<bool, DecodeError> {
    decode(block, times, limits, s, out, true)
}

/// [`decode_columns`], or without allocs and frees when `non_buffer` and
/// the block's layout allows; returns whether the block was decoded whole.
fn decode(
    block: &ArchivedBlockRec,
    times: BlockTimes<'_>,
    limits: RefLimits,
    s: &mut DecodeScratch,
    out: &mut BlockColumns,
    non_buffer: bool,
) -> Result<bool, DecodeError> {
    out.clear();
    let cols = columns_by_id(block, times)?;
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
        others_and_times(block, times, &cols, limits, s, out)?;
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

    others_and_times(block, times, &cols, limits, s, out)?;
    Ok(true)
}

/// Every column of the block by id (empty where absent), the times from
/// where `times` says they are; a 2.6 block and its times record each
/// hold only their own columns.
fn columns_by_id<'a>(
    block: &'a ArchivedBlockRec,
    times: BlockTimes<'a>,
) -> Result<[&'a [u8]; col::COUNT], DecodeError> {
    let mut cols: [&[u8]; col::COUNT] = [&[]; col::COUNT];
    for c in block.columns.iter() {
        let id = c.id.to_native() as usize;
        if id < col::COUNT {
            cols[id] = c.bytes.as_slice();
        }
    }
    match times {
        BlockTimes::InBlock => {}
        BlockTimes::Skipped => {
            for id in col::TIME {
                cols[id as usize] = &[];
            }
        }
        BlockTimes::Apart(t) => {
            if let Some(id) = col::TIME.iter().find(|&&id| !cols[id as usize].is_empty()) {
                return Err(format!(
                    "block holds time column {id} although its times are in a record of their own"
                ));
            }
            if t.first_event != block.first_event || t.count != block.count {
                return Err(format!(
                    "times record is of events {}+{}, the block of {}+{}",
                    t.first_event, t.count, block.first_event, block.count
                ));
            }
            for c in t.columns.iter() {
                let id = c.id.to_native();
                if !col::is_time(id) {
                    return Err(format!("times record holds column {id}, not a time column"));
                }
                cols[id as usize] = c.bytes.as_slice();
            }
        }
    }
    Ok(cols)
}

/// The names (decoded into `s.vals.name`), timestamps, pids and the other
/// kinds of a block whose other kinds have their devices (`s.other_dev`).
fn others_and_times(
    block: &ArchivedBlockRec,
    times: BlockTimes<'_>,
    cols: &[&[u8]; col::COUNT],
    limits: RefLimits,
    s: &mut DecodeScratch,
    out: &mut BlockColumns,
) -> Result<(), DecodeError> {
    out.names.extend(s.vals.name.iter().map(|&v| StringId(v)));
    // Timestamps and pids last, right before the other kinds, which read
    // them at their positions (still in cache then).
    if !matches!(times, BlockTimes::Skipped) {
        timestamps(block, cols, out)?;
    }
    pids(cols, out)?;
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

/// Every event's timestamp (into `out.times`).
fn timestamps(
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
    Ok(())
}

/// Every event's pid (into `out.pids`): (delta, run length) pairs, kept
/// as runs.
fn pids(cols: &[&[u8]; col::COUNT], out: &mut BlockColumns) -> Result<(), DecodeError> {
    let count = out.tags.len();
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
