//! DEVICE_OPEN's device-config fields: their wire order and presence mask.

use ttalloc_model::DeviceConfig;

pub const DEVICE_CONFIG_KEYS: [&str; 11] = [
    "dram_banks",
    "dram_bank_size",
    "dram_alignment",
    "dram_unreserved_base",
    "l1_banks",
    "l1_bank_size",
    "l1_alignment",
    "l1_unreserved_base",
    "l1_small_size",
    "trace_region_size",
    "worker_l1_size",
];
pub const DEVICE_CONFIG_FIELDS: usize = DEVICE_CONFIG_KEYS.len();

pub(super) fn config_to_wire(c: &DeviceConfig) -> (u32, [u64; DEVICE_CONFIG_FIELDS]) {
    let vals = [
        c.dram_banks.map(u64::from),
        c.dram_bank_size,
        c.dram_alignment.map(u64::from),
        c.dram_unreserved_base,
        c.l1_banks.map(u64::from),
        c.l1_bank_size,
        c.l1_alignment.map(u64::from),
        c.l1_unreserved_base,
        c.l1_small_size,
        c.trace_region_size,
        c.worker_l1_size,
    ];
    let mut mask = 0u32;
    let mut out = [0u64; DEVICE_CONFIG_FIELDS];
    for (i, v) in vals.iter().enumerate() {
        if let Some(v) = v {
            mask |= 1 << i;
            out[i] = *v;
        }
    }
    (mask, out)
}

pub(super) fn config_from_wire(
    mask: u32,
    vals: &[u64; DEVICE_CONFIG_FIELDS],
) -> Result<DeviceConfig, String> {
    let mut c = DeviceConfig::default();
    for (i, key) in DEVICE_CONFIG_KEYS.iter().enumerate() {
        if mask & (1 << i) != 0 {
            c.set(key, &vals[i].to_string())?;
        }
    }
    Ok(c)
}
