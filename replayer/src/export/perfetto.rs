//! Chrome trace-event JSON (the "JSON Object Format" that ui.perfetto.dev
//! and chrome://tracing open): one process per device with a counter track
//! per buffer type (resident bytes), the recorded processes' op scopes as
//! slices, cycles as slices of a "ttalloc replay" process, and the findings
//! (leaked allocations, the out-of-memory, the peaks) as instant events.
//!
//! Timestamps are microseconds since the trace's first event.
//!
//! Written event by event: the file holds hundreds of thousands of events
//! (op slices, counter points), and a JSON tree of them all took ~2.6 KB
//! per event — 980 MB for the 10M-event synthetic trace.

use crate::analysis::Analysis;
use crate::export::folded::stack;
use crate::report::Site;
use serde::Serialize;
use serde_json::{json, Value};
use std::io::{self, Write};

/// Writes `traceEvents` one element at a time.
struct EventArray<'w> {
    out: &'w mut dyn Write,
    first: bool,
}

impl EventArray<'_> {
    fn push(&mut self, event: impl Serialize) -> io::Result<()> {
        if !self.first {
            self.out.write_all(b",")?;
        }
        self.first = false;
        serde_json::to_writer(&mut *self.out, &event).map_err(io::Error::from)
    }

    fn extend(&mut self, events: impl IntoIterator<Item = Value>) -> io::Result<()> {
        events.into_iter().try_for_each(|e| self.push(e))
    }
}

/// Pseudo process ids: devices at `DEVICE_PID + id`, the replay's own tracks
/// at `REPLAY_PID` (far above real pids, which Linux caps at 2^22).
pub const DEVICE_PID: u64 = 1 << 30;
pub const REPLAY_PID: u64 = (1 << 30) - 1;

/// Writes the analysis as one Chrome trace-event JSON object to `out`.
pub fn write_perfetto(a: &Analysis, out: &mut dyn Write) -> io::Result<()> {
    let t0 = a.timeline.first_ts.unwrap_or(0);
    let us = |ts: u64| ts.saturating_sub(t0) as f64 / 1000.0;
    out.write_all(b"{\"traceEvents\":[")?;
    let mut ev = EventArray { out, first: true };
    let meta = |pid: u64, name: String, sort: u64| {
        [
            json!({"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": name}}),
            json!({"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0, "args": {"sort_index": sort}}),
        ]
    };
    ev.extend(meta(REPLAY_PID, "ttalloc replay".into(), 0))?;
    ev.push(json!({"ph": "M", "name": "thread_name", "pid": REPLAY_PID, "tid": 1, "args": {"name": "cycles"}}))?;
    ev.push(json!({"ph": "M", "name": "thread_name", "pid": REPLAY_PID, "tid": 2, "args": {"name": "findings"}}))?;
    for &d in &a.report.devices {
        ev.extend(meta(
            DEVICE_PID + d as u64,
            format!("device {d}"),
            1 + d as u64,
        ))?;
    }
    // Counters: the bucket's highest value at its start, so peaks show.
    for s in &a.timeline.series {
        let pid = DEVICE_PID + s.device.0 as u64;
        let name = format!("{} live bytes", s.buffer_type.name());
        for p in &s.points {
            ev.push(Counter {
                args: Bytes { bytes: p.max },
                name: &name,
                ph: "C",
                pid,
                tid: 0,
                ts: us(p.ts),
            })?;
        }
    }
    for o in &a.ops {
        ev.push(OpSlice {
            cat: "op",
            dur: (o.end_ts.saturating_sub(o.begin_ts)) as f64 / 1000.0,
            name: &o.name,
            ph: "X",
            pid: o.pid,
            tid: o.pid,
            ts: us(o.begin_ts),
        })?;
    }
    if a.timeline.ops_dropped > 0 {
        ev.push(json!({
            "ph": "i", "s": "g", "name": format!("{} op scopes not shown", a.timeline.ops_dropped),
            "pid": REPLAY_PID, "tid": 2, "ts": 0.0,
        }))?;
    }
    for c in &a.report.cycles {
        let (b, e) = (
            a.timeline.ts_of(c.start_event),
            a.timeline.ts_of(c.end_event),
        );
        ev.push(json!({
            "ph": "X", "name": format!("cycle {}", c.index), "cat": "cycle",
            "pid": REPLAY_PID, "tid": 1, "ts": us(b), "dur": e.saturating_sub(b) as f64 / 1000.0,
            "args": {"start_event": c.start_event, "end_event": c.end_event,
                     "left_behind_bytes": c.left_behind_bytes, "left_behind_buffers": c.left_behind_buffers},
        }))?;
    }
    let marked: std::collections::HashSet<u64> = a.timeline.marks.iter().map(|m| m.0).collect();
    for l in a.report.leaks.iter().filter(|l| marked.contains(&l.event)) {
        ev.push(json!({
            "ph": "i", "s": "p", "cat": "finding",
            "name": format!("leak: {}, {} {} B ({})", l.name, l.buffer_type, l.size, l.class.name()),
            "pid": DEVICE_PID + l.device as u64, "tid": 0, "ts": us(a.timeline.ts_of(l.event)),
            "args": {"event": l.event, "buffer": l.buffer, "name": l.name, "site": site_text(&l.site)},
        }))?;
    }
    if let Some(o) = &a.report.oom {
        ev.push(json!({
            "ph": "i", "s": "g", "cat": "finding", "name": format!("out of memory: {}", o.message),
            "pid": REPLAY_PID, "tid": 2, "ts": us(a.timeline.ts_of(o.event)),
            "args": {"event": o.event, "device": o.device, "site": site_text(&o.site)},
        }))?;
    }
    if let Some(p) = &a.peak {
        ev.push(json!({
            "ph": "i", "s": "p", "cat": "finding",
            "name": format!("highest peak: {} {} B", p.buffer_type.name(), p.bytes),
            "pid": DEVICE_PID + p.device.0 as u64, "tid": 0, "ts": us(a.timeline.ts_of(p.event)),
            "args": {"event": p.event},
        }))?;
    }
    let tail = json!({
        "generator": "ttalloc export --format perfetto",
        "events": a.report.events,
        "leaked_objects": a.report.leaks_total,
    });
    let out = ev.out;
    out.write_all(b"],\"displayTimeUnit\":\"ms\",\"otherData\":")?;
    serde_json::to_writer(&mut *out, &tail).map_err(io::Error::from)?;
    out.write_all(b"}")
}

// The two events a trace has hundreds of thousands of, written from
// structs: a `json!` value of each (a map, its keys and strings allocated)
// took a fifth of the export. Fields in the order a `json!` map writes its
// keys (sorted), so the text is the same.

/// A point of a counter track.
#[derive(Serialize)]
struct Counter<'a> {
    args: Bytes,
    name: &'a str,
    ph: &'static str,
    pid: u64,
    tid: u64,
    ts: f64,
}

#[derive(Serialize)]
struct Bytes {
    bytes: u64,
}

/// An op scope.
#[derive(Serialize)]
struct OpSlice<'a> {
    cat: &'static str,
    dur: f64,
    name: &'a str,
    ph: &'static str,
    pid: u32,
    tid: u32,
    ts: f64,
}

fn site_text(site: &Site) -> String {
    stack(site)
}
