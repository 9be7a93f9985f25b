//! Recovery: when a trace's seek table or footer is missing or damaged (a
//! killed recorder, a cut copy), its index is rebuilt by walking the zstd
//! frames from the start, keeping every complete, intact block up to the
//! first frame that is not.

use crate::frame::{frame_len, is_skippable, open_record, RecordKind, Scratch};
use crate::index::{live_from, Index};
use crate::intern;
use crate::records::{ArchivedBlockRec, ArchivedInternRec, ArchivedTimesRec, FrameLocRec};
use crate::{BlockInfo, Truncation, FORMAT_MAJOR};
use rancor::BoxedError;
use ttalloc_model::InternTables;

/// Walks frames from `start` (just after the header frame), keeping every
/// intact block; stops at the first frame that is incomplete or damaged.
pub(crate) fn scan(
    data: &[u8],
    start: usize,
    scratch: &mut Scratch,
    why_not_indexed: String,
    times_apart: bool,
) -> Index {
    let mut interner = InternTables::new();
    let mut blocks: Vec<BlockInfo> = Vec::new();
    let mut locs = Vec::new();
    let mut times_locs = Vec::new();
    // 2.6: a block read, waiting for its times record (the next frame).
    let mut pending: Option<(BlockInfo, FrameLocRec)> = None;
    let mut next_event = 0u64;
    let mut off = start;
    let mut saw_footer = false;
    let reason = loop {
        let rest = &data[off..];
        if rest.is_empty() {
            break if saw_footer {
                format!("the seek table is missing or damaged ({why_not_indexed}); the footer and every block are intact")
            } else {
                "the file ends without a footer (the writer did not finish)".to_string()
            };
        }
        let Some(n) = frame_len(rest) else {
            break format!("incomplete or damaged zstd frame at byte {off}");
        };
        if is_skippable(rest) {
            off += n;
            continue;
        }
        let step = (|| -> Result<(), String> {
            scratch.dctx.decompress(&rest[..n], &mut scratch.buf)?;
            let rec = open_record(&scratch.buf)?;
            if rec.major != FORMAT_MAJOR {
                return Err(format!("record of format {}.{}", rec.major, rec.minor));
            }
            let kind = RecordKind::from_u32(rec.kind);
            if pending.is_some() && kind != Some(RecordKind::Times) {
                return Err("the block before it has no times record".into());
            }
            match kind {
                Some(RecordKind::Intern) => {
                    let r = rkyv::access::<ArchivedInternRec, BoxedError>(rec.payload)
                        .map_err(|e| e.to_string())?;
                    intern::apply(r, &mut interner)
                }
                Some(RecordKind::Block) => {
                    let b = rkyv::access::<ArchivedBlockRec, BoxedError>(rec.payload)
                        .map_err(|e| e.to_string())?;
                    if b.first_event.to_native() != next_event {
                        return Err(format!(
                            "block starts at event {} but {next_event} were read",
                            b.first_event
                        ));
                    }
                    let count = b.count.to_native();
                    if b.columns
                        .iter()
                        .find(|c| c.id == 0)
                        .map_or(0, |c| c.bytes.len())
                        != count as usize
                    {
                        return Err("block's event count does not match its columns".into());
                    }
                    let info = BlockInfo {
                        first_event: b.first_event.to_native(),
                        count,
                        first_ts: b.first_ts.to_native(),
                        last_ts: b.last_ts.to_native(),
                        live: live_from(&b.live)?,
                    };
                    let loc = FrameLocRec {
                        offset: off as u64,
                        len: n as u64,
                    };
                    next_event += count as u64;
                    if times_apart {
                        pending = Some((info, loc));
                    } else {
                        blocks.push(info);
                        locs.push(loc);
                    }
                    Ok(())
                }
                Some(RecordKind::Times) if times_apart => {
                    let t = rkyv::access::<ArchivedTimesRec, BoxedError>(rec.payload)
                        .map_err(|e| e.to_string())?;
                    let (info, loc) = pending.take().ok_or("times record without its block")?;
                    if t.first_event != info.first_event || t.count != info.count {
                        return Err(format!(
                            "times record of events {}+{} after the block of events {}+{}",
                            t.first_event, t.count, info.first_event, info.count
                        ));
                    }
                    blocks.push(info);
                    locs.push(loc);
                    times_locs.push(FrameLocRec {
                        offset: off as u64,
                        len: n as u64,
                    });
                    Ok(())
                }
                Some(RecordKind::Footer) => {
                    saw_footer = true;
                    Ok(())
                }
                Some(RecordKind::Header) => Err("a second header".into()),
                // Read by the reader from frame 1; nothing to index.
                Some(RecordKind::Provenance) => Ok(()),
                // Checkpoints are found through the index of a finished file only.
                Some(RecordKind::Checkpoint | RecordKind::CheckpointIndex) => Ok(()),
                // Before 2.6 (no times apart), kind 8 was a newer minor's.
                Some(RecordKind::Times) => Ok(()),
                // A record kind of a newer minor version: not needed to read events.
                None => Ok(()),
            }
        })();
        if let Err(e) = step {
            break format!("frame at byte {off} is damaged: {e}");
        }
        off += n;
    };
    // A block whose times record is missing or damaged is not kept: the
    // readable part ends where its frame starts.
    let (off, next_event, reason) = match pending {
        Some((info, loc)) => (
            loc.offset as usize,
            next_event - info.count as u64,
            format!(
                "{reason}; the block at byte {} has no times record after it",
                loc.offset
            ),
        ),
        None => (off, next_event, reason),
    };
    let truncation = Truncation {
        valid_up_to: off as u64,
        file_size: data.len() as u64,
        events_recovered: next_event,
        reason,
    };
    Index {
        interner,
        blocks,
        locs,
        times: times_locs,
        truncation: Some(truncation),
        checkpoint_index: None,
    }
}
