//! [`CbColumns`]: a block's circular-buffer events (`CbAlloc`, `CbFreeAll`),
//! a 32-byte row and a flags byte each, so a reader on another core than
//! the decoder reads 33 bytes per event rather than a whole `Event`.

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

/// A block's `CbAlloc`s and `CbFreeAll`s in trace order, a row and a flags
/// byte per event: the decoder writes an event through two pointers (an
/// array per field kept seven live in its loop, more than the registers
/// hold, and its other values spilled), and a reader finds its fields in
/// two cache lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CbColumns {
    pub(crate) rows: Vec<CbRow>,
    /// Each event's flags, beside its row (in it, a row would take 40
    /// bytes rather than 32).
    pub(crate) flags: Vec<u8>,
}

/// One circular-buffer event as [`CbColumns`] holds it (a `CbFreeAll`'s
/// fields past its device are 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CbRow {
    pub(crate) address: u64,
    pub(crate) size: u64,
    pub(crate) pos: u32,
    pub(crate) device: u32,
    pub(crate) cores: u32,
    pub(crate) site: u32,
}

/// The `flags` of a `CbAlloc`.
#[inline(always)]
pub(crate) fn alloc_flags(has_cores: bool, globally_allocated: bool) -> u8 {
    (has_cores as u8 * HAS_CORES) | (globally_allocated as u8 * GLOBAL)
}

impl CbColumns {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Event `i`, if the block has that many.
    #[inline(always)]
    pub fn get(&self, i: usize) -> Option<CbCol> {
        let r = self.rows.get(i)?;
        // SAFETY: `flags` holds as many entries as `rows` (they are pushed
        // and cleared together).
        let f = unsafe { *self.flags.get_unchecked(i) };
        Some(CbCol {
            pos: r.pos,
            device: DeviceId(r.device),
            free_all: f & FREE_ALL != 0,
            address: r.address,
            size: r.size,
            cores: (f & HAS_CORES != 0).then_some(r.cores),
            globally_allocated: f & GLOBAL != 0,
            site: SiteId(r.site),
        })
    }

    /// Every event, in order.
    pub fn iter(&self) -> impl Iterator<Item = CbCol> + '_ {
        (0..self.len()).map_while(|i| self.get(i))
    }

    /// As [`super::AllocColumns::prefetch`]: event `i`'s row.
    #[inline(always)]
    pub fn prefetch(&self, i: usize) {
        super::buffer_columns::prefetch_line(&self.rows, i);
        super::buffer_columns::prefetch_line(&self.flags, i);
    }

    /// Empties the rows and hands out room for `n` events, to be written
    /// (nothing is zeroed: a block's circular buffers would otherwise be
    /// zeroed whole before being written whole); the first ones written
    /// become the events with [`CbColumns::set_len`].
    #[allow(clippy::type_complexity)]
    pub(crate) fn spare_rows(
        &mut self,
        n: usize,
    ) -> (&mut [MaybeUninit<CbRow>], &mut [MaybeUninit<u8>]) {
        super::clear_for(&mut self.rows, n);
        super::clear_for(&mut self.flags, n);
        (
            &mut self.rows.spare_capacity_mut()[..n],
            &mut self.flags.spare_capacity_mut()[..n],
        )
    }

    /// Makes the first `n` rows of the room [`CbColumns::spare_rows`]
    /// handed out the events.
    ///
    /// # Safety
    ///
    /// The first `n` rows of that room were written.
    pub(crate) unsafe fn set_len(&mut self, n: usize) {
        debug_assert!(n <= self.rows.capacity() && n <= self.flags.capacity());
        // SAFETY: the caller wrote the first `n` rows and flags of the
        // spare room (so `n` is within both capacities).
        unsafe {
            self.rows.set_len(n);
            self.flags.set_len(n);
        }
    }

    /// Appends a `CbFreeAll` at position `pos`.
    #[inline(always)]
    pub(crate) fn push_free_all(&mut self, pos: u32, device: DeviceId) {
        self.rows.push(CbRow::free_all(pos, device.0));
        self.flags.push(FREE_ALL);
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
        self.rows.push(CbRow {
            address,
            size,
            pos,
            device: device.0,
            cores: cores.unwrap_or(0),
            site: site.0,
        });
        self.flags
            .push(alloc_flags(cores.is_some(), globally_allocated));
    }

    /// Room for `n` more events.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.rows.reserve(n);
        self.flags.reserve(n);
    }

    /// Starts a block: no event (the rows keep their memory).
    pub(crate) fn clear(&mut self) {
        self.rows.clear();
        self.flags.clear();
    }
}

impl CbRow {
    /// A `CbFreeAll` at position `pos` on `device` (flags `FREE_ALL`).
    #[inline(always)]
    pub(crate) fn free_all(pos: u32, device: u32) -> CbRow {
        CbRow {
            pos,
            device,
            ..CbRow::default()
        }
    }
}
