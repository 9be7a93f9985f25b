//! Where the compat listener's events go. Each client process gets one
//! [`ProcessOutput`]: opened (its `ProcessStart`) at its first recordable
//! message, ended (its `ProcessExit`) when its connection closes or it dies.
//!
//! Two implementations:
//! - [`IngestOutput`]: the recorder core's ingest handle (`record --compat`,
//!   `serve --compat`), so compat events land in the same trace as native ones;
//! - [`SinkOutput`]: any [`EventSink`] behind a mutex (tests, tools).

use super::state::IdSource;
use crate::import::sink::EventSink;
use crate::ingest::{now_ns, IngestHandle, Source, SourceInfo};
use std::sync::{Arc, Mutex};
use ttalloc_model::{BufferId, Event, EventKind, Pid, ProgramId, StringId};

/// What the listener knows about a client process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: u32,
    pub argv: Vec<String>,
}

impl ProcessInfo {
    /// Reads ppid and argv from /proc (empty when the process is gone or /proc
    /// is not there).
    pub fn of_pid(pid: u32) -> ProcessInfo {
        let argv = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|raw| {
                raw.split(|&b| b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let ppid = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                // "pid (comm) state ppid ...": comm may hold spaces and parens.
                let rest = &s[s.rfind(')')? + 1..];
                rest.split_whitespace().nth(1)?.parse().ok()
            })
            .unwrap_or(0);
        ProcessInfo { pid, ppid, argv }
    }
}

/// One client process's event stream.
pub trait ProcessOutput: Send {
    fn buffer_id(&mut self, local: u64) -> BufferId;
    fn program_id(&mut self, local: u64) -> ProgramId;
    fn intern_string(&mut self, s: &str) -> StringId;
    fn send(&mut self, event: Event) -> Result<(), String>;
    fn flush(&mut self) -> Result<(), String>;
    /// Records the process's exit (its buffers stay allocated in the trace).
    fn end(self: Box<Self>, status: Option<i32>);
}

/// A process output lent to the registry as its id source.
pub struct IdsOf<'a>(pub &'a mut dyn ProcessOutput);

impl IdSource for IdsOf<'_> {
    fn buffer_id(&mut self, local: u64) -> BufferId {
        self.0.buffer_id(local)
    }
    fn program_id(&mut self, local: u64) -> ProgramId {
        self.0.program_id(local)
    }
}

/// Opens process outputs and reports warnings.
pub trait CompatOutput: Send + Sync {
    fn open_process(&self, info: ProcessInfo) -> Result<Box<dyn ProcessOutput>, String>;
    fn warn(&self, msg: &str);
}

/// Client name recorded in the sources the compat listener registers.
pub const CLIENT_NAME: &str = "allocation-server-compat";

// ---- the recorder core's ingest handle ----

pub struct IngestOutput {
    handle: IngestHandle,
}

impl IngestOutput {
    pub fn new(handle: IngestHandle) -> Self {
        IngestOutput { handle }
    }
}

impl CompatOutput for IngestOutput {
    fn open_process(&self, info: ProcessInfo) -> Result<Box<dyn ProcessOutput>, String> {
        let source = self
            .handle
            .register(SourceInfo {
                pid: info.pid,
                ppid: info.ppid,
                argv: info.argv,
                client: CLIENT_NAME.into(),
                ts: None,
            })
            .map_err(|e| e.to_string())?;
        Ok(Box::new(IngestProcess { source }))
    }
    fn warn(&self, msg: &str) {
        self.handle.warn(msg)
    }
}

struct IngestProcess {
    source: Source,
}

impl ProcessOutput for IngestProcess {
    fn buffer_id(&mut self, local: u64) -> BufferId {
        self.source.buffer_id(local)
    }
    fn program_id(&mut self, local: u64) -> ProgramId {
        self.source.program_id(local)
    }
    fn intern_string(&mut self, s: &str) -> StringId {
        self.source.intern_string(s)
    }
    fn send(&mut self, event: Event) -> Result<(), String> {
        self.source.send(event).map_err(|e| e.to_string())
    }
    fn flush(&mut self) -> Result<(), String> {
        self.source.flush().map_err(|e| e.to_string())
    }
    fn end(self: Box<Self>, status: Option<i32>) {
        self.source.end(status)
    }
}

// ---- a plain event sink ----

struct Locked<S> {
    sink: S,
    last_ts: u64,
}

/// Serialises every process's events into one [`EventSink`]; timestamps are
/// kept non-decreasing in push order.
pub struct SinkOutput<S> {
    inner: Arc<Mutex<Locked<S>>>,
    warn: Box<dyn Fn(&str) + Send + Sync>,
}

impl<S: EventSink + Send + 'static> SinkOutput<S> {
    pub fn new(sink: S) -> Self {
        SinkOutput {
            inner: Arc::new(Mutex::new(Locked { sink, last_ts: 0 })),
            warn: Box::new(|m: &str| eprintln!("ttalloc: warning: {m}")),
        }
    }

    pub fn with_warn(mut self, warn: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.warn = Box::new(warn);
        self
    }

    /// Runs `f` on the sink (e.g. to finish a writer once the listener stopped).
    pub fn with_sink<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g.sink)
    }
}

fn push_locked<S: EventSink>(inner: &Mutex<Locked<S>>, mut event: Event) -> Result<(), String> {
    let mut g = inner.lock().unwrap_or_else(|p| p.into_inner());
    event.ts = event.ts.max(g.last_ts);
    g.last_ts = event.ts;
    g.sink.push(&event).map_err(|e| e.to_string())
}

impl<S: EventSink + Send + 'static> CompatOutput for SinkOutput<S> {
    fn open_process(&self, info: ProcessInfo) -> Result<Box<dyn ProcessOutput>, String> {
        let argv = {
            let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            g.sink
                .interner_mut()
                .intern_string(&ttalloc_model::event::join_argv(&info.argv))
        };
        let pid = Pid(info.pid);
        push_locked(
            &self.inner,
            Event {
                ts: now_ns(),
                pid,
                kind: EventKind::ProcessStart {
                    ppid: Pid(info.ppid),
                    argv,
                },
            },
        )?;
        Ok(Box::new(SinkProcess {
            inner: self.inner.clone(),
            pid,
        }))
    }
    fn warn(&self, msg: &str) {
        (self.warn)(msg)
    }
}

struct SinkProcess<S> {
    inner: Arc<Mutex<Locked<S>>>,
    pid: Pid,
}

impl<S: EventSink + Send + 'static> ProcessOutput for SinkProcess<S> {
    fn buffer_id(&mut self, local: u64) -> BufferId {
        BufferId(local)
    }
    fn program_id(&mut self, local: u64) -> ProgramId {
        ProgramId(local)
    }
    fn intern_string(&mut self, s: &str) -> StringId {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.sink.interner_mut().intern_string(s)
    }
    fn send(&mut self, mut event: Event) -> Result<(), String> {
        event.pid = self.pid;
        push_locked(&self.inner, event)
    }
    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
    fn end(self: Box<Self>, status: Option<i32>) {
        let _ = push_locked(
            &self.inner,
            Event {
                ts: now_ns(),
                pid: self.pid,
                kind: EventKind::ProcessExit { status },
            },
        );
    }
}
