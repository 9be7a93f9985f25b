//! `ttalloc report --format md`: a Markdown summary to paste into a GitHub
//! issue — findings, per-cycle table, top call sites, how to reproduce.
//! Tables are capped so the text stays well under 10 KB.

use crate::analysis::Analysis;
use crate::diff::site_name;
use crate::findings::LeakClass;
use crate::report::Site;
use std::fmt::Write as _;
use ttalloc_model::units::thousands;
use ttalloc_trace::summary::TraceSummary;

/// Rows of the per-cycle table (the first and last cycles when there are more).
const MAX_CYCLE_ROWS: usize = 12;
const MAX_SITES: usize = 8;
const MAX_FINDING_LINES: usize = 10;

pub fn markdown(a: &Analysis, summary: &TraceSummary, trace: &str) -> String {
    let r = &a.report;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## ttalloc report: `{}`\n",
        cut(&summary.argv.join(" "), 200)
    );
    let _ = writeln!(
        out,
        "{} events, {} device(s), {} cycle(s) by {}, {:.3} s recorded{}\n",
        thousands(r.events),
        r.devices.len(),
        r.cycles.len(),
        r.cycle_kind,
        summary.duration_ns as f64 / 1e9,
        if r.truncated.is_some() {
            " (**truncated trace**)"
        } else {
            ""
        }
    );
    out.push_str("### Findings\n\n");
    let lines = findings(a);
    if lines.is_empty() {
        out.push_str(
            "No findings: nothing left behind, no growth, no out-of-memory, no bad frees.\n",
        );
    }
    for l in lines.iter().take(MAX_FINDING_LINES) {
        let _ = writeln!(out, "- {l}");
    }
    if lines.len() > MAX_FINDING_LINES {
        let _ = writeln!(out, "- … and {} more", lines.len() - MAX_FINDING_LINES);
    }
    out.push('\n');
    if !r.cycles.is_empty() {
        out.push_str("### Cycles\n\n| cycle | events | left behind | buffers | live DRAM | live L1 | live L1_SMALL | live TRACE |\n|---:|---|---:|---:|---:|---:|---:|---:|\n");
        let n = r.cycles.len();
        let half = MAX_CYCLE_ROWS / 2;
        for (i, c) in r.cycles.iter().enumerate() {
            if n > MAX_CYCLE_ROWS && i == half {
                let _ = writeln!(
                    out,
                    "| … | {} cycles not shown | | | | | | |",
                    n - MAX_CYCLE_ROWS
                );
            }
            if n > MAX_CYCLE_ROWS && i >= half && i < n - half {
                continue;
            }
            let warm = if (c.index as usize) <= r.warmup {
                " (warm-up)"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "| {}{warm} | {}–{} | {} B | {} | {} | {} | {} | {} |",
                c.index,
                c.start_event,
                c.end_event,
                thousands(c.left_behind_bytes),
                c.left_behind_buffers,
                thousands(c.live_after.dram),
                thousands(c.live_after.l1),
                thousands(c.live_after.l1_small),
                thousands(c.live_after.trace)
            );
        }
        out.push('\n');
    }
    site_table(
        &mut out,
        "Call sites by bytes left behind per cycle",
        &a.left_per_cycle_by_site,
    );
    site_table(
        &mut out,
        "Call sites by bytes leaked at the end",
        &a.leaked_by_site,
    );
    if let Some(p) = &a.peak {
        let title = format!(
            "Call sites at the highest peak ({} B {} on device {}, event {})",
            thousands(p.bytes),
            p.buffer_type.name(),
            p.device,
            p.event
        );
        site_table(&mut out, &title, &a.peak_sites);
    }
    let _ = writeln!(
        out,
        "### Reproduce\n\n```sh\nttalloc replay {trace} --bisect\nttalloc report {trace} -o report.html\n```"
    );
    out
}

/// One line per finding kind, naming the call site.
fn findings(a: &Analysis) -> Vec<String> {
    let r = &a.report;
    let mut lines = Vec::new();
    for (class, what) in [
        (LeakClass::LeftBehind, "left behind by their cycle"),
        (LeakClass::OutlivedDevice, "outlived their device"),
        (LeakClass::NeverFreed, "never freed"),
    ] {
        let leaks: Vec<_> = r.leaks.iter().filter(|l| l.class == class).collect();
        if leaks.is_empty() {
            continue;
        }
        let bytes: u64 = leaks.iter().map(|l| l.size).sum();
        lines.push(format!(
            "**{}** objects ({} B) {what}; first at event {}, {}: {}",
            leaks.len(),
            thousands(bytes),
            leaks[0].event,
            code(&leaks[0].name),
            code(&site_name(&leaks[0].site))
        ));
    }
    for g in &r.growth {
        lines.push(format!(
            "**growth**: device {} {} +{} B per cycle since cycle {}",
            g.device,
            g.buffer_type,
            thousands(g.bytes_per_cycle),
            g.since_cycle
        ));
    }
    if let Some(o) = &r.oom {
        lines.push(format!(
            "**out of memory** at event {}: {} — {}",
            o.event,
            cut(&o.message, 300),
            code(&site_name(&o.site))
        ));
    }
    if r.unknown_frees > 0 {
        lines.push(format!("**{}** frees of unknown buffers", r.unknown_frees));
    }
    if r.double_frees > 0 {
        lines.push(format!("**{}** double frees", r.double_frees));
    }
    if r.divergences > 0 {
        lines.push(format!(
            "**{}** allocations placed elsewhere than recorded",
            r.divergences
        ));
    }
    if let Some(b) = r
        .bisect
        .as_ref()
        .and_then(|b| b.site.as_ref().map(|s| (b, s)))
    {
        lines.push(format!(
            "**bisect**: cycle {} is the first to leave bytes behind; first allocation still live: {}",
            b.0.first_cycle.unwrap_or_default(),
            code(&site_name(b.1))
        ));
    }
    lines
}

fn site_table(out: &mut String, title: &str, sites: &[(Site, u64)]) {
    if sites.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "### {title}\n\n| bytes | site | called from |\n|---:|---|---|"
    );
    for (site, bytes) in sites.iter().take(MAX_SITES) {
        let caller = site
            .frames
            .get(1)
            .map(|f| format!("{} ({}:{})", f.function, f.file, f.line))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            thousands(*bytes),
            code(&site_name(site)),
            code(&caller)
        );
    }
    if sites.len() > MAX_SITES {
        let _ = writeln!(out, "| | … {} more sites | |", sites.len() - MAX_SITES);
    }
    out.push('\n');
}

/// Inline code, safe in a table cell.
fn code(s: &str) -> String {
    if s.is_empty() {
        return String::new();
    }
    format!("`{}`", cut(s, 160).replace('`', "'").replace('|', "\\|"))
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let head: String = s.chars().take(max).collect();
    head + "…"
}
