//! Decoding one block into columns: whole, without its times, without its
//! buffer allocs and frees, or taking the block a previous pass kept.

use super::times_frame::times_record;
use super::{buffers_only, check_block_matches, decoding, TraceReader};
use crate::decode::{self, BlockColumns, BlockTimes, RefLimits};
use crate::frame::{open_record, RecordKind};
use crate::records::ArchivedBlockRec;
use crate::{Result, TraceError, FORMAT_MAJOR};
use rancor::BoxedError;

impl TraceReader {
    /// Decodes block `i` into columns (the fastest scan; see [`BlockColumns`]).
    pub fn decode_columns(&self, i: usize, out: &mut BlockColumns) -> Result<()> {
        self.decode_columns_unless(i, out, false, true)
            .map(|_whole| ())
    }

    /// Like [`TraceReader::decode_columns`], without the events' times
    /// (every `ts_at` 0, `clock_tick_ns` 0): for passes that read none,
    /// such as a replay. From format 2.6 on a block's times are a frame of
    /// their own, which this does not read (nor checks): they are most of
    /// a trace's compressed bytes.
    pub fn decode_columns_untimed(&self, i: usize, out: &mut BlockColumns) -> Result<()> {
        self.decode_columns_unless(i, out, false, false)
            .map(|_whole| ())
    }

    /// Like [`TraceReader::decode_columns`], for a pass that skips buffer
    /// allocs and frees (a cycle scan): a block that holds nothing else
    /// comes back as its kind column alone (no alloc or free in `out`), at the cost of decompressing it and one look at its
    /// kinds instead of a whole decode; a block of format 2.3 or later
    /// comes without its allocs and frees (`out.allocs` and `out.frees`
    /// empty: a third of a whole decode). Such a block is checked as far
    /// as its record (zstd frame, checksum, archive) and the columns
    /// decoded; the others are checked when a pass decodes it whole.
    /// Its decompressed record is kept for the next whole decode of block
    /// `i` (a few blocks' at most: the replay that follows a cycle probe
    /// decodes the same blocks again). No block comes with its times
    /// (as [`TraceReader::decode_columns_untimed`]). Returns whether `out`
    /// holds the block whole.
    pub fn decode_columns_non_buffer(&self, i: usize, out: &mut BlockColumns) -> Result<bool> {
        self.decode_columns_unless(i, out, true, false)
    }

    /// Keeps `columns`, block `i` decoded whole (with or without its
    /// times), for the next [`TraceReader::decode_columns_or_kept`] of
    /// block `i` (one block is
    /// kept: a replay's cycle probe keeps the first block it decoded for
    /// the replay that follows, which would decode it again).
    pub fn keep_decoded(&self, i: usize, columns: BlockColumns) {
        if let Some(old) = self.kept.keep_block(i, columns) {
            self.put_columns(old);
        }
    }

    /// Like [`TraceReader::decode_columns`], taking the block kept by
    /// [`TraceReader::keep_decoded`] instead when it is block `i` and has
    /// its times: `out` and the kept copy change places (no decode), and
    /// what `out` held goes to the pool of buffers.
    pub fn decode_columns_or_kept(&self, i: usize, out: &mut BlockColumns) -> Result<()> {
        self.decode_kept_unless(i, out, true)
    }

    /// [`TraceReader::decode_columns_or_kept`] for a pass that reads no
    /// time: the kept block is taken with or without its times, a block
    /// not kept is decoded as by [`TraceReader::decode_columns_untimed`].
    pub fn decode_columns_or_kept_untimed(&self, i: usize, out: &mut BlockColumns) -> Result<()> {
        self.decode_kept_unless(i, out, false)
    }

    fn decode_kept_unless(&self, i: usize, out: &mut BlockColumns, timed: bool) -> Result<()> {
        match self.kept.take_block(i) {
            Some(mut columns) if !timed || columns.has_times() => {
                std::mem::swap(out, &mut columns);
                self.put_columns(columns);
                Ok(())
            }
            kept => {
                if let Some(columns) = kept {
                    self.put_columns(columns);
                }
                self.decode_columns_unless(i, out, false, timed)
                    .map(|_whole| ())
            }
        }
    }

    /// Decodes block `i`, or only its kinds when `buffers_only_skip` and the
    /// block holds nothing but buffer allocs and frees; returns whether it
    /// decoded the block whole. A record kept for block `i` is taken
    /// instead of decompressing its frame again; with `buffers_only_skip`,
    /// the record is kept afterwards (`Kept::keep_record`).
    fn decode_columns_unless(
        &self,
        i: usize,
        out: &mut BlockColumns,
        buffers_only_skip: bool,
        timed: bool,
    ) -> Result<bool> {
        let Some(info) = self.index.blocks.get(i) else {
            return Err(TraceError::Other(format!(
                "{}: block {i} does not exist ({} blocks)",
                self.path.display(),
                self.index.blocks.len()
            )));
        };
        let loc = self.index.locs[i];
        // What the decode allocates is kept pooled (see `decoding`).
        let _decoding = decoding::Decoding::start();
        let mut scratch = self.take_scratch();
        let result = (|| {
            match self.kept.take_record(i) {
                Some(record) => scratch.buf = record,
                None => {
                    let bytes = self.frame_bytes(loc, &mut scratch.input)?;
                    scratch.dctx.decompress(bytes, &mut scratch.buf)?;
                }
            }
            let rec = open_record(&scratch.buf)?;
            // FORMAT.md §3: a record whose major version is not the header's
            // is corrupt (its layout cannot be trusted).
            if rec.major != FORMAT_MAJOR {
                return Err(format!(
                    "block record of format {}.{} in a trace of format {FORMAT_MAJOR}.x",
                    rec.major, rec.minor
                ));
            }
            if rec.kind != RecordKind::Block as u32 {
                return Err(format!(
                    "frame holds a record of kind {}, not an event block",
                    rec.kind
                ));
            }
            let block = rkyv::access::<ArchivedBlockRec, BoxedError>(rec.payload)
                .map_err(|e| format!("block archive: {e}"))?;
            check_block_matches(block, info)?;
            if buffers_only_skip {
                if let Some(tags) = buffers_only(block) {
                    out.clear();
                    out.first_event = info.first_event;
                    out.tags.extend_from_slice(tags);
                    return Ok(false);
                }
            }
            let limits = RefLimits {
                strings: self.index.interner.num_strings() as u32,
                sites: self.index.interner.num_sites() as u32,
            };
            let times = match self.index.times.get(i) {
                _ if !timed => BlockTimes::Skipped,
                None => BlockTimes::InBlock,
                Some(&loc) => {
                    let bytes = self.frame_bytes(loc, &mut scratch.input)?;
                    BlockTimes::Apart(
                        times_record(&mut scratch.dctx, bytes, &mut scratch.times).map_err(
                            |e| format!("its times record (frame at byte {}): {e}", loc.offset),
                        )?,
                    )
                }
            };
            // The decoder's working arrays (megabytes of a block's) are
            // needed only while it decodes: one set per decoding thread,
            // not one in every decoded block a replay holds (two in
            // flight), which would fault them in twice.
            let mut working = self.take_pooled(&self.decode_scratch);
            let decoded = if buffers_only_skip {
                decode::decode_columns_non_buffer(block, times, limits, &mut working, out)
            } else {
                decode::decode_columns(block, times, limits, &mut working, out).map(|()| true)
            };
            self.put_pooled(&self.decode_scratch, working);
            decoded
        })();
        if buffers_only_skip && result.is_ok() {
            self.kept.keep_record(i, std::mem::take(&mut scratch.buf));
        }
        self.put_scratch(scratch);
        let whole = result.map_err(|reason| self.corrupt(i, reason))?;
        if !out.skipped.is_empty() {
            let mut s = self.skipped_kinds.lock().unwrap_or_else(|p| p.into_inner());
            for &(k, n) in &out.skipped {
                s.insert((k, i), n as u64);
            }
        }
        Ok(whole)
    }
}
