//! Timestamps of chosen events (cycle bounds, leaked allocations, the
//! out-of-memory, the peak), after the replay: those it noted as it went,
//! the others read, from a trace file by decoding only the blocks that
//! hold them (the cycles' bounds of a trace of many cycles lie in every
//! block: on the 10M synthetic trace, reading them again took a sixth of
//! a report's CPU).

use crate::source::{Chunk, EventSource};
use ttalloc_trace::{BlockColumns, TraceReader};

/// `(event, timestamp)` of each of `marks` the source holds, by event.
/// `seen`: `(event, timestamp)` pairs the replay noted, by event (a
/// report's cycle bounds: with them, a trace of many cycles is not read
/// again for their times).
pub(super) fn timestamps(
    src: &dyn EventSource,
    reader: Option<&TraceReader>,
    mut marks: Vec<u64>,
    seen: &[(u64, u64)],
) -> crate::Result<Vec<(u64, u64)>> {
    marks.sort_unstable();
    marks.dedup();
    marks.retain(|&m| m < src.num_events());
    let mut known = Vec::new();
    marks.retain(|&m| match seen.binary_search_by_key(&m, |s| s.0) {
        Ok(i) => {
            known.push(seen[i]);
            false
        }
        Err(_) => true,
    });
    let mut out = read(src, reader, &marks)?;
    if !known.is_empty() {
        out.extend(known);
        out.sort_unstable();
    }
    Ok(out)
}

/// `(event, timestamp)` of each of `marks` (sorted, distinct, held by the
/// source), read from the source.
fn read(
    src: &dyn EventSource,
    reader: Option<&TraceReader>,
    marks: &[u64],
) -> crate::Result<Vec<(u64, u64)>> {
    let mut out = Vec::with_capacity(marks.len());
    if marks.is_empty() {
        return Ok(out);
    }
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
            for &m in marks {
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
