//! The allocation-server socket: bind (refusing to steal a live server's
//! socket, replacing a stale one), accept, one thread per connection, stop
//! (drain, end processes, remove the socket file).
//!
//! Nothing here polls: the accept thread sleeps in poll(2) on the socket and
//! a wake pipe, connection threads in blocking reads; stop shuts the read
//! side of every open connection, so each reads what its client already sent
//! and then sees the end of its stream.

use super::conn::{self, Counters, Shared};
use super::output::{CompatOutput, IngestOutput, ProcessInfo};
use super::state::{Numbering, Registry};
use crate::ingest::IngestHandle;
use crate::wake::Wake;
use std::fs;
use std::io;
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Where tt-metal's allocation client connects (hard-coded there).
pub const DEFAULT_SOCKET: &str = "/tmp/tt_allocation_server.sock";

pub struct CompatOptions {
    pub socket: PathBuf,
    pub numbering: Numbering,
    /// Where DUMP_REMAINING reports and process clean-up lines go (default: stderr).
    pub print: Arc<dyn Fn(&str) + Send + Sync>,
}

impl CompatOptions {
    pub fn new(socket: impl Into<PathBuf>, numbering: Numbering) -> Self {
        CompatOptions {
            socket: socket.into(),
            numbering,
            print: Arc::new(|s: &str| eprintln!("{s}")),
        }
    }
}

impl Default for CompatOptions {
    fn default() -> Self {
        CompatOptions::new(DEFAULT_SOCKET, Numbering::TtMetal)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CompatError {
    #[error("{path}: another allocation server is already listening there{owner}. Stop it, or let ttalloc listen elsewhere with --compat-socket PATH (tt-metal's client always connects to {DEFAULT_SOCKET})")]
    InUse { path: PathBuf, owner: String },
    #[error("{path} exists and is not a socket; refusing to replace it (choose another path with --compat-socket PATH)")]
    NotASocket { path: PathBuf },
    #[error("cannot listen on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// What the listener did (for summaries and tests).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompatReport {
    pub connections: u64,
    pub messages: u64,
    pub misframed_connections: u64,
    pub rejected_messages: u64,
    pub unknown_frees: u64,
    /// Live (device, buffer_id) keys in the registry now.
    pub active_allocations: u64,
}

/// This process's user id.
pub fn current_uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

/// The credentials of a Unix socket's peer: (pid, uid).
pub fn peer_cred(stream: &UnixStream) -> Option<(u32, u32)> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the sizes passed.
    let r = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (r == 0 && cred.pid > 0).then_some((cred.pid as u32, cred.uid))
}

/// Binds `path`, replacing a stale socket file; a live server is an error
/// naming its process.
fn bind(path: &Path) -> Result<UnixListener, CompatError> {
    let io_err = |source| CompatError::Io {
        path: path.to_owned(),
        source,
    };
    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(CompatError::NotASocket {
                path: path.to_owned(),
            })
        }
        Ok(_) => match UnixStream::connect(path) {
            Ok(s) => {
                let owner = match peer_cred(&s) {
                    Some((pid, _)) => {
                        let argv = ProcessInfo::of_pid(pid).argv;
                        if argv.is_empty() {
                            format!(" (pid {pid})")
                        } else {
                            format!(" (pid {pid}: {})", argv.join(" "))
                        }
                    }
                    None => String::new(),
                };
                return Err(CompatError::InUse {
                    path: path.to_owned(),
                    owner,
                });
            }
            // Nobody listens: a dead server's leftover.
            Err(_) => fs::remove_file(path).map_err(io_err)?,
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
    }
    let listener = UnixListener::bind(path).map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            CompatError::InUse {
                path: path.to_owned(),
                owner: String::new(),
            }
        } else {
            io_err(e)
        }
    })?;
    // Only this user's processes may connect (plus the uid check at accept).
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io_err)?;
    Ok(listener)
}

pub struct CompatListener {
    path: PathBuf,
    /// (dev, inode) of the socket file we created: removed on stop only if
    /// it is still ours.
    ident: Option<(u64, u64)>,
    shared: Arc<Shared>,
    /// Wakes the accept thread (blocked in poll) on stop.
    wake: Arc<Wake>,
    accept: Option<JoinHandle<()>>,
    conns: Arc<Mutex<Vec<ConnThread>>>,
}

/// A connection's thread, and a handle on its socket to end its reads.
type ConnThread = (JoinHandle<()>, UnixStream);

impl CompatListener {
    /// Listens on `opts.socket` and records into `output`.
    pub fn start(
        opts: CompatOptions,
        output: Arc<dyn CompatOutput>,
    ) -> Result<CompatListener, CompatError> {
        let listener = bind(&opts.socket)?;
        let ident = fs::metadata(&opts.socket).ok().map(|m| (m.dev(), m.ino()));
        listener
            .set_nonblocking(true)
            .map_err(|source| CompatError::Io {
                path: opts.socket.clone(),
                source,
            })?;
        let shared = Arc::new(Shared {
            registry: Mutex::new(Registry::new(opts.numbering)),
            output,
            stop: AtomicBool::new(false),
            print: opts.print,
            counters: Counters::default(),
        });
        let conns: Arc<Mutex<Vec<ConnThread>>> = Arc::default();
        let wake = Arc::new(Wake::new().map_err(|source| CompatError::Io {
            path: opts.socket.clone(),
            source,
        })?);
        let accept = {
            let shared = shared.clone();
            let conns = conns.clone();
            let wake = wake.clone();
            std::thread::Builder::new()
                .name("ttalloc-compat-accept".into())
                .spawn(move || accept_loop(listener, shared, conns, &wake))
                .map_err(|source| CompatError::Io {
                    path: opts.socket.clone(),
                    source,
                })?
        };
        Ok(CompatListener {
            path: opts.socket,
            ident,
            shared,
            wake,
            accept: Some(accept),
            conns,
        })
    }

    /// Listens and records into the recorder core's ingest handle: what
    /// `record --compat` and `serve --compat` call.
    pub fn start_ingest(
        socket: impl Into<PathBuf>,
        numbering: Numbering,
        handle: IngestHandle,
    ) -> Result<CompatListener, CompatError> {
        let output: Arc<dyn CompatOutput> = Arc::new(IngestOutput::new(handle));
        CompatListener::start(CompatOptions::new(socket, numbering), output)
    }

    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    /// The original server's statistics block (live buffers, DRAM, L1 per device).
    pub fn statistics(&self) -> String {
        self.shared
            .registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .statistics()
    }

    pub fn report(&self) -> CompatReport {
        let c = &self.shared.counters;
        let reg = self
            .shared
            .registry
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        CompatReport {
            connections: c.connections.load(Ordering::Relaxed),
            messages: c.messages.load(Ordering::Relaxed),
            misframed_connections: c.misframed.load(Ordering::Relaxed),
            rejected_messages: c.rejected.load(Ordering::Relaxed),
            unknown_frees: reg.unknown_frees,
            active_allocations: reg.active_allocations() as u64,
        }
    }

    /// Stops accepting, lets every connection drain what its client already
    /// sent and record its processes' exits, removes the socket file.
    pub fn stop(mut self) -> CompatReport {
        self.shutdown();
        self.report()
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.wake.wake();
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
        let conns = std::mem::take(&mut *self.conns.lock().unwrap_or_else(|p| p.into_inner()));
        for (_, stream) in &conns {
            // Wakes a blocked read: it returns what is buffered, then 0.
            let _ = stream.shutdown(Shutdown::Read);
        }
        for (thread, _) in conns {
            let _ = thread.join();
        }
        let still_ours = fs::metadata(&self.path).ok().map(|m| (m.dev(), m.ino())) == self.ident;
        if self.ident.is_some() && still_ours {
            let _ = fs::remove_file(&self.path);
        }
        self.ident = None;
    }
}

impl Drop for CompatListener {
    fn drop(&mut self) {
        if self.accept.is_some() || self.ident.is_some() {
            self.shutdown();
        }
    }
}

fn accept_loop(
    listener: UnixListener,
    shared: Arc<Shared>,
    conns: Arc<Mutex<Vec<ConnThread>>>,
    wake: &Wake,
) {
    let my_uid = current_uid();
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let cred = peer_cred(&stream);
                if let Some((pid, uid)) = cred {
                    if uid != my_uid {
                        shared.output.warn(&format!(
                            "allocation-server compat: refused a connection from pid {pid} of another user (uid {uid})"
                        ));
                        continue;
                    }
                }
                let control = match stream.try_clone() {
                    Ok(c) => c,
                    Err(e) => {
                        shared.output.warn(&format!(
                            "allocation-server compat: cannot serve a connection: {e}"
                        ));
                        continue;
                    }
                };
                let shared2 = shared.clone();
                let handle = std::thread::Builder::new()
                    .name("ttalloc-compat-conn".into())
                    .spawn(move || conn::run(stream, cred.map(|c| c.0), shared2));
                match handle {
                    Ok(h) => {
                        let mut list = conns.lock().unwrap_or_else(|p| p.into_inner());
                        list.retain(|(h, _)| !h.is_finished());
                        list.push((h, control));
                    }
                    Err(e) => shared.output.warn(&format!(
                        "allocation-server compat: cannot start a connection thread: {e}"
                    )),
                }
            }
            // Sleep until a client connects or stop() wakes us.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if let Err(e) = wake.wait(Some(listener.as_raw_fd()), None) {
                    shared.output.warn(&format!(
                        "allocation-server compat: waiting for connections failed: {e}"
                    ));
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                shared
                    .output
                    .warn(&format!("allocation-server compat: accept failed: {e}"));
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}
