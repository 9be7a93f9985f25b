//! BufferAlloc events: flags, sizes, addresses and the optional fields.

use super::block::coded_as;
use super::buffer_columns::AllocColumns;
use super::packed::{all_below, all_below_u32, column_deltas, column_values, constant_of};
use super::scratch::ColumnValues;
use super::{DecodeError, RefLimits};
use crate::codec::{col, AddrHistory, ColumnLayout, SiteHistory, FLAG_ADDR, FLAG_CORES, FLAG_PAGE};
use crate::varint::unzigzag;
use by_site::by_site;
use paged::{paged, PagedRows, Pages, ADDR_TABLE};
use ttalloc_model::BufferType;

mod by_site;
mod paged;

/// Decodes the block's allocs into `out`, one array per field (`devices`:
/// the device of each, handed out already, which changes places with
/// `out`'s array; 2.4 blocks have their sites in
/// `out.site` already, decoded by op name).
pub(super) fn decode_allocs(
    cols: &[&[u8]; col::COUNT],
    devices: &mut Vec<u32>,
    limits: RefLimits,
    vals: &mut ColumnValues,
    out: &mut AllocColumns,
) -> Result<(), DecodeError> {
    let n = devices.len();
    out.clear();
    if cols[col::SITE_BY_NAME as usize].is_empty() {
        column_values(
            cols[col::ALLOC_SITE as usize],
            n,
            "alloc site",
            &mut vals.alloc_site,
        )?;
        all_below(&vals.alloc_site, limits.sites, "site")?;
        out.site.clear();
        out.site.extend(vals.alloc_site.iter().map(|&s| s as u32));
    } else {
        debug_assert_eq!(out.site.len(), n);
        all_below_u32(&out.site, limits.sites, "site")?;
    }
    // Flags, core counts and size units, overwritten whole (only growth is
    // zeroed); sizes are made of the units below.
    super::overwrite_len(&mut out.flags, n);
    super::overwrite_len(&mut out.num_cores, n);
    super::overwrite_len(&mut out.size, n);
    let size_codings = [
        (ColumnLayout::V20, col::SIZE),
        (ColumnLayout::V22, col::SIZE_BY_SITE),
        (ColumnLayout::V23, col::SIZE_RECENT),
    ];
    let size_layout = coded_as(cols, &size_codings, "size")?;
    // How many allocs carry each optional field, and the largest type code.
    let counts = if size_layout == ColumnLayout::V23 {
        // 2.3 blocks store flags and cores only where they differ from the
        // site's previous alloc's.
        if !cols[col::ALLOC_FLAGS as usize].is_empty() || !cols[col::CORES as usize].is_empty() {
            return Err("block holds flags in more than one coding".into());
        }
        by_site(cols, limits.sites, vals, out)?
    } else {
        if !cols[col::FLAGS_NEW as usize].is_empty() || !cols[col::CORES_NEW as usize].is_empty() {
            return Err("block holds new flags without their size places".into());
        }
        if !cols[col::SIZE_NEW as usize].is_empty() {
            return Err("block holds new sizes without their size places".into());
        }
        stored_whole(cols, size_layout, vals, out)?;
        FlagCounts::of(&out.flags)
    };
    let FlagCounts {
        n_addr,
        n_page,
        max_bt,
    } = counts;
    if BufferType::from_u8(max_bt).is_none() {
        return Err(format!("buffer type code {max_bt} is out of range"));
    }
    // When every alloc has a page size and an address (the common case)
    // page sizes are decoded straight into the output.
    let every = n_page == n && n_addr == n;
    // A page size every alloc shares (a near-constant column without
    // exceptions: nearly every block) is filled into the output but not
    // read back: the passes below take the value.
    let page_common = if every {
        constant_of(cols[col::PAGE as usize], n, "page size")
    } else {
        None
    };
    // (`None` until the block's page sizes are all written below.)
    let filled_with = out.page_fill.take();
    // Every page size > 0 comes with a remainder.
    let n_rem = if let Some(p) = page_common {
        if filled_with == Some(p) {
            // The previous block's copies of the same value stay: only
            // entries past them are written.
            out.page_size.truncate(n);
        } else {
            out.page_size.clear();
            super::packed::reserve_exact(&mut out.page_size, n);
        }
        out.page_size.resize(n, p);
        if p > 0 {
            n
        } else {
            0
        }
    } else {
        let page = if every {
            &mut out.page_size
        } else {
            &mut vals.page
        };
        column_values(cols[col::PAGE as usize], n_page, "page size", page)?;
        count_positive(page)
    };
    let paged_rows = every && n_rem == n;
    // `paged` takes the address deltas unzigzagged (in the gather's pass);
    // `any_fields` the values as stored.
    let addr = cols[col::ADDR as usize];
    if paged_rows {
        column_deltas(addr, n_addr, "address", &mut vals.addr)?;
    } else {
        column_values(addr, n_addr, "address", &mut vals.addr)?;
    }
    // Where every alloc is paged (the common case) and the remainder
    // column is of width 0 (sizes of whole pages), the remainders are not
    // unpacked: the loop adds none (a block's worth of zeros was written
    // and read back otherwise).
    let rem_zero = paged_rows && n_rem > 0 && cols[col::SIZE_REM as usize] == [0u8];
    if !rem_zero {
        column_values(
            cols[col::SIZE_REM as usize],
            n_rem,
            "size remainder",
            &mut vals.size_rem,
        )?;
    }
    vals.addr_slots.clear();
    vals.addr_slots.resize(ADDR_TABLE, 0);
    // The arrays every alloc has: copied whole, or overwritten whole below
    // (only growth is zeroed).
    // The devices and buffer ids change places with the output's arrays
    // (the scratch ones are overwritten whole by the next block).
    std::mem::swap(&mut out.device, devices);
    std::mem::swap(&mut out.buffer, &mut vals.alloc_buf);
    out.buffer.truncate(n);
    super::overwrite_len(&mut out.address, n);
    let bad_size = if paged_rows {
        let rows = PagedRows {
            flags: &out.flags,
            devices: &out.device,
            pages: match page_common {
                Some(p) => Pages::All(p),
                None => Pages::Each(&out.page_size),
            },
            size_rem: (!rem_zero).then_some(&vals.size_rem[..]),
        };
        let slots = <&mut [u64; ADDR_TABLE]>::try_from(&mut vals.addr_slots[..])
            .expect("the table was made ADDR_TABLE long above");
        let bad = paged(rows, &vals.addr, slots, &mut out.size, &mut out.address);
        if bad {
            // (`first_bad_size` reads the page sizes there.)
            std::mem::swap(&mut vals.page, &mut out.page_size);
        }
        bad
    } else {
        if every {
            std::mem::swap(&mut vals.page, &mut out.page_size);
        }
        super::overwrite_len(&mut out.page_size, n);
        any_fields(vals, out)
    };
    if bad_size {
        // The loop overwrote the units: decode them again to name the
        // first bad size.
        if size_layout == ColumnLayout::V23 {
            by_site(cols, limits.sites, vals, out)?;
        } else {
            stored_whole(cols, size_layout, vals, out)?;
        }
        if rem_zero {
            column_values(
                cols[col::SIZE_REM as usize],
                n_rem,
                "size remainder",
                &mut vals.size_rem,
            )?;
        }
        return Err(first_bad_size(out, vals));
    }
    crate::ext::decode_alloc_ext(cols[col::ALLOC_EXT as usize], n, &mut out.ext, limits)?;
    out.filled(n);
    if paged_rows {
        // `out.page_size` holds the shared value's copies, written above
        // (the rows did not write it; the other path does).
        out.page_fill = page_common;
    }
    Ok(())
}

/// The sizes (from units, page sizes and remainders) and addresses of a
/// block whose allocs may lack a page size or an address (`vals.page`
/// holds the page sizes present): into `out.size` (units in),
/// `out.address` and `out.page_size`. Whether a size overflowed or a
/// remainder is not below its page size.
fn any_fields(vals: &mut ColumnValues, out: &mut AllocColumns) -> bool {
    // Slack slots: optional fields are read for every alloc, used when present.
    vals.page.push(0);
    vals.addr.push(0);
    vals.size_rem.push(0);
    // Sizes are checked by a flag the loop accumulates (no branch per
    // alloc); the error names the first bad one.
    let mut bad_size = false;
    let (mut kp, mut ka, mut kr) = (0usize, 0usize, 0usize);
    let (page, addr, size_rem) = (&vals.page[..], &vals.addr[..], &vals.size_rem[..]);
    let slots = &mut vals.addr_slots[..];
    let rows = out
        .flags
        .iter()
        .zip(&out.device)
        .zip(out.size.iter_mut())
        .zip(out.address.iter_mut())
        .zip(out.page_size.iter_mut());
    for ((((&f, &d), size), address), page_size) in rows {
        let bt = f & 7;
        let has_page = f & FLAG_PAGE != 0;
        let has_addr = f & FLAG_ADDR != 0;
        // Absent fields read the next present one (or the slack slot) and
        // keep 0: `kp`, `ka` and `kr` count the present ones before this
        // alloc, at most the counts the columns were decoded with.
        let p = page[kp] & (has_page as u64).wrapping_neg();
        kp += has_page as usize;
        *page_size = p;
        // A page size > 0 makes the stored size a page count with a remainder.
        let paged = p > 0;
        let rem = size_rem[kr] & (paged as u64).wrapping_neg();
        kr += paged as usize;
        let units = *size;
        let (whole, o1) = units.overflowing_mul(p.max(1));
        let (total, o2) = whole.overflowing_add(rem);
        bad_size |= paged & (o1 | o2 | (rem >= p));
        *size = total;
        let slot = &mut slots[AddrHistory::index(d, bt)];
        let a = slot.wrapping_add(unzigzag(addr[ka]) as u64);
        if has_addr {
            *slot = a;
        }
        *address = a & (has_addr as u64).wrapping_neg();
        ka += has_addr as usize;
    }
    vals.page.pop();
    vals.addr.pop();
    vals.size_rem.pop();
    bad_size
}

super::fast_cpu_dispatch!(
    /// How many values are above 0.
    fn count_positive => count_positive_any(values: &[u64]) -> usize
);

#[inline(always)]
fn count_positive_any(values: &[u64]) -> usize {
    values.iter().map(|&v| (v > 0) as usize).sum()
}

/// 2.0–2.2: flags in ALLOC_FLAGS, core counts in CORES, size units in
/// SIZE (2.0) or as a change from the site's previous size (SIZE_BY_SITE,
/// 2.2): into `out.flags`, `out.num_cores` and `out.size`.
fn stored_whole(
    cols: &[&[u8]; col::COUNT],
    layout: ColumnLayout,
    vals: &mut ColumnValues,
    out: &mut AllocColumns,
) -> Result<(), DecodeError> {
    let n = out.site.len();
    let flags = cols[col::ALLOC_FLAGS as usize];
    if flags.len() != n {
        return Err(format!(
            "alloc flags hold {} allocs, the kind column {n}",
            flags.len()
        ));
    }
    out.flags.copy_from_slice(flags);
    let n_cores = flags.iter().filter(|&&f| f & FLAG_CORES != 0).count();
    column_values(cols[col::CORES as usize], n_cores, "cores", &mut vals.cores)?;
    if vals.cores.iter().any(|&c| c > u32::MAX as u64) {
        return Err("column cores holds a value above 2^32 - 1".into());
    }
    vals.cores.push(0);
    let mut kc = 0usize;
    for (&f, c) in flags.iter().zip(out.num_cores.iter_mut()) {
        let has = f & FLAG_CORES != 0;
        // `kc` counts the allocs with cores before this one (slack slot last).
        *c = vals.cores[kc] as u32 & (has as u32).wrapping_neg();
        kc += has as usize;
    }
    let size_col = if layout == ColumnLayout::V22 {
        col::SIZE_BY_SITE
    } else {
        col::SIZE
    };
    column_values(cols[size_col as usize], n, "size", &mut vals.size)?;
    if layout == ColumnLayout::V22 {
        // 2.2: a delta against the previous size of the same site.
        let prev = &mut vals.prev_size.slots;
        prev.fill(0);
        for (v, &site) in vals.size.iter_mut().zip(&out.site) {
            let slot = &mut prev[SiteHistory::index(site as u64)];
            *slot = slot.wrapping_add(unzigzag(*v) as u64);
            *v = *slot;
        }
    }
    out.size.copy_from_slice(&vals.size);
    Ok(())
}

/// How many allocs carry an address and a page size, and their largest
/// buffer type code.
#[derive(Clone, Copy, Default)]
struct FlagCounts {
    n_addr: usize,
    n_page: usize,
    max_bt: u8,
}

impl FlagCounts {
    /// (A loop the compiler vectorises: byte counters, summed every 255.)
    #[inline(always)]
    fn of(flags: &[u8]) -> FlagCounts {
        let mut c = FlagCounts::default();
        for chunk in flags.chunks(255) {
            let (mut a, mut p, mut bt) = (0u8, 0u8, 0u8);
            for &f in chunk {
                a += (f >> 5) & 1;
                p += (f >> 6) & 1;
                bt = bt.max(f & 7);
            }
            c.n_addr += a as usize;
            c.n_page += p as usize;
            c.max_bt = c.max_bt.max(bt);
        }
        c
    }
}

/// The error for the first alloc whose pages, page size and remainder do
/// not make a size (`out.size` holds the units again).
#[cold]
fn first_bad_size(out: &AllocColumns, vals: &ColumnValues) -> DecodeError {
    let (mut kp, mut kr) = (0usize, 0usize);
    for (i, &f) in out.flags.iter().enumerate() {
        if f & FLAG_PAGE == 0 {
            continue;
        }
        let p = vals.page[kp];
        kp += 1;
        if p == 0 {
            continue;
        }
        let (s, rem) = (out.size[i], vals.size_rem[kr]);
        kr += 1;
        if rem >= p || s.checked_mul(p).and_then(|x| x.checked_add(rem)).is_none() {
            return format!("size of {s} pages of {p} + {rem} is not a valid size");
        }
    }
    "an alloc's size is not valid".into()
}
