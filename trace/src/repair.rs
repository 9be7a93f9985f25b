//! `ttalloc repair`: copies every readable event of a (truncated or damaged)
//! trace into a new, finished trace.

use crate::{Result, TraceError, TraceReader, TraceWriter, WriterOptions};
use std::path::Path;
use ttalloc_model::Event;

/// What a repair kept and lost.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RepairReport {
    pub events_written: u64,
    pub blocks_copied: usize,
    /// Blocks that failed to decode (their events are not in the output).
    pub blocks_skipped: Vec<usize>,
    pub events_lost: u64,
    /// Blocks whose times could not be read (format 2.6: their times
    /// record is damaged) but whose events could: copied, every event at
    /// its block's first timestamp (from the index), in order.
    pub blocks_untimed: Vec<usize>,
    /// The input's truncation, if it had one.
    pub input_truncated: bool,
}

/// Reads `input` and writes its readable events to `output` (same header and
/// intern tables, blocks re-encoded). Refuses to overwrite the input.
pub fn repair(input: &Path, output: &Path, opts: WriterOptions) -> Result<RepairReport> {
    repair_watched(input, output, opts, &mut |_| {})
}

/// [`repair`], calling `done` with each block's number of events once it
/// is copied or skipped (a progress bar).
pub fn repair_watched(
    input: &Path,
    output: &Path,
    opts: WriterOptions,
    done: &mut dyn FnMut(u64),
) -> Result<RepairReport> {
    if let (Ok(a), Ok(b)) = (input.canonicalize(), output.canonicalize()) {
        if a == b {
            return Err(TraceError::Other(format!(
                "{}: output is the input file",
                output.display()
            )));
        }
    }
    let reader = TraceReader::open(input)?;
    let mut w = TraceWriter::create(output, reader.header().clone(), opts)?;
    *w.interner_mut() = reader.interner().clone();
    let mut report = RepairReport {
        events_written: 0,
        blocks_copied: 0,
        blocks_skipped: Vec::new(),
        events_lost: 0,
        blocks_untimed: Vec::new(),
        input_truncated: reader.truncation().is_some(),
    };
    let (mut events, mut untimed) = (Vec::new(), crate::BlockColumns::default());
    for (i, b) in reader.blocks().iter().enumerate() {
        let read = match reader.decode_block(i, &mut events) {
            // A block whose times alone are damaged keeps its events.
            Err(TraceError::Corrupt { .. })
                if reader.decode_columns_untimed(i, &mut untimed).is_ok() =>
            {
                events.clear();
                untimed.for_each_event(|_, e| {
                    events.push(Event {
                        ts: b.first_ts,
                        ..e
                    })
                });
                report.blocks_untimed.push(i);
                Ok(())
            }
            read => read,
        };
        match read {
            Ok(()) => {
                for e in &events {
                    w.push(e)?;
                }
                report.blocks_copied += 1;
                report.events_written += events.len() as u64;
            }
            Err(TraceError::Corrupt { .. }) => {
                report.blocks_skipped.push(i);
                report.events_lost += b.count as u64;
            }
            Err(e) => return Err(e),
        }
        done(b.count as u64);
    }
    w.finish()?;
    Ok(report)
}
