//! The recorded device layout (a self-consistent wormhole_b0 config) and
//! the generator's first-fit allocator over it.

use std::collections::{HashMap, VecDeque};
use ttalloc_model::{DeviceConfig, ProgramId};

/// A first-fit allocator over one bank's address range (all banks in lockstep).
pub(super) struct FreeList {
    /// Sorted, coalesced free ranges [start, end).
    free: Vec<(u64, u64)>,
    top_down: bool,
    alignment: u64,
}

impl FreeList {
    pub(super) fn new(base: u64, size: u64, alignment: u64, top_down: bool) -> Self {
        FreeList {
            free: vec![(base, base + size)],
            top_down,
            alignment,
        }
    }
    pub(super) fn alloc(&mut self, size: u64) -> Option<u64> {
        let size = size.div_ceil(self.alignment).max(1) * self.alignment;
        let fits = |&(s, e): &(u64, u64)| e - s >= size;
        if self.top_down {
            let i = self.free.iter().rposition(fits)?;
            let (s, e) = self.free[i];
            if e - s == size {
                self.free.remove(i);
            } else {
                self.free[i].1 = e - size;
            }
            Some(e - size)
        } else {
            let i = self.free.iter().position(fits)?;
            let (s, e) = self.free[i];
            if e - s == size {
                self.free.remove(i);
            } else {
                self.free[i].0 = s + size;
            }
            Some(s)
        }
    }
    pub(super) fn free(&mut self, addr: u64, size: u64) {
        let size = size.div_ceil(self.alignment).max(1) * self.alignment;
        let i = self.free.partition_point(|&(s, _)| s < addr);
        self.free.insert(i, (addr, addr + size));
        if i + 1 < self.free.len() && self.free[i].1 == self.free[i + 1].0 {
            self.free[i].1 = self.free[i + 1].1;
            self.free.remove(i + 1);
        }
        if i > 0 && self.free[i - 1].1 == self.free[i].0 {
            self.free[i - 1].1 = self.free[i].1;
            self.free.remove(i);
        }
    }
}

// The recorded layout is the wormhole_b0 preset's (`ttalloc_model::alloc::
// preset`) with a 4 MiB DRAM reserve, a 32 MiB trace region and a 32 KiB
// L1_SMALL region carved out of the same 1 GiB DRAM channel and the same
// 1499136 B worker L1, so the model accepts it as recorded: the bank sizes
// are what the model would derive (channel or worker L1 minus the base and
// the region on top of the bank).
pub(super) const DRAM_BANKS: u64 = 12;
/// The preset's DRAM channel: its unreserved base plus its bank size.
pub(super) const DRAM_CHANNEL: u64 = 32 + 1_073_741_792;
pub(super) const DRAM_BASE: u64 = 0x40_0000;
pub(super) const TRACE_REGION: u64 = 32 << 20;
pub(super) const DRAM_BANK_SIZE: u64 = DRAM_CHANNEL - DRAM_BASE - TRACE_REGION;
pub(super) const L1_BANKS: u64 = 64;
pub(super) const WORKER_L1: u64 = 1_499_136;
pub(super) const L1_BASE: u64 = 0x1_9000;
pub(super) const L1_SMALL: u64 = 32_768;
pub(super) const L1_BANK_SIZE: u64 = WORKER_L1 - L1_BASE - L1_SMALL;

pub(super) fn wormhole_config() -> DeviceConfig {
    DeviceConfig {
        dram_banks: Some(DRAM_BANKS as u32),
        dram_bank_size: Some(DRAM_BANK_SIZE),
        dram_alignment: Some(32),
        dram_unreserved_base: Some(DRAM_BASE),
        l1_banks: Some(L1_BANKS as u32),
        l1_bank_size: Some(L1_BANK_SIZE),
        l1_alignment: Some(16),
        l1_unreserved_base: Some(L1_BASE),
        l1_small_size: Some(L1_SMALL),
        trace_region_size: Some(TRACE_REGION),
        worker_l1_size: Some(WORKER_L1),
    }
}

pub(super) struct Device {
    pub(super) dram: FreeList,
    pub(super) l1: FreeList,
    /// Live output tensors, oldest first.
    pub(super) live: VecDeque<u64>,
    pub(super) programs: HashMap<usize, ProgramId>,
}

impl Device {
    pub(super) fn new() -> Self {
        Device {
            dram: FreeList::new(DRAM_BASE, DRAM_BANK_SIZE, 32, false),
            l1: FreeList::new(L1_BASE, L1_BANK_SIZE, 16, true),
            live: VecDeque::new(),
            programs: HashMap::new(),
        }
    }
}
