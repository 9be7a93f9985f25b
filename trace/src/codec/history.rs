//! What the codec remembers per call site and per (device, buffer type)
//! within a block, to code a field against its previous value there.

/// Per-call-site history (format 2.2): the previous value of a field at the
/// same site in the block. Sites share slots modulo `SLOTS` (a clash only
/// costs compression).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SiteHistory {
    pub(crate) slots: Box<[u64; SiteHistory::SLOTS]>,
}

impl Default for SiteHistory {
    fn default() -> Self {
        SiteHistory {
            slots: Box::new([0; SiteHistory::SLOTS]),
        }
    }
}

impl SiteHistory {
    pub(crate) const SLOTS: usize = 4096;

    #[inline(always)]
    pub(crate) fn index(site: u64) -> usize {
        (site as usize) & (Self::SLOTS - 1)
    }

    pub(crate) fn clear(&mut self) {
        self.slots.fill(0);
    }
}

/// The previous address per (device, buffer type): first-fit allocators hand
/// out nearby addresses on one bank manager, so deltas against it are small.
#[derive(Default, Clone)]
pub struct AddrHistory {
    slots: Vec<u64>,
}

impl AddrHistory {
    /// Devices with ids below this get their own slots; others share slot 0..5.
    const MAX_DEVICES: u32 = 1024;

    #[inline]
    pub(crate) fn slot(&mut self, device: u32, bt: u8) -> &mut u64 {
        let d = if device < Self::MAX_DEVICES {
            device as usize
        } else {
            0
        };
        let i = d * 5 + bt as usize;
        if i >= self.slots.len() {
            self.slots.resize(i + 1, 0);
        }
        &mut self.slots[i]
    }

    pub(crate) fn clear(&mut self) {
        self.slots.clear();
    }

    /// Slots a decoder needs for every (device, buffer type) pair.
    pub(crate) const SLOTS: usize = Self::MAX_DEVICES as usize * 5;

    /// The slot of (device, buffer type code `bt` < 5) in a table of `SLOTS` entries.
    #[inline(always)]
    pub(crate) fn index(device: u32, bt: u8) -> usize {
        let d = if device < Self::MAX_DEVICES {
            device
        } else {
            0
        };
        (d * 5) as usize + bt as usize
    }
}
