//! `--fail-on KINDS`, shared by `record` and `replay`: the kinds are the
//! replayer's, so both commands fail on exactly the same findings.

use ttalloc_replayer::{parse_fail_on, FailKind, Report};

/// The parsed `--fail-on` list (one clap value holding several kinds).
#[derive(Clone, Debug)]
pub struct FailOn(pub Vec<FailKind>);

/// clap value parser: `leak,growth,oom,unknown-free,double-free,divergence,any`.
pub fn parse(s: &str) -> Result<FailOn, String> {
    parse_fail_on(s).map(FailOn)
}

/// One line per requested kind that is present in `report`.
pub fn findings(kinds: &FailOn, report: &Report) -> Vec<String> {
    let mut lines = Vec::new();
    for &kind in &kinds.0 {
        if !report.has(kind) {
            continue;
        }
        let what = match kind {
            FailKind::Leak => format!(
                "{} buffer{} left behind, outlived {} device or never freed",
                report.leaks_total,
                if report.leaks_total == 1 { "" } else { "s" },
                if report.leaks_total == 1 {
                    "its"
                } else {
                    "their"
                },
            ),
            FailKind::Growth => format!(
                "live memory grows by {} B per cycle",
                report.growth_per_cycle.total()
            ),
            FailKind::Oom => match &report.oom {
                Some(o) => o.message.clone(),
                None => "out of memory".to_owned(),
            },
            FailKind::UnknownFree => format!("{} frees of unknown buffers", report.unknown_frees),
            FailKind::DoubleFree => format!("{} double frees", report.double_frees),
            FailKind::Divergence => format!(
                "{} allocations placed elsewhere than recorded",
                report.divergences
            ),
            FailKind::Any => "findings present".to_owned(),
        };
        lines.push(format!("finding ({kind}): {what}"));
    }
    lines
}
