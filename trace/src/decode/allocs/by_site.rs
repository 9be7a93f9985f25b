//! 2.3+ allocs: flags, core counts and size units by call site
//! (SIZE_RECENT, FLAGS_NEW, CORES_NEW, SIZE_NEW): each alloc repeats its
//! site's previous flags or stores new ones, and names its size by its
//! place among the site's recent sizes.

use super::FlagCounts;
use crate::codec::{col, FLAG_CORES};
use crate::decode::buffer_columns::AllocColumns;
#[cfg(target_arch = "x86_64")]
use crate::decode::mtf::{mtf_u64_avx2, mtf_u64_avx2_recent};
use crate::decode::packed::column_values;
use crate::decode::scratch::ColumnValues;
use crate::decode::DecodeError;
use crate::recent_sizes::RecentSizes;
use crate::site_flags::SiteFlags;
use crate::varint::unzigzag;

/// 2.3: each alloc's size units from its place among the site's recent
/// sizes (SIZE_RECENT), or from SIZE_NEW when the site had not used it
/// lately; its flags and core count the site's previous alloc's when
/// SIZE_RECENT's bit 3 says so, else the next of FLAGS_NEW (and CORES_NEW
/// when the flags say cores). One pass: into `out.flags`, `out.num_cores`
/// and `out.size`.
pub(super) fn by_site(
    cols: &[&[u8]; col::COUNT],
    sites: u32,
    vals: &mut ColumnValues,
    out: &mut AllocColumns,
) -> Result<FlagCounts, DecodeError> {
    let places = cols[col::SIZE_RECENT as usize];
    let n = out.site.len();
    if places.len() != n {
        return Err(format!(
            "column size places holds {} allocs, the kind column {n}",
            places.len(),
        ));
    }
    let [n_new, n_stored, max_place] = place_counts(places);
    let max_place = max_place as u8;
    if max_place > RecentSizes::NEW {
        return Err(format!(
            "size place {max_place} is out of range (0 to {}, and bit 3)",
            RecentSizes::NEW
        ));
    }
    let stored = cols[col::FLAGS_NEW as usize];
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
    column_values(
        cols[col::SIZE_NEW as usize],
        n_new,
        "new size",
        &mut vals.size_new,
    )?;
    // Slack slots: every alloc reads a new size and every stored flags
    // byte a core count; a NEW place or flags with cores use them.
    vals.size_new.push(0);
    vals.cores_new.push(0);
    let (table, cache) = (&mut vals.site_flags, &mut vals.recent_sizes);
    // Every site is below `sites` (checked by `decode_allocs`).
    table.clear_sites_below(sites);
    cache.clear_sites_below(sites);
    let cols = SiteCols {
        places,
        sites: &out.site,
        flags_new: stored,
        cores_new: &vals.cores_new,
        size_new: &vals.size_new,
    };
    let rows = (
        &mut out.flags[..],
        &mut out.num_cores[..],
        &mut out.size[..],
    );
    #[cfg(target_arch = "x86_64")]
    let counts = if crate::decode::fast_cpu() {
        // SAFETY: the CPU has every feature `by_site_fast` is compiled
        // for, and `cols` is checked (see `SiteCols`); every site is below
        // `sites`, so below the slots of both tables when `sites` is.
        unsafe {
            if sites as usize <= RecentSizes::SLOTS {
                by_site_fast::<true>(cols, table, cache, rows)
            } else {
                by_site_fast::<false>(cols, table, cache, rows)
            }
        }
    } else {
        // SAFETY: `cols` is checked (see `SiteCols`).
        unsafe { by_site_loop(cols, table, cache, rows) }
    };
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: `cols` is checked (see `SiteCols`).
    let counts = unsafe { by_site_loop(cols, table, cache, rows) };
    vals.size_new.pop();
    vals.cores_new.pop();
    Ok(counts)
}

crate::decode::fast_cpu_dispatch!(
    /// How many SIZE_RECENT places are NEW, how many lack the repeat bit
    /// (bit 3, the flags'), and the largest place without that bit.
    fn place_counts => place_counts_any(places: &[u8]) -> [usize; 3]
);

/// (A loop the compiler vectorises: byte counters, summed every 255.)
#[inline(always)]
fn place_counts_any(places: &[u8]) -> [usize; 3] {
    let (mut n_new, mut n_stored, mut max_place) = (0usize, 0usize, 0u8);
    for chunk in places.chunks(255) {
        let (mut new, mut stored, mut max) = (0u8, 0u8, 0u8);
        for &p in chunk {
            let q = p & !SiteFlags::REPEAT;
            new += (q == RecentSizes::NEW) as u8;
            stored += (p & SiteFlags::REPEAT == 0) as u8;
            max = max.max(q);
        }
        n_new += new as usize;
        n_stored += stored as usize;
        max_place = max_place.max(max);
    }
    [n_new, n_stored, max_place as usize]
}

/// The columns `by_site` reads, checked: one place and site per alloc,
/// one stored flags byte per place without the repeat bit, one stored
/// core count per stored flags byte with cores, one new size per NEW
/// place; each with a slack slot.
#[derive(Clone, Copy)]
struct SiteCols<'a> {
    places: &'a [u8],
    sites: &'a [u32],
    flags_new: &'a [u8],
    cores_new: &'a [u64],
    size_new: &'a [u64],
}

// The sizes step tests NEW's bit alone (places below NEW have none of it)
// and reads a permutation row by the place with the repeat bit (rows 8-15
// repeat 0-7); a group of allocs is all repeats of recent sizes when its
// places' bits 2 and 3 are 0 and 1 each.
const _: () = assert!(RecentSizes::NEW == 4 && SiteFlags::REPEAT == 8);
// `NARROW` reads both tables by the site unmasked.
const _: () = assert!(SiteFlags::SLOTS == RecentSizes::SLOTS);

/// How many stored flags, core counts and new sizes `by_site`'s loops
/// have read.
#[derive(Clone, Copy, Default)]
struct Taken {
    flags: usize,
    cores: usize,
    sizes: usize,
}

/// Allocs per group in `by_site_fast`: the places of a group are one u64.
const GROUP: usize = 8;
/// Bit 3 (the repeat bit) and bit 2 (NEW's) of each of a group's places.
const REPEAT_BITS: u64 = u64::from_le_bytes([SiteFlags::REPEAT; GROUP]);
const NEW_BITS: u64 = u64::from_le_bytes([RecentSizes::NEW; GROUP]);

/// `by_site`'s loop where the CPU has AVX2, in groups of 8 allocs: in a
/// group whose every alloc repeats its site's flags and a recent size
/// (nearly every group: stored flags and new sizes are rare), each alloc
/// is a few loads, a lane permutation and stores, with no branch and no
/// column counter; any other group and the last allocs go alloc by alloc.
/// The flags and sizes tables are apart, so one pass over both decodes
/// what `by_site_loop`'s two do. `NARROW` only where every site is below
/// the slots of both tables, which are then read by the site unmasked.
///
/// # Safety
///
/// The CPU has AVX2; `cols` holds what `SiteCols` says (checked by
/// `by_site`); with `NARROW`, every site is below `RecentSizes::SLOTS`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi1,bmi2,popcnt,lzcnt")]
unsafe fn by_site_fast<const NARROW: bool>(
    cols: SiteCols,
    table: &mut SiteFlags,
    cache: &mut RecentSizes,
    (flags, cores, sizes): (&mut [u8], &mut [u32], &mut [u64]),
) -> FlagCounts {
    let mut taken = Taken::default();
    let whole = cols.places.len() / GROUP * GROUP;
    let mut i = 0;
    while i < whole {
        // SAFETY: the caller's (`# Safety`), for the allocs from `i` on.
        i += unsafe {
            repeat_groups::<NARROW>(
                (&cols.places[i..whole], &cols.sites[i..]),
                (table, cache),
                (&mut flags[i..], &mut cores[i..], &mut sizes[i..]),
            )
        };
        // The group at `i` (if any) stores flags or a new size.
        let end = (i + GROUP).min(whole);
        for j in i..end {
            // SAFETY: the caller's (`# Safety`).
            unsafe {
                one_alloc::<NARROW>(
                    (cols.places[j], cols.sites[j]),
                    cols,
                    (table, cache),
                    &mut taken,
                    (&mut flags[j], &mut cores[j], &mut sizes[j]),
                )
            };
        }
        i = end;
    }
    let rest = cols.places[whole..]
        .iter()
        .zip(&cols.sites[whole..])
        .zip(&mut flags[whole..])
        .zip(&mut cores[whole..])
        .zip(&mut sizes[whole..]);
    for ((((&p, &site), f), c), z) in rest {
        // SAFETY: the caller's (`# Safety`).
        unsafe { one_alloc::<NARROW>((p, site), cols, (table, cache), &mut taken, (f, c, z)) };
    }
    FlagCounts::of(flags)
}

/// The groups of 8 allocs from the first of `places` on whose every alloc
/// repeats its site's flags and a recent size, up to the first other
/// group: their flags, cores and sizes. How many allocs that is. A
/// function of its own: the loop holds only the arrays and the tables in
/// its registers (with the rest of `by_site_fast` around it, LLVM kept
/// them on the stack and reloaded them every alloc).
///
/// # Safety
///
/// The CPU has AVX2; with `NARROW`, every site is below
/// `RecentSizes::SLOTS`.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
#[target_feature(enable = "avx2,bmi1,bmi2,popcnt,lzcnt")]
unsafe fn repeat_groups<const NARROW: bool>(
    (places, sites): (&[u8], &[u32]),
    (table, cache): (&mut SiteFlags, &mut RecentSizes),
    (flags, cores, sizes): (&mut [u8], &mut [u32], &mut [u64]),
) -> usize {
    let groups = places
        .chunks_exact(GROUP)
        .zip(sites.chunks_exact(GROUP))
        .zip(flags.chunks_exact_mut(GROUP))
        .zip(cores.chunks_exact_mut(GROUP))
        .zip(sizes.chunks_exact_mut(GROUP));
    let mut done = 0;
    for ((((p8, s8), f8), c8), z8) in groups {
        let word = u64::from_le_bytes(p8.try_into().expect("a group is 8 places"));
        if word & (REPEAT_BITS | NEW_BITS) != REPEAT_BITS {
            break;
        }
        // The group's flags are one 8-byte store, not eight byte stores:
        // the loop is bound by its stores (four an alloc before).
        let mut flag_word = 0u64;
        for j in 0..GROUP {
            let site = s8[j];
            let (f, c) = if NARROW {
                // SAFETY: `NARROW`: every site is below the slots.
                unsafe { table.previous_of_narrow_site(site) }
            } else {
                table.previous(site as u64)
            };
            flag_word |= (f as u64) << (8 * j);
            c8[j] = c;
            let slot = if NARROW {
                // SAFETY: as above.
                unsafe { cache.slot_of_narrow_site(site) }
            } else {
                cache.slot_mut(site as u64)
            };
            // SAFETY: the CPU has AVX2; the place has the repeat bit and
            // not NEW's: 8 to 11.
            unsafe { store_front(&mut z8[j], mtf_u64_avx2_recent(slot, p8[j])) };
        }
        f8.copy_from_slice(&flag_word.to_le_bytes());
        done += GROUP;
    }
    done
}

/// One alloc of `by_site_fast` of any place: its flags and cores, stored
/// or its site's previous ones, and its size, recent or new.
///
/// # Safety
///
/// As `by_site_fast`'s; `taken` counts what the allocs before this one
/// read.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,bmi1,bmi2,popcnt,lzcnt")]
unsafe fn one_alloc<const NARROW: bool>(
    (p, site): (u8, u32),
    cols: SiteCols,
    (table, cache): (&mut SiteFlags, &mut RecentSizes),
    taken: &mut Taken,
    (flags, cores, size): (&mut u8, &mut u32, &mut u64),
) {
    // SAFETY: the caller's (`# Safety`).
    (*flags, *cores) = unsafe { flags_of(p, site as u64, cols, table, taken) };
    let slot = if NARROW {
        // SAFETY: `NARROW`: every site is below the slots (`# Safety`).
        unsafe { cache.slot_of_narrow_site(site) }
    } else {
        cache.slot_mut(site as u64)
    };
    let front = if p & RecentSizes::NEW != 0 {
        // SAFETY: the caller's (`# Safety`).
        let d = unsafe { new_size(cols, taken) };
        mtf_u64_avx2(slot, RecentSizes::NEW, d)
    } else {
        // SAFETY: the place is below 16 (a u8 at most NEW once its repeat
        // bit is masked, checked).
        unsafe { mtf_u64_avx2_recent(slot, p) }
    };
    store_front(size, front);
}

/// The flags and cores of an alloc at `site` with place `p`: its site's
/// previous ones when `p` has the repeat bit, else the next stored ones
/// (and their core count when they say cores), which become the site's.
///
/// # Safety
///
/// `cols` holds what `SiteCols` says; `taken` counts what the allocs
/// before this one read.
#[inline(always)]
unsafe fn flags_of(
    p: u8,
    site: u64,
    cols: SiteCols,
    table: &mut SiteFlags,
    taken: &mut Taken,
) -> (u8, u32) {
    if p & SiteFlags::REPEAT != 0 {
        return table.previous(site);
    }
    // Stored flags, and their cores when they say so (a slack slot past
    // the last: counted by the caller).
    debug_assert!(taken.flags < cols.flags_new.len());
    // SAFETY: `taken.flags` counts the places without the repeat bit
    // before this one, which has none: below their count,
    // `flags_new.len()` (`# Safety`).
    let f = unsafe { *cols.flags_new.get_unchecked(taken.flags) };
    taken.flags += 1;
    let has_cores = f & FLAG_CORES != 0;
    debug_assert!(taken.cores < cols.cores_new.len());
    // SAFETY: `taken.cores` counts the stored flags with cores before this
    // one, at most their count, `cores_new.len() - 1` (`# Safety`).
    let c = unsafe { *cols.cores_new.get_unchecked(taken.cores) } as u32
        & (has_cores as u32).wrapping_neg();
    taken.cores += has_cores as usize;
    table.set(site, f, c);
    (f, c)
}

/// The next new size's change from its site's most recent size.
///
/// # Safety
///
/// `cols` holds what `SiteCols` says; `taken.sizes` counts the NEW places
/// before this alloc's, which is NEW.
#[inline(always)]
unsafe fn new_size(cols: SiteCols, taken: &mut Taken) -> u64 {
    debug_assert!(taken.sizes < cols.size_new.len());
    // SAFETY: `taken.sizes` is below the NEW places' count,
    // `size_new.len() - 1` (`# Safety`).
    let d = unzigzag(unsafe { *cols.size_new.get_unchecked(taken.sizes) }) as u64;
    taken.sizes += 1;
    d
}

/// The loop of `by_site` on CPUs without AVX2: flags, cores and size
/// units of every alloc, and what its flags say. Two passes, flags then
/// sizes: one loop over both keeps too many arrays in flight for the
/// registers.
///
/// # Safety
///
/// `cols` holds what `SiteCols` says (checked by `by_site`): the stored
/// flags, core counts and new sizes are read without a bounds check each
/// (a check each was a sixth of the loop).
#[inline(always)]
unsafe fn by_site_loop(
    cols: SiteCols,
    table: &mut SiteFlags,
    cache: &mut RecentSizes,
    (flags, cores, sizes): (&mut [u8], &mut [u32], &mut [u64]),
) -> FlagCounts {
    let mut taken = Taken::default();
    let rows = cols
        .places
        .iter()
        .zip(cols.sites)
        .zip(flags.iter_mut())
        .zip(cores.iter_mut());
    for (((&p, &site), flags), cores) in rows {
        // SAFETY: the caller's (`# Safety`).
        (*flags, *cores) = unsafe { flags_of(p, site as u64, cols, table, &mut taken) };
    }
    for ((&p, &site), size) in cols.places.iter().zip(cols.sites).zip(sizes.iter_mut()) {
        let slot = cache.slot_mut(site as u64);
        // Without the repeat bit a place is at most NEW (checked), so
        // NEW's bit says NEW.
        *size = if p & RecentSizes::NEW != 0 {
            // SAFETY: the caller's (`# Safety`).
            let d = unsafe { new_size(cols, &mut taken) };
            crate::decode::mtf::mtf_u64(slot, RecentSizes::NEW, d)
        } else {
            crate::decode::mtf::mtf_u64(slot, p & !SiteFlags::REPEAT, 0)
        };
    }
    FlagCounts::of(flags)
}

/// `*size` = the low 8 bytes of `front`, stored from the vector register
/// (both branches so: a move to a general register before the store was
/// an instruction more per alloc).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn store_front(size: &mut u64, front: std::arch::x86_64::__m128i) {
    // SAFETY: `size` is 8 writable bytes; `_mm_storel_epi64` writes 8
    // bytes, unaligned, and needs only SSE2, in x86_64's baseline.
    unsafe {
        std::arch::x86_64::_mm_storel_epi64(
            (size as *mut u64).cast::<std::arch::x86_64::__m128i>(),
            front,
        )
    }
}

#[cfg(test)]
mod tests;
