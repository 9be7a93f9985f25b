//! `ttalloc report`: one self-contained HTML file (inline CSS and JS, the
//! data as inline JSON, no network) with the recording's header, the
//! findings as `replay` prints them, memory over time per device and buffer
//! type, growth per cycle, the call sites by bytes and the largest buffers
//! alive at the end. Everything is bounded (series downsampled, tables
//! capped), so a 10M-event trace gives a report of well under 5 MB.

use crate::analysis::Analysis;
use crate::report::Site;
use serde::Serialize;
use ttalloc_trace::summary::{format_utc, TraceSummary};

const TEMPLATE: &str = include_str!("template.html");

/// Rows of each call-site table.
pub const MAX_SITES: usize = 50;
/// Buffers listed as alive at the end.
pub const MAX_BUFFERS: usize = 50;
/// Cycles drawn in the growth chart.
pub const MAX_CYCLES: usize = 2000;
/// Characters of `replay`'s findings text kept.
pub const MAX_FINDINGS_TEXT: usize = 64 * 1024;

#[derive(Serialize)]
struct DeviceRow {
    device: u32,
    arch: String,
    config: String,
    opens: u64,
    closes: u64,
    allocs: u64,
    frees: u64,
}

#[derive(Serialize)]
struct Header {
    command: String,
    hostname: String,
    started: String,
    duration_s: f64,
    integrity: String,
    file_size: u64,
    devices: Vec<DeviceRow>,
}

#[derive(Serialize)]
struct SeriesOut {
    device: u32,
    #[serde(rename = "type")]
    buffer_type: &'static str,
    peak: u64,
    peak_event: u64,
    end: u64,
    /// `[first event of the interval, lowest, highest]`.
    points: Vec<[u64; 3]>,
}

#[derive(Serialize)]
struct Marker {
    device: u32,
    #[serde(rename = "type")]
    buffer_type: String,
    event: u64,
    bytes: u64,
    message: String,
}

#[derive(Serialize)]
struct BufferOut<'a> {
    size: u64,
    label: String,
    device: u32,
    #[serde(rename = "type")]
    buffer_type: &'a str,
    class: &'static str,
    cycle: Option<u32>,
    event: u64,
    site: &'a Site,
}

#[derive(Serialize)]
struct Data<'a> {
    generator: String,
    trace: &'a str,
    header: Header,
    has_findings: bool,
    findings_text: String,
    events: u64,
    bucket: u64,
    series: Vec<SeriesOut>,
    /// `[index, start event, end event, bytes left behind, buffers left behind]`.
    cycles: Vec<[u64; 5]>,
    cycles_total: usize,
    cycle_kind: &'a str,
    warmup: usize,
    oom: Option<Marker>,
    peak: Option<Marker>,
    left_sites: Vec<(u64, &'a Site)>,
    leaked_sites: Vec<(u64, &'a Site)>,
    peak_sites: Vec<(u64, &'a Site)>,
    sites_capped: usize,
    leaks_total: u64,
    buffers: Vec<BufferOut<'a>>,
}

fn header(summary: &TraceSummary) -> Header {
    let integrity = match &summary.truncation {
        None => "sealed (complete)".to_owned(),
        Some(t) => format!(
            "truncated: {} events recovered, readable up to byte {} of {} ({})",
            t.events_recovered, t.valid_up_to, t.file_size, t.reason
        ),
    };
    Header {
        command: summary.argv.join(" "),
        hostname: summary.hostname.clone(),
        started: format_utc(summary.start_time_ns),
        duration_s: summary.duration_ns as f64 / 1e9,
        integrity,
        file_size: summary.file_size,
        devices: summary
            .devices
            .iter()
            .map(|d| DeviceRow {
                device: d.device,
                arch: d.arch.to_string(),
                config: d
                    .config
                    .as_ref()
                    .and_then(|c| serde_json::to_string(c).ok())
                    .filter(|c| c != "{}")
                    .unwrap_or_else(|| "not recorded (the arch preset)".to_owned()),
                opens: d.opens,
                closes: d.closes,
                allocs: d.buffer_allocs,
                frees: d.buffer_frees,
            })
            .collect(),
    }
}

fn sites(v: &[(Site, u64)]) -> Vec<(u64, &Site)> {
    v.iter().take(MAX_SITES).map(|(s, b)| (*b, s)).collect()
}

/// The report for `a`, as one HTML document.
pub fn html(a: &Analysis, summary: &TraceSummary, trace: &str) -> String {
    let r = &a.report;
    let peak_event = |device: u32, bt: &str| {
        r.peak_events
            .get(&device.to_string())
            .map_or(0, |e| match bt {
                "DRAM" => e.dram,
                "L1" => e.l1,
                "L1_SMALL" => e.l1_small,
                _ => e.trace,
            })
    };
    let series = a
        .timeline
        .series
        .iter()
        .map(|s| SeriesOut {
            device: s.device.0,
            buffer_type: s.buffer_type.name(),
            peak: s.peak,
            peak_event: peak_event(s.device.0, s.buffer_type.name()),
            end: s.points.last().map_or(0, |p| p.max),
            points: s.points.iter().map(|p| [p.ord, p.min, p.max]).collect(),
        })
        .collect();
    let mut findings_text = r.render_human();
    if findings_text.len() > MAX_FINDINGS_TEXT {
        let mut cut = MAX_FINDINGS_TEXT;
        while !findings_text.is_char_boundary(cut) {
            cut -= 1;
        }
        findings_text.truncate(cut);
        findings_text.push_str("\n… (cut; run `ttalloc replay` for the whole text)\n");
    }
    let mut leaks: Vec<_> = r.leaks.iter().collect();
    leaks.sort_by(|x, y| y.size.cmp(&x.size).then(x.event.cmp(&y.event)));
    let buffers = leaks
        .into_iter()
        .take(MAX_BUFFERS)
        .map(|l| BufferOut {
            size: l.size,
            label: l.name.clone(),
            device: l.device,
            buffer_type: &l.buffer_type,
            class: l.class.name(),
            cycle: l.cycle,
            event: l.event,
            site: &l.site,
        })
        .collect();
    let data = Data {
        generator: format!("ttalloc {}", env!("CARGO_PKG_VERSION")),
        trace,
        header: header(summary),
        has_findings: r.has_findings(),
        findings_text,
        events: r.events,
        bucket: a.timeline.bucket,
        series,
        cycles: r
            .cycles
            .iter()
            .take(MAX_CYCLES)
            .map(|c| {
                [
                    c.index as u64,
                    c.start_event,
                    c.end_event,
                    c.left_behind_bytes,
                    c.left_behind_buffers,
                ]
            })
            .collect(),
        cycles_total: r.cycles.len(),
        cycle_kind: &r.cycle_kind,
        warmup: r.warmup,
        oom: r.oom.as_ref().map(|o| Marker {
            device: o.device,
            buffer_type: o.buffer_type.clone(),
            event: o.event,
            bytes: o.size,
            message: o.message.clone(),
        }),
        peak: a.peak.as_ref().map(|p| Marker {
            device: p.device.0,
            buffer_type: p.buffer_type.name().to_owned(),
            event: p.event,
            bytes: p.bytes,
            message: String::new(),
        }),
        left_sites: sites(&a.left_per_cycle_by_site),
        leaked_sites: sites(&a.leaked_by_site),
        peak_sites: sites(&a.peak_sites),
        sites_capped: MAX_SITES,
        leaks_total: r.leaks_total,
        buffers,
    };
    let json = serde_json::to_string(&data).expect("report data always serialises");
    // Inside <script>, "</script>" (or any "<") in a string must not end it.
    let json = json.replace('<', "\\u003c");
    TEMPLATE.replacen("/*DATA*/", &json, 1)
}
