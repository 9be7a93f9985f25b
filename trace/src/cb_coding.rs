//! Format 2.4's circular-buffer coding (FORMAT.md §5.1, CB_ADDR, CB_SIZE,
//! CB_FLAGS, CB_SITE): a program's circular buffers are laid out one after
//! the other from the same L1 address, op after op, so a CbAlloc's address
//! is predicted as the end of the device's previous CbAlloc since its last
//! CbFreeAll, or, for the first one after a CbFreeAll, as the address the
//! device's previous group started at. The fields get packed columns of
//! their own instead of varints in MISC.
//!
//! Measured on the 1M-event synthetic trace: the CbAlloc payload in MISC
//! 0.217 B/event, these columns 0.09.

use crate::codec::AddrHistory;

/// The reader's buffers for a block's circular buffers, kept between blocks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CbScratch {
    pub(crate) addr: Vec<u64>,
    pub(crate) size: Vec<u64>,
    pub(crate) flags: Vec<u64>,
    pub(crate) site: Vec<u64>,
    pub(crate) predictor: CbPredictor,
}

/// Per device slot (as `AddrHistory`: devices from 1024 on share slot 0,
/// a clash only costs compression): where the next CbAlloc is expected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CbPredictor {
    slots: Vec<CbSlot>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CbSlot {
    /// The end of the previous CbAlloc of the current group.
    pub(crate) next: u64,
    /// The address the current (or, between groups, the previous) group started at.
    pub(crate) group_start: u64,
    /// Whether a group is open (a CbAlloc since the last CbFreeAll).
    pub(crate) open: bool,
    /// The site of the device's previous CbAlloc.
    pub(crate) site: u32,
}

impl CbPredictor {
    /// The slot of `device`.
    #[inline(always)]
    pub(crate) fn slot_index(device: u32) -> usize {
        AddrHistory::index(device, 0) / 5
    }

    /// Every slot, reset (a reader's bulk pass indexes them by
    /// [`CbPredictor::slot_index`]).
    pub(crate) fn all_slots(&mut self) -> &mut [CbSlot] {
        let n = AddrHistory::SLOTS / 5;
        self.slots.clear();
        self.slots.resize(n, CbSlot::default());
        &mut self.slots
    }

    fn slot(&mut self, device: u32) -> &mut CbSlot {
        let i = Self::slot_index(device);
        if i >= self.slots.len() {
            self.slots.resize(i + 1, CbSlot::default());
        }
        &mut self.slots[i]
    }

    pub(crate) fn clear(&mut self) {
        self.slots.clear();
    }

    /// The address a CbAlloc on `device` is expected at.
    #[inline]
    pub(crate) fn predict(&mut self, device: u32) -> u64 {
        let s = self.slot(device);
        if s.open {
            s.next
        } else {
            s.group_start
        }
    }

    /// Records a CbAlloc of `size` bytes at `address` on `device`.
    #[inline]
    pub(crate) fn alloc(&mut self, device: u32, address: u64, size: u64) {
        let s = self.slot(device);
        if !s.open {
            s.group_start = address;
            s.open = true;
        }
        s.next = address.wrapping_add(size);
    }

    /// The writer's CB_SITE value of a CbAlloc at `site` on `device`: 0 when
    /// the device's previous CbAlloc had the same site (an op's circular
    /// buffers share one), else `site + 1`.
    #[inline]
    pub(crate) fn site_code(&mut self, device: u32, site: u32) -> u64 {
        let s = self.slot(device);
        let same = s.site == site;
        s.site = site;
        if same {
            0
        } else {
            site as u64 + 1
        }
    }

    /// The reader's side of [`CbPredictor::site_code`].
    #[inline]
    pub(crate) fn site_of_code(&mut self, device: u32, code: u64) -> u64 {
        let s = self.slot(device);
        if code != 0 {
            s.site = (code - 1) as u32;
            return code - 1;
        }
        s.site as u64
    }

    /// Records a CbFreeAll on `device`: the next CbAlloc starts a group.
    #[inline]
    pub(crate) fn free_all(&mut self, device: u32) {
        self.slot(device).open = false;
    }
}

/// The CB_FLAGS value: `(cores + 1, or 0 when unknown) << 1 | globally_allocated`.
pub(crate) fn flags(cores: Option<u32>, globally_allocated: bool) -> u64 {
    (cores.map_or(0, |c| c as u64 + 1) << 1) | globally_allocated as u64
}

/// The reader's side of [`flags`].
pub(crate) fn from_flags(v: u64) -> Result<(Option<u32>, bool), String> {
    let cores = match v >> 1 {
        0 => None,
        c => Some(
            u32::try_from(c - 1)
                .map_err(|_| format!("circular buffer cores {} out of range", c - 1))?,
        ),
    };
    Ok((cores, v & 1 == 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_is_predicted_back_to_back_from_where_the_previous_one_started() {
        let mut p = CbPredictor::default();
        // Nothing known yet: 0.
        assert_eq!(p.predict(3), 0);
        p.alloc(3, 1000, 200);
        // The next one right after it; another device knows nothing.
        assert_eq!(p.predict(3), 1200);
        assert_eq!(p.predict(4), 0);
        p.alloc(3, 1200, 50);
        assert_eq!(p.predict(3), 1250);
        p.free_all(3);
        // A new group starts where the previous one did.
        assert_eq!(p.predict(3), 1000);
        p.alloc(3, 1100, 10);
        p.free_all(3);
        assert_eq!(p.predict(3), 1100);
        // Devices from 1024 on share device 0's slot.
        p.alloc(0, 500, 10);
        assert_eq!(p.predict(5000), 510);
    }

    #[test]
    fn a_site_repeated_on_the_device_costs_0() {
        let mut w = CbPredictor::default();
        // Site 0 is every slot's start; 7 new (8), 7 again (0), on another
        // device new (8), 9 new (10).
        let codes: Vec<u64> = [(1, 0), (1, 7), (1, 7), (2, 7), (1, 9)]
            .iter()
            .map(|&(d, s)| w.site_code(d, s))
            .collect();
        assert_eq!(codes, [0, 8, 0, 8, 10]);
        let mut r = CbPredictor::default();
        let sites: Vec<u64> = [1, 1, 1, 2, 1]
            .iter()
            .zip(&codes)
            .map(|(&d, &c)| r.site_of_code(d, c))
            .collect();
        assert_eq!(sites, [0, 7, 7, 7, 9]);
    }

    #[test]
    fn flags_keep_cores_and_the_global_bit() {
        for (c, g) in [
            (None, false),
            (Some(0), true),
            (Some(64), false),
            (Some(u32::MAX), true),
        ] {
            assert_eq!(from_flags(flags(c, g)).unwrap(), (c, g));
        }
        // cores + 1 = 2^32 + 1 does not fit.
        assert!(from_flags(((1u64 << 32) + 1) << 1)
            .unwrap_err()
            .contains("out of range"));
    }
}
