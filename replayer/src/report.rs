//! The replay's answer, with call sites resolved to frames: the `--json`
//! object (schema in replayer/README.md). `human.rs` renders it for people.

use crate::accumulation::{self, Growth};
use crate::bisect::Bisection;
use crate::findings::*;
use serde::Serialize;
use std::collections::BTreeMap;
use ttalloc_model::buffer_name::{self, BufferName};
use ttalloc_model::{BufferId, InternTables, ResolvedFrame, SiteId, StringId};

/// At most this many leaks are listed one by one (by allocation event);
/// `leaks_total` counts them all.
pub const MAX_LEAKS_LISTED: usize = 100_000;

/// Bytes per device-memory buffer type, named as tt-metal names them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TypeBytes {
    #[serde(rename = "DRAM")]
    pub dram: u64,
    #[serde(rename = "L1")]
    pub l1: u64,
    #[serde(rename = "L1_SMALL")]
    pub l1_small: u64,
    #[serde(rename = "TRACE")]
    pub trace: u64,
}

impl From<PerType> for TypeBytes {
    fn from(t: PerType) -> Self {
        TypeBytes {
            dram: t[0],
            l1: t[1],
            l1_small: t[2],
            trace: t[3],
        }
    }
}

impl TypeBytes {
    pub fn total(&self) -> u64 {
        self.dram + self.l1 + self.l1_small + self.trace
    }
}

/// A call site: its frames, innermost (the allocating function) first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Site {
    pub frames: Vec<ResolvedFrame>,
}

impl Site {
    pub fn resolve(interner: &InternTables, site: SiteId) -> Site {
        Site {
            frames: interner.resolve(site),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeakOut {
    pub device: u32,
    pub buffer_type: String,
    pub size: u64,
    pub buffer: u64,
    pub object: ObjectKind,
    pub address: Option<u64>,
    pub class: LeakClass,
    pub cycle: Option<u32>,
    pub event: u64,
    pub closed_at: Option<u64>,
    pub site: Site,
    /// The buffer's label (e.g. `L1 tensor [1,1,32,256] bfloat16 TILE`), if recorded.
    pub label: Option<String>,
    /// The process that allocated it, when known.
    pub pid: Option<u32>,
    /// How people are told about it: `process 4242 buffer 0x999000 (input_tensor)`
    /// (`ttalloc_model::buffer_name`); `process P program K`, `trace K`.
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CycleOut {
    pub index: u32,
    pub start_event: u64,
    pub end_event: u64,
    /// Tracked live bytes at the cycle's end, summed over devices.
    pub live_after: TypeBytes,
    pub left_behind_bytes: u64,
    pub left_behind_buffers: u64,
    /// `left_behind_bytes` by buffer type.
    pub left_behind: TypeBytes,
    /// Highest resident bytes on one device during the cycle, per type.
    pub peak: TypeBytes,
    /// A test cycle's node id; a marker cycle's marker label.
    pub name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RankedSite {
    pub site: Site,
    pub bytes_per_cycle: u64,
    pub self_bytes_per_cycle: u64,
    /// Its innermost frame is the user's code (`library_frames`); these rank first.
    pub user_code: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MinimalSites {
    /// The failure the sites explain: "oom" or "growth".
    pub failure: String,
    pub sites: Vec<Site>,
    /// Replays the search needed.
    pub replays: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BisectOut {
    pub first_cycle: Option<u32>,
    /// The first leaking cycle's name: with test cycles, the test's node id.
    pub first_cycle_name: Option<String>,
    pub first_event: Option<u64>,
    pub first_buffer: Option<u64>,
    /// The first buffer as people are told about it (`process P buffer K (LABEL)`).
    pub first_buffer_name: Option<String>,
    pub first_device: Option<u32>,
    /// The first buffer's label, if recorded.
    pub first_label: Option<String>,
    /// The op it was allocated in (innermost `OpBegin` scope), if any.
    pub first_op: Option<String>,
    pub site: Option<Site>,
    pub bytes_per_cycle: u64,
    pub sites: Vec<RankedSite>,
    /// Delta debugging result when a failure is not explained by a leak.
    pub minimal_sites: Option<MinimalSites>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OomOut {
    pub event: u64,
    pub device: u32,
    pub buffer_type: String,
    pub size: u64,
    /// The model's message (the same as `model_message`).
    pub message: String,
    /// What tt-metal said, when the trace recorded the refusal; else null.
    pub recorded_message: Option<String>,
    pub model_message: String,
    /// Whether the two are byte-identical; null without a recorded message.
    pub message_matches: Option<bool>,
    pub free_bytes: Option<u64>,
    pub largest_free_block: Option<u64>,
    pub fragmentation: bool,
    /// What to do about it, in one line (`oom_hint`).
    pub hint: String,
    pub site: Site,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GrowthOut {
    pub device: u32,
    pub buffer_type: String,
    pub bytes_per_cycle: u64,
    pub since_cycle: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BadFreeOut {
    pub event: u64,
    pub device: u32,
    pub buffer: u64,
    /// `process P buffer K`.
    pub name: String,
    pub site: Site,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DivergenceOut {
    pub event: u64,
    pub device: u32,
    pub buffer: u64,
    /// `process P buffer K (LABEL)`.
    pub name: String,
    pub recorded: u64,
    pub model: Option<u64>,
}

/// An allocation tt-metal refused that the model placed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlacedRefusalOut {
    pub event: u64,
    pub device: u32,
    pub buffer_type: String,
    pub size: u64,
    pub model_address: u64,
    pub recorded_message: String,
    pub site: Site,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CbClashOut {
    pub event: u64,
    pub device: u32,
    pub message: String,
    pub site: Site,
}

/// Everything a replay found. Serialises to the `--json` object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub events: u64,
    pub devices: Vec<u32>,
    pub leaks: Vec<LeakOut>,
    pub cycles: Vec<CycleOut>,
    pub growth_per_cycle: TypeBytes,
    pub bisect: Option<BisectOut>,
    pub unknown_frees: u64,
    pub double_frees: u64,
    pub oom: Option<OomOut>,
    pub divergences: u64,
    pub peak: BTreeMap<String, TypeBytes>,
    // ---- beyond the contract ----
    /// Leaked objects in all; `leaks` lists the first `MAX_LEAKS_LISTED`.
    pub leaks_total: u64,
    /// What delimits the cycles: "device", "marker", "marker=RE", "op=NAME", "none".
    pub cycle_kind: String,
    pub warmup: usize,
    /// Growth per device and type (the parts of `growth_per_cycle`).
    pub growth: Vec<GrowthOut>,
    /// The event where each peak happened.
    pub peak_events: BTreeMap<String, TypeBytes>,
    pub first_unknown_free: Option<BadFreeOut>,
    pub first_double_free: Option<BadFreeOut>,
    pub ooms: u64,
    pub first_divergence: Option<DivergenceOut>,
    /// Allocations tt-metal refused that the model placed (counted in `divergences` too).
    pub placed_refusals: u64,
    pub first_placed_refusal: Option<PlacedRefusalOut>,
    pub cb_clashes: u64,
    pub first_cb_clash: Option<CbClashOut>,
    /// Peak bytes per core of the circular buffers live at once, per device.
    pub cb_peak_per_core: BTreeMap<String, u64>,
    pub duplicate_allocs: u64,
    /// Allocations the model refused (not out-of-memory) and the first reason.
    pub rejected_allocs: u64,
    pub first_rejection: Option<String>,
    /// What the replay had to work around (e.g. an unusable recorded config).
    pub warnings: Vec<String>,
    /// Set when the trace was cut short (a killed recorder).
    pub truncated: Option<String>,
}

pub struct ReportInputs<'a> {
    pub findings: Findings,
    pub growth: Vec<Growth>,
    pub bisection: Option<Bisection>,
    pub minimal_sites: Option<(String, Vec<SiteId>, u32)>,
    pub warmup: usize,
    pub interner: &'a InternTables,
    pub truncated: Option<String>,
}

impl Report {
    pub fn build(inp: ReportInputs<'_>) -> Report {
        let it = inp.interner;
        let f = inp.findings;
        let site = |s: SiteId| Site::resolve(it, s);
        let label = |l: StringId| (l != StringId::EMPTY).then(|| it.string(l).to_string());
        let pids = &f.source_pids;
        let name = |b: BufferId, address: Option<u64>, l: StringId| {
            BufferName::new(pids.pid_of(b), b, address, it.string(l)).to_string()
        };
        let bad = |b: &BadFree| BadFreeOut {
            event: b.event,
            device: b.device.get(),
            buffer: b.buffer.get(),
            name: name(b.buffer, None, StringId::EMPTY),
            site: site(b.site),
        };
        let bisect = inp.bisection.map(|b| BisectOut {
            first_cycle: b.first_cycle,
            first_cycle_name: b
                .first_cycle
                .and_then(|i| f.cycles.get((i as usize).checked_sub(1)?))
                .and_then(|c| c.label)
                .map(|l| {
                    let label = it.string(l);
                    crate::cycles::test_name(label).unwrap_or(label).to_owned()
                }),
            first_event: b.first.map(|x| x.event),
            first_buffer: b.first.map(|x| x.buffer.get()),
            first_buffer_name: b.first.map(|x| name(x.buffer, x.address, x.label)),
            first_device: b.first.map(|x| x.device.get()),
            first_label: b.first.and_then(|x| label(x.label)),
            first_op: b.first_op.clone(),
            site: b.first.map(|x| site(x.site)),
            bytes_per_cycle: b.bytes_per_cycle,
            sites: b
                .sites
                .iter()
                .map(|r| RankedSite {
                    site: site(r.site),
                    bytes_per_cycle: r.bytes_per_cycle,
                    self_bytes_per_cycle: r.self_bytes_per_cycle,
                    user_code: r.user_code,
                })
                .collect(),
            minimal_sites: inp
                .minimal_sites
                .map(|(failure, sites, replays)| MinimalSites {
                    failure,
                    sites: sites.into_iter().map(site).collect(),
                    replays,
                }),
        });
        Report {
            events: f.events,
            devices: f.devices.iter().map(|d| d.get()).collect(),
            leaks_total: f.leaks.len() as u64,
            leaks: f
                .leaks
                .iter()
                .take(MAX_LEAKS_LISTED)
                .map(|l| LeakOut {
                    device: l.device.get(),
                    buffer_type: l.buffer_type.name().into(),
                    size: l.size,
                    buffer: l.buffer.get(),
                    object: l.object,
                    address: l.address,
                    class: l.class,
                    cycle: l.cycle,
                    event: l.event,
                    closed_at: l.closed_at,
                    site: site(l.site),
                    label: label(l.label),
                    pid: pids.pid_of(l.buffer).map(|p| p.get()),
                    name: match l.object {
                        ObjectKind::Buffer => name(l.buffer, l.address, l.label),
                        ObjectKind::Program => {
                            let local = l.buffer.get() & buffer_name::LOCAL_MASK;
                            match pids.pid_of(l.buffer) {
                                Some(p) => format!("process {p} program {local}"),
                                None => format!("program {local}"),
                            }
                        }
                        ObjectKind::Trace => format!("trace {}", l.buffer),
                    },
                })
                .collect(),
            cycles: f
                .cycles
                .iter()
                .map(|c| {
                    let mut sum = [0u64; 4];
                    for t in c.live_after.values() {
                        for s in 0..4 {
                            sum[s] += t[s];
                        }
                    }
                    let mut peak = [0u64; 4];
                    for t in c.peak.values() {
                        for s in 0..4 {
                            peak[s] = peak[s].max(t[s]);
                        }
                    }
                    CycleOut {
                        index: c.index,
                        start_event: c.span.start_event,
                        end_event: c.span.end_event,
                        live_after: sum.into(),
                        left_behind_bytes: c.left_behind_bytes,
                        left_behind_buffers: c.left_behind_buffers,
                        left_behind: c.left_behind.into(),
                        peak: peak.into(),
                        name: c.label.map(|l| {
                            let label = it.string(l);
                            crate::cycles::test_name(label).unwrap_or(label).to_owned()
                        }),
                    }
                })
                .collect(),
            growth_per_cycle: accumulation::total_per_type(&inp.growth).into(),
            bisect,
            unknown_frees: f.unknown_frees,
            double_frees: f.double_frees,
            oom: f.oom.as_ref().map(|o| OomOut {
                event: o.event,
                device: o.device.get(),
                buffer_type: o.buffer_type.name().into(),
                size: o.size,
                message: o.message.clone(),
                recorded_message: o.recorded_message.map(|m| it.string(m).to_string()),
                model_message: o.message.clone(),
                message_matches: o.recorded_message.map(|m| it.string(m) == o.message),
                free_bytes: o.free_bytes,
                largest_free_block: o.largest_free_block,
                fragmentation: o.fragmentation,
                hint: crate::oom_hint::hint(o),
                site: site(o.site),
            }),
            divergences: f.divergences,
            peak: f
                .peak
                .iter()
                .map(|(d, p)| {
                    (
                        d.to_string(),
                        [p[0].bytes, p[1].bytes, p[2].bytes, p[3].bytes].into(),
                    )
                })
                .collect(),
            cycle_kind: f.cycle_kind.clone(),
            warmup: inp.warmup,
            growth: inp
                .growth
                .iter()
                .map(|g| GrowthOut {
                    device: g.device.get(),
                    buffer_type: g.buffer_type.name().into(),
                    bytes_per_cycle: g.bytes_per_cycle,
                    since_cycle: g.since_cycle,
                })
                .collect(),
            peak_events: f
                .peak
                .iter()
                .map(|(d, p)| {
                    (
                        d.to_string(),
                        [p[0].event, p[1].event, p[2].event, p[3].event].into(),
                    )
                })
                .collect(),
            first_unknown_free: f.first_unknown_free.as_ref().map(bad),
            first_double_free: f.first_double_free.as_ref().map(bad),
            ooms: f.ooms,
            first_divergence: f.first_divergence.as_ref().map(|d| DivergenceOut {
                event: d.event,
                device: d.device.get(),
                buffer: d.buffer.get(),
                name: name(d.buffer, Some(d.recorded), StringId::EMPTY),
                recorded: d.recorded,
                model: d.model,
            }),
            placed_refusals: f.placed_refusals,
            first_placed_refusal: f.first_placed_refusal.as_ref().map(|r| PlacedRefusalOut {
                event: r.event,
                device: r.device.get(),
                buffer_type: r.buffer_type.name().into(),
                size: r.size,
                model_address: r.model_address,
                recorded_message: it.string(r.message).to_string(),
                site: site(r.site),
            }),
            cb_clashes: f.cb_clashes,
            first_cb_clash: f.first_cb_clash.as_ref().map(|c| CbClashOut {
                event: c.event,
                device: c.device.get(),
                message: c.message.clone(),
                site: site(c.site),
            }),
            cb_peak_per_core: f.cb_peak.iter().map(|(d, b)| (d.to_string(), *b)).collect(),
            duplicate_allocs: f.duplicate_allocs,
            rejected_allocs: f.rejected_allocs,
            first_rejection: f.first_rejection.clone(),
            warnings: f.warnings.clone(),
            truncated: inp.truncated,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serialises")
    }

    /// Whether anything at all was found.
    pub fn has_findings(&self) -> bool {
        !self.leaks.is_empty()
            || self.growth_per_cycle.total() > 0
            || self.oom.is_some()
            || self.unknown_frees > 0
            || self.double_frees > 0
            || self.divergences > 0
            || self.cb_clashes > 0
    }
}
