//! The ttalloc trace file format (see `FORMAT.md`): a zstd seekable-format
//! file whose frames each hold one rkyv archive — a header, incremental intern
//! tables, columnar event blocks and a footer index.
//!
//! # API contract (other crates code against exactly this surface)
//!
//! Writing — [`TraceWriter`]:
//! - `create(path, header, opts)` writes the header frame at once (the
//!   format version fields of `header` are ignored: the writer writes
//!   [`FORMAT_MAJOR`].[`FORMAT_MINOR`]).
//! - `interner_mut()`: intern strings/frames/stacks here *before* pushing an
//!   event that uses them; `push(&Event)` rejects ids that are not interned.
//! - `push(&Event)` appends; it seals the block when it holds
//!   `opts.block_events` events or is older than `opts.seal_interval`.
//!   `tick()` does the age check alone (call it from an idle loop);
//!   `seal()` ends the block now. A sealed block, and every intern entry it
//!   needs, survives a crash (it is written to the file, not fsynced).
//! - `finish()` seals and writes the footer index and the seek table. A writer
//!   dropped without `finish` seals what it has (best effort); the file then
//!   reads as truncated, with every event recovered.
//!
//! Reading — [`TraceReader`] (mmap; every archive validated with bytecheck):
//! - `open(path)` reads the header, intern tables and the index (footer, or
//!   a scan of the frames when the file was not finished: see
//!   `truncation()`); it decodes no event block.
//! - `header()`, `interner()` (use `InternTables::resolve(site)`),
//!   `blocks()` (per block: first ordinal, count, first/last ts and the
//!   live-bytes checkpoint at its end), `num_events()`, `truncation()`,
//!   `warnings()` (e.g. events of an unknown kind from a newer minor
//!   version, skipped: reported once per kind).
//! - `decode_block(i, &mut Vec<Event>)`: one block, `out` cleared first.
//! - `events()`: iterator of `Result<Event>` over all blocks, one block in
//!   memory at a time; after an error it goes on with the next block.
//! - Faster scans: `visit_block(i, |ordinal, Event|)` and
//!   `for_each_event(|ordinal, Event|)` hand each event to a callback with
//!   no intermediate `Vec` (events are moved in; ordinals are the events'
//!   positions in the trace and count skipped unknown-kind events too);
//!   `for_each_event` stops at the first error.
//! - Fastest scan: `decode_columns(i, &mut BlockColumns)` decodes a block
//!   into columns (struct of arrays) without building `Event`s: `tags`,
//!   `ts`, `pid` per event, then per kind `allocs` ([`AllocColumns`]: one
//!   array per field, `get(i)` builds an `AllocCol`), `frees`
//!   ([`FreeColumns`]), `names` (OpBegin/Marker), `cbs` (circular buffers,
//!   [`CbColumns`]) and `others` (the remaining
//!   known kinds as `(position, Event)`); see [`BlockColumns`] for how
//!   positions map to entries. Reuse one `BlockColumns` across blocks.
//! - All decoding methods take `&self` and may be called from several threads
//!   at once (`TraceReader: Send + Sync`), e.g. one block per thread:
//!   `blocks()` gives each block's first ordinal.
//! - `scan_columns(|block, &BlockColumns| ...)` does that for you: blocks
//!   are decoded ahead on every available core ([`scan_workers`]) and handed
//!   to the callback in order on the calling thread; `scan_columns_on(n, ..)`
//!   picks the number of decoding threads (0: the calling thread only).
//! - Passes that read no time (a replay, a cycle scan) use
//!   `decode_columns_untimed`: every `ts_at` is 0, and from format 2.6 on
//!   the block's times record (its own frame, most of a trace's bytes) is
//!   not read at all.
//! - Speed, one thread, 10M-event synthetic trace (`synth -n 10000000
//!   --cycles 1000 --leak-site 7@400`), 2-core Zen 3 VM (`cargo bench -p
//!   ttalloc-trace --bench trace_bench -- TRACE.zst`, per CPU-second,
//!   format 2.6): `decode_columns` 99–100 M events/s,
//!   `decode_columns_untimed` 121 M/s.
//!   Where a trace's bytes go: `cargo bench -p ttalloc-trace --bench
//!   column_sizes -- TRACE.zst [--reencode]`.
//! - `block_of(ordinal)` finds the block holding an event (for `--from`).
//! - Errors: [`TraceError::Corrupt`] names the block and the byte offset of
//!   its frame; blocks before (and after) a damaged one stay readable.
//!   Nothing in this crate panics on file contents.
//!
//! Other helpers: `TraceHeader::new(argv, hostname)` (this build's version,
//! now as start time), `TraceWriter::bytes_written()` /
//! `raw_block_bytes()` (compressed / pre-zstd sizes), `TraceReader::file_size()`,
//! [`LiveTracker`] (the live-bytes rules the checkpoints use).
//!
//! Analyses: [`summary::TraceSummary`] (what `ttalloc info` prints),
//! [`render`] (one event as text or JSON, what `ttalloc cat` prints),
//! [`repair`] (copy the readable part of a trace into a sealed file).

mod cb_coding;
pub mod checkpoint;
mod checksum;
mod codec;
mod decode;
mod ext;
mod frame;
mod free_by_device;
mod index;
mod intern;
mod live;
mod match_filter;
pub mod provenance;
mod reader;
mod recent_sizes;
mod records;
mod recovery;
pub mod render;
pub mod repair;
mod scan;
mod segments;
mod site_by_name;
mod site_flags;
pub mod summary;
mod ts_by_kind;
mod varint;
mod writer;
mod zstd_sequences;

pub use checkpoint::{Checkpoint, CheckpointInfo};
pub use decode::{
    AllocCol, AllocColumns, AllocExt, AllocRef, BlockColumns, CbCol, CbColumns, FreeCol,
    FreeColumns, FreeRef,
};
pub use live::LiveTracker;
pub use provenance::Provenance;
pub use reader::{decoding_block, Events, TraceReader};
pub use scan::scan_workers;
pub use writer::{TraceWriter, MAX_CLOCK_TICK_NS};

use std::path::PathBuf;
use std::time::Duration;
use ttalloc_model::{BufferType, DeviceId};

/// Format version written by this build.
pub const FORMAT_MAJOR: u16 = 2;
pub const FORMAT_MINOR: u16 = 6;

/// From format 2.6 on, a block's time columns are in a record of their own
/// (kind 8, `TimesRec`) in the frame right after the block's.
pub(crate) fn times_apart(minor: u16) -> bool {
    minor >= 6
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TraceHeader {
    pub format_major: u16,
    pub format_minor: u16,
    pub ttalloc_version: String,
    /// The recorded command line (or the importer's input description).
    pub argv: Vec<String>,
    /// ns since the Unix epoch.
    pub start_time_ns: u64,
    pub hostname: String,
}

impl TraceHeader {
    /// A header for this build, stamped with the current time.
    pub fn new(argv: Vec<String>, hostname: String) -> Self {
        let start_time_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        TraceHeader {
            format_major: FORMAT_MAJOR,
            format_minor: FORMAT_MINOR,
            ttalloc_version: env!("CARGO_PKG_VERSION").to_string(),
            argv,
            start_time_ns,
            hostname,
        }
    }
}

#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// zstd level (default 3).
    pub level: i32,
    /// Events per block before it is sealed.
    pub block_events: usize,
    /// A non-empty block older than this is sealed by `push`/`tick`.
    pub seal_interval: Duration,
    /// The clock resolution the trace keeps, in ns (default 1: timestamps
    /// as given). With a coarser tick every timestamp is rounded down to a
    /// multiple of it before it is stored (events keep their order), and
    /// format 2.4 stores gaps in ticks: the bits below the tick of a
    /// clock read by a Python client between 1 and 3 µs apart are noise
    /// that costs most of a trace's bytes (FORMAT.md §5.1, TS_UNIT).
    pub clock_tick_ns: u64,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            level: 3,
            block_events: 65536,
            seal_interval: Duration::from_secs(1),
            clock_tick_ns: 1,
        }
    }
}

/// Live bytes of one device and buffer type at the end of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LiveBytes {
    pub device: DeviceId,
    pub buffer_type: BufferType,
    pub bytes: u64,
}

/// One entry of the footer index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    pub first_event: u64,
    pub count: u32,
    pub first_ts: u64,
    pub last_ts: u64,
    /// Checkpoint: live bytes per device and buffer type after the block's last
    /// event (only non-zero entries; see [`LiveTracker`] for the rules).
    pub live: Vec<LiveBytes>,
}

/// How a file that was not sealed ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Truncation {
    /// Byte offset where the readable part ends.
    pub valid_up_to: u64,
    pub file_size: u64,
    /// Events recovered from the complete blocks before the cut.
    pub events_recovered: u64,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a ttalloc trace: {reason}")]
    NotATrace { path: PathBuf, reason: String },
    #[error("{path}: trace format {major}.{minor} is newer than this ttalloc understands ({FORMAT_MAJOR}.x); upgrade ttalloc")]
    NewerMajor {
        path: PathBuf,
        major: u16,
        minor: u16,
    },
    #[error("{path}: corrupt block {block} at byte offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        block: usize,
        offset: u64,
        reason: String,
    },
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = TraceError> = std::result::Result<T, E>;
