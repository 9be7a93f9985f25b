//! What a trace knows about a device's memory layout. Every field may be
//! unknown: the replayer fills gaps from an architecture preset, then applies
//! the user's `--set KEY=VALUE` overrides.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Chip architecture. Numbering follows the allocation server's `arch_type`
/// (0 invalid, 1 Grayskull, 2 Wormhole_B0, 3 Blackhole, 4 Quasar).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
/// JSON spells it as the text does: "wormhole_b0", not "WormholeB0".
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Arch {
    #[default]
    Unknown = 0,
    Grayskull = 1,
    WormholeB0 = 2,
    Blackhole = 3,
    Quasar = 4,
}

impl Arch {
    pub const ALL: [Arch; 5] = [
        Arch::Unknown,
        Arch::Grayskull,
        Arch::WormholeB0,
        Arch::Blackhole,
        Arch::Quasar,
    ];

    pub fn from_u8(v: u8) -> Option<Arch> {
        Arch::ALL.get(v as usize).copied()
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::Unknown => "unknown",
            Arch::Grayskull => "grayskull",
            Arch::WormholeB0 => "wormhole_b0",
            Arch::Blackhole => "blackhole",
            Arch::Quasar => "quasar",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace('-', "_");
        match norm.as_str() {
            "unknown" | "invalid" | "" => Ok(Arch::Unknown),
            "grayskull" | "gs" => Ok(Arch::Grayskull),
            "wormhole_b0" | "wormhole" | "wh" | "wormhole_b0_arch" => Ok(Arch::WormholeB0),
            "blackhole" | "bh" => Ok(Arch::Blackhole),
            "quasar" => Ok(Arch::Quasar),
            _ => Err(format!(
                "unknown architecture '{s}' (expected wormhole_b0, blackhole, grayskull or quasar)"
            )),
        }
    }
}

macro_rules! device_config {
    ($( $(#[$doc:meta])* $field:ident : $ty:ty ),* $(,)?) => {
        /// A device's memory layout as far as the recorder knew it.
        #[derive(Clone, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
        pub struct DeviceConfig {
            $( $(#[$doc])* #[serde(default, skip_serializing_if = "Option::is_none")] pub $field: Option<$ty>, )*
        }

        impl DeviceConfig {
            /// Every field name, in declaration order (the keys of `--set` and of
            /// the Python client's `device_open(**config)`).
            pub const KEYS: &'static [&'static str] = &[$(stringify!($field)),*];

            /// Sets one field from its name and a decimal (or 0x-hex, or
            /// K/M/G-suffixed) value.
            pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
                match key {
                    $( stringify!($field) => {
                        let v = parse_quantity(value).map_err(|e| format!("{key}: {e}"))?;
                        self.$field = Some(<$ty>::try_from(v).map_err(|_| format!("{key}: {value} is out of range"))?);
                        Ok(())
                    } )*
                    _ => Err(format!("unknown device config key '{key}' (known: {})", Self::KEYS.join(", "))),
                }
            }

            /// The known fields as (name, value) pairs.
            pub fn known(&self) -> Vec<(&'static str, u64)> {
                let mut out = Vec::new();
                $( if let Some(v) = self.$field { out.push((stringify!($field), v as u64)); } )*
                out
            }

            /// Fields of `other` that are known override ours.
            pub fn overlay(&mut self, other: &DeviceConfig) {
                $( if other.$field.is_some() { self.$field = other.$field; } )*
            }
        }
    };
}

device_config! {
    /// Number of DRAM banks (one per channel on Wormhole/Blackhole).
    dram_banks: u32,
    /// Allocatable bytes per DRAM bank.
    dram_bank_size: u64,
    /// DRAM buffer alignment in bytes.
    dram_alignment: u32,
    /// Lowest allocatable DRAM address (after the reserved area).
    dram_unreserved_base: u64,
    /// Number of L1 banks (worker cores, possibly several banks per core).
    l1_banks: u32,
    /// Allocatable bytes per L1 bank (L1_SMALL excluded).
    l1_bank_size: u64,
    /// L1 buffer alignment in bytes.
    l1_alignment: u32,
    /// Lowest allocatable L1 address (after firmware / reserved area).
    l1_unreserved_base: u64,
    /// Size of the L1_SMALL region at the top of each L1 bank.
    l1_small_size: u64,
    /// Size of the trace region at the top of each DRAM bank.
    trace_region_size: u64,
    /// Total worker L1 per core.
    worker_l1_size: u64,
}

/// Parses `1234`, `0x4d2`, `64K`, `2M`, `1G` (binary multiples).
pub fn parse_quantity(s: &str) -> Result<u64, String> {
    let t = s.trim().replace('_', "");
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return u64::from_str_radix(hex, 16).map_err(|_| format!("'{s}' is not a number"));
    }
    let (digits, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&t[..t.len() - 1], 1u64 << 20),
        Some('g' | 'G') => (&t[..t.len() - 1], 1u64 << 30),
        _ => (t.as_str(), 1),
    };
    let digits = digits.strip_suffix(['b', 'B']).unwrap_or(digits);
    digits
        .parse::<u64>()
        .ok()
        .and_then(|v| v.checked_mul(mult))
        .ok_or_else(|| format!("'{s}' is not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_parses_suffixes_and_rejects_unknown_keys() {
        let mut c = DeviceConfig::default();
        c.set("l1_small_size", "2M").unwrap();
        c.set("dram_banks", "12").unwrap();
        c.set("dram_alignment", "0x20").unwrap();
        assert_eq!(c.l1_small_size, Some(2 * 1024 * 1024));
        assert_eq!(c.dram_banks, Some(12));
        assert_eq!(c.dram_alignment, Some(32));
        assert!(c
            .set("nope", "1")
            .unwrap_err()
            .contains("unknown device config key"));
        assert!(c
            .set("dram_banks", "99999999999")
            .unwrap_err()
            .contains("out of range"));
        assert!(c.set("dram_banks", "abc").is_err());
    }

    #[test]
    fn overlay_keeps_unknown_fields() {
        let mut base = DeviceConfig {
            dram_banks: Some(12),
            l1_banks: Some(64),
            ..Default::default()
        };
        let over = DeviceConfig {
            l1_banks: Some(56),
            ..Default::default()
        };
        base.overlay(&over);
        assert_eq!(base.dram_banks, Some(12));
        assert_eq!(base.l1_banks, Some(56));
    }

    #[test]
    fn arch_names_round_trip() {
        for a in Arch::ALL {
            assert_eq!(a.name().parse::<Arch>().unwrap(), a);
            assert_eq!(Arch::from_u8(a as u8), Some(a));
        }
    }
}
