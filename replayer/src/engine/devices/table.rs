//! The engine's devices, in the order they were first seen, found by id,
//! and the index token ([`DevIx`]) that reads one without a bounds check.

use super::super::Dev;
use std::ops::{Deref, DerefMut, Index, IndexMut};
use ttalloc_model::DeviceId;

/// Device ids below this are found by indexing [`Devices::by_id`].
const DIRECT_DEVICE_IDS: usize = 1024;
/// [`Devices::by_id`] entry of an id not seen yet.
const NO_DEV: u16 = u16::MAX;

/// An index of a [`Devices`], made only by its methods from an entry of
/// the table ([`Devices::find`], [`Devices::push`],
/// [`Devices::position`]). A table only ever grows, so the index stays in
/// bounds: indexing by it needs no check (an allocation's device and a
/// circular buffer's are read this way). A `DevIx` is used by the engine
/// whose table made it: the engine looks it up for the event at hand
/// (`Engine::dev_index`) and keeps none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(in crate::engine) struct DevIx(usize);

impl DevIx {
    /// The index as a number (checked indexing, comparisons).
    #[inline(always)]
    pub(in crate::engine) fn get(self) -> usize {
        self.0
    }

    /// The index as a record keeps it (an index past `u16` wraps to a
    /// smaller one, as `by_id` keeps it).
    #[inline(always)]
    pub(in crate::engine) fn stored(self) -> u16 {
        self.0 as u16
    }
}

/// Every device seen so far: entries are pushed, never removed (see
/// [`DevIx`]). Reads as a slice of devices (iteration, and checked
/// indexing by number: a record's device).
pub(in crate::engine) struct Devices {
    list: Vec<Dev>,
    /// Device id -> index in `list`, for ids below `DIRECT_DEVICE_IDS`
    /// (`NO_DEV` if not seen yet). Held in place: a lookup is one compare
    /// with a constant and one read, no length or pointer to load.
    by_id: [u16; DIRECT_DEVICE_IDS],
}

impl Default for Devices {
    fn default() -> Self {
        Devices {
            list: Vec::new(),
            by_id: [NO_DEV; DIRECT_DEVICE_IDS],
        }
    }
}

impl Devices {
    /// Device `id` by its small id (every real device), if seen already.
    #[inline(always)]
    pub(in crate::engine) fn find(&self, id: DeviceId) -> Option<DevIx> {
        match self.by_id.get(id.0 as usize) {
            // An entry is set only to an index of `list` (`push`; an index
            // past `u16` wraps to a smaller one, still of `list`).
            Some(&i) if i != NO_DEV => Some(DevIx(i as usize)),
            _ => None,
        }
    }

    /// Adds device `dev`; its index (found by `find` from now on when its
    /// id is small).
    pub(in crate::engine) fn push(&mut self, dev: Dev) -> DevIx {
        let id = dev.id;
        self.list.push(dev);
        let ix = self.list.len() - 1;
        if let Some(entry) = self.by_id.get_mut(id.0 as usize) {
            *entry = ix as u16;
        }
        DevIx(ix)
    }

    /// The device a record names (`Live::dev`), read without a bounds check
    /// (a free's: its record was found by the buffer's id).
    ///
    /// # Safety
    /// `stored` is `DevIx::stored` of an index made by this table: every
    /// record of the engine that owns it holds one (its device's index
    /// when it was written).
    #[inline(always)]
    pub(in crate::engine) unsafe fn of_record(&mut self, stored: u16) -> &mut Dev {
        debug_assert!((stored as usize) < self.list.len());
        // SAFETY: a `DevIx` is an index of `list` (see `DevIx`), and its
        // `stored` form is no larger (an index past `u16` wraps to a
        // smaller one); the list never shrinks.
        unsafe { self.list.get_unchecked_mut(stored as usize) }
    }

    /// The index of the first device `f` holds for.
    pub(in crate::engine) fn position(&self, f: impl FnMut(&Dev) -> bool) -> Option<DevIx> {
        self.list.iter().position(f).map(DevIx)
    }
}

impl Deref for Devices {
    type Target = [Dev];

    fn deref(&self) -> &[Dev] {
        &self.list
    }
}

impl DerefMut for Devices {
    // A slice cannot shrink the table: every `DevIx` stays in bounds.
    fn deref_mut(&mut self) -> &mut [Dev] {
        &mut self.list
    }
}

/// By number, checked (a record's device: records keep it as a number).
impl Index<usize> for Devices {
    type Output = Dev;

    #[inline(always)]
    fn index(&self, i: usize) -> &Dev {
        &self.list[i]
    }
}

impl IndexMut<usize> for Devices {
    #[inline(always)]
    fn index_mut(&mut self, i: usize) -> &mut Dev {
        &mut self.list[i]
    }
}

impl Index<DevIx> for Devices {
    type Output = Dev;

    #[inline(always)]
    fn index(&self, ix: DevIx) -> &Dev {
        debug_assert!(ix.0 < self.list.len());
        // SAFETY: a `DevIx` is an index of this table's `list` when it is
        // made (`find`, `push`, `position`), and the list never shrinks
        // (nothing removes an entry; the slice it derefs to has a fixed
        // length).
        unsafe { self.list.get_unchecked(ix.0) }
    }
}

impl IndexMut<DevIx> for Devices {
    #[inline(always)]
    fn index_mut(&mut self, ix: DevIx) -> &mut Dev {
        debug_assert!(ix.0 < self.list.len());
        // SAFETY: as `index`.
        unsafe { self.list.get_unchecked_mut(ix.0) }
    }
}

#[cfg(test)]
mod tests;
