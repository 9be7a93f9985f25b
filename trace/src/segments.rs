//! Where a block record's zstd blocks should end (the writer's
//! `compress_segmented` cuts): at the start of every column and of every
//! byte plane of a packed column, so that zstd codes each with entropy
//! tables of its own. zstd otherwise codes a whole 128 KiB block's literals
//! with one Huffman table, and a block that holds a column's random low
//! bytes and its near-constant high bytes pays 8 bits for both. Segments
//! shorter than `MIN_SEGMENT` are merged into the next (a cut costs a block
//! header and fresh tables).

use crate::codec::col;
use crate::frame::ENVELOPE_LEN;
use crate::records::{ArchivedBlockRec, ArchivedColumnRec, ArchivedTimesRec};
use rancor::BoxedError;

/// The shortest segment worth its own tables.
const MIN_SEGMENT: usize = 4096;

/// Cut offsets (ascending, in record bytes: the envelope comes first) for
/// the block archived in `payload`; none if it does not validate.
pub(crate) fn block_cuts(payload: &[u8], cuts: &mut Vec<usize>) {
    cuts.clear();
    let Ok(block) = rkyv::access::<ArchivedBlockRec, BoxedError>(payload) else {
        return;
    };
    column_cuts(payload, block.columns.as_slice(), cuts);
}

/// [`block_cuts`] for a block's times record (format 2.6).
pub(crate) fn times_cuts(payload: &[u8], cuts: &mut Vec<usize>) {
    cuts.clear();
    let Ok(times) = rkyv::access::<ArchivedTimesRec, BoxedError>(payload) else {
        return;
    };
    column_cuts(payload, times.columns.as_slice(), cuts);
}

/// The cuts of a record archived in `payload` whose columns are `columns`.
fn column_cuts(payload: &[u8], columns: &[ArchivedColumnRec], cuts: &mut Vec<usize>) {
    let base = payload.as_ptr() as usize;
    let mut starts = Vec::new();
    for c in columns {
        let bytes = c.bytes.as_slice();
        let at = ENVELOPE_LEN + (bytes.as_ptr() as usize - base);
        starts.push(at);
        let id = c.id.to_native() as usize;
        // (A near-constant column, 2.5, has no planes.)
        if col::PACKED.get(id).copied().unwrap_or(false) && bytes.len() > 1 && bytes[0] <= 8 {
            let w = bytes[0] as usize;
            let n = (bytes.len() - 1) / w.max(1);
            starts.extend((0..w).map(|j| at + 1 + j * n));
        }
        starts.push(at + bytes.len());
    }
    starts.sort_unstable();
    let end = ENVELOPE_LEN + payload.len();
    let mut last = 0;
    for s in starts {
        if s >= last + MIN_SEGMENT && s + MIN_SEGMENT <= end {
            cuts.push(s);
            last = s;
        }
    }
}
