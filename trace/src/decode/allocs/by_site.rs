//! 2.3+ allocs: flags, core counts and size units by call site
//! (SIZE_RECENT, FLAGS_NEW, CORES_NEW, SIZE_NEW): each alloc repeats its
//! site's previous flags or stores new ones, and names its size by its
//! place among the site's recent sizes.

use super::FlagCounts;
use crate::codec::{col, FLAG_CORES};
use crate::decode::buffer_columns::AllocColumns;
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
        // `sites`, so below the size slots when `sites` is.
        unsafe {
            if sites as usize <= RecentSizes::SLOTS {
                by_site_fast::<true>(cols, table, cache, rows)
            } else {
                by_site_fast::<false>(cols, table, cache, rows)
            }
        }
    } else {
        // SAFETY: `cols` is checked (see `SiteCols`).
        unsafe { by_site_loop::<false, false>(cols, table, cache, rows) }
    };
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: `cols` is checked (see `SiteCols`).
    let counts = unsafe { by_site_loop::<false, false>(cols, table, cache, rows) };
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

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi1,bmi2,popcnt,lzcnt")]
unsafe fn by_site_fast<const NARROW: bool>(
    cols: SiteCols,
    table: &mut SiteFlags,
    cache: &mut RecentSizes,
    rows: (&mut [u8], &mut [u32], &mut [u64]),
) -> FlagCounts {
    // SAFETY: the caller upholds `by_site_loop`'s contract.
    unsafe { by_site_loop::<true, NARROW>(cols, table, cache, rows) }
}

// The sizes pass tests NEW's bit alone (places below NEW have none of it)
// and reads a permutation row by the place with the repeat bit (rows 8-15
// repeat 0-7).
const _: () = assert!(RecentSizes::NEW == 4 && SiteFlags::REPEAT == 8);

/// The loop of `by_site`: flags, cores and size units of every alloc, and
/// what its flags say; `SIMD` only where the CPU has AVX2; `NARROW` only
/// where every site is below the size slots (`RecentSizes::SLOTS`), which
/// are then read by the site unmasked. Two passes,
/// flags then sizes: one loop over both keeps too many arrays in flight
/// for the registers.
///
/// # Safety
///
/// `cols` holds what `SiteCols` says (checked by `by_site`): the stored
/// flags, core counts and new sizes are read without a bounds check each
/// (a check each was a sixth of the loop); with `NARROW`, every site is
/// below `RecentSizes::SLOTS`.
#[inline(always)]
unsafe fn by_site_loop<const SIMD: bool, const NARROW: bool>(
    cols: SiteCols,
    table: &mut SiteFlags,
    cache: &mut RecentSizes,
    (flags, cores, sizes): (&mut [u8], &mut [u32], &mut [u64]),
) -> FlagCounts {
    let (mut ks, mut kc) = (0usize, 0usize);
    let rows = cols
        .places
        .iter()
        .zip(cols.sites)
        .zip(flags.iter_mut())
        .zip(cores.iter_mut());
    for (((&p, &site), flags), cores) in rows {
        let site = site as u64;
        let (f, c) = if p & SiteFlags::REPEAT != 0 {
            table.previous(site)
        } else {
            // Stored flags, and their cores when they say so (a slack
            // slot past the last: counted by the caller).
            debug_assert!(ks < cols.flags_new.len());
            // SAFETY: `ks` counts the places without the repeat bit before
            // this one, which has none: below their count,
            // `flags_new.len()` (`# Safety`).
            let f = unsafe { *cols.flags_new.get_unchecked(ks) };
            ks += 1;
            let has_cores = f & FLAG_CORES != 0;
            debug_assert!(kc < cols.cores_new.len());
            // SAFETY: `kc` counts the stored flags with cores before this
            // one, at most their count, `cores_new.len() - 1` (`# Safety`).
            let c = unsafe { *cols.cores_new.get_unchecked(kc) } as u32
                & (has_cores as u32).wrapping_neg();
            kc += has_cores as usize;
            table.set(site, f, c);
            (f, c)
        };
        *flags = f;
        *cores = c;
    }
    let mut kn = 0usize;
    for ((&p, &site), size) in cols.places.iter().zip(cols.sites).zip(sizes.iter_mut()) {
        // A branch: most allocs repeat a recent size, which only moves
        // the site's sizes (no new size to read, unzigzag and blend in).
        // Without the repeat bit a place is at most NEW (checked), so
        // NEW's bit says NEW: no mask of the repeat bit first.
        let slot = if NARROW {
            // SAFETY: `NARROW`: every site is below the slots (`# Safety`).
            unsafe { cache.slot_of_narrow_site(site) }
        } else {
            cache.slot_mut(site as u64)
        };
        if p & RecentSizes::NEW != 0 {
            // `kn` counts the NEW places before this alloc.
            debug_assert!(kn < cols.size_new.len());
            // SAFETY: `kn` is below the NEW places' count,
            // `size_new.len() - 1` (`# Safety`).
            let d = unzigzag(unsafe { *cols.size_new.get_unchecked(kn) }) as u64;
            kn += 1;
            let q = RecentSizes::NEW;
            #[cfg(target_arch = "x86_64")]
            if SIMD {
                // SAFETY: `SIMD` is set only where the CPU has AVX2.
                unsafe { store_front(size, crate::decode::mtf::mtf_u64_avx2(slot, q, d)) }
            } else {
                *size = crate::decode::mtf::mtf_u64(slot, q, d);
            }
            #[cfg(not(target_arch = "x86_64"))]
            {
                *size = crate::decode::mtf::mtf_u64(slot, q, d);
            }
        } else {
            #[cfg(target_arch = "x86_64")]
            if SIMD {
                // SAFETY: `SIMD` is set only where the CPU has AVX2; `p`
                // is below 16 (a u8 at most NEW once its repeat bit is
                // masked, checked).
                unsafe { store_front(size, crate::decode::mtf::mtf_u64_avx2_recent(slot, p)) }
            } else {
                *size = crate::decode::mtf::mtf_u64(slot, p & !SiteFlags::REPEAT, 0);
            }
            #[cfg(not(target_arch = "x86_64"))]
            {
                *size = crate::decode::mtf::mtf_u64(slot, p & !SiteFlags::REPEAT, 0);
            }
        }
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
