//! The ingest API every event source uses (native connections, the
//! allocation-server compatibility listener, importers), the merge stage that
//! interleaves sources by timestamp, and the writer thread that owns the
//! `TraceWriter`.
//!
//! A [`Source`] has its own local id space for strings, frames and stacks
//! (like a native connection); the writer thread keeps, per source, the table
//! mapping local ids to trace ids. Buffer and program ids are made unique in
//! the trace by prefixing them with the source number (`Source::buffer_id`).
//!
//! Memory stays bounded: the channel into the writer thread is bounded (a
//! full channel blocks the sender, which in turn stops reading its socket),
//! and the merge stage releases events once they are older than the reorder
//! window or once it holds more than `MERGE_CAP` events.

mod source;
#[cfg(test)]
mod tests;
mod writer;

pub use source::Source;
pub use writer::WriterOutcome;
pub(crate) use writer::{channel, WriterThread};

use crate::stats::LiveSnapshot;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use ttalloc_model::{Event, Frame, Pid, StackNode};

/// Events a [`Source`] buffers before it sends them on.
const SOURCE_BATCH: usize = 4096;
/// Events the merge stage may hold before it releases regardless of the window.
const MERGE_CAP: usize = 65_536;
/// Messages in flight into the writer thread.
pub(crate) const CHANNEL_CAP: usize = 8;

/// Nanoseconds since the Unix epoch, now.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum IngestError {
    /// The recorder has stopped; nothing more can be recorded.
    #[error("the recorder is no longer accepting events")]
    Closed,
    /// The event refers to an id this source never interned, or the like.
    #[error("{0}")]
    Protocol(String),
}

/// What a source says about itself when it registers.
#[derive(Clone, Debug, Default)]
pub struct SourceInfo {
    pub pid: u32,
    pub ppid: u32,
    pub argv: Vec<String>,
    /// Client name (e.g. "ttalloc-python 0.1.0", "alloc-server-compat").
    pub client: String,
    /// Timestamp of the ProcessStart event; `None` = now.
    pub ts: Option<u64>,
}

pub(crate) enum Msg {
    Register {
        src: u32,
        info: SourceInfo,
    },
    Strings {
        src: u32,
        strings: Vec<String>,
    },
    Frames {
        src: u32,
        frames: Vec<Frame>,
    },
    Stacks {
        src: u32,
        nodes: Vec<StackNode>,
    },
    Events {
        src: u32,
        events: Vec<Event>,
        arrived: Instant,
    },
    End {
        src: u32,
        status: Option<i32>,
        exit: bool,
        ts: u64,
    },
    AwaitExit {
        pid: Pid,
    },
    ExitStatus {
        pid: Pid,
        status: i32,
    },
    Shutdown,
}

/// State shared by the handle, the sources and the writer thread.
pub(crate) struct Shared {
    pub(crate) snapshot: Mutex<LiveSnapshot>,
    next_source: AtomicU32,
    pub(crate) protocol_errors: AtomicU64,
    pub(crate) warn: Box<dyn Fn(&str) + Send + Sync>,
}

/// Cloneable, `Send` handle through which any source feeds the recorder.
#[derive(Clone)]
pub struct IngestHandle {
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
}

impl IngestHandle {
    /// Registers a new source (emits its `ProcessStart`).
    pub fn register(&self, info: SourceInfo) -> Result<Source, IngestError> {
        let id = self.shared.next_source.fetch_add(1, Ordering::Relaxed);
        if u64::from(id) >= (1 << 24) {
            return Err(IngestError::Protocol("too many sources".into()));
        }
        let pid = Pid(info.pid);
        self.tx
            .send(Msg::Register { src: id, info })
            .map_err(|_| IngestError::Closed)?;
        Ok(Source {
            id,
            pid,
            tx: self.tx.clone(),
            pending: Vec::new(),
            new_strings: Vec::new(),
            new_frames: Vec::new(),
            new_nodes: Vec::new(),
            strings: 1,
            frames: 0,
            stacks: 1,
            string_index: HashMap::new(),
            frame_index: HashMap::new(),
            stack_index: HashMap::new(),
            ended: false,
        })
    }

    /// The live statistics (updated by the writer thread about every 100 ms).
    pub fn stats(&self) -> LiveSnapshot {
        let mut s = self
            .shared
            .snapshot
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        s.protocol_errors = self.shared.protocol_errors.load(Ordering::Relaxed);
        s
    }

    /// Reports a warning through the session's warning sink (stderr by default).
    pub fn warn(&self, msg: &str) {
        (self.shared.warn)(msg)
    }

    /// Says that `pid`'s exit status will be reported through
    /// [`IngestHandle::exit_status`] (the launcher knows it from waitpid): a
    /// `ProcessExit` of `pid` without a status is held back until then, or
    /// until the session ends.
    pub fn await_exit_status(&self, pid: u32) {
        let _ = self.tx.send(Msg::AwaitExit { pid: Pid(pid) });
    }

    /// `pid`'s exit status: the exit code, or -signal when it was killed.
    pub fn exit_status(&self, pid: u32, status: i32) {
        let _ = self.tx.send(Msg::ExitStatus {
            pid: Pid(pid),
            status,
        });
    }

    pub(crate) fn shutdown(&self) {
        let _ = self.tx.send(Msg::Shutdown);
    }

    pub(crate) fn count_protocol_error(&self) {
        self.shared.protocol_errors.fetch_add(1, Ordering::Relaxed);
    }
}
