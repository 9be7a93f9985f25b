//! BufferAlloc events: flags, sizes, addresses and the optional fields.

use super::block::coded_as;
use super::columns::{AllocColumns, ColumnValues};
use super::packed::{all_below, column_values};
use super::{DecodeError, RefLimits};
use crate::codec::{col, AddrHistory, ColumnLayout, SiteHistory, FLAG_ADDR, FLAG_CORES, FLAG_PAGE};
use crate::recent_sizes::RecentSizes;
use crate::site_flags::SiteFlags;
use crate::varint::unzigzag;
use ttalloc_model::BufferType;

/// Decodes the block's allocs into `out`, one array per field (`devices`:
/// the device of each, handed out already).
pub(super) fn decode_allocs(
    cols: &[&[u8]; col::COUNT],
    devices: &[u32],
    limits: RefLimits,
    vals: &mut ColumnValues,
    out: &mut AllocColumns,
) -> Result<(), DecodeError> {
    let n = devices.len();
    // 2.4 blocks code sites by op name: decoded already (`block`).
    if cols[col::SITE_BY_NAME as usize].is_empty() {
        column_values(
            cols[col::ALLOC_SITE as usize],
            n,
            "alloc site",
            &mut vals.alloc_site,
        )?;
    }
    // 2.3 blocks (sizes in SIZE_RECENT) store flags and cores only where
    // they differ from the site's previous alloc's.
    let site_coded = !cols[col::SIZE_RECENT as usize].is_empty();
    let mut flags_buf = std::mem::take(&mut vals.flags);
    if site_coded {
        site_flags(cols, vals, &mut flags_buf)?;
    } else if !cols[col::FLAGS_NEW as usize].is_empty() || !cols[col::CORES_NEW as usize].is_empty()
    {
        return Err("block holds new flags without their size places".into());
    }
    let flags = if site_coded {
        &flags_buf[..]
    } else {
        cols[col::ALLOC_FLAGS as usize]
    };
    if flags.len() != n {
        return Err(format!(
            "alloc flags hold {} allocs, the kind column {n}",
            flags.len()
        ));
    }
    // How many allocs carry each optional field, and the largest type code.
    let (mut n_addr, mut n_page, mut n_cores, mut max_bt) = (0usize, 0usize, 0usize, 0u8);
    for &f in flags {
        n_addr += (f & FLAG_ADDR != 0) as usize;
        n_page += (f & FLAG_PAGE != 0) as usize;
        n_cores += (f & FLAG_CORES != 0) as usize;
        max_bt = max_bt.max(f & 7);
    }
    if BufferType::from_u8(max_bt).is_none() {
        return Err(format!("buffer type code {max_bt} is out of range"));
    }
    let size_codings = [
        (ColumnLayout::V20, col::SIZE),
        (ColumnLayout::V22, col::SIZE_BY_SITE),
        (ColumnLayout::V23, col::SIZE_RECENT),
    ];
    match coded_as(cols, &size_codings, "size")? {
        ColumnLayout::V20 => column_values(cols[col::SIZE as usize], n, "size", &mut vals.size)?,
        ColumnLayout::V22 => {
            // 2.2: a delta against the previous size of the same site.
            column_values(cols[col::SIZE_BY_SITE as usize], n, "size", &mut vals.size)?;
            let prev = &mut vals.prev_size.slots;
            prev.fill(0);
            for (v, &site) in vals.size.iter_mut().zip(&vals.alloc_site) {
                let slot = &mut prev[SiteHistory::index(site)];
                *slot = slot.wrapping_add(unzigzag(*v) as u64);
                *v = *slot;
            }
        }
        ColumnLayout::V23 | ColumnLayout::V24 => recent_sizes(cols, vals)?,
    }
    if !cols[col::SIZE_NEW as usize].is_empty() && cols[col::SIZE_RECENT as usize].is_empty() {
        return Err("block holds new sizes without their size places".into());
    }
    column_values(
        cols[col::PAGE as usize],
        n_page,
        "page size",
        &mut vals.page,
    )?;
    column_values(cols[col::ADDR as usize], n_addr, "address", &mut vals.addr)?;
    if site_coded {
        if !cols[col::ALLOC_FLAGS as usize].is_empty() || !cols[col::CORES as usize].is_empty() {
            return Err("block holds flags in more than one coding".into());
        }
    } else {
        column_values(cols[col::CORES as usize], n_cores, "cores", &mut vals.cores)?;
    }
    if vals.cores.iter().any(|&c| c > u32::MAX as u64) {
        return Err("column cores holds a value above 2^32 - 1".into());
    }
    // Every page size > 0 comes with a remainder.
    let n_rem = vals.page.iter().filter(|&&p| p > 0).count();
    column_values(
        cols[col::SIZE_REM as usize],
        n_rem,
        "size remainder",
        &mut vals.size_rem,
    )?;
    // Slack slots: optional fields are read for every alloc, used when present.
    vals.page.push(0);
    vals.addr.push(0);
    vals.cores.push(0);
    vals.addr_slots.clear();
    vals.addr_slots.resize(AddrHistory::SLOTS, 0);
    // Sites are checked in one reduction, sizes by a flag the loop
    // accumulates (no branch per alloc); the error names the first bad one.
    all_below(&vals.alloc_site, limits.sites, "site")?;
    vals.size_rem.push(0);
    // The arrays every alloc has: copied whole, or overwritten whole below
    // (only growth is zeroed).
    out.clear();
    out.device.clear();
    out.device.extend_from_slice(devices);
    out.buffer.clear();
    out.buffer.extend_from_slice(&vals.alloc_buf[..n]);
    out.site.clear();
    out.site.extend(vals.alloc_site.iter().map(|&s| s as u32));
    out.flags.clear();
    out.flags.extend_from_slice(flags);
    out.size.resize(n, 0);
    out.address.resize(n, 0);
    out.page_size.resize(n, 0);
    out.num_cores.resize(n, 0);
    // Sizes are checked by a flag the loop accumulates (no branch per
    // alloc); the error names the first bad one.
    let mut bad_size = false;
    let (mut kp, mut ka, mut kc, mut kr) = (0usize, 0usize, 0usize, 0usize);
    let rows = flags
        .iter()
        .zip(devices)
        .zip(&vals.size)
        .zip(out.size.iter_mut())
        .zip(out.address.iter_mut())
        .zip(out.page_size.iter_mut())
        .zip(out.num_cores.iter_mut());
    for ((((((&f, &d), &units), size), address), page_size), num_cores) in rows {
        let bt = f & 7;
        let has_page = f & FLAG_PAGE != 0;
        let has_addr = f & FLAG_ADDR != 0;
        let has_cores = f & FLAG_CORES != 0;
        // Absent fields read the next present one (or the slack slot) and
        // keep 0.
        let p = vals.page[kp] & (has_page as u64).wrapping_neg();
        kp += has_page as usize;
        *page_size = p;
        // A page size > 0 makes the stored size a page count with a remainder.
        let paged = p > 0;
        let rem = vals.size_rem[kr] & (paged as u64).wrapping_neg();
        kr += paged as usize;
        let (whole, o1) = units.overflowing_mul(p.max(1));
        let (total, o2) = whole.overflowing_add(rem);
        bad_size |= paged & (o1 | o2 | (rem >= p));
        *size = total;
        let slot = &mut vals.addr_slots[AddrHistory::index(d, bt)];
        let addr = slot.wrapping_add(unzigzag(vals.addr[ka]) as u64);
        if has_addr {
            *slot = addr;
        }
        *address = addr & (has_addr as u64).wrapping_neg();
        ka += has_addr as usize;
        *num_cores = vals.cores[kc] as u32 & (has_cores as u32).wrapping_neg();
        kc += has_cores as usize;
    }
    if bad_size {
        return Err(first_bad_size(flags, vals));
    }
    vals.flags = flags_buf;
    crate::ext::decode_alloc_ext(cols[col::ALLOC_EXT as usize], n, &mut out.ext, limits)?;
    out.filled(n);
    Ok(())
}

/// 2.3: every alloc's flags byte into `flags`, and the core counts of
/// those with cores into `vals.cores`: the site's previous alloc's when
/// SIZE_RECENT's bit 3 says so, else the next of FLAGS_NEW and CORES_NEW.
fn site_flags(
    cols: &[&[u8]; col::COUNT],
    vals: &mut ColumnValues,
    flags: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    let places = cols[col::SIZE_RECENT as usize];
    let sites = &vals.alloc_site;
    if places.len() != sites.len() {
        return Err(format!(
            "column size places holds {} allocs, the kind column {}",
            places.len(),
            sites.len()
        ));
    }
    let stored = cols[col::FLAGS_NEW as usize];
    let n_stored = places
        .iter()
        .filter(|&&p| p & SiteFlags::REPEAT == 0)
        .count();
    if stored.len() != n_stored {
        return Err(format!(
            "column new flags holds {} allocs, the size places say {n_stored}",
            stored.len()
        ));
    }
    let n_cores = stored.iter().filter(|&&f| f & FLAG_CORES != 0).count();
    column_values(
        cols[col::CORES_NEW as usize],
        n_cores,
        "new cores",
        &mut vals.cores_new,
    )?;
    if vals.cores_new.iter().any(|&c| c > u32::MAX as u64) {
        return Err("column new cores holds a value above 2^32 - 1".into());
    }
    let table = &mut vals.site_flags;
    table.clear();
    flags.clear();
    flags.reserve(places.len());
    vals.cores.clear();
    let (mut stored_flags, mut stored_cores) = (stored.iter(), vals.cores_new.iter());
    for (&p, &site) in places.iter().zip(sites) {
        let (f, c) = if p & SiteFlags::REPEAT != 0 {
            table.previous(site)
        } else {
            // As many stored flags as places without the bit, and cores
            // as stored flags with cores: counted above.
            let f = *stored_flags.next().expect("counted");
            let c = if f & FLAG_CORES != 0 {
                *stored_cores.next().expect("counted") as u32
            } else {
                0
            };
            table.set(site, f, c);
            (f, c)
        };
        flags.push(f);
        if f & FLAG_CORES != 0 {
            vals.cores.push(c as u64);
        }
    }
    Ok(())
}

/// 2.3: each alloc's size units from its place among the site's recent
/// sizes (SIZE_RECENT), or from SIZE_NEW when the site had not used it lately.
fn recent_sizes(cols: &[&[u8]; col::COUNT], vals: &mut ColumnValues) -> Result<(), DecodeError> {
    let sites = &vals.alloc_site;
    let places = cols[col::SIZE_RECENT as usize];
    if places.len() != sites.len() {
        return Err(format!(
            "column size places holds {} allocs, the kind column {}",
            places.len(),
            sites.len()
        ));
    }
    let mut n_new = 0usize;
    let mut max_place = 0u8;
    for &p in places {
        // Bit 3 is the flags' (`site_flags`).
        let p = p & !SiteFlags::REPEAT;
        n_new += (p == RecentSizes::NEW) as usize;
        max_place = max_place.max(p);
    }
    if max_place > RecentSizes::NEW {
        return Err(format!(
            "size place {max_place} is out of range (0 to {}, and bit 3)",
            RecentSizes::NEW
        ));
    }
    column_values(
        cols[col::SIZE_NEW as usize],
        n_new,
        "new size",
        &mut vals.size_new,
    )?;
    let cache = &mut vals.recent_sizes;
    cache.clear();
    vals.size.clear();
    vals.size.reserve(sites.len());
    let mut new = vals.size_new.iter();
    for (&p, &site) in places.iter().zip(sites) {
        let p = p & !SiteFlags::REPEAT;
        let units = if p == RecentSizes::NEW {
            // As many NEW places as SIZE_NEW values: counted above.
            let &d = new.next().expect("one new size per NEW place");
            cache.new_size(site, d)
        } else {
            cache.recent(site, p as usize)
        };
        vals.size.push(units);
    }
    Ok(())
}

/// The error for the first alloc whose pages, page size and remainder do
/// not make a size (found again after the loop flagged one).
#[cold]
fn first_bad_size(flags: &[u8], vals: &ColumnValues) -> DecodeError {
    let (mut kp, mut kr) = (0usize, 0usize);
    for (i, &f) in flags.iter().enumerate() {
        if f & FLAG_PAGE == 0 {
            continue;
        }
        let p = vals.page[kp];
        kp += 1;
        if p == 0 {
            continue;
        }
        let (s, rem) = (vals.size[i], vals.size_rem[kr]);
        kr += 1;
        if rem >= p || s.checked_mul(p).and_then(|x| x.checked_add(rem)).is_none() {
            return format!("size of {s} pages of {p} + {rem} is not a valid size");
        }
    }
    "an alloc's size is not valid".into()
}
