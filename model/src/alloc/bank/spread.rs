//! The arithmetic of a request's spread over the banks: tt-metal's
//! per-bank size, divisions without a division, and the last page size's
//! figures kept for the next request.

use crate::alloc::free_list::FreeList;

/// tt-metal's `calculate_bank_size_spread`:
/// `ceil(num_pages / num_banks) * round_up(page_size, alignment)` with
/// `num_pages = size / page_size` (rounded up here, so a size that is not a
/// whole number of pages still gets its last page). Returns `(per_bank,
/// aligned_size)` where `aligned_size = num_pages * aligned_page` is the size
/// tt-metal passes to the bank manager and prints when it runs out of memory.
///
/// A page size of 0 or `None` is unknown (the compat protocol never sends
/// one, nor does a client that does not know it): the buffer is taken to
/// spread evenly over all banks, `per_bank = round_up(ceil(size / banks),
/// alignment)` — the same as pages of `alignment` bytes. Taking it as one
/// page stored whole in every bank would need `banks` times its size and
/// report out-of-memory that never happened.
#[inline]
pub fn size_per_bank(
    size: u64,
    page_size: Option<u64>,
    num_banks: u32,
    alignment: u64,
) -> (u64, u64) {
    let page = match page_size {
        Some(p) if p > 0 => p,
        _ => alignment.max(1),
    };
    if page == 0 {
        return (0, 0);
    }
    let num_pages = div_ceil(size, page);
    let alignment = alignment.max(1);
    let aligned_page = div_ceil(page, alignment).saturating_mul(alignment);
    let pages_per_bank = div_ceil(num_pages, num_banks.max(1) as u64);
    (
        pages_per_bank.saturating_mul(aligned_page),
        num_pages.saturating_mul(aligned_page),
    )
}

/// `ceil(a / b)` for `b > 0`, avoiding a 64-bit division where it can
/// (powers of two, or operands that fit 32 bits): this sits on every
/// allocation's path.
#[inline(always)]
pub(super) fn div_ceil(a: u64, b: u64) -> u64 {
    if b.is_power_of_two() {
        let sh = b.trailing_zeros();
        (a >> sh) + u64::from(a & (b - 1) != 0)
    } else if (a | b) <= u32::MAX as u64 {
        (a as u32).div_ceil(b as u32) as u64
    } else {
        a.div_ceil(b)
    }
}

/// `RECIPROCALS[d] = ceil(2^64 / d)` for `2 <= d < 256`, and `2^64 - 1`
/// for `d` of 0 or 1 (see [`div_ceil_by`]): bank and shard counts are
/// small, and a 64-bit division on every allocation's path costs more than
/// the rest of the size arithmetic together.
const RECIPROCALS: [u64; 256] = {
    let mut t = [u64::MAX; 256];
    let mut d = 2;
    while d < 256 {
        t[d] = u64::MAX / d as u64 + 1;
        d += 1;
    }
    t
};

/// `ceil(a / max(d, 1))`, by a multiplication when `a < 2^32` and `d <
/// 256` (always, in practice): with `m = ceil(2^64 / d)`, `q = (a * m) >>
/// 64` is `floor(a / d)` exactly for `a, d < 2^32` (Lemire, Kaser and
/// Kurz, "Faster remainder by direct computation", 2019), and `q + (q * d
/// != a)` rounds it up. For `d` of 0 or 1, `m = 2^64 - 1` gives `q = a -
/// 1` (0 for `a = 0`), which the same rounding turns into `a`.
#[inline(always)]
pub(super) fn div_ceil_by(a: u64, d: u32) -> u64 {
    match RECIPROCALS.get(d as usize) {
        Some(&m) if a <= u64::from(u32::MAX) => {
            let q = ((u128::from(a) * u128::from(m)) >> 64) as u64;
            q + u64::from(q * u64::from(d) != a)
        }
        _ => div_ceil(a, u64::from(d.max(1))),
    }
}

/// The page size of the last request, with what the spread derives from
/// it: a replay asks for tile pages again and again, so the page's
/// rounding is worked out when it changes, not per request. Keyed by the
/// request's field as given (an unknown page as 0), so one compare tells
/// whether it still holds. (Not the shard count: sharded requests switch
/// between a few shard counts all the time, and a shard count divides
/// as cheaply as it would be looked up: a shift for a power of two.)
#[derive(Clone, Copy, Debug)]
pub(super) struct RecentPage {
    /// The request's page size (0: unknown).
    pub(super) page_key: u64,
    /// The page size (unknown taken as the alignment).
    pub(super) page: u64,
    /// `log2(page)` when the page is a power of two and a whole number of
    /// alignments (pages count by a shift); else [`RecentPage::NO_SHIFT`].
    pub(super) page_shift: u32,
    /// The page is a power of two, a whole number of the page alignment
    /// and of the free list's alignment, and at least the free list's
    /// minimum allocation: pages count by a shift, and a nonzero spread
    /// of them is what the free list reserves as it is (no rounding by
    /// [`FreeList::alloc_size`]).
    pub(super) tile: bool,
    /// The page rounded up to the alignment.
    pub(super) aligned_page: u64,
    /// A tile page in every bank: `page * max(num_banks, 1)`.
    pub(super) row: u64,
    /// `ceil(2^64 / row)`: an interleaved request's rows by a multiplication.
    pub(super) row_recip: u64,
    /// The largest size whose rows the reciprocal counts exactly:
    /// `u32::MAX` for a tile page whose row is below 2^32 (Lemire's bound:
    /// both operands under 2^32), else 0 (no size qualifies).
    pub(super) row_max_size: u64,
}

impl RecentPage {
    pub(super) const NO_SHIFT: u32 = u32::MAX;

    #[cold]
    #[inline(never)]
    pub(super) fn new(
        page_key: u64,
        align: u64,
        num_banks: u32,
        free_list: &FreeList,
    ) -> RecentPage {
        let page = if page_key > 0 { page_key } else { align };
        let aligned_page = div_ceil(page, align).saturating_mul(align);
        let page_shift = if page.is_power_of_two() && align.is_power_of_two() && page >= align {
            page.trailing_zeros()
        } else {
            RecentPage::NO_SHIFT
        };
        let tile = page_shift != RecentPage::NO_SHIFT
            && free_list.alloc_size(page) == page
            && page.is_multiple_of(free_list.alignment());
        let row = page.saturating_mul(u64::from(num_banks.max(1)));
        let row_fits = tile && (2..=u64::from(u32::MAX)).contains(&row);
        RecentPage {
            page_key,
            page,
            page_shift,
            tile,
            aligned_page,
            row,
            row_recip: if row_fits { u64::MAX / row + 1 } else { 0 },
            row_max_size: if row_fits { u64::from(u32::MAX) } else { 0 },
        }
    }
}
