//! The mmap reader: opens the header, intern tables and index (from the footer
//! when the file was finished, else by scanning frames: see `recovery`), then
//! decodes one block at a time on demand.

use crate::checkpoint::CheckpointInfo;
use crate::decode::{BlockColumns, DecodeScratch};
use crate::frame::{frame_len, open_record, RecordKind, Scratch};
use crate::index::{self, Index};
use crate::provenance::{self, Provenance};
use crate::records::{ArchivedBlockRec, ArchivedHeaderRec, FrameLocRec, HEADER_MAGIC};
use crate::recovery;
use crate::{BlockInfo, Result, TraceError, TraceHeader, Truncation, FORMAT_MAJOR, FORMAT_MINOR};
use contents::{drop_mapped, read_unmapped, Contents};
use memmap2::Mmap;
use rancor::BoxedError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use ttalloc_model::{Event, InternTables};

/// Most decoded-block buffers the reader keeps for reuse: a replay has two
/// in flight per decoder thread and one decoder.
const COLUMNS_POOL_MAX: usize = 4;

pub struct TraceReader {
    path: PathBuf,
    map: Contents,
    header: TraceHeader,
    pub(crate) index: Index,
    num_events: u64,
    /// What the trace was derived from (frame 1, format 2.1), if it says.
    provenance: Option<Provenance>,
    /// Why a provenance record could not be read (reported by `warnings()`).
    provenance_error: Option<String>,
    /// Events of unknown kinds skipped, by (kind code, block), for
    /// `warnings()`: keyed by block so a block decoded again (a second pass,
    /// a replay's probe) is counted once.
    skipped_kinds: Mutex<BTreeMap<(u8, usize), u64>>,
    pool: Mutex<Vec<Scratch>>,
    /// Decoded-block buffers reused by `visit_block` and by every scan
    /// that takes them with `take_columns` (see there).
    columns_pool: Mutex<Vec<BlockColumns>>,
    /// The decoder's working arrays, one per block being decoded at once
    /// (see `decode_columns_unless`).
    decode_scratch: Mutex<Vec<DecodeScratch>>,
    /// What a replay's cycle probe decoded, kept for the replay to take
    /// (see `keep_decoded`, `decode_columns_non_buffer`).
    kept: kept::Kept,
    /// The checkpoint index (read on first use) and why it is unusable, if it is.
    checkpoints: OnceLock<(Vec<CheckpointInfo>, Option<String>)>,
}

impl TraceReader {
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, true)
    }

    /// `open`, reading the file instead of mapping it when `map` is false.
    pub(crate) fn open_with(path: &Path, map: bool) -> Result<Self> {
        let io = |source| TraceError::Io {
            path: path.to_owned(),
            source,
        };
        let not_trace = |reason: String| TraceError::NotATrace {
            path: path.to_owned(),
            reason,
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len == 0 {
            return Err(not_trace("the file is empty".into()));
        }
        // SAFETY: the map is read-only and every byte read through it is
        // validated (zstd frame checks, record checksum, rkyv bytecheck). A file
        // truncated by another process while mapped would raise SIGBUS; traces
        // are not modified in place by ttalloc.
        let mapped = if map {
            unsafe { Mmap::map(&file) }
        } else {
            Err(std::io::Error::other("mapping not asked for"))
        };
        let map = match mapped {
            Ok(m) => Contents::Mapped(m, file),
            Err(e) => Contents::Read(read_unmapped(&mut file, len, e).map_err(io)?),
        };
        let data: &[u8] = &map;
        let mut scratch = Scratch::default();

        let hlen = frame_len(data).ok_or_else(|| {
            not_trace(
                "it does not start with a complete zstd frame (cut inside the header?)".into(),
            )
        })?;
        scratch
            .dctx
            .decompress(&data[..hlen], &mut scratch.buf)
            .map_err(|e| not_trace(format!("header frame: {e}")))?;
        let rec = open_record(&scratch.buf).map_err(|e| not_trace(format!("header frame: {e}")))?;
        if rec.major > FORMAT_MAJOR {
            return Err(TraceError::NewerMajor {
                path: path.to_owned(),
                major: rec.major,
                minor: rec.minor,
            });
        }
        if rec.major < FORMAT_MAJOR {
            return Err(not_trace(format!(
                "trace format {}.{} is older than this ttalloc reads ({FORMAT_MAJOR}.x); \
                 it was written by a pre-release ttalloc: record it again",
                rec.major, rec.minor
            )));
        }
        if rec.kind != RecordKind::Header as u32 {
            return Err(not_trace(format!(
                "first record is kind {} of format {}.{}, not a header",
                rec.kind, rec.major, rec.minor
            )));
        }
        let h = rkyv::access::<ArchivedHeaderRec, BoxedError>(rec.payload)
            .map_err(|e| not_trace(format!("header archive: {e}")))?;
        if h.magic != HEADER_MAGIC {
            return Err(not_trace("header magic is not TTALLOC".into()));
        }
        let header = TraceHeader {
            format_major: h.format_major.to_native(),
            format_minor: h.format_minor.to_native(),
            ttalloc_version: h.ttalloc_version.to_string(),
            argv: h.argv.iter().map(|s| s.to_string()).collect(),
            start_time_ns: h.start_time_ns.to_native(),
            hostname: h.hostname.to_string(),
        };

        let release = |start: u64, end: u64| drop_mapped(&map, start, end);
        let times_apart = crate::times_apart(header.format_minor);
        let index = match index::open_indexed(data, &mut scratch, &release, times_apart) {
            Ok(ix) => ix,
            Err(why) => recovery::scan(data, hlen, &mut scratch, why, times_apart),
        };
        let num_events = index.blocks.iter().map(|b| b.count as u64).sum();
        let (provenance, provenance_error) = match read_provenance(data, hlen, &mut scratch) {
            Ok(p) => (p, None),
            Err(e) => (None, Some(e)),
        };
        let reader = TraceReader {
            path: path.to_owned(),
            map,
            header,
            index,
            num_events,
            provenance,
            provenance_error,
            skipped_kinds: Mutex::new(BTreeMap::new()),
            pool: Mutex::new(vec![scratch]),
            columns_pool: Mutex::new(Vec::new()),
            decode_scratch: Mutex::new(Vec::new()),
            kept: kept::Kept::default(),
            checkpoints: OnceLock::new(),
        };
        // Checking every frame's header against the seek table touched a
        // page per frame, and the kernel maps the pages around each fault
        // too: on a 50M-event trace that kept 50 MB of the file resident.
        // Drop them; blocks are read with `pread` (see `Contents`).
        drop_mapped(&reader.map, 0, len);
        Ok(reader)
    }

    /// The file's bytes.
    pub(crate) fn data(&self) -> &[u8] {
        &self.map
    }

    /// The checkpoint index, read on first use (a damaged one: none, and why).
    pub(crate) fn checkpoint_index(&self) -> &(Vec<CheckpointInfo>, Option<String>) {
        self.checkpoints
            .get_or_init(|| match self.index.checkpoint_index {
                Some(loc) => {
                    match crate::checkpoint::read_index(&self.map, loc, &self.index.blocks) {
                        Ok(v) => (v, None),
                        Err(e) => (Vec::new(), Some(e)),
                    }
                }
                None => (Vec::new(), None),
            })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn header(&self) -> &TraceHeader {
        &self.header
    }
    pub fn interner(&self) -> &InternTables {
        &self.index.interner
    }
    pub fn blocks(&self) -> &[BlockInfo] {
        &self.index.blocks
    }
    pub fn num_events(&self) -> u64 {
        self.num_events
    }
    /// What this trace was derived from (`ttalloc minimize`), if it says.
    pub fn provenance(&self) -> Option<&Provenance> {
        self.provenance.as_ref()
    }
    pub fn truncation(&self) -> Option<&Truncation> {
        self.index.truncation.as_ref()
    }
    /// Size of the file in bytes.
    pub fn file_size(&self) -> u64 {
        self.map.len() as u64
    }

    /// Things a reader should tell the user once (today: events of unknown
    /// kinds, written by a newer minor version, that were skipped).
    pub fn warnings(&self) -> Vec<String> {
        let skipped = self.skipped_kinds.lock().unwrap_or_else(|p| p.into_inner());
        let mut by_kind: BTreeMap<u8, u64> = BTreeMap::new();
        for (&(kind, _block), &n) in skipped.iter() {
            *by_kind.entry(kind).or_default() += n;
        }
        self.provenance_error
            .iter()
            .cloned()
            .chain(by_kind.iter()
            .map(|(kind, n)| {
                format!(
                    "skipped {n} event(s) of unknown kind {kind}: the trace was written by format {}.{}, this ttalloc reads {FORMAT_MAJOR}.{FORMAT_MINOR}",
                    self.header.format_major, self.header.format_minor
                )
            }))
            .collect()
    }

    /// Index of the block holding event `ordinal` (or `blocks().len()` when past the end).
    pub fn block_of(&self, ordinal: u64) -> usize {
        self.index
            .blocks
            .partition_point(|b| b.first_event + b.count as u64 <= ordinal)
    }

    /// The compressed bytes of frame `loc`: read into `input` from a mapped
    /// trace (see `Contents`), borrowed from one read into memory.
    fn frame_bytes<'a>(
        &'a self,
        loc: FrameLocRec,
        input: &'a mut Vec<u8>,
    ) -> std::result::Result<&'a [u8], String> {
        let range = loc.offset as usize..(loc.offset + loc.len) as usize;
        match &self.map {
            Contents::Read(v) => Ok(&v[range]),
            #[cfg(unix)]
            Contents::Mapped(_, file) => {
                use std::os::unix::fs::FileExt;
                input.resize(range.len(), 0);
                file.read_exact_at(input, loc.offset).map_err(|e| {
                    format!(
                        "reading its {} bytes at offset {}: {e} (was the file changed while being read?)",
                        loc.len, loc.offset
                    )
                })?;
                Ok(input)
            }
            #[cfg(not(unix))]
            Contents::Mapped(map, _) => {
                let _ = input;
                Ok(&map[range])
            }
        }
    }

    fn corrupt(&self, block: usize, reason: String) -> TraceError {
        TraceError::Corrupt {
            path: self.path.clone(),
            block,
            offset: self.index.locs[block].offset,
            reason,
        }
    }

    /// Where block `i`'s times record is in the file, `(offset, length)`
    /// of its frame (format 2.6; none before, when blocks hold their
    /// times). For tests and benchmarks.
    #[doc(hidden)]
    pub fn times_frame(&self, i: usize) -> Option<(u64, u64)> {
        self.index.times.get(i).map(|l| (l.offset, l.len))
    }

    /// Benchmark floor: decompresses and validates block `i` (zstd, checksum,
    /// rkyv) without decoding events; returns its column bytes.
    #[doc(hidden)]
    pub fn bench_unpack_block(&self, i: usize) -> Result<usize> {
        let mut total = 0;
        self.bench_raw_columns(i, |_, bytes| total += bytes.len())?;
        Ok(total)
    }

    /// Benchmarks and format experiments: hands `f(column id, bytes)` every
    /// column of block `i` as stored (decompressed, validated, not decoded).
    #[doc(hidden)]
    pub fn bench_raw_columns(&self, i: usize, mut f: impl FnMut(u16, &[u8])) -> Result<()> {
        let Some(&loc) = self.index.locs.get(i) else {
            return Err(TraceError::Other(format!("block {i} does not exist")));
        };
        let mut scratch = self.take_scratch();
        let result = (|| {
            let bytes = self.frame_bytes(loc, &mut scratch.input)?;
            scratch.dctx.decompress(bytes, &mut scratch.buf)?;
            let rec = open_record(&scratch.buf)?;
            let block = rkyv::access::<ArchivedBlockRec, BoxedError>(rec.payload)
                .map_err(|e| e.to_string())?;
            for c in block.columns.iter() {
                f(c.id.to_native(), c.bytes.as_slice());
            }
            Ok::<(), String>(())
        })();
        self.put_scratch(scratch);
        result.map_err(|reason| self.corrupt(i, reason))
    }

    fn take_scratch(&self) -> Scratch {
        self.pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_default()
    }

    fn put_scratch(&self, s: Scratch) {
        self.pool.lock().unwrap_or_else(|p| p.into_inner()).push(s);
    }

    fn take_pooled<T: Default>(&self, pool: &Mutex<Vec<T>>) -> T {
        pool.lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_default()
    }

    /// Keeps `item` in `pool` for reuse, up to as many as a replay uses at
    /// once (more are freed).
    fn put_pooled<T>(&self, pool: &Mutex<Vec<T>>, item: T) {
        let mut pool = pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < COLUMNS_POOL_MAX {
            pool.push(item);
        }
    }

    /// A buffer to decode blocks into, from this reader's pool (or a new
    /// one); give it back with [`TraceReader::put_columns`]. A decoded block
    /// is megabytes (9 MB of workload W's) that the kernel hands out a page
    /// at a time, each page fault costing more than decoding what it holds:
    /// a replay's cycle probe and its decoders, or a bisection's repeated
    /// replays, reuse the same few buffers instead of faulting in new ones.
    pub fn take_columns(&self) -> BlockColumns {
        self.take_pooled(&self.columns_pool)
    }

    /// Gives back a buffer from [`TraceReader::take_columns`]. The pool keeps
    /// as many as a replay has in flight at once (more are freed), so what
    /// it holds between scans never exceeds the peak a scan reached.
    pub fn put_columns(&self, columns: BlockColumns) {
        self.put_pooled(&self.columns_pool, columns);
    }

    /// Decodes block `i` straight into `f(ordinal, event)`.
    pub fn visit_block<F: FnMut(u64, Event)>(&self, i: usize, f: F) -> Result<()> {
        let mut cols = self.take_columns();
        let result = self.decode_columns(i, &mut cols);
        if result.is_ok() {
            cols.for_each_event(f);
        }
        self.put_columns(cols);
        result
    }

    /// Decodes block `i` into `out` (cleared first).
    pub fn decode_block(&self, i: usize, out: &mut Vec<Event>) -> Result<()> {
        out.clear();
        if let Some(b) = self.index.blocks.get(i) {
            out.reserve(b.count as usize);
        }
        self.visit_block(i, |_, e| out.push(e))
    }

    /// Every event in order, straight into `f(ordinal, event)`; stops at
    /// the first error. One block at a time on the calling thread (the least
    /// memory and CPU); [`TraceReader::scan_columns`] decodes on every core.
    pub fn for_each_event<F: FnMut(u64, Event)>(&self, mut f: F) -> Result<()> {
        for i in 0..self.index.blocks.len() {
            self.visit_block(i, &mut f)?;
        }
        Ok(())
    }

    /// All events in order, one block decoded at a time.
    pub fn events(&self) -> Events<'_> {
        Events::new(self)
    }
}

/// The kind column of `block` when every event in it is a buffer alloc or
/// free (and it holds one kind per event).
fn buffers_only(block: &ArchivedBlockRec) -> Option<&[u8]> {
    use ttalloc_model::tag_code::{ALLOC, FREE};
    let tags = block
        .columns
        .iter()
        .find(|c| c.id.to_native() == crate::codec::col::TAG)?
        .bytes
        .as_slice();
    if tags.len() != block.count.to_native() as usize {
        return None;
    }
    // One reduction over the column (no early exit: it vectorizes).
    let others = tags
        .iter()
        .fold(0u8, |any, &t| any | (t != ALLOC && t != FREE) as u8);
    (others == 0).then_some(tags)
}

fn check_block_matches(block: &ArchivedBlockRec, info: &BlockInfo) -> Result<(), String> {
    if block.first_event.to_native() != info.first_event || block.count.to_native() != info.count {
        return Err(format!(
            "block holds events {}+{} but the index says {}+{}",
            block.first_event, block.count, info.first_event, info.count
        ));
    }
    Ok(())
}

/// The provenance record, if frame 1 (at byte `at`) is one. A damaged one
/// is reported, never fatal: the events do not depend on it.
fn read_provenance(
    data: &[u8],
    at: usize,
    scratch: &mut Scratch,
) -> std::result::Result<Option<Provenance>, String> {
    let rest = &data[at.min(data.len())..];
    let Some(n) = frame_len(rest) else {
        return Ok(None);
    };
    if crate::frame::is_skippable(rest) {
        return Ok(None);
    }
    let damaged = |e: String| format!("provenance record at byte {at} is damaged: {e}");
    if scratch
        .dctx
        .decompress(&rest[..n], &mut scratch.buf)
        .is_err()
    {
        return Ok(None);
    }
    let rec = match open_record(&scratch.buf) {
        Ok(r) => r,
        Err(_) => return Ok(None),
    };
    if rec.kind != RecordKind::Provenance as u32 {
        return Ok(None);
    }
    provenance::decode(rec.payload).map(Some).map_err(damaged)
}

mod block_decode;
mod contents;
mod decoding;
mod events;
mod kept;
mod times_frame;
pub use decoding::decoding_block;
pub use events::Events;
#[cfg(test)]
mod tests;
