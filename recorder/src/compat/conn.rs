//! One client connection: read the stream, split it into 112-byte messages,
//! apply them to the shared registry, record the events, answer queries.

use super::message::{Message, MsgType};
use super::output::{CompatOutput, ProcessInfo, ProcessOutput};
use super::process_table::ProcessTable;
use super::state::{Outcome, Owner, Registry};
use super::stream::StreamDecoder;
use crate::ingest::now_ns;
use foldhash::{HashSet, HashSetExt};
use std::io::{ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use ttalloc_model::{Event, EventKind, Pid};

/// How often a connection with a timer (see [`run`]) looks at the clock.
const CHECK: Duration = Duration::from_millis(250);
/// A partial message with no more bytes for this long is diagnosed (a peer
/// with a smaller struct waits for an answer that never comes).
const STALL: Duration = Duration::from_millis(1000);
/// How often processes the connection spoke for, other than its peer, are
/// checked for death (the original server checks every 5 s).
const SWEEP: Duration = Duration::from_secs(2);

/// Counters of what the listener did.
#[derive(Default)]
pub struct Counters {
    pub connections: AtomicU64,
    pub messages: AtomicU64,
    pub misframed: AtomicU64,
    pub rejected: AtomicU64,
}

pub(crate) struct Shared {
    pub registry: Mutex<Registry>,
    pub output: Arc<dyn CompatOutput>,
    pub stop: AtomicBool,
    /// Where DUMP_REMAINING's report and process clean-up lines go.
    pub print: Arc<dyn Fn(&str) + Send + Sync>,
    pub counters: Counters,
}

/// Whether `pid` still exists (`kill(pid, 0)`, as the original server does).
pub fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return true;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

struct Conn {
    shared: Arc<Shared>,
    peer_pid: Option<u32>,
    /// This connection's number: registry entries it makes are its own.
    number: u64,
    procs: ProcessTable,
    /// Processes that were visible (`kill(pid, 0)`) when they first spoke:
    /// only those are swept when they disappear. A pid from another pid
    /// namespace is never visible and ends with its connection instead.
    sweepable: HashSet<i32>,
    last_ts: u64,
    /// Scratch for [`Registry::apply_into`].
    outcome: Outcome,
    /// Messages handled and not yet in the shared count.
    uncounted: u64,
}

impl Conn {
    fn owner_of(&self, msg: &Message) -> i32 {
        if msg.process_id > 0 {
            msg.process_id
        } else {
            self.peer_pid.map(|p| p as i32).unwrap_or(0)
        }
    }

    fn registry_owner(&self, pid: i32) -> Owner {
        Owner {
            pid,
            conn: self.number,
        }
    }

    /// The time of the read being handled: messages that came in one read
    /// arrived together, so one clock reading serves them all.
    fn stamp(&mut self) {
        self.last_ts = now_ns().max(self.last_ts);
    }

    fn ts(&self) -> u64 {
        self.last_ts
    }

    /// The output of process `pid`, opened (ProcessStart) on first use.
    fn process(&mut self, pid: i32) -> Option<&mut Box<dyn ProcessOutput>> {
        let i = self.process_index(pid)?;
        Some(self.procs.at(i))
    }

    /// Where the output of process `pid` is in `procs`, opened
    /// (ProcessStart) on first use.
    fn process_index(&mut self, pid: i32) -> Option<usize> {
        if let Some(i) = self.procs.find(pid) {
            return Some(i);
        }
        let info = ProcessInfo::of_pid(pid.max(0) as u32);
        match self.shared.output.open_process(info) {
            Ok(p) => {
                if pid > 0 && pid_alive(pid) {
                    self.sweepable.insert(pid);
                }
                Some(self.procs.insert(pid, p))
            }
            Err(e) => {
                self.shared.output.warn(&format!(
                    "allocation-server compat: cannot record process {pid}: {e}"
                ));
                None
            }
        }
    }

    fn send(&mut self, pid: i32, kind: EventKind) {
        let ts = self.ts();
        if let Some(p) = self.process(pid) {
            if let Err(e) = p.send(Event {
                ts,
                pid: Pid(pid.max(0) as u32),
                kind,
            }) {
                self.shared.output.warn(&format!(
                    "allocation-server compat: dropped an event of process {pid}: {e}"
                ));
            }
        }
    }

    fn marker(&mut self, pid: i32, label: &str) {
        if let Some(p) = self.process(pid) {
            let label = p.intern_string(label);
            self.send(pid, EventKind::Marker { label });
        }
    }

    /// Applies one message; returns the reply to write, if any.
    fn handle(&mut self, msg: &Message) -> Option<Message> {
        self.uncounted += 1;
        let owner = self.owner_of(msg);
        let records = !matches!(
            msg.kind(),
            Some(MsgType::Query | MsgType::DeviceInfoQuery | MsgType::DumpKernels) | None
        );
        // The outcome's vectors are reused from message to message (in
        // place: a taken and put back `Outcome` was a drop per message).
        self.outcome.clear();
        let registry_owner = self.registry_owner(owner);
        if records {
            // Open the process first: the registry takes ids from it.
            let i = self.process_index(owner)?;
            let mut reg = self
                .shared
                .registry
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let p = self.procs.at(i);
            reg.apply_into(
                msg,
                registry_owner,
                &mut super::output::IdsOf(&mut **p),
                &mut self.outcome,
            );
        } else {
            struct NoIds;
            impl super::state::IdSource for NoIds {
                fn buffer_id(&mut self, local: u64) -> ttalloc_model::BufferId {
                    ttalloc_model::BufferId(local)
                }
                fn program_id(&mut self, local: u64) -> ttalloc_model::ProgramId {
                    ttalloc_model::ProgramId(local)
                }
            }
            let mut reg = self
                .shared
                .registry
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            reg.apply_into(msg, registry_owner, &mut NoIds, &mut self.outcome);
        };
        if self.outcome.rejected {
            self.shared
                .counters
                .rejected
                .fetch_add(1, Ordering::Relaxed);
        }
        for line in &self.outcome.lines {
            self.shared
                .output
                .warn(&format!("allocation-server compat: {line}"));
        }
        if !self.outcome.report.is_empty() {
            (self.shared.print)(&self.outcome.report.join("\n"));
        }
        if !self.outcome.events.is_empty() {
            self.send_outcome_events(owner);
        }
        if let Some(label) = self.outcome.marker.take() {
            self.marker(owner, &label);
        }
        self.outcome.reply.take()
    }

    /// Sends the events of the message just handled, as process `pid`'s.
    fn send_outcome_events(&mut self, pid: i32) {
        let ts = self.ts();
        let Some(i) = self.process_index(pid) else {
            self.outcome.events.clear();
            return;
        };
        let p = self.procs.at(i);
        for kind in self.outcome.events.drain(..) {
            let event = Event {
                ts,
                pid: Pid(pid.max(0) as u32),
                kind,
            };
            if let Err(e) = p.send(event) {
                self.shared.output.warn(&format!(
                    "allocation-server compat: dropped an event of process {pid}: {e}"
                ));
            }
        }
    }

    /// Adds the messages handled since the last call to the shared count:
    /// once a read, not once a message (a locked add each was 0.7% of
    /// `serve`'s samples under a client sending flat out), and before any
    /// reply, so a client that has its answer finds its messages counted.
    fn count_handled(&mut self) {
        if self.uncounted > 0 {
            self.shared
                .counters
                .messages
                .fetch_add(self.uncounted, Ordering::Relaxed);
            self.uncounted = 0;
        }
    }

    fn flush(&mut self) {
        for p in self.procs.outputs_mut() {
            let _ = p.flush();
        }
    }

    /// Ends a process on this connection: its exit is recorded with whatever
    /// it still holds, and the registry forgets its entries (the original's
    /// cleanup) — all of them when the process is dead, else only those made
    /// on this connection (another connection of the process keeps its own).
    fn end_process(&mut self, pid: i32, why: &str, dead: bool) {
        self.sweepable.remove(&pid);
        if let Some(p) = self.procs.remove(pid) {
            p.end(None);
        }
        let owner = self.registry_owner(pid);
        let mut registry = self
            .shared
            .registry
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let (count, bytes) = if dead {
            registry.drop_process(pid)
        } else {
            registry.drop_owner(owner)
        };
        drop(registry);
        if count > 0 {
            (self.shared.print)(&format!(
                "   PID {pid} {why}: {} ({}) still allocated; recorded as left behind",
                ttalloc_model::units::plural(count, "buffer"),
                ttalloc_model::units::bytes(bytes)
            ));
        }
    }

    fn sweep_dead(&mut self) {
        let mut dead = self.procs.pids();
        dead.retain(|&p| !pid_alive(p));
        for pid in dead {
            self.end_process(pid, "is dead", true);
        }
    }
}

/// Serves one connection until EOF, a misframed stream, or the stop.
///
/// The read blocks with no timeout while nothing calls for one: the stop
/// shuts the socket's read side (the read then returns what is buffered, then
/// end of stream). A timeout ([`CHECK`]) is set only while a partial message
/// waits for its rest ([`STALL`]) or while processes other than the peer
/// itself could die unseen ([`SWEEP`]).
pub(crate) fn run(mut stream: UnixStream, peer_pid: Option<u32>, shared: Arc<Shared>) {
    let number = shared.counters.connections.fetch_add(1, Ordering::Relaxed) + 1;
    let mut conn = Conn {
        shared: shared.clone(),
        peer_pid,
        number,
        procs: ProcessTable::new(),
        sweepable: HashSet::new(),
        last_ts: now_ns(),
        outcome: Outcome::default(),
        uncounted: 0,
    };
    let mut dec = StreamDecoder::new();
    let mut last_data = Instant::now();
    let mut last_sweep = Instant::now();
    let peer = peer_pid.map(|p| p as i32).unwrap_or(0);
    let mut timed = false;
    let mut unflushed = false;
    loop {
        // A timer is needed while a partial message waits for its rest, or
        // while processes other than the peer could die unseen (the peer's
        // own death closes the connection). Once set it stays until a
        // timeout finds it needed no more: no setsockopt per read.
        let needs_timer = dec.pending() > 0 || conn.sweepable.iter().any(|&p| p != peer);
        if needs_timer && !timed {
            timed = stream.set_read_timeout(Some(CHECK)).is_ok();
        }
        // Events read go to the writer when the client pauses (a read that
        // would block), not after every read: a client sending flat out
        // fills its batch first (`SOURCE_BATCH` events), and the writer
        // wakes once a batch instead of once a read (about 5,000 times for a
        // million messages, on a machine whose client keeps a core busy).
        let read = if unflushed {
            match dec.read_from(&mut DontWait(&stream)) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    conn.flush();
                    unflushed = false;
                    dec.read_from(&mut stream)
                }
                other => other,
            }
        } else {
            dec.read_from(&mut stream)
        };
        match read {
            Ok(0) => {
                // At a stop the end of stream is ours: a partial message is
                // one the client had not finished sending.
                if !shared.stop.load(Ordering::SeqCst) {
                    if let Some(m) = dec.stalled() {
                        report_misframe(&mut conn, peer, &m.to_string());
                    }
                }
                break;
            }
            Ok(_) => {
                conn.stamp();
                last_data = Instant::now();
                let mut failed = None;
                loop {
                    match dec.next_message() {
                        Ok(Some(msg)) => {
                            if let Some(reply) = conn.handle(&msg) {
                                conn.count_handled();
                                if let Err(e) = stream.write_all(&reply.encode()) {
                                    if e.kind() != ErrorKind::WouldBlock {
                                        failed = Some(String::new());
                                        break;
                                    }
                                }
                            }
                        }
                        Ok(None) => break,
                        Err(m) => {
                            failed = Some(m.to_string());
                            break;
                        }
                    }
                }
                conn.count_handled();
                unflushed = true;
                if let Some(m) = failed {
                    if !m.is_empty() {
                        report_misframe(&mut conn, peer, &m);
                    }
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if !needs_timer && stream.set_read_timeout(None).is_ok() {
                    timed = false;
                }
                if dec.pending() > 0 && last_data.elapsed() >= STALL {
                    if let Some(m) = dec.stalled() {
                        report_misframe(&mut conn, peer, &m.to_string());
                        break;
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                shared.output.warn(&format!(
                    "allocation-server compat: connection of pid {peer}: {e}"
                ));
                break;
            }
        }
        if last_sweep.elapsed() >= SWEEP {
            last_sweep = Instant::now();
            conn.sweep_dead();
        }
    }
    let closed_reason = if shared.stop.load(Ordering::SeqCst) {
        "was still connected when recording stopped"
    } else {
        "closed its connection"
    };
    conn.flush();
    let pids = conn.procs.pids();
    for pid in pids {
        conn.end_process(pid, closed_reason, false);
    }
    // The listener holds a handle on this socket too: dropping ours alone
    // would not end the connection (a client waiting for it to close).
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// A read of the socket that returns `WouldBlock` at once when nothing is
/// there (`MSG_DONTWAIT`), whatever the socket's blocking mode and timeout.
struct DontWait<'a>(&'a UnixStream);

impl std::io::Read for DontWait<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::fd::AsRawFd;
        // SAFETY: `buf` is valid for `buf.len()` bytes of writes.
        let n = unsafe {
            libc::recv(
                self.0.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

fn report_misframe(conn: &mut Conn, peer: i32, text: &str) {
    conn.shared
        .counters
        .misframed
        .fetch_add(1, Ordering::Relaxed);
    conn.shared
        .output
        .warn(&format!("allocation-server compat: pid {peer}: {text}; closing that connection (others keep recording)"));
    conn.marker(peer, &format!("allocation-server compat: {text}"));
    conn.flush();
}
