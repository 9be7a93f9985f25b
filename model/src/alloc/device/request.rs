//! What a caller asks the device to allocate.

use crate::event::{BufferType, Layout};

/// What to allocate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocRequest {
    pub buffer_type: BufferType,
    /// Total size in bytes.
    pub size: u64,
    /// `None` (or 0): unknown — the buffer is treated as one page.
    pub page_size: Option<u64>,
    pub layout: Layout,
    /// Shards (cores) of a sharded buffer; ignored for interleaved ones.
    pub num_cores: Option<u32>,
    /// `None`: the type's default direction (DRAM/TRACE bottom-up, L1/L1_SMALL top-down).
    pub bottom_up: Option<bool>,
    /// Bytes tt-metal reserved per bank, when recorded: reserved exactly
    /// (rounded to the alignment) instead of computed from the size.
    pub per_bank_size: Option<u64>,
}

impl AllocRequest {
    /// An interleaved buffer in the default direction.
    pub fn interleaved(buffer_type: BufferType, size: u64, page_size: Option<u64>) -> AllocRequest {
        AllocRequest {
            buffer_type,
            size,
            page_size,
            layout: Layout::Interleaved,
            num_cores: None,
            bottom_up: None,
            per_bank_size: None,
        }
    }

    /// A height-sharded buffer over `num_cores` cores in the default direction.
    pub fn sharded(
        buffer_type: BufferType,
        size: u64,
        page_size: Option<u64>,
        num_cores: u32,
    ) -> AllocRequest {
        AllocRequest {
            buffer_type,
            size,
            page_size,
            layout: Layout::HeightSharded,
            num_cores: Some(num_cores),
            bottom_up: None,
            per_bank_size: None,
        }
    }

    pub fn with_bottom_up(mut self, bottom_up: bool) -> AllocRequest {
        self.bottom_up = Some(bottom_up);
        self
    }

    /// The bytes per bank tt-metal reserved (see [`AllocRequest::per_bank_size`]).
    pub fn with_per_bank_size(mut self, per_bank_size: u64) -> AllocRequest {
        self.per_bank_size = Some(per_bank_size);
        self
    }

    /// [`AllocRequest::num_shards`] as a count, 0 for none, worked out
    /// without a branch (a replay mixes interleaved and sharded buffers
    /// unpredictably).
    #[inline(always)]
    pub(in crate::alloc) fn shard_count(&self) -> u32 {
        std::hint::select_unpredictable(self.layout.is_sharded(), self.num_cores.unwrap_or(0), 0)
    }

    /// Shards for the bank manager: `Some` only for sharded layouts with a known core count.
    pub(in crate::alloc) fn num_shards(&self) -> Option<u32> {
        if self.layout.is_sharded() {
            self.num_cores.filter(|&n| n > 0)
        } else {
            None
        }
    }
}
