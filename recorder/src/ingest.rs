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

use crate::stats::{Accounting, LiveSnapshot};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use ttalloc_model::event::join_argv;
use ttalloc_model::{
    BufferId, Event, EventKind, Frame, FrameId, Pid, ProgramId, SiteId, StackNode, StringId,
};
use ttalloc_trace::TraceWriter;

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

/// One source of events (a process's connection, typically). Not `Clone`:
/// the order of its events is the order they are sent in.
pub struct Source {
    id: u32,
    pid: Pid,
    tx: SyncSender<Msg>,
    pending: Vec<Event>,
    new_strings: Vec<String>,
    new_frames: Vec<Frame>,
    new_nodes: Vec<StackNode>,
    /// Counts of local definitions (ids are positional; string 0 and stack 0 are implicit).
    strings: u32,
    frames: u32,
    stacks: u32,
    string_index: HashMap<String, StringId>,
    frame_index: HashMap<Frame, FrameId>,
    stack_index: HashMap<StackNode, SiteId>,
    ended: bool,
}

impl Source {
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The source's number (the prefix of its buffer and program ids).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// A trace-wide unique buffer id for this source's local buffer id (< 2^40).
    pub fn buffer_id(&self, local: u64) -> BufferId {
        BufferId(self.id_base() | (local & (crate::protocol::LOCAL_ID_LIMIT - 1)))
    }

    /// A trace-wide unique program id for this source's local program id (< 2^40).
    pub fn program_id(&self, local: u64) -> ProgramId {
        ProgramId(self.id_base() | (local & (crate::protocol::LOCAL_ID_LIMIT - 1)))
    }

    pub(crate) fn id_base(&self) -> u64 {
        u64::from(self.id) << 40
    }

    /// Interns a string in this source's id space.
    pub fn intern_string(&mut self, s: &str) -> StringId {
        if s.is_empty() {
            return StringId::EMPTY;
        }
        if let Some(&id) = self.string_index.get(s) {
            return id;
        }
        let id = StringId(self.strings);
        self.strings += 1;
        self.string_index.insert(s.to_owned(), id);
        self.new_strings.push(s.to_owned());
        id
    }

    /// Interns a frame in this source's id space.
    pub fn intern_frame(&mut self, function: &str, file: &str, line: u32) -> FrameId {
        let frame = Frame {
            function: self.intern_string(function),
            file: self.intern_string(file),
            line,
        };
        if let Some(&id) = self.frame_index.get(&frame) {
            return id;
        }
        let id = FrameId(self.frames);
        self.frames += 1;
        self.frame_index.insert(frame, id);
        self.new_frames.push(frame);
        id
    }

    /// Interns a stack given innermost frame first; returns its site id.
    pub fn intern_stack(&mut self, frames_innermost_first: &[(&str, &str, u32)]) -> SiteId {
        let mut site = SiteId::UNKNOWN;
        for &(function, file, line) in frames_innermost_first.iter().rev() {
            let frame = self.intern_frame(function, file, line);
            let node = StackNode {
                parent: site,
                frame,
            };
            site = match self.stack_index.get(&node) {
                Some(&id) => id,
                None => {
                    let id = SiteId(self.stacks);
                    self.stacks += 1;
                    self.stack_index.insert(node, id);
                    self.new_nodes.push(node);
                    id
                }
            };
        }
        site
    }

    /// Queues one event (its pid is set to the source's). String and site ids
    /// must come from this source's interning.
    pub fn send(&mut self, mut event: Event) -> Result<(), IngestError> {
        self.check(&event.kind)?;
        event.pid = self.pid;
        self.pending.push(event);
        if self.pending.len() >= SOURCE_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn check(&self, kind: &EventKind) -> Result<(), IngestError> {
        let bad = |what: &str, id: u32, n: u32| {
            Err(IngestError::Protocol(format!(
                "{what} id {id} was not interned by this source (only {n})"
            )))
        };
        if let Some(s) = kind.string() {
            if s.0 >= self.strings {
                return bad("string", s.0, self.strings);
            }
        }
        match kind.site() {
            Some(site) if site.0 >= self.stacks => bad("site", site.0, self.stacks),
            _ => Ok(()),
        }
    }

    /// Sends the queued definitions and events to the writer thread.
    pub fn flush(&mut self) -> Result<(), IngestError> {
        let src = self.id;
        if !self.new_strings.is_empty() {
            let strings = std::mem::take(&mut self.new_strings);
            self.tx
                .send(Msg::Strings { src, strings })
                .map_err(|_| IngestError::Closed)?;
        }
        if !self.new_frames.is_empty() {
            let frames = std::mem::take(&mut self.new_frames);
            self.tx
                .send(Msg::Frames { src, frames })
                .map_err(|_| IngestError::Closed)?;
        }
        if !self.new_nodes.is_empty() {
            let nodes = std::mem::take(&mut self.new_nodes);
            self.tx
                .send(Msg::Stacks { src, nodes })
                .map_err(|_| IngestError::Closed)?;
        }
        if !self.pending.is_empty() {
            let events = std::mem::take(&mut self.pending);
            self.tx
                .send(Msg::Events {
                    src,
                    events,
                    arrived: Instant::now(),
                })
                .map_err(|_| IngestError::Closed)?;
        }
        Ok(())
    }

    /// Ends the source: flushes, then records `ProcessExit { status }`.
    pub fn end(mut self, status: Option<i32>) {
        self.finish(status, true);
    }

    /// Ends the source without a `ProcessExit` (its connection was closed
    /// because of bad input; the process itself may still run).
    pub(crate) fn abort(mut self) {
        self.finish(None, false);
    }

    fn finish(&mut self, status: Option<i32>, exit: bool) {
        if self.ended {
            return;
        }
        self.ended = true;
        let _ = self.flush();
        let _ = self.tx.send(Msg::End {
            src: self.id,
            status,
            exit,
            ts: now_ns(),
        });
    }

    // ---- used by the native connection reader (already validated by the decoder) ----

    pub(crate) fn define_strings(&mut self, strings: Vec<String>) -> Result<(), IngestError> {
        self.strings += strings.len() as u32;
        self.flush_events_if_any()?;
        self.tx
            .send(Msg::Strings {
                src: self.id,
                strings,
            })
            .map_err(|_| IngestError::Closed)
    }

    pub(crate) fn define_frames(&mut self, frames: Vec<Frame>) -> Result<(), IngestError> {
        self.frames += frames.len() as u32;
        self.flush_events_if_any()?;
        self.tx
            .send(Msg::Frames {
                src: self.id,
                frames,
            })
            .map_err(|_| IngestError::Closed)
    }

    pub(crate) fn define_stacks(&mut self, nodes: Vec<StackNode>) -> Result<(), IngestError> {
        self.stacks += nodes.len() as u32;
        self.flush_events_if_any()?;
        self.tx
            .send(Msg::Stacks {
                src: self.id,
                nodes,
            })
            .map_err(|_| IngestError::Closed)
    }

    /// Sends a decoded batch (pid, ids and references already validated).
    pub(crate) fn send_batch(&mut self, events: Vec<Event>) -> Result<(), IngestError> {
        self.flush()?;
        self.tx
            .send(Msg::Events {
                src: self.id,
                events,
                arrived: Instant::now(),
            })
            .map_err(|_| IngestError::Closed)
    }

    fn flush_events_if_any(&mut self) -> Result<(), IngestError> {
        if self.pending.is_empty() && self.new_strings.is_empty() {
            Ok(())
        } else {
            self.flush()
        }
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.finish(None, true);
    }
}

// ---------------------------------------------------------------------------
// The writer thread: per-source id maps, merge by timestamp, TraceWriter.

/// What the writer thread hands back when it is done.
pub struct WriterOutcome {
    pub snapshot: LiveSnapshot,
    /// The first write error, if writing failed (everything sealed before it is readable).
    pub write_error: Option<String>,
    pub events_written: u64,
}

struct SourceState {
    pid: Pid,
    live: bool,
    /// A ProcessExit waiting for the status the launcher will report.
    held_exit: Option<Event>,
    strings: Vec<StringId>,
    frames: Vec<FrameId>,
    sites: Vec<SiteId>,
    queue: VecDeque<(Instant, VecDeque<Event>)>,
}

impl SourceState {
    fn head_ts(&self) -> Option<u64> {
        self.queue
            .front()
            .and_then(|(_, b)| b.front())
            .map(|e| e.ts)
    }
}

pub(crate) struct WriterThread {
    rx: Receiver<Msg>,
    writer: Option<TraceWriter>,
    shared: Arc<Shared>,
    window: Duration,
    sources: HashMap<u32, SourceState>,
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    empty_live: usize,
    buffered: usize,
    acct: Accounting,
    write_error: Option<String>,
    written: u64,
    /// Pids whose exit status the launcher will report (and the status once known).
    awaited: HashMap<Pid, Option<i32>>,
    /// Sources holding back their ProcessExit, by pid.
    held: HashMap<Pid, u32>,
}

pub(crate) fn channel(
    warn: Box<dyn Fn(&str) + Send + Sync>,
) -> (IngestHandle, Receiver<Msg>, Arc<Shared>) {
    let (tx, rx) = std::sync::mpsc::sync_channel(CHANNEL_CAP);
    let shared = Arc::new(Shared {
        snapshot: Mutex::new(LiveSnapshot::default()),
        next_source: AtomicU32::new(1),
        protocol_errors: AtomicU64::new(0),
        warn,
    });
    (
        IngestHandle {
            tx,
            shared: shared.clone(),
        },
        rx,
        shared,
    )
}

impl WriterThread {
    pub(crate) fn new(
        rx: Receiver<Msg>,
        writer: TraceWriter,
        shared: Arc<Shared>,
        window: Duration,
    ) -> Self {
        WriterThread {
            rx,
            writer: Some(writer),
            shared,
            window,
            sources: HashMap::new(),
            heap: BinaryHeap::new(),
            empty_live: 0,
            buffered: 0,
            acct: Accounting::default(),
            write_error: None,
            written: 0,
            awaited: HashMap::new(),
            held: HashMap::new(),
        }
    }

    pub(crate) fn run(mut self) -> WriterOutcome {
        let mut last_tick = Instant::now();
        let mut shutdown = false;
        while !shutdown {
            match self.rx.recv_timeout(Duration::from_millis(20)) {
                Ok(msg) => {
                    shutdown = self.handle(msg);
                    // Take what is already queued, but keep releasing when the merge is full.
                    while !shutdown && self.buffered < MERGE_CAP {
                        match self.rx.try_recv() {
                            Ok(msg) => shutdown = self.handle(msg),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => shutdown = true,
            }
            self.release(shutdown);
            if last_tick.elapsed() >= Duration::from_millis(100) {
                last_tick = Instant::now();
                self.tick();
            }
        }
        self.publish();
        if let Some(w) = self.writer.take() {
            if let Err(e) = w.finish() {
                self.fail(format!("{e}"));
            }
        }
        WriterOutcome {
            snapshot: self.acct.snap.clone(),
            write_error: self.write_error,
            events_written: self.written,
        }
    }

    fn tick(&mut self) {
        if let Some(w) = self.writer.as_mut() {
            if let Err(e) = w.tick() {
                self.fail(format!("{e}"));
            }
        }
        self.publish();
    }

    fn publish(&mut self) {
        self.acct.snap.sources_connected = self.sources.values().filter(|s| s.live).count() as u64;
        self.acct.snap.protocol_errors = self.shared.protocol_errors.load(Ordering::Relaxed);
        if let Ok(mut s) = self.shared.snapshot.lock() {
            s.clone_from(&self.acct.snap);
        }
    }

    fn fail(&mut self, msg: String) {
        if self.write_error.is_none() {
            (self.shared.warn)(&format!(
                "writing the trace failed: {msg}; events from now on are dropped, what was written so far stays readable"
            ));
            self.write_error = Some(msg);
        }
        // Stop writing: a failed writer is not used again.
        self.writer = None;
    }

    /// Returns true on shutdown.
    fn handle(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::Register { src, info } => {
                let argv = join_argv(&info.argv);
                let argv = self.intern(|i| i.intern_string(&argv));
                let pid = Pid(info.pid);
                let st = SourceState {
                    pid,
                    live: true,
                    held_exit: None,
                    strings: vec![StringId::EMPTY],
                    frames: Vec::new(),
                    sites: vec![SiteId::UNKNOWN],
                    queue: VecDeque::new(),
                };
                self.sources.insert(src, st);
                self.empty_live += 1;
                self.acct.snap.sources_total += 1;
                let ev = Event {
                    ts: info.ts.unwrap_or_else(now_ns),
                    pid,
                    kind: EventKind::ProcessStart {
                        ppid: Pid(info.ppid),
                        argv,
                    },
                };
                self.enqueue(src, vec![ev], Instant::now());
            }
            Msg::Strings { src, strings } => {
                let mut ids = Vec::with_capacity(strings.len());
                for s in &strings {
                    ids.push(self.intern(|i| i.intern_string(s)));
                }
                if let Some(st) = self.sources.get_mut(&src) {
                    st.strings.extend(ids);
                }
            }
            Msg::Frames { src, frames } => {
                let Some(st) = self.sources.get(&src) else {
                    return false;
                };
                let mapped: Vec<Frame> = frames
                    .iter()
                    .map(|f| Frame {
                        function: st
                            .strings
                            .get(f.function.index())
                            .copied()
                            .unwrap_or(StringId::EMPTY),
                        file: st
                            .strings
                            .get(f.file.index())
                            .copied()
                            .unwrap_or(StringId::EMPTY),
                        line: f.line,
                    })
                    .collect();
                let ids: Vec<FrameId> = mapped
                    .into_iter()
                    .map(|f| self.intern(|i| i.intern_frame(f)))
                    .collect();
                if let Some(st) = self.sources.get_mut(&src) {
                    st.frames.extend(ids);
                }
            }
            Msg::Stacks { src, nodes } => {
                let Some(mut st) = self.sources.remove(&src) else {
                    return false;
                };
                for n in nodes {
                    let parent = st
                        .sites
                        .get(n.parent.index())
                        .copied()
                        .unwrap_or(SiteId::UNKNOWN);
                    let id = match st.frames.get(n.frame.index()).copied() {
                        Some(frame) => self.intern(|i| i.intern_node(StackNode { parent, frame })),
                        None => parent,
                    };
                    st.sites.push(id);
                }
                self.sources.insert(src, st);
            }
            Msg::Events {
                src,
                mut events,
                arrived,
            } => {
                let Some(st) = self.sources.get(&src) else {
                    return false;
                };
                for e in &mut events {
                    remap(st, &mut e.kind);
                }
                self.enqueue(src, events, arrived);
            }
            Msg::End {
                src,
                status,
                exit,
                ts,
            } => {
                let Some(st) = self.sources.get_mut(&src) else {
                    return false;
                };
                if st.live {
                    st.live = false;
                    if st.queue.is_empty() {
                        self.empty_live -= 1;
                    }
                }
                let (pid, queue_empty) = (st.pid, st.queue.is_empty());
                let last = st
                    .queue
                    .back()
                    .and_then(|(_, b)| b.back())
                    .map_or(0, |e| e.ts);
                if !exit {
                    if queue_empty {
                        self.sources.remove(&src);
                    }
                    return false;
                }
                let ev = Event {
                    ts: ts.max(last),
                    pid,
                    kind: EventKind::ProcessExit { status },
                };
                match (status, self.awaited.get(&pid).copied()) {
                    (None, Some(Some(known))) => {
                        let ev = Event {
                            kind: EventKind::ProcessExit {
                                status: Some(known),
                            },
                            ..ev
                        };
                        self.enqueue_ended(src, ev);
                    }
                    (None, Some(None)) => {
                        if let Some(st) = self.sources.get_mut(&src) {
                            st.held_exit = Some(ev);
                        }
                        self.held.insert(pid, src);
                    }
                    _ => self.enqueue_ended(src, ev),
                }
            }
            Msg::AwaitExit { pid } => {
                self.awaited.insert(pid, None);
            }
            Msg::ExitStatus { pid, status } => {
                self.awaited.insert(pid, Some(status));
                self.release_held_exit(pid, Some(status));
            }
            Msg::Shutdown => {
                let pids: Vec<Pid> = self.held.keys().copied().collect();
                for pid in pids {
                    self.release_held_exit(pid, None);
                }
                return true;
            }
        }
        false
    }

    fn release_held_exit(&mut self, pid: Pid, status: Option<i32>) {
        let Some(src) = self.held.remove(&pid) else {
            return;
        };
        let Some(mut ev) = self
            .sources
            .get_mut(&src)
            .and_then(|st| st.held_exit.take())
        else {
            return;
        };
        ev.kind = EventKind::ProcessExit { status };
        self.enqueue_ended(src, ev);
    }

    fn intern<T: Default>(&mut self, f: impl FnOnce(&mut ttalloc_model::InternTables) -> T) -> T {
        match self.writer.as_mut() {
            Some(w) => f(w.interner_mut()),
            None => T::default(),
        }
    }

    fn enqueue(&mut self, src: u32, events: Vec<Event>, arrived: Instant) {
        if events.is_empty() {
            return;
        }
        let Some(st) = self.sources.get_mut(&src) else {
            return;
        };
        let was_empty = st.queue.is_empty();
        self.buffered += events.len();
        st.queue.push_back((arrived, VecDeque::from(events)));
        if was_empty {
            if st.live {
                self.empty_live -= 1;
            }
            let ts = st.head_ts().unwrap_or(0);
            self.heap.push(Reverse((ts, src)));
        }
    }

    fn enqueue_ended(&mut self, src: u32, ev: Event) {
        let Some(st) = self.sources.get_mut(&src) else {
            return;
        };
        let was_empty = st.queue.is_empty();
        self.buffered += 1;
        st.queue
            .push_back((Instant::now(), VecDeque::from(vec![ev])));
        if was_empty {
            let ts = st.head_ts().unwrap_or(0);
            self.heap.push(Reverse((ts, src)));
        }
    }

    /// Releases events in timestamp order (each source's own order kept)
    /// while it is safe or overdue.
    fn release(&mut self, force: bool) {
        let now = Instant::now();
        while let Some(&Reverse((_, src))) = self.heap.peek() {
            let Some(st) = self.sources.get(&src) else {
                // Cannot happen (heap entries are sources with queued events); never lose the loop over it.
                self.heap.pop();
                continue;
            };
            let arrived = st.queue.front().map_or(now, |(a, _)| *a);
            let due = force
                || self.empty_live == 0
                || self.buffered > MERGE_CAP
                || now.saturating_duration_since(arrived) >= self.window;
            if !due {
                break;
            }
            self.heap.pop();
            let next_other = self.heap.peek().map_or(u64::MAX, |Reverse((ts, _))| *ts);
            // Emit this source's events while they are not later than anyone else's head.
            let Some(st) = self.sources.get_mut(&src) else {
                continue;
            };
            let mut out = Vec::new();
            while let Some((_, batch)) = st.queue.front_mut() {
                match batch.front() {
                    Some(e) if out.is_empty() || e.ts <= next_other => {
                        out.push(batch.pop_front().expect("front exists"));
                        if batch.is_empty() {
                            st.queue.pop_front();
                        }
                    }
                    _ => break,
                }
                if out.len() >= 4096 {
                    break;
                }
            }
            let (live, head, holding) = (st.live, st.head_ts(), st.held_exit.is_some());
            match head {
                Some(ts) => self.heap.push(Reverse((ts, src))),
                None if live => self.empty_live += 1,
                None if holding => {}
                None => {
                    self.sources.remove(&src);
                }
            }
            self.buffered -= out.len();
            for e in &out {
                self.write(e);
            }
        }
    }

    fn write(&mut self, e: &Event) {
        self.acct.apply(e);
        if let Some(w) = self.writer.as_mut() {
            match w.push(e) {
                Ok(()) => self.written += 1,
                Err(err) => self.fail(format!("{err}")),
            }
        }
    }
}

/// Maps a source's local string and site ids to trace ids.
fn remap(st: &SourceState, kind: &mut EventKind) {
    let site = |s: &mut SiteId| *s = st.sites.get(s.index()).copied().unwrap_or(SiteId::UNKNOWN);
    let string = |s: &mut StringId| {
        *s = st
            .strings
            .get(s.index())
            .copied()
            .unwrap_or(StringId::EMPTY)
    };
    // Every kind names at most one site and one string.
    if let Some(s) = kind.site_mut() {
        site(s);
    }
    if let Some(s) = kind.string_mut() {
        string(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ttalloc_model::{BufferType, DeviceId, EventTag, Layout};
    use ttalloc_trace::{TraceHeader, TraceReader, WriterOptions};

    fn start(
        dir: &std::path::Path,
        window: Duration,
    ) -> (IngestHandle, std::thread::JoinHandle<WriterOutcome>) {
        let w = TraceWriter::create(
            &dir.join("t.zst"),
            TraceHeader::default(),
            WriterOptions::default(),
        )
        .unwrap();
        let (h, rx, shared) = channel(Box::new(|m: &str| eprintln!("warning: {m}")));
        let t = std::thread::spawn(move || WriterThread::new(rx, w, shared, window).run());
        (h, t)
    }

    fn marker(src: &mut Source, ts: u64, label: &str) {
        let label = src.intern_string(label);
        src.send(Event {
            ts,
            pid: Pid(0),
            kind: EventKind::Marker { label },
        })
        .unwrap();
    }

    fn read(dir: &std::path::Path) -> (TraceReader, Vec<Event>) {
        let r = TraceReader::open(&dir.join("t.zst")).unwrap();
        let ev = r.events().collect::<Result<Vec<_>, _>>().unwrap();
        (r, ev)
    }

    #[test]
    fn merges_by_timestamp_and_keeps_each_sources_order() {
        let dir = tempfile::tempdir().unwrap();
        let (h, t) = start(dir.path(), Duration::from_secs(5));
        let mut a = h
            .register(SourceInfo {
                pid: 1,
                ts: Some(1),
                ..Default::default()
            })
            .unwrap();
        let mut b = h
            .register(SourceInfo {
                pid: 2,
                ts: Some(2),
                ..Default::default()
            })
            .unwrap();
        for ts in [10, 30, 50, 100, 90] {
            marker(&mut a, ts, &format!("a{ts}"));
        }
        a.flush().unwrap();
        for ts in [20, 40, 95] {
            marker(&mut b, ts, &format!("b{ts}"));
        }
        a.end(Some(0));
        b.end(None);
        h.shutdown();
        let out = t.join().unwrap();
        assert!(out.write_error.is_none());
        let (r, ev) = read(dir.path());
        let labels: Vec<&str> = ev
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::Marker { label } => Some(r.interner().string(label)),
                _ => None,
            })
            .collect();
        // a's 100 comes before its 90 (its own order), b's 95 is placed by timestamp.
        assert_eq!(
            labels,
            ["a10", "b20", "a30", "b40", "a50", "b95", "a100", "a90"]
        );
        assert_eq!(
            ev.iter()
                .filter(|e| e.kind.tag() == EventTag::ProcessStart)
                .count(),
            2
        );
        let exits: Vec<_> = ev
            .iter()
            .filter(|e| e.kind.tag() == EventTag::ProcessExit)
            .collect();
        assert_eq!(exits.len(), 2);
        assert!(exits
            .iter()
            .any(|e| e.pid == Pid(1) && e.kind == EventKind::ProcessExit { status: Some(0) }));
    }

    #[test]
    fn sources_intern_locally_and_ids_are_unique_in_the_trace() {
        let dir = tempfile::tempdir().unwrap();
        let (h, t) = start(dir.path(), Duration::from_millis(1));
        let mut srcs: Vec<Source> = (0..2)
            .map(|i| {
                h.register(SourceInfo {
                    pid: 10 + i,
                    argv: vec!["p".into()],
                    ..Default::default()
                })
                .unwrap()
            })
            .collect();
        for (i, s) in srcs.iter_mut().enumerate() {
            // Different stacks per source, so local ids collide but mean different things.
            let func = if i == 0 { "alloc_a" } else { "alloc_b" };
            let site = s.intern_stack(&[(func, "x.py", 3), ("<module>", "x.py", 1)]);
            let buffer = s.buffer_id(1);
            s.send(Event {
                ts: 100 + i as u64,
                pid: Pid(0),
                kind: EventKind::BufferAlloc {
                    device: DeviceId(0),
                    buffer,
                    buffer_type: BufferType::Dram,
                    address: None,
                    size: 2048,
                    page_size: Some(2048),
                    layout: Layout::Interleaved,
                    num_cores: None,
                    per_bank_size: None,
                    label: StringId::EMPTY,
                    site,
                },
            })
            .unwrap();
            // An id never interned by this source is refused.
            let bad = s.send(Event {
                ts: 0,
                pid: Pid(0),
                kind: EventKind::Marker {
                    label: StringId(99),
                },
            });
            assert!(matches!(bad, Err(IngestError::Protocol(_))));
        }
        drop(srcs);
        h.shutdown();
        let out = t.join().unwrap();
        assert_eq!(out.snapshot.live_buffers(), 2);
        let (r, ev) = read(dir.path());
        let allocs: Vec<(u32, u64, String)> = ev
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::BufferAlloc { buffer, site, .. } => Some((
                    e.pid.0,
                    buffer.0,
                    r.interner().resolve(site)[0].function.clone(),
                )),
                _ => None,
            })
            .collect();
        assert_eq!(allocs.len(), 2);
        assert_eq!((allocs[0].0, allocs[0].2.as_str()), (10, "alloc_a"));
        assert_eq!((allocs[1].0, allocs[1].2.as_str()), (11, "alloc_b"));
        assert_ne!(
            allocs[0].1, allocs[1].1,
            "buffer ids are unique across sources"
        );
    }
}
