//! Architecture presets and config resolution.
//!
//! Numbers come from tt-metal and observed OOM messages
//! (`../shared/reference/tt-metal-memory.md` §5). Where tt-metal's value is
//! not public in an observed message, the preset says so and the field can
//! be overridden (`DeviceConfig::set`).

use super::error::ConfigError;
use crate::config::{Arch, DeviceConfig};

/// L1 bank counts seen on Wormhole B0 grids (8x7, a 60-core harvest, 8x8).
pub const WORMHOLE_B0_L1_BANK_COUNTS: [u32; 3] = [56, 60, 64];

/// Wormhole B0 (n150/n300 chip): 12 DRAM channels of 1 GiB, one bank each.
///
/// - `dram_bank_size` 1073741792 and `dram_unreserved_base` 32: observed OOM
///   messages show a 1 GiB channel minus a 32 B barrier.
/// - `worker_l1_size` 1499136 (1464 KiB), 16 B L1 alignment, 32 B DRAM alignment.
/// - `l1_unreserved_base` 134208 makes the L1 bank 1364928 B, the most often
///   observed Wormhole L1 bank size; firmware reservations differ between
///   tt-metal versions (1330944 and 1329888 were also seen), so override it
///   when a trace says otherwise.
/// - 64 L1 banks (8x8 worker grid); 56 and 60 are common too.
/// - `l1_small_size` and `trace_region_size` default to 0 as in `ttnn.open_device`.
pub fn wormhole_b0() -> DeviceConfig {
    DeviceConfig {
        dram_banks: Some(12),
        dram_bank_size: Some(1_073_741_792),
        dram_alignment: Some(32),
        dram_unreserved_base: Some(32),
        l1_banks: Some(64),
        l1_bank_size: Some(1_364_928),
        l1_alignment: Some(16),
        l1_unreserved_base: Some(134_208),
        l1_small_size: Some(0),
        trace_region_size: Some(0),
        worker_l1_size: Some(1_499_136),
    }
}

/// Blackhole (p150): 8 DRAM banks, 64 B DRAM alignment, 1536 KiB worker L1.
///
/// The geometry the real ttnn 0.81.1 wheel reports for a P150 (mock
/// cluster, `get_memory_view`): 8 DRAM banks of 4277141376 B whose first
/// buffer lands at 1048704 (so a 0xFF000000 B channel), 130 L1 banks of
/// 1461120 B ending at the 1536 KiB worker L1 top (first L1 buffer at
/// 1570816 = 1572864 - 2048).
pub fn blackhole() -> DeviceConfig {
    DeviceConfig {
        dram_banks: Some(8),
        dram_bank_size: Some(4_277_141_376),
        dram_alignment: Some(64),
        dram_unreserved_base: Some(1_048_704),
        l1_banks: Some(130),
        l1_bank_size: Some(1_461_120),
        l1_alignment: Some(16),
        l1_unreserved_base: Some(1_572_864 - 1_461_120),
        l1_small_size: Some(0),
        trace_region_size: Some(0),
        worker_l1_size: Some(1_572_864),
    }
}

/// The fully populated preset for `arch`. Architectures without a preset
/// (unknown, Grayskull, Quasar) get Wormhole B0's.
pub fn preset(arch: Arch) -> DeviceConfig {
    match arch {
        Arch::Blackhole => blackhole(),
        _ => wormhole_b0(),
    }
}

fn field(v: Option<u64>, name: &str) -> Result<u64, ConfigError> {
    v.ok_or_else(|| ConfigError::new(format!("{name} is unknown")))
}

/// Fills `config`'s unknown fields from `preset(arch)`.
///
/// The two derived sizes are recomputed unless `config` gives them, so that
/// "what if" overrides behave as on hardware: a DRAM channel holds
/// `dram_unreserved_base + dram_bank_size + trace_region_size`, and an L1
/// core holds `l1_unreserved_base + l1_bank_size + l1_small_size` up to
/// `worker_l1_size`. Growing the trace region (or L1_SMALL) therefore
/// shrinks the DRAM (or L1) bank, as `init_one_bank_per_channel` /
/// the L1 banking allocator do.
pub fn resolve(arch: Arch, config: &DeviceConfig) -> Result<DeviceConfig, ConfigError> {
    let p = preset(arch);
    let mut r = p.clone();
    r.overlay(config);

    if config.dram_bank_size.is_none() {
        // The preset's own fields: small, known values.
        let channel = field(p.dram_unreserved_base, "dram_unreserved_base")?
            + field(p.dram_bank_size, "dram_bank_size")?
            + field(p.trace_region_size, "trace_region_size")?;
        let base = field(r.dram_unreserved_base, "dram_unreserved_base")?;
        let trace = field(r.trace_region_size, "trace_region_size")?;
        r.dram_bank_size = Some(base.checked_add(trace).and_then(|used| channel.checked_sub(used)).ok_or_else(|| {
            ConfigError::new(format!(
                "dram_unreserved_base {base} B + trace_region_size {trace} B exceed the {channel} B DRAM channel"
            ))
        })?);
    }
    // A recorder that read the bank sizes from the device (ttnn's
    // get_memory_view) does not know where the banks start: derive the base
    // from the channel / worker L1 layout, as the bank size is derived above
    // from a known base.
    if config.dram_bank_size.is_some() && config.dram_unreserved_base.is_none() {
        let channel = field(p.dram_unreserved_base, "dram_unreserved_base")?
            + field(p.dram_bank_size, "dram_bank_size")?
            + field(p.trace_region_size, "trace_region_size")?;
        let used = field(r.dram_bank_size, "dram_bank_size")?
            .checked_add(field(r.trace_region_size, "trace_region_size")?);
        if let Some(base) = used.and_then(|u| channel.checked_sub(u)) {
            r.dram_unreserved_base = Some(base);
        }
    }
    let worker = field(r.worker_l1_size, "worker_l1_size")?;
    if config.l1_bank_size.is_some() && config.l1_unreserved_base.is_none() {
        let used = field(r.l1_bank_size, "l1_bank_size")?
            .checked_add(field(r.l1_small_size, "l1_small_size")?);
        if let Some(base) = used.and_then(|u| worker.checked_sub(u)) {
            r.l1_unreserved_base = Some(base);
        }
    }
    if config.l1_bank_size.is_none() {
        let base = field(r.l1_unreserved_base, "l1_unreserved_base")?;
        let small = field(r.l1_small_size, "l1_small_size")?;
        r.l1_bank_size = Some(base.checked_add(small).and_then(|used| worker.checked_sub(used)).ok_or_else(|| {
            ConfigError::new(format!(
                "l1_unreserved_base {base} B + l1_small_size {small} B exceed worker_l1_size {worker} B"
            ))
        })?);
    }
    // L1_SMALL sits on top of the L1 bank: both must fit in worker L1.
    let l1_end = [r.l1_unreserved_base, r.l1_bank_size, r.l1_small_size]
        .iter()
        .try_fold(0u64, |acc, v| acc.checked_add(v.unwrap_or(0)));
    if l1_end.is_none_or(|end| end > worker) {
        return Err(ConfigError::new(format!(
            "l1_unreserved_base {} B + l1_bank_size {} B + l1_small_size {} B exceed worker_l1_size {worker} B \
             (leave l1_bank_size unknown to derive it)",
            r.l1_unreserved_base.unwrap_or(0),
            r.l1_bank_size.unwrap_or(0),
            r.l1_small_size.unwrap_or(0)
        )));
    }
    for (name, v) in [
        ("dram_banks", r.dram_banks.map(u64::from)),
        ("l1_banks", r.l1_banks.map(u64::from)),
        ("dram_alignment", r.dram_alignment.map(u64::from)),
        ("l1_alignment", r.l1_alignment.map(u64::from)),
    ] {
        if field(v, name)? == 0 {
            return Err(ConfigError::new(format!("{name} must be at least 1")));
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the ttnn capture sends for a mock N150 opened with
    /// `l1_small_size=32768, trace_region_size=65536`: bank counts and sizes
    /// from `get_memory_view`, no bases. tt-metal placed the first DRAM
    /// buffer at 1048640 and the first 2048 B-per-bank L1 buffer at 1464320
    /// (the L1 bank's top, 1466368, minus 2048), so the bases must come out
    /// as 1 GiB - 8192 - 1072684992 and 1499136 - 32768 - 1360544.
    #[test]
    fn bases_are_derived_from_recorded_bank_sizes() {
        let recorded = DeviceConfig {
            dram_banks: Some(12),
            dram_bank_size: Some(1_072_684_992),
            l1_banks: Some(64),
            l1_bank_size: Some(1_360_544),
            l1_small_size: Some(32_768),
            trace_region_size: Some(8_192),
            ..DeviceConfig::default()
        };
        let r = resolve(Arch::WormholeB0, &recorded).unwrap();
        assert_eq!(r.dram_unreserved_base, Some(1_048_640));
        assert_eq!(r.l1_unreserved_base, Some(105_824));
        assert_eq!(
            r.l1_unreserved_base.unwrap() + r.l1_bank_size.unwrap(),
            1_466_368
        );
        // A recorded base wins over the derivation.
        let with_base = DeviceConfig {
            dram_unreserved_base: Some(4096),
            ..recorded.clone()
        };
        let r = resolve(Arch::WormholeB0, &with_base).unwrap();
        assert_eq!(r.dram_unreserved_base, Some(4096));
    }

    /// Blackhole's preset is the P150 geometry the real wheel reports:
    /// first DRAM buffer at 1048704, first 2048 B L1 buffer at 1570816.
    #[test]
    fn blackhole_preset_matches_the_real_wheel() {
        let r = resolve(Arch::Blackhole, &DeviceConfig::default()).unwrap();
        assert_eq!(r.dram_unreserved_base, Some(1_048_704));
        assert_eq!(
            r.l1_unreserved_base.unwrap() + r.l1_bank_size.unwrap() - 2048,
            1_570_816
        );
    }
}
