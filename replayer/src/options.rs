//! What a replay is asked to do: architecture, config overrides, warm-up,
//! how cycles are delimited, whether to bisect.

use regex::Regex;
use std::fmt;
use std::str::FromStr;
use ttalloc_model::{Arch, DeviceConfig};

/// How the trace is cut into cycles (repetitions of the workload).
#[derive(Clone, Debug, Default)]
pub enum CycleMode {
    /// Tests of a pytest run if there are any, else device open/close spans
    /// if there are several, else markers if there are several, else the
    /// most repeated top-level op that is not a ttnn call, else the life of
    /// the one device opened and closed; else no cycles.
    #[default]
    Auto,
    /// One cycle per pytest test (the plugin's `pytest:begin NODEID` ..
    /// `pytest:end NODEID` markers), named by its node id.
    Test,
    /// One cycle per span during which at least one device is open.
    Device,
    /// One cycle per marker (matching the regex, if any), up to the next one.
    Marker(Option<Regex>),
    /// One cycle per top-level occurrence of the op with this name.
    Op(String),
}

impl FromStr for CycleMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(CycleMode::Auto),
            "device" => Ok(CycleMode::Device),
            "test" => Ok(CycleMode::Test),
            "marker" => Ok(CycleMode::Marker(None)),
            _ => {
                if let Some(re) = s.strip_prefix("marker=") {
                    let re = Regex::new(re).map_err(|e| format!("--cycles marker={re}: {e}"))?;
                    Ok(CycleMode::Marker(Some(re)))
                } else if let Some(name) = s.strip_prefix("op=") {
                    if name.is_empty() {
                        return Err("--cycles op=NAME needs an op name".into());
                    }
                    Ok(CycleMode::Op(name.to_owned()))
                } else {
                    Err(format!(
                        "unknown cycle mode '{s}' (expected auto, test, device, marker, marker=REGEX or op=NAME)"
                    ))
                }
            }
        }
    }
}

impl fmt::Display for CycleMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CycleMode::Auto => f.write_str("auto"),
            CycleMode::Device => f.write_str("device"),
            CycleMode::Test => f.write_str("test"),
            CycleMode::Marker(None) => f.write_str("marker"),
            CycleMode::Marker(Some(re)) => write!(f, "marker={}", re.as_str()),
            CycleMode::Op(name) => write!(f, "op={name}"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// Architecture for devices whose trace carries no (known) arch.
    pub arch: Arch,
    /// `--set KEY=VALUE` overrides applied on top of every device's config.
    pub overrides: DeviceConfig,
    /// Cycles excluded from growth and bisect (caches filling up).
    pub warmup: usize,
    pub cycles: CycleMode,
    /// Rank sites, find the first leaking cycle and allocation, run ddmin.
    pub bisect: bool,
    /// Show progress bars (they also hide themselves when stderr is not a terminal).
    pub progress: bool,
    /// The group progress bars join when several replays run at once
    /// (`diff`'s two sides): drawn together, not over one another.
    pub progress_group: Option<indicatif::MultiProgress>,
    /// What the progress bars name the replay by (`diff`'s "before" and
    /// "after").
    pub progress_label: Option<&'static str>,
    /// Decode a trace file's next block on a second thread while this one
    /// replays: sooner done when a core is free, for more CPU in all.
    pub decode_ahead: bool,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            arch: Arch::WormholeB0,
            overrides: DeviceConfig::default(),
            warmup: 1,
            cycles: CycleMode::Auto,
            bisect: false,
            progress: false,
            progress_group: None,
            progress_label: None,
            decode_ahead: true,
        }
    }
}

impl ReplayOptions {
    /// Applies one `KEY=VALUE` override.
    pub fn set(&mut self, assignment: &str) -> Result<(), String> {
        let (key, value) = assignment
            .split_once('=')
            .ok_or_else(|| format!("--set expects KEY=VALUE, got '{assignment}'"))?;
        self.overrides.set(key.trim(), value.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycle_modes_parse() {
        assert!(matches!(
            "auto".parse::<CycleMode>().unwrap(),
            CycleMode::Auto
        ));
        assert!(matches!(
            "device".parse::<CycleMode>().unwrap(),
            CycleMode::Device
        ));
        assert!(matches!(
            "test".parse::<CycleMode>().unwrap(),
            CycleMode::Test
        ));
        assert!(matches!(
            "marker".parse::<CycleMode>().unwrap(),
            CycleMode::Marker(None)
        ));
        match "marker=^run \\d+$".parse::<CycleMode>().unwrap() {
            CycleMode::Marker(Some(re)) => {
                assert!(re.is_match("run 12") && !re.is_match("rerun 1"))
            }
            other => panic!("{other:?}"),
        }
        match "op=ttnn.matmul".parse::<CycleMode>().unwrap() {
            CycleMode::Op(n) => assert_eq!(n, "ttnn.matmul"),
            other => panic!("{other:?}"),
        }
        assert!("marker=(".parse::<CycleMode>().is_err());
        assert!("op=".parse::<CycleMode>().is_err());
        assert!("weekly".parse::<CycleMode>().is_err());
    }

    #[test]
    fn set_needs_key_and_value() {
        let mut o = ReplayOptions::default();
        o.set("l1_small_size=2M").unwrap();
        assert_eq!(o.overrides.l1_small_size, Some(2 << 20));
        assert!(o.set("l1_small_size").is_err());
        assert!(o.set("bogus=1").is_err());
    }
}
