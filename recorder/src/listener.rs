//! The Unix-socket listener for the native protocol: accepts connections from
//! processes of the same user only (SO_PEERCRED), and reads each connection
//! on its own thread, decoding frames into a [`Source`].
//!
//! Nothing here polls: the accept thread sleeps in poll(2) on the listening
//! socket and a wake pipe, and each connection thread in a plain blocking
//! read. A forced stop shuts the read side of the connections still open
//! (`shutdown(SHUT_RD)`): their blocked reads return what is buffered, then
//! end of stream.

use crate::ingest::{IngestHandle, Source, SourceInfo};
use crate::protocol::{Decoder, FrameHeader, Hello, Item, ProtocolError, HEADER_LEN};
use crate::wake::Wake;
use std::io::{self, Read};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use ttalloc_model::Pid;

const READ_CHUNK: usize = 256 * 1024;

struct Flags {
    /// Stop accepting new connections.
    stop_accepting: AtomicBool,
    /// Wakes the accept thread (blocked in poll) when accepting stops.
    wake: Wake,
    /// Connections still open were told to read what is buffered and end:
    /// the end of stream that follows is not the peer's doing.
    force: AtomicBool,
    /// Connections open now; `ended` is notified when one ends.
    active: Mutex<usize>,
    ended: Condvar,
}

impl Flags {
    fn active(&self) -> std::sync::MutexGuard<'_, usize> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn connection_ended(&self) {
        *self.active() -= 1;
        self.ended.notify_all();
    }
}

/// A connection's thread, and a handle on its socket to end its reads.
type ConnThread = (JoinHandle<()>, UnixStream);

pub struct Listener {
    path: PathBuf,
    flags: Arc<Flags>,
    accept: Option<JoinHandle<()>>,
    conns: Arc<Mutex<Vec<ConnThread>>>,
}

impl Listener {
    /// Starts accepting on an already bound listener.
    pub fn start(
        listener: UnixListener,
        path: &Path,
        handle: IngestHandle,
    ) -> io::Result<Listener> {
        listener.set_nonblocking(true)?;
        let flags = Arc::new(Flags {
            stop_accepting: AtomicBool::new(false),
            wake: Wake::new()?,
            force: AtomicBool::new(false),
            active: Mutex::new(0),
            ended: Condvar::new(),
        });
        let conns = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let (flags, conns) = (flags.clone(), conns.clone());
            std::thread::Builder::new()
                .name("ttalloc-accept".into())
                .spawn(move || accept_loop(listener, handle, flags, conns))?
        };
        Ok(Listener {
            path: path.to_owned(),
            flags,
            accept: Some(accept),
            conns,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Connections currently open.
    pub fn active_connections(&self) -> usize {
        *self.flags.active()
    }

    /// Stops accepting (connections already made, even if not yet accepted,
    /// are still served), waits up to `grace` for open connections to end,
    /// then makes the rest read what they have and end.
    pub fn close(mut self, grace: Duration) {
        self.flags.stop_accepting.store(true, Ordering::SeqCst);
        self.flags.wake.wake();
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let deadline = Instant::now() + grace;
        let mut active = self.flags.active();
        while *active > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            active = match self.flags.ended.wait_timeout(active, left) {
                Ok((a, _)) => a,
                Err(e) => e.into_inner().0,
            };
        }
        drop(active);
        self.flags.force.store(true, Ordering::SeqCst);
        let conns = std::mem::take(&mut *self.conns.lock().unwrap_or_else(|e| e.into_inner()));
        for (_, stream) in &conns {
            // Wakes a blocked read: it returns what is buffered, then 0.
            let _ = stream.shutdown(Shutdown::Read);
        }
        for (thread, _) in conns {
            let _ = thread.join();
        }
    }
}

fn accept_loop(
    listener: UnixListener,
    handle: IngestHandle,
    flags: Arc<Flags>,
    conns: Arc<Mutex<Vec<ConnThread>>>,
) {
    let my_uid = nix::unistd::getuid().as_raw();
    loop {
        let stopping = flags.stop_accepting.load(Ordering::SeqCst);
        match listener.accept() {
            Ok((stream, _)) => {
                let control = match stream.try_clone() {
                    Ok(c) => c,
                    Err(e) => {
                        handle.warn(&format!("cannot serve a connection: {e}"));
                        continue;
                    }
                };
                *flags.active() += 1;
                let (handle2, flags2) = (handle.clone(), flags.clone());
                let spawned = std::thread::Builder::new()
                    .name("ttalloc-conn".into())
                    .spawn(move || {
                        let mut stream = stream;
                        serve_connection(&mut stream, &handle2, &flags2, my_uid);
                        // The listener holds a handle on this socket too:
                        // dropping ours alone would not end the connection.
                        let _ = stream.shutdown(Shutdown::Both);
                        flags2.connection_ended();
                    });
                match spawned {
                    Ok(h) => {
                        let mut c = conns.lock().unwrap_or_else(|e| e.into_inner());
                        c.retain(|(h, _)| !h.is_finished());
                        c.push((h, control));
                    }
                    Err(e) => {
                        flags.connection_ended();
                        handle.warn(&format!("cannot start a connection thread: {e}"));
                    }
                }
            }
            // Nothing pending: after a stop request the backlog is now empty;
            // else sleep until a client connects or the stop wakes us.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if stopping {
                    return;
                }
                if let Err(e) = flags.wake.wait(Some(listener.as_raw_fd()), None) {
                    handle.warn(&format!("waiting for connections failed: {e}"));
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            Err(e) => {
                if stopping {
                    return;
                }
                handle.warn(&format!("accepting a connection failed: {e}"));
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Who is on the other end, for warnings.
fn describe(pid: Option<u32>, argv: &[String]) -> String {
    match (pid, argv.is_empty()) {
        (Some(p), false) => format!("process {p} ({})", argv.join(" ")),
        (Some(p), true) => format!("process {p}"),
        (None, _) => "an unknown process".into(),
    }
}

fn serve_connection(stream: &mut UnixStream, handle: &IngestHandle, flags: &Flags, my_uid: u32) {
    let peer =
        nix::sys::socket::getsockopt(&*stream, nix::sys::socket::sockopt::PeerCredentials).ok();
    let peer_pid = peer.map(|c| c.pid() as u32);
    match peer {
        Some(c) if c.uid() == my_uid => {}
        Some(c) => {
            handle.warn(&format!(
                "refused a connection from {} of user {} (only processes of user {my_uid} may record)",
                describe(peer_pid, &[]),
                c.uid()
            ));
            return;
        }
        None => {
            handle.warn("refused a connection whose peer credentials cannot be read");
            return;
        }
    }
    let _ = stream.set_nonblocking(false);
    let mut conn = Conn {
        decoder: Decoder::new(),
        source: None,
        argv: Vec::new(),
        pid: peer_pid,
    };
    let mut buf = vec![0u8; READ_CHUNK];
    let (mut start, mut end) = (0usize, 0usize);
    let outcome: Result<Option<Option<i32>>, ProtocolError> = 'read: loop {
        // Decode every complete frame in buf[start..end].
        loop {
            if end - start < HEADER_LEN {
                break;
            }
            let hdr: [u8; HEADER_LEN] =
                buf[start..start + HEADER_LEN].try_into().expect("12 bytes");
            let h = FrameHeader::parse(&hdr);
            if let Err(e) = conn.decoder.check_header(&h) {
                break 'read Err(e);
            }
            let total = HEADER_LEN + h.len as usize;
            if end - start < total {
                if buf.len() < total {
                    buf.resize(total, 0);
                }
                break;
            }
            let payload = &buf[start + HEADER_LEN..start + total];
            let item = conn.decoder.decode(&h, payload);
            start += total;
            match item.and_then(|i| conn.apply(i, handle)) {
                Ok(Some(status)) => break 'read Ok(Some(status)),
                Ok(None) => {}
                Err(e) => break 'read Err(e),
            }
        }
        // Compact, then read more.
        if start > 0 {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        if end == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match stream.read(&mut buf[end..]) {
            Ok(0) => {
                // After a forced stop the end of stream is ours: a partial
                // frame is what the peer had not finished sending.
                if end > start && !flags.force.load(Ordering::SeqCst) {
                    break 'read Err(ProtocolError {
                        offset: conn.decoder.offset(),
                        message: format!(
                            "connection closed in the middle of a frame ({} bytes of it received)",
                            end - start
                        ),
                    });
                }
                break 'read Ok(None);
            }
            Ok(n) => end += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break 'read Ok(None),
        }
    };
    if matches!(outcome, Ok(Some(_))) {
        // GOODBYE ends the stream: anything after it (already buffered, or
        // already in the socket) is dropped, but not without a word.
        let mut after = end - start;
        let _ = stream.set_nonblocking(true);
        while let Ok(n @ 1..) = stream.read(&mut buf) {
            after += n;
        }
        if after > 0 {
            handle.warn(&format!(
                "{}: {after} byte{} after its GOODBYE frame (byte offset {}) ignored",
                describe(conn.pid, &conn.argv),
                if after == 1 { "" } else { "s" },
                conn.decoder.offset()
            ));
        }
    }
    match outcome {
        Ok(status) => {
            if let Some(src) = conn.source.take() {
                src.end(status.flatten());
            }
        }
        Err(e) => {
            handle.count_protocol_error();
            handle.warn(&format!(
                "{}: {e}; its connection is closed, other processes keep recording",
                describe(conn.pid, &conn.argv)
            ));
            if let Some(src) = conn.source.take() {
                src.abort();
            }
        }
    }
}

struct Conn {
    decoder: Decoder,
    source: Option<Source>,
    argv: Vec<String>,
    pid: Option<u32>,
}

impl Conn {
    /// Applies one decoded frame; `Ok(Some(status))` on GOODBYE.
    fn apply(
        &mut self,
        item: Item,
        handle: &IngestHandle,
    ) -> Result<Option<Option<i32>>, ProtocolError> {
        let offset = self.decoder.offset();
        let closed = |_| ProtocolError {
            offset,
            message: "the recorder is shutting down".into(),
        };
        match item {
            Item::Hello(h) => {
                let (pid, ppid, argv) = self.identity(&h, handle);
                self.pid = Some(pid);
                self.argv = argv.clone();
                self.decoder.set_pid(Pid(pid));
                let info = SourceInfo {
                    pid,
                    ppid,
                    argv,
                    client: format!("{} {}", h.client_name, h.client_version),
                    ts: Some(h.ts),
                };
                let src = handle.register(info).map_err(closed)?;
                self.decoder.set_id_base(src.id_base());
                self.source = Some(src);
            }
            Item::Strings(s) => self.src().define_strings(s).map_err(closed)?,
            Item::Frames(f) => self.src().define_frames(f).map_err(closed)?,
            Item::Stacks(n) => self.src().define_stacks(n).map_err(closed)?,
            Item::Events(e) => self.src().send_batch(e).map_err(closed)?,
            Item::Goodbye(status) => return Ok(Some(status)),
        }
        Ok(None)
    }

    /// Who the process is: the kernel's peer-credential pid, not the pid the
    /// HELLO claims (a client in another pid namespace, or a buggy or lying
    /// one, sends another). A mismatch is a warning; the process's ppid and
    /// argv then come from /proc when it is visible there.
    fn identity(&self, h: &Hello, handle: &IngestHandle) -> (u32, u32, Vec<String>) {
        let peer = match self.pid {
            Some(p) if p > 0 && p != h.pid => p,
            // Same pid, or the peer is outside our pid namespace (pid 0).
            _ => return (h.pid, h.ppid, h.argv.clone()),
        };
        let proc_info = crate::compat::ProcessInfo::of_pid(peer);
        handle.warn(&format!(
            "{} says it is pid {} in its HELLO; its events are recorded under pid {peer}, the pid the kernel reports for the connection",
            describe(Some(peer), &proc_info.argv),
            h.pid
        ));
        if proc_info.argv.is_empty() {
            (peer, h.ppid, h.argv.clone())
        } else {
            (peer, proc_info.ppid, proc_info.argv)
        }
    }

    fn src(&mut self) -> &mut Source {
        self.source
            .as_mut()
            .expect("the decoder only accepts frames after HELLO")
    }
}
