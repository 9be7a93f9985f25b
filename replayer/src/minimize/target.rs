//! Which finding a minimisation keeps, and whether a replay of a subset
//! still shows it.
//!
//! A finding is identified by its kind, buffer type and call site; an OOM
//! also by its request size, and with `exact` by tt-metal's message. A leak
//! must be one of the buffers that leaked in the original trace (dropping
//! the free of a buffer that was freed does not make "the same" leak).

use super::store::EventStore;
use crate::accumulation;
use crate::bisect;
use crate::findings::Findings;
use crate::ReplayError;
use serde::Serialize;
use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use ttalloc_model::{BufferType, EventKind, InternTables, SiteId};

/// The finding kinds `--keep` takes (those of `--fail-on`, and cb-clash).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    Oom,
    Leak,
    Growth,
    UnknownFree,
    DoubleFree,
    CbClash,
    Divergence,
}

impl FindingKind {
    /// In order of severity (the default choice is the first one present).
    pub const ALL: [FindingKind; 7] = [
        FindingKind::Oom,
        FindingKind::Leak,
        FindingKind::Growth,
        FindingKind::UnknownFree,
        FindingKind::DoubleFree,
        FindingKind::CbClash,
        FindingKind::Divergence,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FindingKind::Oom => "oom",
            FindingKind::Leak => "leak",
            FindingKind::Growth => "growth",
            FindingKind::UnknownFree => "unknown-free",
            FindingKind::DoubleFree => "double-free",
            FindingKind::CbClash => "cb-clash",
            FindingKind::Divergence => "divergence",
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FindingKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase().replace('_', "-");
        FindingKind::ALL
            .into_iter()
            .find(|k| k.name() == t)
            .ok_or_else(|| {
                let names: Vec<&str> = FindingKind::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "unknown finding kind '{s}' (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

/// The finding a minimisation keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub kind: FindingKind,
    /// `None` when the finding has none (an unknown free, a CB clash).
    pub buffer_type: Option<BufferType>,
    pub site: SiteId,
    /// OOM: the request size.
    pub size: Option<u64>,
    /// OOM with `exact`: tt-metal's message.
    pub message: Option<String>,
    /// Leak: the allocation events (original ordinals) that leaked there.
    pub leaked_events: HashSet<u64>,
}

impl Target {
    /// A target that asks nothing of a replay (a leak of no allocation at
    /// no site): for replays run for their findings alone, such as the
    /// original replay that picks the real target.
    pub fn none() -> Target {
        Target {
            kind: FindingKind::Leak,
            buffer_type: None,
            site: ttalloc_model::SiteId::UNKNOWN,
            size: None,
            message: None,
            leaked_events: Default::default(),
        }
    }

    /// One line: `leak of DRAM at extend (kv_cache.py:15)`.
    pub fn describe(&self, interner: &InternTables) -> String {
        let mut s = self.kind.name().to_owned();
        if let Some(bt) = self.buffer_type {
            s.push_str(&format!(" of {bt}"));
        }
        if let Some(size) = self.size {
            s.push_str(&format!(" ({size} B)"));
        }
        s.push_str(&format!(" at {}", site_name(interner, self.site)));
        if let Some(m) = &self.message {
            s.push_str(&format!(": {m}"));
        }
        s
    }
}

/// `function (file:line) <- caller (file:line)`: a site's two innermost
/// frames (the allocating helper alone is shared by many sites);
/// `<unknown site>` without frames.
pub fn site_name(interner: &InternTables, site: SiteId) -> String {
    let frames = interner.resolve(site);
    if frames.is_empty() {
        return "<unknown site>".to_owned();
    }
    frames
        .iter()
        .take(2)
        .map(|f| {
            let file = f.file.rsplit('/').next().unwrap_or(&f.file);
            format!("{} ({}:{})", f.function, file, f.line)
        })
        .collect::<Vec<_>>()
        .join(" <- ")
}

/// What to keep: `kind` (else the most severe present), at a site whose
/// stack has a frame of function `site_function` (if given).
pub struct Selection<'a> {
    pub kind: Option<FindingKind>,
    pub site_function: Option<&'a str>,
    pub exact: bool,
    pub warmup: usize,
}

/// Picks the finding to keep from the original trace's findings.
pub fn select(
    f: &Findings,
    events: &dyn EventStore,
    interner: &InternTables,
    sel: &Selection<'_>,
) -> Result<Target, ReplayError> {
    let site_ok = |site: SiteId| match sel.site_function {
        None => true,
        Some(func) => interner.resolve(site).iter().any(|fr| fr.function == func),
    };
    let kinds: Vec<FindingKind> = match sel.kind {
        Some(k) => vec![k],
        None => FindingKind::ALL.to_vec(),
    };
    for kind in kinds {
        // What the kind needs read from the trace: its finding's alloc.
        let alloc = match (kind, f.first_double_free, &f.first_divergence) {
            (FindingKind::DoubleFree, Some(b), _) => {
                alloc_type_of(events, b.event)?.map(|t| (t, b.site))
            }
            (FindingKind::Divergence, _, Some(d)) => alloc_of(events, d.event)?,
            _ => None,
        };
        if let Some(t) = candidate(kind, f, alloc, interner, sel, &site_ok) {
            return Ok(t);
        }
    }
    let what = match sel.kind {
        Some(k) => format!("no {k} finding"),
        None => "no finding".to_owned(),
    };
    let at = sel
        .site_function
        .map(|s| format!(" at a call site in function '{s}'"))
        .unwrap_or_default();
    Err(ReplayError::Usage(format!(
        "the trace has {what}{at}: nothing to minimise"
    )))
}

fn candidate(
    kind: FindingKind,
    f: &Findings,
    alloc: Option<(BufferType, SiteId)>,
    interner: &InternTables,
    sel: &Selection<'_>,
    site_ok: &dyn Fn(SiteId) -> bool,
) -> Option<Target> {
    let base = |buffer_type: Option<BufferType>, site: SiteId| Target {
        kind,
        buffer_type,
        site,
        size: None,
        message: None,
        leaked_events: HashSet::new(),
    };
    match kind {
        FindingKind::Oom => f.oom.as_ref().filter(|o| site_ok(o.site)).map(|o| Target {
            size: Some(o.size),
            message: sel.exact.then(|| o.message.clone()),
            ..base(Some(o.buffer_type), o.site)
        }),
        FindingKind::Leak => {
            // The leak at the bisect site first (the first leaking cycle's
            // first allocation still live), else the first leak.
            let b = bisect::bisect(&f.cycles, sel.warmup, &f.site_left_behind, interner);
            let preferred = b
                .first
                .filter(|fl| site_ok(fl.site))
                .map(|fl| (fl.buffer_type, fl.site));
            let (bt, site) = preferred.or_else(|| {
                f.leaks
                    .iter()
                    .filter(|l| site_ok(l.site))
                    .min_by_key(|l| l.event)
                    .map(|l| (l.buffer_type, l.site))
            })?;
            let leaked_events = f
                .leaks
                .iter()
                .filter(|l| l.buffer_type == bt && l.site == site)
                .map(|l| l.event)
                .collect::<HashSet<u64>>();
            if leaked_events.is_empty() {
                return None;
            }
            Some(Target {
                leaked_events,
                ..base(Some(bt), site)
            })
        }
        FindingKind::Growth => {
            let g = accumulation::growth(&f.cycles, sel.warmup);
            let bt = g.iter().max_by_key(|g| g.bytes_per_cycle)?.buffer_type;
            // The site leaving the most bytes behind per cycle.
            let site = f
                .site_left_behind
                .iter()
                .filter(|(s, _)| site_ok(*s))
                .max_by_key(|(_, b)| *b)
                .map(|(s, _)| *s)
                .or_else(|| sel.site_function.is_none().then_some(SiteId::UNKNOWN))?;
            Some(base(Some(bt), site))
        }
        FindingKind::UnknownFree => {
            let b = f.first_unknown_free.filter(|b| site_ok(b.site))?;
            Some(base(None, b.site))
        }
        FindingKind::DoubleFree => {
            let b = f.first_double_free.filter(|b| site_ok(b.site))?;
            Some(base(alloc.map(|(t, _)| t), b.site))
        }
        FindingKind::CbClash => {
            let c = f.first_cb_clash.as_ref().filter(|c| site_ok(c.site))?;
            Some(base(None, c.site))
        }
        FindingKind::Divergence => {
            f.first_divergence.as_ref()?;
            let (bt, site) = alloc?;
            site_ok(site).then(|| base(Some(bt), site))
        }
    }
}

/// Buffer type and site of the BufferAlloc at `ordinal`.
fn alloc_of(
    events: &dyn EventStore,
    ordinal: u64,
) -> Result<Option<(BufferType, SiteId)>, ReplayError> {
    Ok(match events.event(ordinal as usize)?.map(|e| e.kind) {
        Some(EventKind::BufferAlloc {
            buffer_type, site, ..
        }) => Some((buffer_type, site)),
        _ => None,
    })
}

/// The buffer type of the buffer freed (twice) at `ordinal`: its alloc's.
fn alloc_type_of(events: &dyn EventStore, ordinal: u64) -> Result<Option<BufferType>, ReplayError> {
    let (device, buffer) = match events.event(ordinal as usize)?.map(|e| e.kind) {
        Some(EventKind::BufferFree { device, buffer, .. }) => (device, buffer),
        _ => return Ok(None),
    };
    // The latest alloc of the buffer before the free (one pass forward:
    // a store reads blocks in order).
    let mut found = None;
    events.each_in(0..ordinal as usize, &mut |_, run| {
        found = run
            .iter()
            .rev()
            .find_map(|e| match e.kind {
                EventKind::BufferAlloc {
                    device: d,
                    buffer: b,
                    buffer_type,
                    ..
                } if d == device && b == buffer => Some(buffer_type),
                _ => None,
            })
            .or(found);
        Ok(())
    })?;
    Ok(found)
}

/// Whether the findings of a replay of `kept` (original ordinals of the
/// replayed events, in order) still show `t`. `events` is the original trace.
pub fn still_shows(
    t: &Target,
    f: &Findings,
    kept: &[u32],
    events: &dyn EventStore,
    warmup: usize,
) -> Result<bool, ReplayError> {
    let original = |ord: u64| kept.get(ord as usize).map(|&o| o as u64);
    Ok(match t.kind {
        FindingKind::Oom => f.oom.as_ref().is_some_and(|o| {
            Some(o.buffer_type) == t.buffer_type
                && o.site == t.site
                && Some(o.size) == t.size
                && t.message.as_ref().is_none_or(|m| *m == o.message)
        }),
        FindingKind::Leak => f.leaks.iter().any(|l| {
            Some(l.buffer_type) == t.buffer_type
                && l.site == t.site
                && original(l.event).is_some_and(|o| t.leaked_events.contains(&o))
        }),
        FindingKind::Growth => {
            let grows = accumulation::growth(&f.cycles, warmup)
                .iter()
                .any(|g| Some(g.buffer_type) == t.buffer_type);
            grows
                && (t.site == SiteId::UNKNOWN
                    || f.site_left_behind
                        .iter()
                        .any(|(s, b)| *s == t.site && *b > 0))
        }
        FindingKind::UnknownFree => f.first_unknown_free.is_some_and(|b| b.site == t.site),
        FindingKind::DoubleFree => f.first_double_free.is_some_and(|b| b.site == t.site),
        FindingKind::CbClash => f.first_cb_clash.as_ref().is_some_and(|c| c.site == t.site),
        FindingKind::Divergence => {
            match f.first_divergence.as_ref().and_then(|d| original(d.event)) {
                Some(o) => alloc_of(events, o)?
                    .is_some_and(|(bt, site)| Some(bt) == t.buffer_type && site == t.site),
                None => false,
            }
        }
    })
}
