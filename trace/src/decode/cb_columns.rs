//! [`CbColumns`]: a block's circular-buffer events (`CbAlloc`, `CbFreeAll`),
//! one array per field, so a reader on another core than the decoder reads
//! ~30 bytes per event rather than a whole `Event`.

use std::mem::MaybeUninit;
use ttalloc_model::{DeviceId, EventKind, SiteId};

/// `CbColumns::flags`: the event is a `CbFreeAll` (its other fields are 0).
pub(crate) const FREE_ALL: u8 = 1;
/// `CbColumns::flags`: the alloc's core count is present.
const HAS_CORES: u8 = 2;
/// `CbColumns::flags`: the alloc is globally allocated.
const GLOBAL: u8 = 4;

/// One circular-buffer event of a block, as a value built from [`CbColumns`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CbCol {
    /// Position of the event in its block.
    pub pos: u32,
    pub device: DeviceId,
    /// A `CbFreeAll` (device only) rather than a `CbAlloc`.
    pub free_all: bool,
    pub address: u64,
    pub size: u64,
    pub cores: Option<u32>,
    pub globally_allocated: bool,
    pub site: SiteId,
}

impl CbCol {
    /// The event's kind, as `Event` carries it.
    pub fn kind(&self) -> EventKind {
        if self.free_all {
            EventKind::CbFreeAll {
                device: self.device,
            }
        } else {
            EventKind::CbAlloc {
                device: self.device,
                address: self.address,
                size: self.size,
                cores: self.cores,
                globally_allocated: self.globally_allocated,
                site: self.site,
            }
        }
    }
}

/// A block's `CbAlloc`s and `CbFreeAll`s in trace order, one array per
/// field (entry `i` of each is circular-buffer event `i`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CbColumns {
    pub(crate) pos: Vec<u32>,
    pub(crate) device: Vec<u32>,
    pub(crate) flags: Vec<u8>,
    pub(crate) address: Vec<u64>,
    pub(crate) size: Vec<u64>,
    pub(crate) cores: Vec<u32>,
    pub(crate) site: Vec<u32>,
}

/// The spare room of [`CbColumns`]'s arrays, `n` entries each, to be
/// written (`CbColumns::spare_rows`): nothing is zeroed first.
pub(crate) struct CbSpare<'a> {
    pub(crate) pos: &'a mut [MaybeUninit<u32>],
    pub(crate) device: &'a mut [MaybeUninit<u32>],
    pub(crate) flags: &'a mut [MaybeUninit<u8>],
    pub(crate) address: &'a mut [MaybeUninit<u64>],
    pub(crate) size: &'a mut [MaybeUninit<u64>],
    pub(crate) cores: &'a mut [MaybeUninit<u32>],
    pub(crate) site: &'a mut [MaybeUninit<u32>],
}

/// The `flags` of a `CbAlloc`.
#[inline(always)]
pub(crate) fn alloc_flags(has_cores: bool, globally_allocated: bool) -> u8 {
    (has_cores as u8 * HAS_CORES) | (globally_allocated as u8 * GLOBAL)
}

impl CbColumns {
    pub fn len(&self) -> usize {
        self.pos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pos.is_empty()
    }

    /// Event `i`, if the block has that many.
    #[inline(always)]
    pub fn get(&self, i: usize) -> Option<CbCol> {
        let &pos = self.pos.get(i)?;
        // SAFETY: every array holds as many entries as `pos` (they are
        // pushed and cleared together: `push_alloc`, `push_free_all`, `clear`).
        unsafe {
            let f = *self.flags.get_unchecked(i);
            Some(CbCol {
                pos,
                device: DeviceId(*self.device.get_unchecked(i)),
                free_all: f & FREE_ALL != 0,
                address: *self.address.get_unchecked(i),
                size: *self.size.get_unchecked(i),
                cores: (f & HAS_CORES != 0).then_some(*self.cores.get_unchecked(i)),
                globally_allocated: f & GLOBAL != 0,
                site: SiteId(*self.site.get_unchecked(i)),
            })
        }
    }

    /// Every event, in order.
    pub fn iter(&self) -> impl Iterator<Item = CbCol> + '_ {
        (0..self.len()).map_while(|i| self.get(i))
    }

    /// As [`super::AllocColumns::prefetch`].
    #[inline(always)]
    pub fn prefetch(&self, i: usize) {
        if i.is_multiple_of(8) && i < self.len() {
            super::buffer_columns::prefetch_line(&self.address, i);
            super::buffer_columns::prefetch_line(&self.size, i);
            super::buffer_columns::prefetch_line(&self.device, i);
            super::buffer_columns::prefetch_line(&self.site, i);
            super::buffer_columns::prefetch_line(&self.cores, i);
            super::buffer_columns::prefetch_line(&self.flags, i);
        }
    }

    /// Empties every array and hands out room for `n` events in each, to
    /// be written (nothing is zeroed: a block's circular buffers would
    /// otherwise be zeroed whole before being written whole); the first
    /// ones written become the events with [`CbColumns::set_len`].
    pub(crate) fn spare_rows(&mut self, n: usize) -> CbSpare<'_> {
        use super::clear_for;
        clear_for(&mut self.pos, n);
        clear_for(&mut self.device, n);
        clear_for(&mut self.flags, n);
        clear_for(&mut self.address, n);
        clear_for(&mut self.size, n);
        clear_for(&mut self.cores, n);
        clear_for(&mut self.site, n);
        CbSpare {
            pos: &mut self.pos.spare_capacity_mut()[..n],
            device: &mut self.device.spare_capacity_mut()[..n],
            flags: &mut self.flags.spare_capacity_mut()[..n],
            address: &mut self.address.spare_capacity_mut()[..n],
            size: &mut self.size.spare_capacity_mut()[..n],
            cores: &mut self.cores.spare_capacity_mut()[..n],
            site: &mut self.site.spare_capacity_mut()[..n],
        }
    }

    /// Makes the first `n` entries of the room [`CbColumns::spare_rows`]
    /// handed out the events.
    ///
    /// # Safety
    ///
    /// The first `n` entries of every array's room were written.
    pub(crate) unsafe fn set_len(&mut self, n: usize) {
        debug_assert!(n <= self.pos.capacity() && n <= self.site.capacity());
        // SAFETY: the caller wrote the first `n` entries of each array's
        // spare room (so `n` is within every capacity).
        unsafe {
            self.pos.set_len(n);
            self.device.set_len(n);
            self.flags.set_len(n);
            self.address.set_len(n);
            self.size.set_len(n);
            self.cores.set_len(n);
            self.site.set_len(n);
        }
    }

    /// Appends a `CbFreeAll` at position `pos`.
    #[inline(always)]
    pub(crate) fn push_free_all(&mut self, pos: u32, device: DeviceId) {
        self.pos.push(pos);
        self.device.push(device.0);
        self.flags.push(FREE_ALL);
        self.address.push(0);
        self.size.push(0);
        self.cores.push(0);
        self.site.push(0);
    }

    /// Appends a `CbAlloc` at position `pos`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push_alloc(
        &mut self,
        pos: u32,
        device: DeviceId,
        address: u64,
        size: u64,
        cores: Option<u32>,
        globally_allocated: bool,
        site: SiteId,
    ) {
        self.pos.push(pos);
        self.device.push(device.0);
        self.flags
            .push(alloc_flags(cores.is_some(), globally_allocated));
        self.address.push(address);
        self.size.push(size);
        self.cores.push(cores.unwrap_or(0));
        self.site.push(site.0);
    }

    /// Room for `n` more events in every array.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.pos.reserve(n);
        self.device.reserve(n);
        self.flags.reserve(n);
        self.address.reserve(n);
        self.size.reserve(n);
        self.cores.reserve(n);
        self.site.reserve(n);
    }

    /// Starts a block: no event (the arrays keep their memory).
    pub(crate) fn clear(&mut self) {
        self.pos.clear();
        self.device.clear();
        self.flags.clear();
        self.address.clear();
        self.size.clear();
        self.cores.clear();
        self.site.clear();
    }
}
