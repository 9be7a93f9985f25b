//! Timestamps of chosen events (cycle bounds, leaked allocations, the
//! out-of-memory, the peak), read after the replay: from a trace file only
//! the blocks that hold them are decoded.

use crate::source::{Chunk, EventSource};
use ttalloc_trace::{BlockColumns, TraceReader};

/// `(event, timestamp)` of each of `marks` the source holds, by event.
pub(super) fn timestamps(
    src: &dyn EventSource,
    reader: Option<&TraceReader>,
    mut marks: Vec<u64>,
) -> crate::Result<Vec<(u64, u64)>> {
    marks.sort_unstable();
    marks.dedup();
    marks.retain(|&m| m < src.num_events());
    let mut out = Vec::with_capacity(marks.len());
    let mut next = 0;
    // The marks among the `n` events from ordinal `first` on, with their
    // times (`ts_at(i)`: the time of the run's event `i`).
    let mut take = |first: u64, n: usize, ts_at: &dyn Fn(usize) -> u64, out: &mut Vec<_>| {
        // Marks before this run were in no run (cannot happen in a sound
        // trace): passed over.
        while next < marks.len() && marks[next] < first {
            next += 1;
        }
        while next < marks.len() && marks[next] - first < n as u64 {
            out.push((marks[next], ts_at((marks[next] - first) as usize)));
            next += 1;
        }
    };
    match reader {
        Some(r) => {
            let mut cols = BlockColumns::default();
            let mut block = None;
            for &m in &marks {
                let b = r.block_of(m);
                if block != Some(b) {
                    block = Some(b);
                    r.decode_columns(b, &mut cols)?;
                    take(cols.first_event, cols.len(), &|i| cols.ts_at(i), &mut out);
                }
            }
        }
        None => {
            let mut ts = Vec::new();
            src.visit_chunks(None, &mut |chunk| {
                ts.clear();
                match chunk {
                    Chunk::Events { events, .. } => ts.extend(events.iter().map(|e| e.ts)),
                    Chunk::Columns { columns, .. } => ts.extend(columns.timestamps()),
                }
                take(chunk.first(), ts.len(), &|i| ts[i], &mut out);
                Ok(())
            })?;
        }
    }
    Ok(out)
}
