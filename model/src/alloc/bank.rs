//! tt-metal's `BankManager`: one free list shared by every bank of a buffer
//! type (lockstep — a buffer has the same address in every bank), the
//! per-bank size arithmetic, statistics and the block table.

use super::error::{ConfigError, OutOfMemory};
use super::free_list::{BlockRef, FreeList, Span};
use crate::event::BufferType;
pub use spread::size_per_bank;
use spread::{div_ceil, div_ceil_by, RecentPage};

mod spread;

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
            // Worked out for a real key (an unknown page), so that every
            // key it matches gets its own figures.
            recent: RecentPage::new(0, page_alignment, num_banks, &free_list),
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

    /// [`BankManager::place`] for a holder that keeps the allocation by
    /// its block ([`FreeList::allocate_held`]): `owner`, `size` (the
    /// request's) and the bank count go in the block's payload, and the
    /// block's generation comes back with the placement.
    #[inline(always)]
    pub(crate) fn place_held(
        &mut self,
        size: u64,
        page_size: Option<u64>,
        shards: u32,
        recorded_per_bank: Option<u64>,
        bottom_up: bool,
        owner: u64,
    ) -> Option<(Placement, BlockRef, u32)> {
        let (reserved, banks) = self.reserve_recent(size, page_size, shards, recorded_per_bank);
        let (address, block, generation) = self
            .free_list
            .allocate_held(reserved, bottom_up, owner, size, banks)?;
        Some((
            Placement {
                address,
                per_bank: reserved,
                num_banks: banks,
            },
            block,
            generation,
        ))
    }

    /// `(bytes the free list reserves, banks)` for a request:
    /// [`FreeList::alloc_size`] of [`BankManager::spread_recent`]'s per-bank
    /// size. Tile pages ([`RecentPage::tile`]) with nothing recorded have
    /// it straight: pages counted by a shift, divided among the banks by
    /// a multiplication, times the page, and no rounding after. An
    /// interleaved one (most of a replay's) skips the page count:
    /// its rows come from the size by one multiplication (half the
    /// instructions of the sharded path; the branch between the two
    /// follows the layout, which the caller has just branched on).
    #[inline(always)]
    fn reserve_recent(
        &mut self,
        size: u64,
        page_size: Option<u64>,
        shards: u32,
        recorded_per_bank: Option<u64>,
    ) -> (u64, u32) {
        let page_key = page_size.unwrap_or(0);
        if page_key != self.recent.page_key {
            self.recent = RecentPage::new(
                page_key,
                self.page_alignment,
                self.num_banks,
                &self.free_list,
            );
        }
        let r = &self.recent;
        if r.tile & recorded_per_bank.is_none() & (size != 0) {
            if (shards == 0) & (size <= r.row_max_size) {
                // Interleaved over every bank: `ceil(ceil(size / page) /
                // banks) = ceil(size / (page * banks))`, one division by
                // the row (a page in every bank) worked out when the page
                // changed, by its reciprocal (see `div_ceil_by`; both
                // operands below 2^32, which `row_max_size` ensures).
                let q = ((u128::from(size) * u128::from(r.row_recip)) >> 64) as u64;
                let rows = q + u64::from(q * r.row != size);
                // No overflow: `rows * page <= size / banks + page < 2^64`.
                return (rows << r.page_shift, self.num_banks);
            }
            let num_pages = (size >> r.page_shift) + u64::from(size & (r.page - 1) != 0);
            let banks = std::hint::select_unpredictable(shards > 0, shards, self.num_banks);
            // A tile page is its own aligned page.
            return (div_ceil_by(num_pages, banks).saturating_mul(r.page), banks);
        }
        self.reserve_other(size, page_size, shards, recorded_per_bank)
    }

    /// [`BankManager::reserve_recent`] of any other request (kept out of
    /// the allocation path's inlined code).
    #[inline(never)]
    fn reserve_other(
        &mut self,
        size: u64,
        page_size: Option<u64>,
        shards: u32,
        recorded_per_bank: Option<u64>,
    ) -> (u64, u32) {
        let (per_bank, banks) = self.spread_recent(size, page_size, shards, recorded_per_bank);
        (self.free_list.alloc_size(per_bank), banks)
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
            self.recent = RecentPage::new(
                page_key,
                self.page_alignment,
                self.num_banks,
                &self.free_list,
            );
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
