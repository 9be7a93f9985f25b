//! Format 2.3's flags coding (FORMAT.md §5.1, SIZE_RECENT bit 3, FLAGS_NEW
//! and CORES_NEW): a call site allocates one kind of buffer (type, layout,
//! which fields it has, how many cores) again and again, so an alloc whose
//! flags byte and core count equal its site's previous alloc's says so with
//! one bit of its SIZE_RECENT byte, and only the others store them.
//!
//! Measured on the 1M-event synthetic trace: ALLOC_FLAGS and CORES 0.092
//! B/event, FLAGS_NEW and CORES_NEW 0.001.

/// Per call site slot (site id modulo `SLOTS`), the flags byte and core
/// count (0 when absent) of the previous alloc; 0 and 0 at block start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SiteFlags {
    slots: Box<[(u8, u32); SiteFlags::SLOTS]>,
}

impl Default for SiteFlags {
    fn default() -> Self {
        SiteFlags {
            slots: boxed_table((0, 0)),
        }
    }
}

impl SiteFlags {
    pub(crate) const SLOTS: usize = 4096;
    /// The SIZE_RECENT bit that says "flags and cores as the site's previous alloc".
    pub(crate) const REPEAT: u8 = 1 << 3;

    pub(crate) fn clear(&mut self) {
        self.slots.fill((0, 0));
    }

    /// [`SiteFlags::clear`] for a block whose sites are all below
    /// `sites`: only their slots.
    pub(crate) fn clear_sites_below(&mut self, sites: u32) {
        let n = (sites as usize).min(Self::SLOTS);
        self.slots[..n].fill((0, 0));
    }

    /// Whether `flags` and `cores` (0 when the alloc has none) repeat the
    /// site's previous alloc's; they become the site's previous either way.
    #[inline(always)]
    pub(crate) fn repeats(&mut self, site: u64, flags: u8, cores: u32) -> bool {
        let slot = &mut self.slots[(site as usize) & (Self::SLOTS - 1)];
        let same = *slot == (flags, cores);
        *slot = (flags, cores);
        same
    }

    /// The reader's side of a repeat: the site's previous flags and cores.
    #[inline(always)]
    pub(crate) fn previous(&self, site: u64) -> (u8, u32) {
        self.slots[(site as usize) & (Self::SLOTS - 1)]
    }

    /// [`SiteFlags::previous`] of a site below `SLOTS`, read without the
    /// mask (an instruction per alloc in the reader's loop).
    ///
    /// # Safety
    /// `site` is below `SLOTS`.
    #[inline(always)]
    pub(crate) unsafe fn previous_of_narrow_site(&self, site: u32) -> (u8, u32) {
        debug_assert!((site as usize) < Self::SLOTS);
        // SAFETY: `site` is below `SLOTS`, the table's length (`# Safety`).
        unsafe { *self.slots.get_unchecked(site as usize) }
    }

    /// The reader's side of flags stored whole: they become the site's previous.
    #[inline(always)]
    pub(crate) fn set(&mut self, site: u64, flags: u8, cores: u32) {
        self.slots[(site as usize) & (Self::SLOTS - 1)] = (flags, cores);
    }
}

/// A zeroed table of `N` entries on the heap (not built on the stack first).
pub(crate) fn boxed_table<T: Copy, const N: usize>(v: T) -> Box<[T; N]> {
    vec![v; N]
        .into_boxed_slice()
        .try_into()
        .unwrap_or_else(|_| unreachable!("a Vec of N entries"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_site_repeats_only_what_its_previous_alloc_had() {
        let mut s = SiteFlags::default();
        // Every slot starts as (0, 0): a DRAM interleaved alloc with no
        // optional field repeats it.
        assert!(s.repeats(7, 0, 0));
        assert!(!s.repeats(7, 0x61, 0)); // L1 with address and page: new
        assert!(s.repeats(7, 0x61, 0));
        assert!(!s.repeats(7, 0xe1, 32)); // the same with 32 cores: new
        assert!(!s.repeats(7, 0xe1, 64)); // other core count: new
        assert!(s.repeats(4096 + 7, 0xe1, 64)); // shares site 7's slot
        assert_eq!(s.previous(7), (0xe1, 64));
        s.set(9, 0x20, 0);
        assert_eq!(s.previous(9), (0x20, 0));
        s.clear();
        assert_eq!(s, SiteFlags::default());
    }
}
