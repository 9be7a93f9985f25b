//! tt-metal's `BankManager`: one free list shared by every bank of a buffer
//! type (lockstep — a buffer has the same address in every bank), the
//! per-bank size arithmetic, statistics and the block table.

use super::error::{ConfigError, OutOfMemory};
use super::free_list::{BlockRef, FreeList, Span};
use crate::event::BufferType;

/// Where a buffer landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Placement {
    /// The address in every bank (lockstep).
    pub address: u64,
    /// Bytes reserved in each bank (after the free list's rounding).
    pub per_bank: u64,
    /// Banks (or shards) the buffer spreads over.
    pub num_banks: u32,
}

/// A bank manager's statistics (tt-metal's `Statistics`), per bank.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Statistics {
    pub total_allocatable: u64,
    pub allocated: u64,
    pub free: u64,
    pub largest_free: u64,
    /// Lowest address of a largest free block (tt-metal lists them all).
    pub largest_free_address: Option<u64>,
    pub num_allocated_blocks: usize,
    pub num_free_blocks: usize,
}

impl Statistics {
    /// Free bytes that are not in the largest free block: 0 means free memory
    /// is one block; close to `free` means it is scattered.
    pub fn fragmented_bytes(&self) -> u64 {
        self.free - self.largest_free
    }

    /// `1 - largest_free / free` (0 when nothing is free).
    pub fn fragmentation(&self) -> f64 {
        if self.free == 0 {
            0.0
        } else {
            1.0 - self.largest_free as f64 / self.free as f64
        }
    }
}

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
fn div_ceil(a: u64, b: u64) -> u64 {
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
fn div_ceil_by(a: u64, d: u32) -> u64 {
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
struct RecentPage {
    /// The request's page size (0: unknown).
    page_key: u64,
    /// The page size (unknown taken as the alignment).
    page: u64,
    /// `log2(page)` when the page is a power of two and a whole number of
    /// alignments (pages count by a shift); else [`RecentPage::NO_SHIFT`].
    page_shift: u32,
    /// The page rounded up to the alignment.
    aligned_page: u64,
}

impl RecentPage {
    const NO_SHIFT: u32 = u32::MAX;
    /// Matches no request (a page of `u64::MAX` B); worked out at the first.
    const NONE: RecentPage = RecentPage {
        page_key: u64::MAX,
        page: 1,
        page_shift: RecentPage::NO_SHIFT,
        aligned_page: 1,
    };

    #[cold]
    #[inline(never)]
    fn new(page_key: u64, align: u64) -> RecentPage {
        let page = if page_key > 0 { page_key } else { align };
        RecentPage {
            page_key,
            page,
            page_shift: if page.is_power_of_two() && align.is_power_of_two() && page >= align {
                page.trailing_zeros()
            } else {
                RecentPage::NO_SHIFT
            },
            aligned_page: div_ceil(page, align).saturating_mul(align),
        }
    }
}

/// One buffer type's banks.
#[derive(Clone, Debug)]
pub struct BankManager {
    /// See [`RecentPage`]; only [`BankManager::place`] uses it.
    recent: RecentPage,
    buffer_type: BufferType,
    num_banks: u32,
    /// Page alignment of this buffer type (`alignment_bytes_`).
    page_alignment: u64,
    free_list: FreeList,
}

impl BankManager {
    /// `num_banks` banks whose allocatable part is `[base, base + bank_size)`.
    /// `page_alignment` rounds pages (DRAM or L1 alignment);
    /// `free_list_alignment` rounds what the free list reserves (tt-metal
    /// builds every bank manager's free list with the DRAM alignment).
    pub fn new(
        buffer_type: BufferType,
        num_banks: u32,
        base: u64,
        bank_size: u64,
        page_alignment: u64,
        free_list_alignment: u64,
    ) -> Result<BankManager, ConfigError> {
        if page_alignment == 0 {
            return Err(ConfigError::new(format!(
                "{buffer_type} alignment must be at least 1 B"
            )));
        }
        let free_list = FreeList::new(base, bank_size, free_list_alignment, free_list_alignment)
            .map_err(|e| ConfigError::new(format!("{buffer_type}: {}", e.message)))?;
        Ok(BankManager {
            recent: RecentPage::NONE,
            buffer_type,
            num_banks,
            page_alignment,
            free_list,
        })
    }

    pub fn buffer_type(&self) -> BufferType {
        self.buffer_type
    }
    pub fn num_banks(&self) -> u32 {
        self.num_banks
    }
    /// The allocatable size of one bank (tt-metal's `bank_size()`).
    pub fn bank_size(&self) -> u64 {
        self.free_list.size()
    }
    pub fn base(&self) -> u64 {
        self.free_list.base()
    }
    pub fn page_alignment(&self) -> u64 {
        self.page_alignment
    }
    pub fn free_list(&self) -> &FreeList {
        &self.free_list
    }
    pub(crate) fn free_list_mut(&mut self) -> &mut FreeList {
        &mut self.free_list
    }

    /// Banks a buffer spreads over: the shard count for sharded buffers,
    /// every bank otherwise.
    pub fn banks_for(&self, num_shards: Option<u32>) -> u32 {
        match num_shards {
            Some(n) if n > 0 => n,
            _ => self.num_banks,
        }
    }

    /// `(per_bank, aligned_size, banks)` for a request.
    #[inline(always)]
    pub fn spread(
        &self,
        size: u64,
        page_size: Option<u64>,
        num_shards: Option<u32>,
    ) -> (u64, u64, u32) {
        match num_shards {
            Some(n) if n > 0 => {
                let (per_bank, aligned) = size_per_bank(size, page_size, n, self.page_alignment);
                (per_bank, aligned, n)
            }
            _ => {
                // `size_per_bank` over every bank, dividing by the bank
                // count without a division (`page_alignment` is at least 1).
                let page = match page_size {
                    Some(p) if p > 0 => p,
                    _ => self.page_alignment,
                };
                let align = self.page_alignment;
                let (num_pages, aligned_page) =
                    if page.is_power_of_two() && align.is_power_of_two() && page >= align {
                        // Tile pages: a whole number of alignments, counted by a shift.
                        let sh = page.trailing_zeros();
                        ((size >> sh) + u64::from(size & (page - 1) != 0), page)
                    } else {
                        (
                            div_ceil(size, page),
                            div_ceil(page, align).saturating_mul(align),
                        )
                    };
                let pages_per_bank = div_ceil_by(num_pages, self.num_banks);
                (
                    pages_per_bank.saturating_mul(aligned_page),
                    num_pages.saturating_mul(aligned_page),
                    self.num_banks,
                )
            }
        }
    }

    fn out_of_memory(
        &self,
        size: u64,
        aligned_size: u64,
        banks: u32,
        per_bank: u64,
    ) -> OutOfMemory {
        let largest = self.free_list.largest_free().map_or(0, |(_, s)| s);
        OutOfMemory {
            size: aligned_size,
            requested_size: size,
            buffer_type: self.buffer_type,
            num_banks: banks,
            per_bank,
            alloc_size: self.free_list.alloc_size(per_bank),
            bank_size: self.bank_size(),
            allocated: self.free_list.allocated_bytes(),
            free: self.free_list.free_bytes(),
            largest_free: largest,
        }
    }

    /// Places a request first-fit in the given direction: where, and the
    /// free-list block it got; `None` when no free block fits (then
    /// [`BankManager::out_of_memory_for`] says why). The allocation path
    /// of a replay: no error is built on it.
    /// `shards`: the request's shard count, 0 for an interleaved buffer.
    #[inline(always)]
    pub(crate) fn place(
        &mut self,
        size: u64,
        page_size: Option<u64>,
        shards: u32,
        recorded_per_bank: Option<u64>,
        bottom_up: bool,
    ) -> Option<(Placement, BlockRef)> {
        let (per_bank, banks) = self.spread_recent(size, page_size, shards, recorded_per_bank);
        let (address, block, reserved) = self.free_list.allocate_sized(per_bank, bottom_up)?;
        Some((
            Placement {
                address,
                per_bank: reserved,
                num_banks: banks,
            },
            block,
        ))
    }

    /// `(per_bank, banks)` of [`BankManager::spread_recorded`] for
    /// `shards` shards (0: interleaved over every bank), with the page's
    /// rounding from [`RecentPage`] and the pages divided among the banks
    /// by a multiplication ([`div_ceil_by`]): a compare, a shift, a load
    /// and two multiplications per request, and no branch on whether the
    /// buffer is sharded.
    #[inline(always)]
    fn spread_recent(
        &mut self,
        size: u64,
        page_size: Option<u64>,
        shards: u32,
        recorded_per_bank: Option<u64>,
    ) -> (u64, u32) {
        let page_key = page_size.unwrap_or(0);
        if page_key != self.recent.page_key {
            self.recent = RecentPage::new(page_key, self.page_alignment);
        }
        let r = &self.recent;
        let num_pages = if r.page_shift != RecentPage::NO_SHIFT {
            (size >> r.page_shift) + u64::from(size & (r.page - 1) != 0)
        } else {
            div_ceil(size, r.page)
        };
        let banks = std::hint::select_unpredictable(shards > 0, shards, self.num_banks);
        let pages_per_bank = div_ceil_by(num_pages, banks);
        let per_bank = pages_per_bank.saturating_mul(r.aligned_page);
        (recorded_per_bank.unwrap_or(per_bank), banks)
    }

    /// The out-of-memory of a request [`BankManager::place`] could not place.
    #[cold]
    #[inline(never)]
    pub(crate) fn out_of_memory_for(
        &self,
        size: u64,
        page_size: Option<u64>,
        num_shards: Option<u32>,
        recorded_per_bank: Option<u64>,
    ) -> OutOfMemory {
        let (per_bank, aligned, banks) =
            self.spread_recorded(size, page_size, num_shards, recorded_per_bank);
        self.out_of_memory(size, aligned, banks, per_bank)
    }

    /// Frees the allocation held as `(block, generation)`: its bytes per
    /// bank, or `None` for a stale pair (see `free_list/held.rs`).
    #[inline(always)]
    pub(crate) fn free_held(&mut self, block: BlockRef, generation: u32) -> Option<u64> {
        self.free_list.free_held(block, generation)
    }

    /// [`BankManager::spread`], unless the recorder knew what tt-metal
    /// reserved per bank (`max_size_per_bank`): then exactly that. tt-metal
    /// reserves more than the size implies when shards are padded (its
    /// sharded size counts every shard's full pages), so a recorded figure
    /// wins; the size a sharded OOM prints is then `per_bank * shards`.
    #[inline(always)]
    pub fn spread_recorded(
        &self,
        size: u64,
        page_size: Option<u64>,
        num_shards: Option<u32>,
        recorded_per_bank: Option<u64>,
    ) -> (u64, u64, u32) {
        let (per_bank, aligned, banks) = self.spread(size, page_size, num_shards);
        match recorded_per_bank {
            Some(recorded) if recorded != per_bank => {
                let aligned = if num_shards.is_some() {
                    recorded.saturating_mul(banks as u64)
                } else {
                    aligned
                };
                (recorded, aligned, banks)
            }
            _ => (per_bank, aligned, banks),
        }
    }

    /// Allocates a buffer first-fit in the given direction.
    #[inline]
    pub fn allocate(
        &mut self,
        size: u64,
        page_size: Option<u64>,
        num_shards: Option<u32>,
        bottom_up: bool,
    ) -> Result<Placement, OutOfMemory> {
        let spread = self.spread(size, page_size, num_shards);
        self.allocate_spread(size, spread, bottom_up)
    }

    /// Allocates `size` bytes spread as `(per_bank, aligned_size, banks)`
    /// (from [`BankManager::spread`] or [`BankManager::spread_recorded`]).
    #[inline]
    pub fn allocate_spread(
        &mut self,
        size: u64,
        spread: (u64, u64, u32),
        bottom_up: bool,
    ) -> Result<Placement, OutOfMemory> {
        self.allocate_spread_block(size, spread, bottom_up)
            .map(|(p, _)| p)
    }

    /// [`BankManager::allocate_spread`], with the free-list block the buffer got.
    #[inline]
    pub fn allocate_spread_block(
        &mut self,
        size: u64,
        (per_bank, aligned, banks): (u64, u64, u32),
        bottom_up: bool,
    ) -> Result<(Placement, BlockRef), OutOfMemory> {
        match self.free_list.allocate_block(per_bank, bottom_up) {
            Some((address, block)) => Ok((
                Placement {
                    address,
                    per_bank: self.free_list.alloc_size(per_bank),
                    num_banks: banks,
                },
                block,
            )),
            None => Err(self.out_of_memory(size, aligned, banks, per_bank)),
        }
    }

    /// Places a buffer at `address` if that range is free; `Ok(None)` when it is not.
    pub fn allocate_at(
        &mut self,
        size: u64,
        page_size: Option<u64>,
        num_shards: Option<u32>,
        address: u64,
    ) -> Option<Placement> {
        let spread = self.spread(size, page_size, num_shards);
        self.allocate_spread_at(spread, address)
    }

    /// [`BankManager::allocate_at`] with the spread given.
    pub fn allocate_spread_at(
        &mut self,
        spread: (u64, u64, u32),
        address: u64,
    ) -> Option<Placement> {
        self.allocate_spread_block_at(spread, address)
            .map(|(p, _)| p)
    }

    /// [`BankManager::allocate_spread_at`], with the free-list block the buffer got.
    pub fn allocate_spread_block_at(
        &mut self,
        (per_bank, _, banks): (u64, u64, u32),
        address: u64,
    ) -> Option<(Placement, BlockRef)> {
        let (address, block) = self.free_list.allocate_block_at(address, per_bank)?;
        Some((
            Placement {
                address,
                per_bank: self.free_list.alloc_size(per_bank),
                num_banks: banks,
            },
            block,
        ))
    }

    /// Frees the buffer at `address`; returns the bytes per bank it held,
    /// `None` for an address that holds nothing (tt-metal ignores those).
    #[inline]
    pub fn deallocate(&mut self, address: u64) -> Option<u64> {
        self.free_list.deallocate(address)
    }

    /// Frees the buffer at `address` that got `block` (see [`FreeList::deallocate_block`]).
    #[inline]
    pub fn deallocate_block(&mut self, block: BlockRef, address: u64) -> Option<u64> {
        self.free_list.deallocate_block(block, address)
    }

    /// Frees everything (`deallocate_all`).
    pub fn deallocate_all(&mut self) {
        self.free_list.deallocate_all();
    }

    #[inline]
    pub fn lowest_allocated(&self) -> Option<u64> {
        self.free_list.lowest_allocated()
    }

    pub fn statistics(&self) -> Statistics {
        let fl = &self.free_list;
        let largest = fl.largest_free();
        Statistics {
            total_allocatable: fl.size(),
            allocated: fl.allocated_bytes(),
            free: fl.free_bytes(),
            largest_free: largest.map_or(0, |(_, s)| s),
            largest_free_address: largest.map(|(a, _)| a),
            num_allocated_blocks: fl.num_allocated(),
            num_free_blocks: fl.num_free_blocks(),
        }
    }

    /// The block table in address order (tt-metal's `get_memory_block_table`).
    pub fn blocks(&self) -> impl Iterator<Item = Span> + '_ {
        self.free_list.blocks()
    }
}

#[cfg(test)]
mod tests;
