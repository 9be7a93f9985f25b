//! `ttalloc repro`: a standalone Python script that uses only `ttnn` and
//! replays a trace's device-memory sequence on a real device: the devices
//! opened with the recorded configuration, every buffer made by a tensor of
//! the same type, size, page size and layout, freed and closed in the
//! recorded order, and the refused allocation attempted again.
//! Run it on a minimised trace first (`ttalloc minimize`).

mod script;
pub mod shape;

pub use script::ScriptStats;

use crate::cycles::CycleScanner;
use crate::options::ReplayOptions;
use crate::source::EventSource;
use crate::Result;
use std::collections::HashSet;
use std::path::Path;
use ttalloc_trace::TraceReader;

/// Most events `ttalloc repro` turns into a script unless told otherwise:
/// a script makes every buffer of its trace (a call and a comment each,
/// ~350 bytes: the 10M-event synthetic trace's would be 1 GB, built from
/// 3 GB of memory), and is meant to be read and attached to a report,
/// which only a minimised trace's is.
pub const DEFAULT_MAX_EVENTS: u64 = 1_000_000;

/// The script for the trace at `input`, and what it could not express; a
/// trace of more than `max_events` events is refused before it is read.
pub fn repro_file(input: &Path, max_events: u64) -> Result<(String, ScriptStats)> {
    let reader = TraceReader::open(input)?;
    let n = reader.num_events();
    if n > max_events {
        return Err(crate::ReplayError::Usage(format!(
            "{}: {n} events is more than --max-events {max_events}: its script would make \
             every buffer of the trace in turn. Shrink the trace first: \
             `ttalloc minimize {} -o small.zst`, then `ttalloc repro small.zst -o repro.py` \
             (or raise --max-events)",
            input.display(),
            input.display()
        )));
    }
    let mut events = Vec::with_capacity(reader.num_events() as usize);
    reader.visit(&mut |_, chunk| {
        events.extend_from_slice(chunk);
        Ok(())
    })?;
    let opts = ReplayOptions::default();
    let report = crate::replay(&reader, &opts)?;
    let mut scanner = CycleScanner::new();
    scanner.scan(0, &events);
    let rule = scanner.rule(&opts.cycles, reader.interner());
    let cycles = scanner.spans(&rule, reader.interner());

    let mut findings = Vec::new();
    if let Some(p) = reader.provenance() {
        findings.push(format!(
            "minimised from {} ({} events), keeping: {}",
            p.source, p.source_events, p.finding
        ));
    }
    if let Some(o) = &report.oom {
        findings.push(format!("out of memory at event {}: {}", o.event, o.message));
    }
    if report.leaks_total > 0 {
        let first = &report.leaks[0];
        let at = first
            .site
            .frames
            .first()
            .map(|f| {
                format!(
                    " by {} ({}:{})",
                    f.function,
                    f.file.rsplit('/').next().unwrap_or(&f.file),
                    f.line
                )
            })
            .unwrap_or_default();
        findings.push(format!(
            "{} buffer(s) left behind; the first: {} B {} on device {}{at} ({})",
            report.leaks_total,
            first.size,
            first.buffer_type,
            first.device,
            first.class.name()
        ));
    }
    let growth = report.growth_per_cycle.total();
    if growth > 0 {
        findings.push(format!("growth of {growth} B per cycle"));
    }
    if report.unknown_frees > 0 {
        findings.push(format!(
            "{} free(s) of unknown buffers",
            report.unknown_frees
        ));
    }
    if report.double_frees > 0 {
        findings.push(format!("{} double free(s)", report.double_frees));
    }
    let leaked: HashSet<u64> = report.leaks.iter().map(|l| l.event).collect();
    let refused = report.oom.as_ref().map(|o| (o.event, o.message.clone()));
    let source = input.file_name().map_or_else(
        || input.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let (text, stats) = script::write_script(&script::ScriptInput {
        source: &source,
        events: &events,
        interner: reader.interner(),
        cycles: &cycles.spans,
        findings,
        leaked,
        refused,
    });
    Ok((text, stats))
}
