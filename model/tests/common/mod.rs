//! What the model's integration tests share.

use ttalloc_model::DeviceConfig;

/// A device with small banks, so that out-of-memory, fragmentation and
/// circular-buffer clashes happen often.
pub fn small_config() -> DeviceConfig {
    DeviceConfig {
        dram_banks: Some(4),
        dram_bank_size: Some(64 << 10),
        dram_unreserved_base: Some(32),
        l1_banks: Some(8),
        l1_bank_size: Some(24 << 10),
        l1_unreserved_base: Some(4096),
        l1_small_size: Some(8 << 10),
        trace_region_size: Some(16 << 10),
        worker_l1_size: Some(4096 + (32 << 10)),
        ..Default::default()
    }
}
