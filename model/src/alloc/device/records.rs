//! What a device hands out and keeps: a released object, a row of the
//! block table, a live object's record, a recorded circular buffer.

use super::Placement;
use crate::alloc::owner::Owner;
use crate::event::BufferType;
use crate::ids::BufferId;

/// Something that left device memory (a free, an unload, a release, or `close`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Released {
    pub owner: Owner,
    /// `Some` when the owner is a buffer.
    pub buffer: Option<BufferId>,
    /// Where it lived (a trace in a device without a trace region lived in DRAM).
    pub buffer_type: BufferType,
    pub address: u64,
    /// The size requested, in bytes (all banks together).
    pub size: u64,
    /// Bytes it held in each bank.
    pub per_bank: u64,
    pub num_banks: u32,
}

impl Released {
    /// Bytes held across all banks (`per_bank * num_banks`).
    pub fn device_bytes(&self) -> u64 {
        self.per_bank.saturating_mul(self.num_banks as u64)
    }
}

/// One row of the block table (`detailed_memory_usage.csv`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockView {
    pub address: u64,
    pub size: u64,
    pub allocated: bool,
    pub owner: Option<Owner>,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Live {
    pub(super) buffer_type: BufferType,
    pub(super) address: u64,
    pub(super) size: u64,
    pub(super) per_bank: u64,
    pub(super) num_banks: u32,
}

impl Live {
    #[inline(always)]
    pub(super) fn new(req: &super::AllocRequest, p: Placement) -> Live {
        Live {
            buffer_type: req.buffer_type,
            address: p.address,
            size: req.size,
            per_bank: p.per_bank,
            num_banks: p.num_banks,
        }
    }

    pub(super) fn released(self, owner: Owner) -> Released {
        Released {
            owner,
            buffer: match owner {
                Owner::Buffer(b) => Some(b),
                _ => None,
            },
            buffer_type: self.buffer_type,
            address: self.address,
            size: self.size,
            per_bank: self.per_bank,
            num_banks: self.num_banks,
        }
    }
}

/// A statically allocated circular buffer as recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CircularBuffer {
    pub address: u64,
    pub size: u64,
    pub cores: Option<u32>,
    pub globally_allocated: bool,
}
