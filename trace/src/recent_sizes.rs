//! Format 2.3's size coding (FORMAT.md §5.1, SIZE_RECENT and SIZE_NEW): a
//! call site allocates a handful of sizes again and again (a tensor shape,
//! its half for a shorter sequence, its double), so each size is coded as
//! its place among the site's few most recent sizes, and only a size the
//! site has not used lately is stored whole. Writer and reader keep the
//! same cache, so the place (one byte, nearly always 0) says the size.
//!
//! Measured on the 1M-event synthetic trace: 0.237 B/event as SIZE_BY_SITE
//! (a delta against the site's previous size: every change of size costs two
//! bytes of noise), 0.07 B/event this way.

/// Per call site (slots: site id modulo `SLOTS`, a clash only costs
/// compression), the `WAYS` most recently used distinct sizes, most recent
/// first; every entry is 0 at the start of a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RecentSizes {
    slots: Box<[[u64; RecentSizes::WAYS]; RecentSizes::SLOTS]>,
}

impl Default for RecentSizes {
    fn default() -> Self {
        RecentSizes {
            slots: crate::site_flags::boxed_table([0; Self::WAYS]),
        }
    }
}

/// How one size is coded: its place in the site's cache, or new.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SizeCode {
    /// The size is entry `0` of the site's cache (0 = most recent).
    Recent(u8),
    /// Not in the cache: stored as `zigzag(size − most_recent)`.
    New { zigzag_delta: u64 },
}

impl RecentSizes {
    pub(crate) const WAYS: usize = 4;
    pub(crate) const SLOTS: usize = 4096;
    /// The SIZE_RECENT byte of a size that is not in the cache.
    pub(crate) const NEW: u8 = Self::WAYS as u8;

    #[inline(always)]
    fn slot(&mut self, site: u64) -> &mut [u64; Self::WAYS] {
        &mut self.slots[(site as usize) & (Self::SLOTS - 1)]
    }

    /// The reader's side: the cache of `site`'s slot (`decode::mtf`
    /// moves its entries).
    #[inline(always)]
    pub(crate) fn slot_mut(&mut self, site: u64) -> &mut [u64; Self::WAYS] {
        self.slot(site)
    }

    /// [`RecentSizes::slot_mut`] of a site below `SLOTS`, read without
    /// the mask (an instruction per alloc in the reader's loop).
    ///
    /// # Safety
    /// `site` is below `SLOTS`.
    #[inline(always)]
    pub(crate) unsafe fn slot_of_narrow_site(&mut self, site: u32) -> &mut [u64; Self::WAYS] {
        debug_assert!((site as usize) < Self::SLOTS);
        // SAFETY: `site` is below `SLOTS`, the table's length (`# Safety`).
        unsafe { self.slots.get_unchecked_mut(site as usize) }
    }

    pub(crate) fn clear(&mut self) {
        self.slots.fill([0; Self::WAYS]);
    }

    /// [`RecentSizes::clear`] for a block whose sites are all below
    /// `sites`: only their slots (a table is 128 KiB, a trace's sites a
    /// few hundred).
    pub(crate) fn clear_sites_below(&mut self, sites: u32) {
        let n = (sites as usize).min(Self::SLOTS);
        self.slots[..n].fill([0; Self::WAYS]);
    }

    /// The writer's side: how `size` allocated at `site` is coded; the cache
    /// then holds it first.
    #[inline]
    pub(crate) fn encode(&mut self, site: u64, size: u64) -> SizeCode {
        let ways = self.slot(site);
        match ways.iter().position(|&s| s == size) {
            Some(i) => {
                move_to_front(ways, i);
                SizeCode::Recent(i as u8)
            }
            None => {
                let d = size.wrapping_sub(ways[0]) as i64;
                ways.rotate_right(1);
                ways[0] = size;
                SizeCode::New {
                    zigzag_delta: crate::varint::zigzag(d),
                }
            }
        }
    }
}

/// Moves entry `i` to the front, the ones before it one place back (a
/// plain loop: the usual `i` is 0, and a slice rotation is a call).
#[inline(always)]
fn move_to_front(ways: &mut [u64; RecentSizes::WAYS], i: usize) {
    let v = ways[i];
    let mut j = i;
    while j > 0 {
        ways[j] = ways[j - 1];
        j -= 1;
    }
    ways[0] = v;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::mtf::mtf_u64;

    #[test]
    fn a_site_s_sizes_come_back_as_places_in_its_cache() {
        let mut enc = RecentSizes::default();
        let mut dec = RecentSizes::default();
        // Site 3 allocates 512, 256, 512, 1024, 512, 0, 64, 256, 512 units;
        // site 4099 shares its slot (4099 % 4096 = 3).
        let steps: [(u64, u64, SizeCode); 10] = [
            // Every entry starts at 0: 512 is new, 512 − 0 = 512, zigzag 1024.
            (3, 512, SizeCode::New { zigzag_delta: 1024 }),
            // 256 − 512 = −256: zigzag 511. Cache [256, 512, 0, 0].
            (3, 256, SizeCode::New { zigzag_delta: 511 }),
            (3, 512, SizeCode::Recent(1)), // [512, 256, 0, 0]
            (3, 1024, SizeCode::New { zigzag_delta: 1024 }), // [1024, 512, 256, 0]
            (3, 512, SizeCode::Recent(1)), // [512, 1024, 256, 0]
            (3, 0, SizeCode::Recent(3)),   // the initial 0: [0, 512, 1024, 256]
            (3, 64, SizeCode::New { zigzag_delta: 128 }), // [64, 0, 512, 1024]; 256 dropped
            // 256 − 64 = 192: [256, 64, 0, 512]; 1024 dropped.
            (3, 256, SizeCode::New { zigzag_delta: 384 }),
            (4099, 256, SizeCode::Recent(0)),
            (3, 512, SizeCode::Recent(3)), // [512, 256, 64, 0]
        ];
        for (site, size, code) in steps {
            assert_eq!(enc.encode(site, size), code, "site {site} size {size}");
            let got = match code {
                SizeCode::Recent(p) => mtf_u64(dec.slot_mut(site), p, 0),
                SizeCode::New { zigzag_delta } => mtf_u64(
                    dec.slot_mut(site),
                    RecentSizes::NEW,
                    crate::varint::unzigzag(zigzag_delta) as u64,
                ),
            };
            assert_eq!(got, size);
        }
        assert_eq!(enc, dec);
        enc.clear();
        assert_eq!(enc, RecentSizes::default());
    }
}
