//! Collapsed stacks (`outer;…;inner bytes`, one line per call site), the
//! input format of flamegraph.pl, inferno and speedscope.

use super::Metric;
use crate::analysis::Analysis;
use crate::report::Site;
use ttalloc_model::ResolvedFrame;

/// The folded lines of `metric`, largest first; their counts sum to the
/// leaked bytes (or the peak's bytes).
pub fn folded(a: &Analysis, metric: Metric) -> String {
    let sites = match metric {
        Metric::Leaked => &a.leaked_by_site,
        Metric::Peak => &a.peak_sites,
    };
    let mut out = String::new();
    for (site, bytes) in sites {
        if *bytes == 0 {
            continue;
        }
        out.push_str(&stack(site));
        out.push(' ');
        out.push_str(&bytes.to_string());
        out.push('\n');
    }
    out
}

/// The stack outermost first, frames joined by `;`.
pub fn stack(site: &Site) -> String {
    if site.frames.is_empty() {
        return "<no call site>".to_owned();
    }
    let frames: Vec<String> = site.frames.iter().rev().map(frame).collect();
    frames.join(";")
}

/// `function (file:line)`, without the characters the format reserves.
fn frame(f: &ResolvedFrame) -> String {
    format!("{} ({}:{})", f.function, f.file, f.line).replace([';', '\n', '\r'], "_")
}
