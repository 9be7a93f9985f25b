//! The ttalloc trace file format (see `FORMAT.md`).
//!
//! API contract (other crates code against exactly this surface):
//! - [`TraceWriter`]: `create(path, header, opts)`, `interner_mut()`, `push(&Event)`,
//!   `seal()` (end the current block now), `finish()`.
//! - [`TraceReader`]: `open(path)`, `header()`, `interner()`, `blocks()`,
//!   `num_events()`, `truncation()`, `decode_block(i, &mut Vec<Event>)`, `events()`.

use std::path::{Path, PathBuf};
use std::time::Duration;
use ttalloc_model::{BufferType, DeviceId, Event, InternTables};

/// Format version written by this build.
pub const FORMAT_MAJOR: u16 = 1;
pub const FORMAT_MINOR: u16 = 0;

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

#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// zstd level (default 3).
    pub level: i32,
    /// Events per block before it is sealed.
    pub block_events: usize,
    /// A non-empty block older than this is sealed by `push`/`tick`.
    pub seal_interval: Duration,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions { level: 3, block_events: 65536, seal_interval: Duration::from_secs(1) }
    }
}

/// Live bytes of one device and buffer type at the end of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// Checkpoint: live bytes per device and buffer type after the block's last event.
    pub live: Vec<LiveBytes>,
}

/// How a file that was not sealed ended.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a ttalloc trace: {reason}")]
    NotATrace { path: PathBuf, reason: String },
    #[error("{path}: trace format {major}.{minor} is newer than this ttalloc understands ({FORMAT_MAJOR}.x); upgrade ttalloc")]
    NewerMajor { path: PathBuf, major: u16, minor: u16 },
    #[error("{path}: corrupt block {block} at byte offset {offset}: {reason}")]
    Corrupt { path: PathBuf, block: usize, offset: u64, reason: String },
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = TraceError> = std::result::Result<T, E>;

pub struct TraceWriter {
    _private: (),
}

impl TraceWriter {
    pub fn create(_path: &Path, _header: TraceHeader, _opts: WriterOptions) -> Result<Self> {
        todo!("issue 2: trace writer")
    }
    pub fn interner(&self) -> &InternTables {
        todo!()
    }
    pub fn interner_mut(&mut self) -> &mut InternTables {
        todo!()
    }
    /// Appends one event; seals the block when full or older than `seal_interval`.
    pub fn push(&mut self, _event: &Event) -> Result<()> {
        todo!()
    }
    /// Seals the current block if it is older than `seal_interval` (call it from an idle loop).
    pub fn tick(&mut self) -> Result<()> {
        todo!()
    }
    /// Seals the current block now (it and everything before survive a crash).
    pub fn seal(&mut self) -> Result<()> {
        todo!()
    }
    pub fn events_written(&self) -> u64 {
        todo!()
    }
    /// Seals, writes the footer index and the seek table.
    pub fn finish(self) -> Result<()> {
        todo!()
    }
}

pub struct TraceReader {
    _private: (),
}

impl TraceReader {
    pub fn open(_path: &Path) -> Result<Self> {
        todo!("issue 2: trace reader")
    }
    pub fn header(&self) -> &TraceHeader {
        todo!()
    }
    pub fn interner(&self) -> &InternTables {
        todo!()
    }
    pub fn blocks(&self) -> &[BlockInfo] {
        todo!()
    }
    pub fn num_events(&self) -> u64 {
        todo!()
    }
    pub fn truncation(&self) -> Option<&Truncation> {
        todo!()
    }
    /// Decodes block `i` into `out` (cleared first).
    pub fn decode_block(&self, _i: usize, _out: &mut Vec<Event>) -> Result<()> {
        todo!()
    }
    /// All events in order, one block decoded at a time.
    pub fn events(&self) -> impl Iterator<Item = Result<Event>> + '_ {
        std::iter::empty()
    }
}
