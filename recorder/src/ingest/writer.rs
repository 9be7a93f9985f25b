//! The writer thread: per-source id maps, merge by timestamp, TraceWriter.

use super::{now_ns, IngestHandle, Msg, Shared, CHANNEL_CAP, MERGE_CAP};
use crate::stats::{Accounting, LiveSnapshot};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use ttalloc_model::event::join_argv;
use ttalloc_model::{Event, EventKind, Frame, FrameId, Pid, SiteId, StackNode, StringId};
use ttalloc_trace::TraceWriter;

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

/// While events wait in the merge, how often the writer looks whether they are due.
const RELEASE_CHECK: Duration = Duration::from_millis(20);
/// How often the writer seals an old block and publishes its snapshot while
/// there is something to seal or publish.
const TICK: Duration = Duration::from_millis(100);

pub(crate) struct WriterThread {
    rx: Receiver<Msg>,
    writer: Option<TraceWriter>,
    shared: Arc<Shared>,
    window: Duration,
    /// The trace writer's `seal_interval`: how long after the last event
    /// ticks can still seal something.
    seal_interval: Duration,
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
        seal_interval: Duration,
    ) -> Self {
        WriterThread {
            rx,
            writer: Some(writer),
            shared,
            window,
            seal_interval,
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

    /// Handles messages until shutdown. It sleeps in `recv` with no timeout
    /// once nothing waits: no event in the merge, no block young enough to
    /// be unsealed, the snapshot published. Only then is an idle recorder at
    /// rest; else it wakes every [`RELEASE_CHECK`] or [`TICK`].
    pub(crate) fn run(mut self) -> WriterOutcome {
        let mut last_tick = Instant::now();
        // Ticks are due until this time (None: nothing left to seal or publish).
        let mut ticks_until = Some(last_tick);
        let mut shutdown = false;
        while !shutdown {
            let received = if self.buffered > 0 {
                self.rx.recv_timeout(RELEASE_CHECK)
            } else if ticks_until.is_some() {
                self.rx
                    .recv_timeout(TICK.saturating_sub(last_tick.elapsed()))
            } else {
                self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
            };
            match received {
                Ok(msg) => {
                    shutdown = self.handle(msg);
                    // Take what is already queued, but keep releasing when the merge is full.
                    while !shutdown && self.buffered < MERGE_CAP {
                        match self.rx.try_recv() {
                            Ok(msg) => shutdown = self.handle(msg),
                            Err(_) => break,
                        }
                    }
                    ticks_until = Some(Instant::now() + self.seal_interval + TICK);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => shutdown = true,
            }
            self.release(shutdown);
            if last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
                self.tick();
                if self.buffered == 0 && ticks_until.is_some_and(|t| last_tick >= t) {
                    ticks_until = None;
                }
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
            // Emit this source's events while they are not later than anyone
            // else's head, written from their batch where they lie: a copy of
            // each into a list first cost 11% of the writer thread's CPU in a
            // compat recording of a million events.
            let mut emitted = 0usize;
            while emitted < 4096 {
                let Some((arrived, mut batch)) = self
                    .sources
                    .get_mut(&src)
                    .and_then(|st| st.queue.pop_front())
                else {
                    break;
                };
                let room = 4096 - emitted;
                let n = batch
                    .iter()
                    .enumerate()
                    .take_while(|&(i, e)| i < room && (emitted + i == 0 || e.ts <= next_other))
                    .count();
                for e in batch.range(..n) {
                    self.write(e);
                }
                batch.drain(..n);
                emitted += n;
                if !batch.is_empty() {
                    if let Some(st) = self.sources.get_mut(&src) {
                        st.queue.push_front((arrived, batch));
                    }
                    break;
                }
            }
            self.buffered -= emitted;
            let Some(st) = self.sources.get(&src) else {
                continue;
            };
            let (live, head, holding) = (st.live, st.head_ts(), st.held_exit.is_some());
            match head {
                Some(ts) => self.heap.push(Reverse((ts, src))),
                None if live => self.empty_live += 1,
                None if holding => {}
                None => {
                    self.sources.remove(&src);
                }
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
