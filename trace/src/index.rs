//! The index of a trace: what a reader knows before it decodes any block
//! (intern tables, every block's index entry and frame). A finished trace's
//! comes from its seek table and footer; `recovery` rebuilds it by walking
//! the frames when those are missing or damaged.

use crate::frame::{open_record, RecordKind, Scratch};
use crate::intern;
use crate::records::{ArchivedFooterRec, ArchivedInternRec, ArchivedLiveRec, FrameLocRec};
use crate::{BlockInfo, LiveBytes, Truncation, FORMAT_MAJOR};
use rancor::BoxedError;
use ttalloc_model::{BufferType, DeviceId, InternTables};

/// Size of the seek-table integrity field at the end of the file.
const INTEGRITY_LEN: usize = zeekstd::SEEK_TABLE_INTEGRITY_SIZE;
const SKIPPABLE_SEEK_MAGIC: u32 = 0x184D_2A5E;

/// What `open` builds, whichever way it found the blocks.
pub(crate) struct Index {
    pub(crate) interner: InternTables,
    pub(crate) blocks: Vec<BlockInfo>,
    pub(crate) locs: Vec<FrameLocRec>,
    /// Format 2.6: every block's times record (the frame after the
    /// block's); empty before, when blocks hold their times.
    pub(crate) times: Vec<FrameLocRec>,
    pub(crate) truncation: Option<Truncation>,
    /// The data frame before the footer of a finished file: the checkpoint
    /// index from format 2.2 on.
    pub(crate) checkpoint_index: Option<FrameLocRec>,
}

/// Checks the seek table's framing by hand before zeekstd parses it, so a
/// damaged frame count cannot make it allocate or seek out of bounds.
fn seek_table_len(data: &[u8]) -> Result<usize, String> {
    if data.len() < INTEGRITY_LEN + 8 {
        return Err("file too short for a seek table".into());
    }
    let tail = &data[data.len() - INTEGRITY_LEN..];
    let magic = u32::from_le_bytes(tail[5..9].try_into().expect("4 bytes"));
    if magic != zeekstd::SEEKABLE_MAGIC_NUMBER {
        return Err("file does not end with a seek table (the writer did not finish)".into());
    }
    let frames = u32::from_le_bytes(tail[0..4].try_into().expect("4 bytes")) as usize;
    let per_frame = if tail[4] & 0x80 != 0 { 12 } else { 8 };
    let len = frames
        .checked_mul(per_frame)
        .and_then(|n| n.checked_add(8 + INTEGRITY_LEN))
        .filter(|&n| n <= data.len())
        .ok_or("seek table claims more frames than the file can hold")?;
    let start = data.len() - len;
    let head = &data[start..start + 8];
    let skippable = u32::from_le_bytes(head[0..4].try_into().expect("4 bytes"));
    let size = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes")) as usize;
    if skippable != SKIPPABLE_SEEK_MAGIC || size + 8 != len {
        return Err("seek table frame header is damaged".into());
    }
    Ok(len)
}

/// Opens a finished trace through its seek table and footer.
///
/// `release(start, end)` may drop the pages of `[start, end)` the check of
/// the frame headers touched: it is called as the check goes, so a long
/// trace does not have every frame's first pages resident at once.
pub(crate) fn open_indexed(
    data: &[u8],
    scratch: &mut Scratch,
    release: &dyn Fn(u64, u64),
    times_apart: bool,
) -> Result<Index, String> {
    let st_len = seek_table_len(data)?;
    let table = zeekstd::SeekTable::from_seekable(&mut zeekstd::BytesWrapper::new(data))
        .map_err(|e| format!("seek table: {e}"))?;
    let n = table.num_frames();
    if n < 2 {
        return Err("seek table lists fewer than two frames".into());
    }
    if table.size_comp() + st_len as u64 != data.len() as u64 {
        return Err("seek table frame sizes do not add up to the file size".into());
    }
    let frame = |i: u32| -> Result<FrameLocRec, String> {
        let offset = table.frame_start_comp(i).map_err(|e| e.to_string())?;
        let len = table.frame_size_comp(i).map_err(|e| e.to_string())?;
        Ok(FrameLocRec { offset, len })
    };
    let starts: Vec<FrameLocRec> = (0..n).map(frame).collect::<Result<_, _>>()?;
    // Seekable-format readers (`zstd --seekable`, zeekstd) size their output
    // from the decompressed sizes: each must match its frame's header, which
    // the writer always fills in.
    let mut checked_from = 0u64;
    for (i, loc) in (0..n).zip(&starts) {
        if i % 64 == 63 {
            release(checked_from, loc.offset);
            checked_from = loc.offset;
        }
        let declared = table.frame_size_decomp(i).map_err(|e| e.to_string())?;
        let in_frame = zstd::zstd_safe::get_frame_content_size(slice(data, *loc)?)
            .map_err(|_| format!("frame {i} at byte {} has a damaged header", loc.offset))?;
        if let Some(actual) = in_frame.filter(|&a| a != declared) {
            return Err(format!(
                "seek table entry {i} says the frame at byte {} decompresses to {declared} bytes; the frame says {actual}",
                loc.offset
            ));
        }
    }
    let footer_loc = starts[n as usize - 1];
    let bytes = slice(data, footer_loc)?;
    scratch
        .dctx
        .decompress(bytes, &mut scratch.buf)
        .map_err(|e| format!("footer frame: {e}"))?;
    let rec = open_record(&scratch.buf).map_err(|e| format!("footer frame: {e}"))?;
    if rec.kind != RecordKind::Footer as u32 || rec.major != FORMAT_MAJOR {
        return Err("last frame is not a footer".into());
    }
    let footer = rkyv::access::<ArchivedFooterRec, BoxedError>(rec.payload)
        .map_err(|e| format!("footer: {e}"))?;
    let (blocks, locs) = footer_blocks(footer)?;
    let frame_number = |l: &FrameLocRec| {
        starts
            .binary_search_by_key(&l.offset, |s| s.offset)
            .ok()
            .filter(|&i| starts[i] == *l)
    };
    let is_frame = |l: &FrameLocRec| frame_number(l).is_some();
    let mut times = Vec::new();
    for loc in &locs {
        let Some(i) = frame_number(loc) else {
            return Err(format!(
                "footer points at byte {} which is not a frame of the seek table",
                loc.offset
            ));
        };
        // 2.6: the block's times are the next frame (never the footer).
        if times_apart {
            match starts.get(i + 1).filter(|_| i + 2 < starts.len()) {
                Some(&next) => times.push(next),
                None => {
                    return Err(format!(
                        "the block at byte {} has no frame after it for its times",
                        loc.offset
                    ))
                }
            }
        }
    }
    let intern_locs: Vec<FrameLocRec> = footer
        .intern_frames
        .iter()
        .map(|l| FrameLocRec {
            offset: l.offset.to_native(),
            len: l.len.to_native(),
        })
        .collect();
    let mut interner = InternTables::new();
    for loc in intern_locs {
        if !is_frame(&loc) {
            return Err(format!(
                "footer points at byte {} which is not a frame of the seek table",
                loc.offset
            ));
        }
        let bytes = slice(data, loc)?;
        scratch
            .dctx
            .decompress(bytes, &mut scratch.buf)
            .map_err(|e| format!("intern frame at byte {}: {e}", loc.offset))?;
        let rec = open_record(&scratch.buf)
            .map_err(|e| format!("intern frame at byte {}: {e}", loc.offset))?;
        if rec.major != FORMAT_MAJOR {
            return Err(format!(
                "intern frame at byte {} is a record of format {}.{}",
                loc.offset, rec.major, rec.minor
            ));
        }
        if rec.kind != RecordKind::Intern as u32 {
            return Err(format!(
                "frame at byte {} is not an intern record",
                loc.offset
            ));
        }
        let r = rkyv::access::<ArchivedInternRec, BoxedError>(rec.payload)
            .map_err(|e| format!("intern frame at byte {}: {e}", loc.offset))?;
        intern::apply(r, &mut interner)
            .map_err(|e| format!("intern frame at byte {}: {e}", loc.offset))?;
    }
    Ok(Index {
        interner,
        blocks,
        locs,
        times,
        truncation: None,
        // The frame before the footer (format 2.2: the checkpoint index).
        checkpoint_index: (n >= 3).then(|| starts[n as usize - 2]),
    })
}

fn slice(data: &[u8], loc: FrameLocRec) -> Result<&[u8], String> {
    let end = loc
        .offset
        .checked_add(loc.len)
        .filter(|&e| e <= data.len() as u64)
        .ok_or("frame beyond end of file")?;
    Ok(&data[loc.offset as usize..end as usize])
}

pub(crate) fn live_from(live: &[ArchivedLiveRec]) -> Result<Vec<LiveBytes>, String> {
    live.iter()
        .map(|l| {
            let bt = l.buffer_type;
            Ok(LiveBytes {
                device: DeviceId(l.device.to_native()),
                buffer_type: BufferType::from_u8(bt)
                    .ok_or_else(|| format!("buffer type code {bt} out of range"))?,
                bytes: l.bytes.to_native(),
            })
        })
        .collect()
}

pub(crate) fn footer_blocks(
    footer: &ArchivedFooterRec,
) -> Result<(Vec<BlockInfo>, Vec<FrameLocRec>), String> {
    let mut blocks = Vec::with_capacity(footer.blocks.len());
    let mut locs = Vec::with_capacity(footer.blocks.len());
    let mut next = 0u64;
    for b in footer.blocks.iter() {
        let first_event = b.first_event.to_native();
        if first_event != next {
            return Err(format!(
                "footer: block {} starts at event {first_event}, expected {next}",
                blocks.len()
            ));
        }
        next += b.count.to_native() as u64;
        blocks.push(BlockInfo {
            first_event,
            count: b.count.to_native(),
            first_ts: b.first_ts.to_native(),
            last_ts: b.last_ts.to_native(),
            live: live_from(&b.live)?,
        });
        locs.push(FrameLocRec {
            offset: b.frame.offset.to_native(),
            len: b.frame.len.to_native(),
        });
    }
    if next != footer.total_events.to_native() {
        return Err(format!(
            "footer: blocks hold {next} events but the total says {}",
            footer.total_events
        ));
    }
    Ok((blocks, locs))
}
