//! The trace writer: encodes events into the current block, seals blocks into
//! frames (intern delta first, then the block), and at `finish` writes the
//! footer index and the zstd seek table.

use crate::checkpoint::{self, CheckpointEntryRec, CheckpointIndexRec, CheckpointTracker};
use crate::codec::{BlockEncoder, ColumnLayout};
use crate::frame::{build_record, FrameCompressor, RecordKind};
use crate::intern::InternCursor;
use crate::live::LiveTracker;
use crate::records::{
    BlockEntryRec, BlockRec, ColumnRec, FooterRec, FrameLocRec, HeaderRec, TimesRec, HEADER_MAGIC,
};
use crate::{Result, TraceError, TraceHeader, WriterOptions, FORMAT_MAJOR, FORMAT_MINOR};

use rancor::BoxedError;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use ttalloc_model::{Event, InternTables};

/// A monotonic clock in ns that is cheap enough to read on every push
/// (Linux's coarse clock: a few ns, ~4 ms resolution — plenty for a 1 s interval).
#[cfg(target_os = "linux")]
fn coarse_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the call only writes it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    if rc != 0 {
        return fallback_now_ns();
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(not(target_os = "linux"))]
fn coarse_now_ns() -> u64 {
    fallback_now_ns()
}

fn fallback_now_ns() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_nanos() as u64
}

/// The coarsest clock tick a writer accepts (1 s).
pub const MAX_CLOCK_TICK_NS: u64 = 1_000_000_000;

pub struct TraceWriter {
    path: PathBuf,
    file: File,
    /// Bytes written so far (= offset of the next frame).
    offset: u64,
    interner: InternTables,
    intern_cursor: InternCursor,
    encoder: BlockEncoder,
    live: LiveTracker,
    /// Allocator state for the checkpoints written every few blocks.
    state: CheckpointTracker,
    checkpoints_off: bool,
    opts: WriterOptions,
    tick_rounding: TickRounding,
    compressor: FrameCompressor,
    seek_table: zeekstd::SeekTable,
    blocks: Vec<BlockEntryRec>,
    intern_frames: Vec<FrameLocRec>,
    events_written: u64,
    /// When the first event of the current block was pushed (`coarse_now_ns`).
    block_started: Option<u64>,
    record_buf: Vec<u8>,
    zbuf: Vec<u8>,
    /// Where the current block record's zstd blocks end (see `segments`).
    cuts: Vec<usize>,
    finished: bool,
    major: u16,
    minor: u16,
    /// Uncompressed column bytes of all sealed blocks.
    raw_bytes: u64,
}

impl TraceWriter {
    pub fn create(path: &Path, header: TraceHeader, opts: WriterOptions) -> Result<Self> {
        Self::create_with_version(path, header, opts, FORMAT_MAJOR, FORMAT_MINOR)
    }

    /// Lets tests play a writer of another format version (readers' tests,
    /// here and in the crates that read traces).
    #[doc(hidden)]
    pub fn create_with_version(
        path: &Path,
        header: TraceHeader,
        opts: WriterOptions,
        major: u16,
        minor: u16,
    ) -> Result<Self> {
        let io = |source| TraceError::Io {
            path: path.to_owned(),
            source,
        };
        if opts.block_events == 0 || opts.block_events > u32::MAX as usize {
            return Err(TraceError::Other(format!(
                "block_events must be between 1 and {}, not {}",
                u32::MAX,
                opts.block_events
            )));
        }
        if !(1..=MAX_CLOCK_TICK_NS).contains(&opts.clock_tick_ns) {
            return Err(TraceError::Other(format!(
                "the clock tick must be between 1 ns and 1 s, not {} ns",
                opts.clock_tick_ns
            )));
        }
        let file = File::create(path).map_err(io)?;
        let compressor = FrameCompressor::new(opts.level).map_err(io)?;
        let mut w = TraceWriter {
            path: path.to_owned(),
            file,
            offset: 0,
            interner: InternTables::new(),
            intern_cursor: InternCursor::default(),
            encoder: {
                let mut e = BlockEncoder::new(ColumnLayout::of_minor(minor));
                e.set_clock_tick(opts.clock_tick_ns);
                e
            },
            live: LiveTracker::default(),
            state: CheckpointTracker::default(),
            checkpoints_off: false,
            tick_rounding: TickRounding::new(opts.clock_tick_ns),
            opts,
            compressor,
            seek_table: zeekstd::SeekTable::new(),
            blocks: Vec::new(),
            intern_frames: Vec::new(),
            events_written: 0,
            block_started: None,
            record_buf: Vec::new(),
            zbuf: Vec::new(),
            cuts: Vec::new(),
            finished: false,
            major,
            minor,
            raw_bytes: 0,
        };
        let rec = HeaderRec {
            magic: HEADER_MAGIC,
            format_major: major,
            format_minor: minor,
            ttalloc_version: header.ttalloc_version,
            argv: header.argv,
            start_time_ns: header.start_time_ns,
            hostname: header.hostname,
        };
        let bytes =
            rkyv::to_bytes::<BoxedError>(&rec).map_err(|e| TraceError::Other(e.to_string()))?;
        w.write_frame(RecordKind::Header, &bytes)?;
        Ok(w)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn interner(&self) -> &InternTables {
        &self.interner
    }

    pub fn interner_mut(&mut self) -> &mut InternTables {
        &mut self.interner
    }

    /// Writes the provenance record (what this trace was derived from). It
    /// must come before any event: readers look for it in frame 1.
    pub fn write_provenance(&mut self, p: &crate::provenance::Provenance) -> Result<()> {
        if self.events_written > 0 || !self.intern_frames.is_empty() || !self.blocks.is_empty() {
            return Err(TraceError::Other(format!(
                "{}: the provenance record must be written before any event",
                self.path.display()
            )));
        }
        let bytes = crate::provenance::encode(p).map_err(TraceError::Other)?;
        self.write_frame(RecordKind::Provenance, &bytes)?;
        Ok(())
    }

    /// Appends one event; seals the block when full or older than `seal_interval`.
    pub fn push(&mut self, event: &Event) -> Result<()> {
        // The trace keeps time at the clock tick (WriterOptions::clock_tick_ns):
        // the rounded time goes with the event, not a copy of it (a compat
        // recording's every event is off the tick).
        let ts = self.tick_rounding.round(event.ts);
        self.check_refs(event)?;
        if self.encoder.is_empty() {
            self.block_started = Some(coarse_now_ns());
        }
        self.live.apply(event);
        self.state.apply(self.events_written, ts, event);
        self.encoder.push_at(ts, event);
        self.events_written += 1;
        if self.encoder.len() as usize >= self.opts.block_events {
            self.seal()
        } else {
            self.tick()
        }
    }

    /// Lets tests play a writer of format 2.1: no checkpoints, no index.
    #[doc(hidden)]
    pub fn without_checkpoints(&mut self) {
        self.checkpoints_off = true;
    }

    /// Lets tests play a writer of a newer minor version: an event of a kind
    /// this version does not know (FORMAT.md §5.4).
    #[doc(hidden)]
    pub fn push_unknown_kind(
        &mut self,
        tag: u8,
        ts: u64,
        pid: ttalloc_model::Pid,
        payload: &[u8],
    ) -> Result<()> {
        if tag < crate::codec::FIRST_UNKNOWN_TAG {
            return Err(TraceError::Other(format!(
                "event kind {tag} is a known kind, not one of a newer version"
            )));
        }
        if self.encoder.is_empty() {
            self.block_started = Some(coarse_now_ns());
        }
        self.encoder.push_unknown(tag, ts, pid, payload);
        self.events_written += 1;
        Ok(())
    }

    fn check_refs(&self, e: &Event) -> Result<()> {
        let t = &self.interner;
        let bad = |what: String| {
            Err(TraceError::Other(format!(
                "{}: event refers to {what}",
                self.path.display()
            )))
        };
        if let Some(site) = e.kind.site() {
            if t.check_site(site).is_err() {
                return bad(format!("site {site}, which is not interned"));
            }
        }
        match e.kind.string() {
            Some(s) if t.check_string(s).is_err() => {
                bad(format!("string {s}, which is not interned"))
            }
            _ => Ok(()),
        }
    }

    /// Seals the current block if it is older than `seal_interval` (call it from an idle loop).
    pub fn tick(&mut self) -> Result<()> {
        match self.block_started {
            Some(t)
                if coarse_now_ns().saturating_sub(t)
                    >= self.opts.seal_interval.as_nanos() as u64 =>
            {
                self.seal()
            }
            _ => Ok(()),
        }
    }

    /// Seals the current block now (it and everything before survive a crash).
    pub fn seal(&mut self) -> Result<()> {
        if let Some(rec) = self.intern_cursor.delta(&self.interner) {
            let bytes =
                rkyv::to_bytes::<BoxedError>(&rec).map_err(|e| TraceError::Other(e.to_string()))?;
            let loc = self.write_frame(RecordKind::Intern, &bytes)?;
            self.intern_frames.push(loc);
        }
        if self.encoder.is_empty() {
            return Ok(());
        }
        let count = self.encoder.len();
        let first_ts = self.encoder.first_ts();
        let last_ts = self.encoder.last_ts();
        let first_event = self.events_written - count as u64;
        let mut columns = self.encoder.take_columns();
        // The packed columns as zstd gets them: counted here, not by a pass
        // over the block's values (8% of a compat recording's writer thread).
        self.raw_bytes += columns.iter().map(|c| c.bytes.len() as u64).sum::<u64>();
        // 2.6: the times go in a frame of their own, after the block's.
        let times = crate::times_apart(self.minor).then(|| TimesRec {
            first_event,
            count,
            columns: take_time_columns(&mut columns),
        });
        let rec = BlockRec {
            first_event,
            count,
            first_ts,
            last_ts,
            live: self.live.snapshot(),
            columns,
        };
        self.block_started = None;
        let bytes =
            rkyv::to_bytes::<BoxedError>(&rec).map_err(|e| TraceError::Other(e.to_string()))?;
        let mut cuts = std::mem::take(&mut self.cuts);
        crate::segments::block_cuts(&bytes, &mut cuts);
        let loc = self.write_frame_segmented(RecordKind::Block, &bytes, &cuts);
        let times_written = match (&loc, &times) {
            (Ok(_), Some(times)) => self.write_times(times, &mut cuts),
            _ => Ok(()),
        };
        self.cuts = cuts;
        let loc = loc?;
        times_written?;
        let BlockRec {
            first_event,
            count,
            first_ts,
            last_ts,
            live,
            mut columns,
        } = rec;
        columns.extend(times.into_iter().flat_map(|t| t.columns));
        self.encoder.reclaim(columns);
        self.blocks.push(BlockEntryRec {
            frame: loc,
            first_event,
            count,
            first_ts,
            last_ts,
            live,
        });
        if self.state.due(self.blocks.len() as u32) && !self.checkpoints_off {
            self.write_checkpoint()?;
        }
        Ok(())
    }

    /// Writes the allocator state after the last sealed block (FORMAT.md §4.5).
    fn write_checkpoint(&mut self) -> Result<()> {
        let after_block = self.blocks.len() as u32 - 1;
        let rec = self.state.snapshot(after_block, self.events_written);
        let objects = rec.objects.len() as u32;
        let bytes = checkpoint::to_bytes(&rec).map_err(TraceError::Other)?;
        let frame = self.write_frame(RecordKind::Checkpoint, &bytes)?;
        self.state.written.push(CheckpointEntryRec {
            frame,
            after_block,
            next_event: self.events_written,
            objects,
        });
        Ok(())
    }

    pub fn events_written(&self) -> u64 {
        self.events_written
    }

    /// Uncompressed event-column bytes of the blocks sealed so far (the
    /// codec's output before zstd; benchmarks report write speed against it).
    pub fn raw_block_bytes(&self) -> u64 {
        self.raw_bytes
    }

    /// Compressed bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.offset
    }

    /// Seals, writes the footer index and the seek table.
    pub fn finish(mut self) -> Result<()> {
        self.seal()?;
        let index = CheckpointIndexRec {
            entries: std::mem::take(&mut self.state.written),
        };
        if !self.checkpoints_off {
            let bytes = checkpoint::index_to_bytes(&index).map_err(TraceError::Other)?;
            self.write_frame(RecordKind::CheckpointIndex, &bytes)?;
        }
        let footer = FooterRec {
            total_events: self.events_written,
            intern_frames: std::mem::take(&mut self.intern_frames),
            blocks: std::mem::take(&mut self.blocks),
        };
        let bytes =
            rkyv::to_bytes::<BoxedError>(&footer).map_err(|e| TraceError::Other(e.to_string()))?;
        self.write_frame(RecordKind::Footer, &bytes)?;
        let table = std::mem::take(&mut self.seek_table);
        let mut ser = table.into_serializer();
        let mut out = vec![0u8; ser.encoded_len()];
        let mut n = 0;
        while n < out.len() {
            let k = ser.write_into(&mut out[n..]);
            if k == 0 {
                break;
            }
            n += k;
        }
        out.truncate(n);
        let io = |source| TraceError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(&out).map_err(io)?;
        self.offset += out.len() as u64;
        self.file.sync_data().map_err(io)?;
        self.finished = true;
        Ok(())
    }

    /// Wraps `payload` in an envelope, compresses it into one frame, appends it.
    /// Writes a block's times record (2.6), right after the block's frame.
    fn write_times(&mut self, times: &TimesRec, cuts: &mut Vec<usize>) -> Result<()> {
        let bytes =
            rkyv::to_bytes::<BoxedError>(times).map_err(|e| TraceError::Other(e.to_string()))?;
        crate::segments::times_cuts(&bytes, cuts);
        self.write_frame_segmented(RecordKind::Times, &bytes, cuts)
            .map(|_loc| ())
    }

    fn write_frame(&mut self, kind: RecordKind, payload: &[u8]) -> Result<FrameLocRec> {
        self.write_frame_segmented(kind, payload, &[])
    }

    /// Writes one record as one frame whose zstd blocks end at `cuts`
    /// (offsets in the record; see `segments`).
    fn write_frame_segmented(
        &mut self,
        kind: RecordKind,
        payload: &[u8],
        cuts: &[usize],
    ) -> Result<FrameLocRec> {
        build_record(kind, self.major, self.minor, payload, &mut self.record_buf);
        let path = &self.path;
        let io = |source| TraceError::Io {
            path: path.clone(),
            source,
        };
        self.compressor
            .compress_segmented(&self.record_buf, cuts, &mut self.zbuf)
            .map_err(io)?;
        let (c, d) = (self.zbuf.len(), self.record_buf.len());
        let (c32, d32) = match (u32::try_from(c), u32::try_from(d)) {
            (Ok(c), Ok(d)) => (c, d),
            _ => {
                return Err(TraceError::Other(format!(
                    "{}: frame of {d} bytes is too large",
                    path.display()
                )))
            }
        };
        self.file.write_all(&self.zbuf).map_err(io)?;
        self.seek_table
            .log_frame(c32, d32)
            .map_err(|e| TraceError::Other(format!("seek table: {e}")))?;
        let loc = FrameLocRec {
            offset: self.offset,
            len: c as u64,
        };
        self.offset += c as u64;
        Ok(loc)
    }
}

impl Drop for TraceWriter {
    fn drop(&mut self) {
        if !self.finished {
            // Best effort: keep what was pushed; the file reads as truncated.
            let _ = self.seal();
        }
    }
}

/// Moves the time columns (`col::is_time`) out of `columns`, keeping the
/// others in order.
fn take_time_columns(columns: &mut Vec<ColumnRec>) -> Vec<ColumnRec> {
    let (times, others) = std::mem::take(columns)
        .into_iter()
        .partition(|c| crate::codec::col::is_time(c.id));
    *columns = others;
    times
}

mod tick_rounding;
use tick_rounding::TickRounding;

#[cfg(test)]
mod tests;
