//! `ttalloc diff BEFORE AFTER`: compares two recordings of the same program
//! (before and after a fix, main and a branch) — per device and buffer type
//! (growth per cycle, peaks), per call site (bytes left behind per cycle and
//! leaked; sites are matched by their frames' function and file, so moved
//! lines still match), and the kinds of findings — and decides whether
//! AFTER is a regression.

use crate::analysis::Analysis;
use crate::fail::FailKind;
use crate::report::{Report, Site};
use serde::Serialize;
use std::collections::BTreeMap;

/// A per-device, per-buffer-type comparison.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TypeDiff {
    pub device: u32,
    pub buffer_type: String,
    pub before_growth_per_cycle: u64,
    pub after_growth_per_cycle: u64,
    pub before_peak: u64,
    pub after_peak: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteChange {
    Added,
    Grew,
    Shrank,
    Removed,
    Same,
}

impl SiteChange {
    pub fn name(self) -> &'static str {
        match self {
            SiteChange::Added => "added",
            SiteChange::Grew => "grew",
            SiteChange::Shrank => "shrank",
            SiteChange::Removed => "removed",
            SiteChange::Same => "same",
        }
    }
}

/// One call site on either side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SiteDiff {
    pub change: SiteChange,
    /// AFTER's frames when the site is there, else BEFORE's.
    pub site: Site,
    pub before_per_cycle: u64,
    pub after_per_cycle: u64,
    pub before_leaked: u64,
    pub after_leaked: u64,
}

/// The totals of one side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SideSummary {
    pub events: u64,
    pub cycles: usize,
    /// Bytes left behind per cycle after warm-up (average).
    pub left_behind_per_cycle: u64,
    /// Bytes still allocated at the end (every leak class).
    pub leaked_bytes: u64,
    pub leaked_objects: u64,
    pub growth_per_cycle: u64,
    pub oom: Option<String>,
    /// Kinds of findings present (`--fail-on` names).
    pub findings: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diff {
    pub before: SideSummary,
    pub after: SideSummary,
    /// Bytes per cycle AFTER may leave behind (or grow) beyond BEFORE.
    pub threshold: u64,
    /// Bytes a peak of AFTER may exceed BEFORE's by.
    pub peak_threshold: u64,
    pub types: Vec<TypeDiff>,
    /// Changed sites first (added, grew, shrank, removed), then unchanged.
    pub sites: Vec<SiteDiff>,
    /// Kinds of findings AFTER has and BEFORE does not.
    pub new_findings: Vec<String>,
    /// Kinds of findings BEFORE had and AFTER does not.
    pub fixed_findings: Vec<String>,
    /// Why AFTER is a regression, one line each (empty: it is not).
    pub regressions: Vec<String>,
}

impl Diff {
    pub fn is_regression(&self) -> bool {
        !self.regressions.is_empty()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a diff always serialises")
    }
}

/// The kinds of findings a diff compares (every `--fail-on` kind but `any`).
const KINDS: [FailKind; 6] = [
    FailKind::Leak,
    FailKind::Growth,
    FailKind::Oom,
    FailKind::UnknownFree,
    FailKind::DoubleFree,
    FailKind::Divergence,
];

fn summary(a: &Analysis) -> SideSummary {
    let r = &a.report;
    SideSummary {
        events: r.events,
        cycles: r.cycles.len(),
        left_behind_per_cycle: left_per_cycle(r),
        leaked_bytes: a.leaked_by_site.iter().map(|s| s.1).sum(),
        leaked_objects: r.leaks_total,
        growth_per_cycle: r.growth_per_cycle.total(),
        oom: r.oom.as_ref().map(|o| o.message.clone()),
        findings: KINDS
            .iter()
            .filter(|k| r.has(**k))
            .map(|k| k.name().to_owned())
            .collect(),
    }
}

/// Average bytes left behind by the cycles after warm-up.
fn left_per_cycle(r: &Report) -> u64 {
    let counted: Vec<u64> = r
        .cycles
        .iter()
        .skip(r.warmup)
        .map(|c| c.left_behind_bytes)
        .collect();
    if counted.is_empty() {
        return 0;
    }
    counted.iter().sum::<u64>() / counted.len() as u64
}

/// A site's identity across recordings: function and file of every frame.
type SiteKey = Vec<(String, String)>;

fn key(site: &Site) -> SiteKey {
    site.frames
        .iter()
        .map(|f| (f.function.clone(), f.file.clone()))
        .collect()
}

/// Per device and type: (growth per cycle, peak).
fn per_type(r: &Report) -> BTreeMap<(u32, String), (u64, u64)> {
    let mut m: BTreeMap<(u32, String), (u64, u64)> = BTreeMap::new();
    for g in &r.growth {
        m.entry((g.device, g.buffer_type.clone())).or_default().0 = g.bytes_per_cycle;
    }
    for (dev, p) in &r.peak {
        let Ok(d) = dev.parse::<u32>() else { continue };
        for (bt, bytes) in [
            ("DRAM", p.dram),
            ("L1", p.l1),
            ("L1_SMALL", p.l1_small),
            ("TRACE", p.trace),
        ] {
            if bytes > 0 {
                m.entry((d, bt.to_owned())).or_default().1 = bytes;
            }
        }
    }
    m
}

/// Compares BEFORE and AFTER. AFTER is a regression when it leaves more
/// behind per cycle, or grows more per cycle on a device and buffer type,
/// by more than `threshold` bytes; peaks higher by more than
/// `peak_threshold`; or has a kind of finding BEFORE did not have.
pub fn diff(before: &Analysis, after: &Analysis, threshold: u64, peak_threshold: u64) -> Diff {
    use ttalloc_model::units::thousands as t;
    let (b, a) = (summary(before), summary(after));
    let mut regressions = Vec::new();

    let (bt, at) = (per_type(&before.report), per_type(&after.report));
    let mut keys: Vec<&(u32, String)> = bt.keys().chain(at.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut types = Vec::new();
    for k in keys {
        let (bg, bp) = bt.get(k).copied().unwrap_or_default();
        let (ag, ap) = at.get(k).copied().unwrap_or_default();
        if ag > bg + threshold {
            regressions.push(format!(
                "device {} {}: live bytes grow by {} B per cycle (before: {} B)",
                k.0,
                k.1,
                t(ag),
                t(bg)
            ));
        }
        if ap > bp + peak_threshold {
            regressions.push(format!(
                "device {} {}: peak {} B (before: {} B, +{} B)",
                k.0,
                k.1,
                t(ap),
                t(bp),
                t(ap - bp)
            ));
        }
        types.push(TypeDiff {
            device: k.0,
            buffer_type: k.1.clone(),
            before_growth_per_cycle: bg,
            after_growth_per_cycle: ag,
            before_peak: bp,
            after_peak: ap,
        });
    }
    if a.left_behind_per_cycle > b.left_behind_per_cycle + threshold {
        regressions.push(format!(
            "{} B left behind per cycle (before: {} B)",
            t(a.left_behind_per_cycle),
            t(b.left_behind_per_cycle)
        ));
    }
    let new_findings: Vec<String> = a
        .findings
        .iter()
        .filter(|k| !b.findings.contains(k))
        .cloned()
        .collect();
    let fixed_findings: Vec<String> = b
        .findings
        .iter()
        .filter(|k| !a.findings.contains(k))
        .cloned()
        .collect();
    for k in &new_findings {
        let what = match (k.as_str(), &a.oom) {
            ("oom", Some(m)) => format!("new finding (oom): {m}"),
            _ => format!("new finding ({k})"),
        };
        regressions.push(what);
    }
    let sites = site_diffs(before, after);
    if !regressions.is_empty() {
        let named: Vec<String> = sites
            .iter()
            .filter(|s| matches!(s.change, SiteChange::Added | SiteChange::Grew))
            .take(5)
            .map(|s| format!("{} ({})", site_name(&s.site), s.change.name()))
            .collect();
        if !named.is_empty() {
            regressions.push(format!("call sites: {}", named.join(", ")));
        }
    }
    Diff {
        before: b,
        after: a,
        threshold,
        peak_threshold,
        types,
        sites,
        new_findings,
        fixed_findings,
        regressions,
    }
}

fn site_diffs(before: &Analysis, after: &Analysis) -> Vec<SiteDiff> {
    // key -> (site, before per cycle, after per cycle, before leaked, after leaked)
    let mut m: BTreeMap<SiteKey, (Site, [u64; 4])> = BTreeMap::new();
    let sides = [
        (&before.left_per_cycle_by_site, 0),
        (&after.left_per_cycle_by_site, 1),
        (&before.leaked_by_site, 2),
        (&after.leaked_by_site, 3),
    ];
    for (list, i) in sides {
        for (site, bytes) in list {
            let e = m.entry(key(site)).or_insert_with(|| (site.clone(), [0; 4]));
            e.1[i] += bytes;
            if i % 2 == 1 {
                e.0 = site.clone();
            }
        }
    }
    let mut out: Vec<SiteDiff> = m
        .into_values()
        .map(|(site, [bc, ac, bl, al])| {
            let change = if bc == 0 && bl == 0 {
                SiteChange::Added
            } else if ac == 0 && al == 0 {
                SiteChange::Removed
            } else if (ac, al) == (bc, bl) {
                SiteChange::Same
            } else if ac > bc || (ac == bc && al > bl) {
                SiteChange::Grew
            } else {
                SiteChange::Shrank
            };
            SiteDiff {
                change,
                site,
                before_per_cycle: bc,
                after_per_cycle: ac,
                before_leaked: bl,
                after_leaked: al,
            }
        })
        .collect();
    out.sort_by(|x, y| {
        let delta = |s: &SiteDiff| {
            (
                s.after_per_cycle.abs_diff(s.before_per_cycle),
                s.after_leaked.abs_diff(s.before_leaked),
            )
        };
        x.change.cmp(&y.change).then(delta(y).cmp(&delta(x)))
    });
    out
}

/// The innermost frame, as the reports name a site.
pub fn site_name(site: &Site) -> String {
    match site.frames.first() {
        Some(f) => format!("{} ({}:{})", f.function, f.file, f.line),
        None => "<no call site>".to_owned(),
    }
}

impl Diff {
    /// The human rendering, in `replay`'s diagnostic style.
    pub fn render_human(&self) -> String {
        use std::fmt::Write as _;
        use ttalloc_model::units::thousands;
        let mut out = String::new();
        if self.is_regression() {
            let _ = writeln!(out, "error[regression]: AFTER is worse than BEFORE");
            for r in &self.regressions {
                let _ = writeln!(out, "  --> {r}");
            }
            let _ = writeln!(
                out,
                "   = note: thresholds {} B per cycle (--threshold), {} B at peak (--peak-threshold)\n",
                thousands(self.threshold),
                thousands(self.peak_threshold)
            );
        }
        let changed: Vec<&SiteDiff> = self
            .sites
            .iter()
            .filter(|s| s.change != SiteChange::Same)
            .collect();
        if !changed.is_empty() {
            let _ = writeln!(
                out,
                "call sites that changed (bytes left behind per cycle, bytes leaked at the end):"
            );
            for s in changed.iter().take(20) {
                let _ = writeln!(
                    out,
                    "  {:<7} {:>14} -> {:<14} B/cycle {:>14} -> {:<14} B  {}",
                    s.change.name(),
                    thousands(s.before_per_cycle),
                    thousands(s.after_per_cycle),
                    thousands(s.before_leaked),
                    thousands(s.after_leaked),
                    site_name(&s.site)
                );
            }
            if changed.len() > 20 {
                let _ = writeln!(out, "  ... and {} more", changed.len() - 20);
            }
            out.push('\n');
        }
        for t in &self.types {
            if (t.before_growth_per_cycle, t.before_peak)
                == (t.after_growth_per_cycle, t.after_peak)
            {
                continue;
            }
            let _ = writeln!(
                out,
                "device {} {}: growth {} -> {} B per cycle, peak {} -> {} B",
                t.device,
                t.buffer_type,
                thousands(t.before_growth_per_cycle),
                thousands(t.after_growth_per_cycle),
                thousands(t.before_peak),
                thousands(t.after_peak)
            );
        }
        if !self.fixed_findings.is_empty() {
            let _ = writeln!(out, "fixed: {}", self.fixed_findings.join(", "));
        }
        if !self.new_findings.is_empty() {
            let _ = writeln!(out, "new: {}", self.new_findings.join(", "));
        }
        for (name, s) in [("before", &self.before), ("after", &self.after)] {
            let _ = writeln!(
                out,
                "{name:>6}: {} events, {} cycles, {} B left behind per cycle, {} B leaked in {} objects{}",
                thousands(s.events),
                s.cycles,
                thousands(s.left_behind_per_cycle),
                thousands(s.leaked_bytes),
                thousands(s.leaked_objects),
                if s.findings.is_empty() {
                    String::new()
                } else {
                    format!("; findings: {}", s.findings.join(", "))
                }
            );
        }
        if !self.is_regression() {
            let _ = writeln!(out, "no regression: AFTER leaves no more behind, has no new finding and peaks no higher");
        }
        out
    }
}
