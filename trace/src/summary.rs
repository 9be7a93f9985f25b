//! What `ttalloc info` reports, computed here so it is testable: header facts,
//! events by kind, processes, devices, peak live bytes, size and integrity.

mod devices;
mod tally;

use crate::{BlockColumns, Result, TraceReader, Truncation};
use serde::Serialize;
use std::collections::BTreeMap;
use tally::Tally;
use ttalloc_model::units::plural;
use ttalloc_model::{Arch, DeviceConfig, EventTag, InternTables};

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TraceSummary {
    pub path: String,
    /// "MAJOR.MINOR".
    pub format_version: String,
    pub ttalloc_version: String,
    pub argv: Vec<String>,
    pub hostname: String,
    pub start_time_ns: u64,
    /// Smallest and largest event timestamp (None for a trace without events).
    pub first_ts: Option<u64>,
    pub last_ts: Option<u64>,
    pub duration_ns: u64,
    /// The clock tick the trace keeps time at, in ns: every timestamp is a
    /// multiple of it (`record --clock-tick`; 1 for a trace that keeps
    /// every digit). Stored per block: this is the one all blocks share
    /// (their greatest common divisor, should they differ). None for a
    /// trace without events.
    pub clock_tick_ns: Option<u64>,
    pub events: u64,
    /// Count per kind name (`EventTag::name`), every kind listed (zeros included).
    pub events_by_kind: BTreeMap<String, u64>,
    pub processes: Vec<ProcessSummary>,
    pub devices: Vec<DeviceSummary>,
    /// The first [`MAX_REFUSALS`] allocations tt-metal refused, in trace order.
    pub refusals: Vec<RefusalSummary>,
    pub file_size: u64,
    pub bytes_per_event: f64,
    pub blocks: usize,
    pub intern: InternCounts,
    /// None when the trace was finished properly.
    pub truncation: Option<Truncation>,
    /// What the trace was derived from (a minimised trace says), else None.
    pub provenance: Option<crate::Provenance>,
    pub warnings: Vec<String>,
}

/// Refusals listed in a summary (the per-device counts cover them all).
pub const MAX_REFUSALS: usize = 20;

/// One allocation tt-metal refused, with tt-metal's message.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct RefusalSummary {
    pub ordinal: u64,
    pub device: u32,
    pub buffer_type: String,
    pub size: u64,
    pub message: String,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct InternCounts {
    pub strings: usize,
    pub frames: usize,
    /// Stack-tree nodes, the root included.
    pub stack_nodes: usize,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ProcessSummary {
    pub pid: u32,
    pub ppid: Option<u32>,
    pub argv: Vec<String>,
    /// Exit code or `-signal`; None if no exit was recorded or it was unknown.
    pub exit_status: Option<i32>,
    pub exited: bool,
    pub events: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DeviceSummary {
    pub device: u32,
    pub arch: Arch,
    /// The config of the last `DeviceOpen` (None if the device was never opened in the trace).
    pub config: Option<DeviceConfig>,
    pub opens: u64,
    pub closes: u64,
    pub buffer_allocs: u64,
    pub buffer_frees: u64,
    /// Allocations tt-metal refused (out of memory).
    pub allocs_refused: u64,
    /// Buffer allocations that carry a label (format 2.1).
    pub labelled_allocs: u64,
    /// Peak live buffer bytes per buffer type name (only types that were used).
    pub peak_live_bytes: BTreeMap<String, u64>,
    /// Live buffer bytes after the last event, per buffer type name (non-zero only).
    pub live_bytes_at_end: BTreeMap<String, u64>,
}

/// A [`TraceSummary`] counted from blocks another pass decodes anyway
/// (a report's replay, with their times): no read of the trace of its own.
/// It sees every block, in order, each once ([`SummaryTally::block`]).
#[derive(Default)]
pub struct SummaryTally {
    tally: Tally,
    blocks: usize,
    /// A block came without its times (its time range is not known).
    untimed: bool,
}

impl SummaryTally {
    pub fn new() -> Self {
        SummaryTally {
            tally: Tally::new(),
            ..SummaryTally::default()
        }
    }

    /// A tally for a reader of the summary that shows no live bytes (a
    /// report's header): its devices' `peak_live_bytes` and
    /// `live_bytes_at_end` stay empty. Following them (a lookup per
    /// buffer free) was two fifths of the tally's CPU.
    pub fn without_live_bytes() -> Self {
        SummaryTally {
            tally: Tally::without_live_bytes(),
            ..SummaryTally::default()
        }
    }

    /// A tally counting as this one does, of nothing yet.
    pub fn empty_like(&self) -> Self {
        SummaryTally {
            tally: Tally::counting_like(&self.tally),
            ..SummaryTally::default()
        }
    }

    /// Counts the next block of the trace.
    pub fn block(&mut self, c: &BlockColumns, t: &InternTables) {
        self.tally.block(c, t);
        self.blocks += 1;
        self.untimed |= !c.has_times();
    }

    /// The summary of `reader`'s trace, if this counted each of its
    /// blocks with their times (else `None`: [`TraceSummary::compute`]).
    pub fn finish(self, reader: &TraceReader) -> Option<TraceSummary> {
        (self.blocks == reader.blocks().len() && !self.untimed)
            .then(|| TraceSummary::of_tally(reader, self.tally))
    }
}

impl TraceSummary {
    /// Reads every event once, as columns, one block in memory at a time
    /// (decoding ahead on other cores would save no CPU and hold more blocks).
    pub fn compute(reader: &TraceReader) -> Result<TraceSummary> {
        Self::compute_watched(reader, &mut |_| {})
    }

    /// The summary `tally` counts (with or without live bytes) from a
    /// read of every block of `reader`'s trace.
    pub fn count(reader: &TraceReader, mut tally: SummaryTally) -> Result<TraceSummary> {
        let t = reader.interner();
        reader.scan_columns_on(0, |_, c| {
            tally.block(c, t);
            Ok(())
        })?;
        Ok(Self::of_tally(reader, tally.tally))
    }

    /// [`TraceSummary::compute`], calling `counted` with each block's
    /// number of events once it is counted (a progress bar).
    pub fn compute_watched(
        reader: &TraceReader,
        counted: &mut dyn FnMut(u64),
    ) -> Result<TraceSummary> {
        let t = reader.interner();
        let mut tally = Tally::new();
        reader.scan_columns_on(0, |_, c| {
            tally.block(c, t);
            counted(c.len() as u64);
            Ok(())
        })?;
        Ok(Self::of_tally(reader, tally))
    }

    fn of_tally(reader: &TraceReader, mut tally: Tally) -> TraceSummary {
        let t = reader.interner();
        let devices = tally.finish_devices();
        let Tally {
            events,
            by_kind,
            first_ts,
            last_ts,
            clock_tick_ns,
            processes,
            refusals,
            ..
        } = tally;
        let h = reader.header();
        let file_size = reader.file_size();
        let (first_ts, last_ts) = if events > 0 {
            (Some(first_ts), Some(last_ts))
        } else {
            (None, None)
        };
        TraceSummary {
            path: reader.path().display().to_string(),
            format_version: format!("{}.{}", h.format_major, h.format_minor),
            ttalloc_version: h.ttalloc_version.clone(),
            argv: h.argv.clone(),
            hostname: h.hostname.clone(),
            start_time_ns: h.start_time_ns,
            first_ts,
            last_ts,
            duration_ns: last_ts.zip(first_ts).map_or(0, |(l, f)| l - f),
            clock_tick_ns: (clock_tick_ns > 0).then_some(clock_tick_ns),
            events,
            events_by_kind: EventTag::ALL
                .iter()
                .map(|t| (t.name().to_string(), by_kind[*t as usize]))
                .collect(),
            processes: processes.into_values().collect(),
            devices: devices.into_values().collect(),
            refusals,
            file_size,
            bytes_per_event: if events > 0 {
                file_size as f64 / events as f64
            } else {
                0.0
            },
            blocks: reader.blocks().len(),
            intern: InternCounts {
                strings: t.num_strings(),
                frames: t.num_frames(),
                stack_nodes: t.num_sites(),
            },
            truncation: reader.truncation().cloned(),
            provenance: reader.provenance().cloned(),
            warnings: reader.warnings(),
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for ns since the Unix epoch (UTC).
pub fn format_utc(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let millis = (ns / 1_000_000) % 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// A clock tick in the largest unit that divides it: `100 ns`, `1 µs`,
/// `5 ms`, `1 s` (as `record --clock-tick` takes them, with a space).
pub fn format_tick(ns: u64) -> String {
    let units = [(1_000_000_000, "s"), (1_000_000, "ms"), (1_000, "µs")];
    match units
        .iter()
        .find(|(scale, _)| ns >= *scale && ns.is_multiple_of(*scale))
    {
        Some((scale, unit)) => format!("{} {unit}", ns / scale),
        None => format!("{ns} ns"),
    }
}

/// Bytes as every command writes them (see `ttalloc_model::units`).
pub fn format_bytes(b: u64) -> String {
    ttalloc_model::units::bytes(b)
}

impl TraceSummary {
    /// The human-readable report `ttalloc info` prints.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "trace:      {}", self.path);
        let _ = writeln!(
            s,
            "format:     {} (written by ttalloc {})",
            self.format_version, self.ttalloc_version
        );
        let _ = writeln!(s, "command:    {}", self.argv.join(" "));
        if let Some(p) = &self.provenance {
            let _ = writeln!(
                s,
                "minimised:  from {} ({} events) by ttalloc {}; keeps: {}",
                p.source, p.source_events, p.ttalloc_version, p.finding
            );
        }
        let _ = writeln!(s, "host:       {}", self.hostname);
        let _ = writeln!(s, "started:    {}", format_utc(self.start_time_ns));
        match (self.first_ts, self.last_ts) {
            (Some(f), Some(l)) => {
                let _ = writeln!(
                    s,
                    "time span:  {} .. {} ({:.3} s)",
                    format_utc(f),
                    format_utc(l),
                    self.duration_ns as f64 / 1e9
                );
            }
            _ => {
                let _ = writeln!(s, "time span:  (no events)");
            }
        }
        if let Some(tick) = self.clock_tick_ns {
            let _ = writeln!(s, "clock tick: {}", format_tick(tick));
        }
        let _ = writeln!(
            s,
            "size:       {}, {}, {:.2} bytes/event, {}",
            format_bytes(self.file_size),
            plural(self.events, "event"),
            self.bytes_per_event,
            plural(self.blocks as u64, "block")
        );
        let _ = writeln!(
            s,
            "intern:     {}, {}, {}",
            plural(self.intern.strings as u64, "string"),
            plural(self.intern.frames as u64, "frame"),
            plural(self.intern.stack_nodes as u64, "stack node")
        );
        match &self.truncation {
            None => {
                let _ = writeln!(s, "integrity:  ok (finished, index and seek table present)");
            }
            Some(t) => {
                let _ = writeln!(
                    s,
                    "integrity:  TRUNCATED: readable up to byte {} of {}; {} events recovered; {}",
                    t.valid_up_to, t.file_size, t.events_recovered, t.reason
                );
            }
        }
        let _ = writeln!(s, "events by kind:");
        for (k, n) in self.events_by_kind.iter().filter(|(_, n)| **n > 0) {
            let _ = writeln!(s, "  {k:<16} {n}");
        }
        let _ = writeln!(s, "processes:");
        for p in &self.processes {
            let ppid = p.ppid.map_or(String::new(), |pp| format!(" (ppid {pp})"));
            let exit = match (p.exited, p.exit_status) {
                (false, _) => "no exit recorded".to_string(),
                (true, None) => "exited (status unknown)".to_string(),
                (true, Some(st)) if st < 0 => format!("killed by signal {}", -st),
                (true, Some(st)) => format!("exit {st}"),
            };
            let _ = writeln!(
                s,
                "  pid {}{ppid}: {}, {exit}: {}",
                p.pid,
                plural(p.events, "event"),
                p.argv.join(" ")
            );
        }
        let _ = writeln!(s, "devices:");
        for d in &self.devices {
            let _ = writeln!(
                s,
                "  device {} ({}): opened {}x, closed {}x, {}{}, {}{}",
                d.device,
                d.arch,
                d.opens,
                d.closes,
                plural(d.buffer_allocs, "buffer alloc"),
                if d.labelled_allocs > 0 {
                    format!(" ({} labelled)", d.labelled_allocs)
                } else {
                    String::new()
                },
                plural(d.buffer_frees, "free"),
                if d.allocs_refused > 0 {
                    format!(", {} refused (out of memory)", d.allocs_refused)
                } else {
                    String::new()
                }
            );
            if let Some(c) = &d.config {
                let kv: Vec<String> = c.known().iter().map(|(k, v)| format!("{k}={v}")).collect();
                if !kv.is_empty() {
                    let _ = writeln!(s, "    config: {}", kv.join(" "));
                }
            }
            if !d.peak_live_bytes.is_empty() {
                let peaks: Vec<String> = d
                    .peak_live_bytes
                    .iter()
                    .map(|(bt, b)| format!("{bt} {}", format_bytes(*b)))
                    .collect();
                let _ = writeln!(s, "    peak live: {}", peaks.join(", "));
            }
            if !d.live_bytes_at_end.is_empty() {
                let live: Vec<String> = d
                    .live_bytes_at_end
                    .iter()
                    .map(|(bt, b)| format!("{bt} {}", format_bytes(*b)))
                    .collect();
                let _ = writeln!(s, "    live at end: {}", live.join(", "));
            }
        }
        if !self.refusals.is_empty() {
            let _ = writeln!(s, "allocations tt-metal refused:");
            for r in &self.refusals {
                let _ = writeln!(
                    s,
                    "  event {}, device {}, {} {} B: {}",
                    r.ordinal, r.device, r.buffer_type, r.size, r.message
                );
            }
        }
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates_and_sizes() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_utc(1_763_902_400_123_000_000),
            "2025-11-23T12:53:20.123Z"
        );
        assert_eq!(
            format_utc(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000Z"
        );
        // A tick in the largest unit that divides it.
        assert_eq!(format_tick(1), "1 ns");
        assert_eq!(format_tick(100), "100 ns");
        assert_eq!(format_tick(1_000), "1 µs");
        assert_eq!(format_tick(1_500), "1500 ns");
        assert_eq!(format_tick(250_000), "250 µs");
        assert_eq!(format_tick(5_000_000), "5 ms");
        assert_eq!(format_tick(1_000_000_000), "1 s");
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(36 * 1024), "36,864 B");
        assert_eq!(format_bytes(3 << 29), "1,610,612,736 B (1.5 GiB)");
    }
}
