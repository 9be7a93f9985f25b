//! `--fail-on KINDS`: which findings make `ttalloc replay` (and
//! `ttalloc record`) exit with status 1.

use crate::report::Report;
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailKind {
    /// Any buffer left behind, outliving its device or never freed.
    Leak,
    /// Tracked live bytes grow per cycle after warm-up.
    Growth,
    Oom,
    UnknownFree,
    DoubleFree,
    Divergence,
    /// Any finding at all (including circular-buffer clashes).
    Any,
}

impl FailKind {
    pub const ALL: [FailKind; 7] = [
        FailKind::Leak,
        FailKind::Growth,
        FailKind::Oom,
        FailKind::UnknownFree,
        FailKind::DoubleFree,
        FailKind::Divergence,
        FailKind::Any,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FailKind::Leak => "leak",
            FailKind::Growth => "growth",
            FailKind::Oom => "oom",
            FailKind::UnknownFree => "unknown-free",
            FailKind::DoubleFree => "double-free",
            FailKind::Divergence => "divergence",
            FailKind::Any => "any",
        }
    }
}

impl fmt::Display for FailKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FailKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase().replace('_', "-");
        FailKind::ALL
            .into_iter()
            .find(|k| k.name() == t)
            .ok_or_else(|| {
                let names: Vec<&str> = FailKind::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "unknown --fail-on kind '{s}' (expected a comma-separated list of {})",
                    names.join(", ")
                )
            })
    }
}

/// Parses `leak,growth,oom` (commas, optional spaces; empty items ignored).
pub fn parse_fail_on(s: &str) -> Result<Vec<FailKind>, String> {
    let kinds: Vec<FailKind> = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    if kinds.is_empty() {
        return Err("--fail-on needs at least one kind".into());
    }
    Ok(kinds)
}

impl Report {
    /// Whether a finding of one of `kinds` is present.
    pub fn fails(&self, kinds: &[FailKind]) -> bool {
        kinds.iter().any(|k| self.has(*k))
    }

    pub fn has(&self, kind: FailKind) -> bool {
        match kind {
            FailKind::Leak => !self.leaks.is_empty(),
            FailKind::Growth => self.growth_per_cycle.total() > 0,
            FailKind::Oom => self.oom.is_some(),
            FailKind::UnknownFree => self.unknown_frees > 0,
            FailKind::DoubleFree => self.double_frees > 0,
            FailKind::Divergence => self.divergences > 0,
            FailKind::Any => self.has_findings(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists() {
        assert_eq!(parse_fail_on("leak").unwrap(), vec![FailKind::Leak]);
        assert_eq!(
            parse_fail_on("leak, growth,unknown-free,double_free").unwrap(),
            vec![
                FailKind::Leak,
                FailKind::Growth,
                FailKind::UnknownFree,
                FailKind::DoubleFree
            ]
        );
        assert_eq!(parse_fail_on("ANY").unwrap(), vec![FailKind::Any]);
        assert!(parse_fail_on("leaks")
            .unwrap_err()
            .contains("unknown --fail-on kind 'leaks'"));
        assert!(parse_fail_on(" , ").is_err());
        for k in FailKind::ALL {
            assert_eq!(k.name().parse::<FailKind>().unwrap(), k);
        }
    }
}
