//! Statically allocated circular buffers: recorded, placed when their
//! address was not recorded, and checked against L1 buffers and worker L1.

use super::*;

/// The circular buffers recorded since the last `cb_free_all`: how many,
/// and the static ones' region end and byte total, kept as they come
/// (every `cb_alloc` checks the end and a replay reads the total after
/// each). The CBs themselves are not kept: nothing reads them back, and
/// keeping each (a 32-byte push) was a third of a replay's work per CB.
#[derive(Clone, Debug, Default)]
pub(super) struct CbTable {
    count: u64,
    static_end: Option<u64>,
    static_bytes: u64,
}

impl CbTable {
    /// Records a CB; for a static one, returns the static region's end now.
    #[inline(always)]
    fn push(&mut self, cb: CircularBuffer) -> Option<u64> {
        self.count += 1;
        if cb.globally_allocated {
            return None;
        }
        let end = cb.address.saturating_add(cb.size);
        let end = self.static_end.map_or(end, |e| e.max(end));
        self.static_end = Some(end);
        self.static_bytes = self.static_bytes.saturating_add(cb.size);
        Some(end)
    }

    pub(super) fn clear(&mut self) {
        self.count = 0;
        self.static_end = None;
        self.static_bytes = 0;
    }
}

impl Device {
    /// Records a statically allocated circular buffer and checks it as
    /// tt-metal's `validate_circular_buffer_region` does: the static CB
    /// region (from the lowest L1 address up to the end of the highest CB
    /// since the last `cb_free_all`) must stay below every L1 buffer and
    /// within worker L1. Globally allocated CBs live inside an L1 buffer and
    /// are not checked. The CB is recorded even when the check fails (the
    /// recorded program did create it).
    /// In line: the check is a few compares, and as a call its entry, exit
    /// and the result written through memory cost as much again; only a
    /// clash's description is built out of line.
    #[inline(always)]
    pub fn cb_alloc(
        &mut self,
        address: u64,
        size: u64,
        cores: Option<u32>,
        globally_allocated: bool,
    ) -> Result<(), CbClash> {
        let Some(end) = self.cbs.push(CircularBuffer {
            address,
            size,
            cores,
            globally_allocated,
        }) else {
            return Ok(());
        };
        let lowest = self.managers[1].lowest_allocated();
        let below_l1_buffers = match lowest {
            Some(lowest) => end <= lowest,
            None => true,
        };
        if end <= self.cb_l1_limit && below_l1_buffers {
            return Ok(());
        }
        self.cb_region_clash(end, lowest, cores)
    }

    /// [`Device::cb_alloc`] that only tells whether the CB fits (true) or
    /// clashes. A replay counts clashes (the 2M synthetic trace: 83k of its
    /// 200k CBs) and describes only its first ([`Device::cb_clash_now`]):
    /// building each clash (a call, a 48-byte result through the stack and
    /// a branch on it) is not needed, and the outcome is data, so it is
    /// found without a branch.
    #[inline(always)]
    pub fn cb_alloc_fits(
        &mut self,
        address: u64,
        size: u64,
        cores: Option<u32>,
        globally_allocated: bool,
    ) -> bool {
        match self.cbs.push(CircularBuffer {
            address,
            size,
            cores,
            globally_allocated,
        }) {
            Some(end) => self.cb_region_fits(end),
            None => true,
        }
    }

    /// Whether a static CB region ending at `end` stays within worker L1
    /// and below every L1 buffer (the quick check of [`Device::cb_alloc`]).
    #[inline(always)]
    fn cb_region_fits(&self, end: u64) -> bool {
        let lowest = self.managers[1].lowest_allocated().unwrap_or(u64::MAX);
        (end <= self.cb_l1_limit) & (end <= lowest)
    }

    /// The clash of the static CB region as it stands, for a CB with
    /// `cores` (what [`Device::cb_alloc`] returned for the static CB just
    /// recorded, with nothing placed or freed since); `None` if it fits.
    pub fn cb_clash_now(&self, cores: Option<u32>) -> Option<CbClash> {
        let end = self.cbs.static_end?;
        let lowest = self.managers[1].lowest_allocated();
        self.cb_region_clash(end, lowest, cores).err()
    }

    /// The check of [`Device::cb_alloc`] for a static CB region ending at
    /// `end` (`lowest`: the lowest L1 buffer's address) that failed the
    /// quick one: beyond worker L1 first, else into the lowest L1 buffer.
    /// (Out of line, though a replay may clash on most programs: it is the
    /// rarer outcome, and the bigger code.)
    #[inline(never)]
    fn cb_region_clash(
        &self,
        end: u64,
        lowest: Option<u64>,
        cores: Option<u32>,
    ) -> Result<(), CbClash> {
        let max_l1 = self.cb_l1_limit;
        let kind = match lowest {
            _ if end > max_l1 => CbClashKind::BeyondL1 {
                max_l1_size: max_l1,
            },
            Some(lowest) if lowest < end => CbClashKind::L1Buffer {
                l1_buffer_address: lowest,
            },
            _ => return Ok(()),
        };
        Err(CbClash {
            program: self.last_program,
            cores,
            cb_region_end: end,
            kind,
        })
    }

    /// Places a statically allocated circular buffer whose address was not
    /// recorded (graph captures report 0): as a program's CB allocator does,
    /// upward from the start of unreserved L1, at the end of the CBs placed
    /// since the last `cb_free_all`, aligned to the L1 alignment. Then
    /// checks it like [`Device::cb_alloc`]. Returns the address.
    pub fn cb_place(&mut self, size: u64, cores: Option<u32>) -> Result<u64, CbClash> {
        let align = known(self.config.l1_alignment.map(u64::from)).max(1);
        let base = known(self.config.l1_unreserved_base);
        let at = self.cb_region_end().unwrap_or(base).max(base);
        let address = at.div_ceil(align).saturating_mul(align);
        self.cb_alloc(address, size, cores, false).map(|()| address)
    }

    /// [`Device::cb_place`] that only tells whether the CB fits (as
    /// [`Device::cb_alloc_fits`]).
    pub fn cb_place_fits(&mut self, size: u64, cores: Option<u32>) -> bool {
        self.cb_place(size, cores).is_ok()
    }

    /// All circular buffers of the device are gone (`track_deallocate_cb`).
    pub fn cb_free_all(&mut self) {
        self.cbs.clear();
    }

    /// Bytes per core of the static (not globally allocated) circular
    /// buffers since the last `cb_free_all` (saturating).
    pub fn cb_static_bytes(&self) -> u64 {
        self.cbs.static_bytes
    }

    /// How many circular buffers were recorded since the last
    /// `cb_free_all` (static and globally allocated).
    pub fn cb_count(&self) -> u64 {
        self.cbs.count
    }

    /// End of the static (not globally allocated) CB region, if any.
    pub fn cb_region_end(&self) -> Option<u64> {
        self.cbs.static_end
    }
}
