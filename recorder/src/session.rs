//! A recording session: the trace writer thread, the ingest handle and the
//! native-protocol listener. `ttalloc record` runs one around a command;
//! `ttalloc serve` runs one until it is told to stop.

use crate::ingest::{self, IngestHandle, WriterThread};
use crate::listener::Listener;
use crate::stats::LiveSnapshot;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use ttalloc_trace::{TraceHeader, TraceWriter, WriterOptions, FORMAT_MAJOR, FORMAT_MINOR};

/// Where the native-protocol socket lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocketSpec {
    /// `ttalloc-XXXX/ttalloc.sock` in a fresh private (0700) temporary directory,
    /// next to the bundled Python client.
    PrivateDir,
    /// A fixed path (for `serve`). A stale socket file is replaced; a live one is an error.
    Path(PathBuf),
}

pub type WarnSink = Arc<dyn Fn(&str) + Send + Sync>;

pub struct SessionOptions {
    pub output: PathBuf,
    /// Replace an existing output file.
    pub overwrite: bool,
    /// The recorded command line (trace header).
    pub argv: Vec<String>,
    pub socket: SocketSpec,
    pub writer: WriterOptions,
    /// How long the merge stage waits for slower processes before it writes
    /// events out of timestamp order.
    pub reorder_window: Duration,
    /// Where warnings go (default: stderr, prefixed "ttalloc: warning: ").
    pub warn: WarnSink,
}

impl SessionOptions {
    pub fn new(output: impl Into<PathBuf>, argv: Vec<String>) -> SessionOptions {
        SessionOptions {
            output: output.into(),
            overwrite: false,
            argv,
            socket: SocketSpec::PrivateDir,
            writer: WriterOptions::default(),
            reorder_window: Duration::from_millis(250),
            warn: Arc::new(|m: &str| eprintln!("ttalloc: warning: {m}")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("{0} already exists (use --force to overwrite it)")]
    OutputExists(PathBuf),
    /// `msg` names the file.
    #[error("cannot create the trace: {msg}")]
    Output { path: PathBuf, msg: String },
    #[error("{path}: another recorder is already listening on this socket (stop it, or choose another path)")]
    SocketInUse { path: PathBuf },
    #[error("cannot set up the recorder's socket {path}: {source}")]
    Socket { path: PathBuf, source: io::Error },
    #[error("cannot create the recorder's private directory: {0}")]
    PrivateDir(io::Error),
    #[error("the trace writer thread failed: {0}")]
    Writer(String),
}

/// What a finished session recorded.
#[derive(Clone, Debug)]
pub struct Summary {
    pub output: PathBuf,
    /// Final live state: events by kind, devices, what is still held.
    pub snapshot: LiveSnapshot,
    pub events_written: u64,
    /// Set when writing failed part-way (the trace holds what was sealed before).
    pub write_error: Option<String>,
}

pub struct Session {
    output: PathBuf,
    socket_path: PathBuf,
    remove_socket: bool,
    client_dir: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
    handle: IngestHandle,
    listener: Option<Listener>,
    writer: Option<JoinHandle<ingest::WriterOutcome>>,
}

impl Session {
    pub fn start(opts: SessionOptions) -> Result<Session, SessionError> {
        if !opts.overwrite && opts.output.exists() {
            return Err(SessionError::OutputExists(opts.output));
        }
        let header = TraceHeader {
            format_major: FORMAT_MAJOR,
            format_minor: FORMAT_MINOR,
            ttalloc_version: env!("CARGO_PKG_VERSION").to_owned(),
            argv: opts.argv.clone(),
            start_time_ns: ingest::now_ns(),
            hostname: hostname(),
        };
        // Socket first: failing here must not leave an empty trace behind.
        let (dir, socket_path, client_dir, listener, remove_socket) = match &opts.socket {
            SocketSpec::PrivateDir => {
                let dir = tempfile::Builder::new()
                    .prefix("ttalloc-")
                    .tempdir()
                    .map_err(SessionError::PrivateDir)?;
                fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700))
                    .map_err(SessionError::PrivateDir)?;
                let client_dir = dir.path().join("python");
                crate::client_bundle::install(&client_dir).map_err(SessionError::PrivateDir)?;
                let path = dir.path().join("ttalloc.sock");
                let l = bind(&path)?;
                (Some(dir), path, Some(client_dir), l, false)
            }
            SocketSpec::Path(p) => (None, p.clone(), None, bind(p)?, true),
        };
        // A file-size limit must give the writer an EFBIG error it can report,
        // not kill the recorder with SIGXFSZ before it seals what it has.
        // SAFETY: installing SIG_IGN has no handler code to be unsafe in.
        unsafe {
            let _ = nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGXFSZ,
                nix::sys::signal::SigHandler::SigIgn,
            );
        }
        let writer =
            TraceWriter::create(&opts.output, header, opts.writer.clone()).map_err(|e| {
                SessionError::Output {
                    path: opts.output.clone(),
                    msg: e.to_string(),
                }
            })?;
        let warn = opts.warn.clone();
        let (handle, rx, shared) = ingest::channel(Box::new(move |m: &str| warn(m)));
        let window = opts.reorder_window;
        let seal_interval = opts.writer.seal_interval;
        let writer = std::thread::Builder::new()
            .name("ttalloc-writer".into())
            .spawn(move || WriterThread::new(rx, writer, shared, window, seal_interval).run())
            .map_err(|e| SessionError::Writer(e.to_string()))?;
        let listener =
            Listener::start(listener, &socket_path, handle.clone()).map_err(|source| {
                SessionError::Socket {
                    path: socket_path.clone(),
                    source,
                }
            })?;
        Ok(Session {
            output: opts.output,
            socket_path,
            remove_socket,
            client_dir,
            _dir: dir,
            handle,
            listener: Some(listener),
            writer: Some(writer),
        })
    }

    pub fn output(&self) -> &Path {
        &self.output
    }

    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    /// The directory to put first on `PYTHONPATH` (private-dir sessions only).
    pub fn client_dir(&self) -> Option<&Path> {
        self.client_dir.as_deref()
    }

    /// The environment a recorded process needs.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "TTALLOC_SOCKET".to_owned(),
                self.socket_path.display().to_string(),
            ),
            ("TT_ALLOC_TRACKING_ENABLED".to_owned(), "1".to_owned()),
        ];
        if let Some(dir) = &self.client_dir {
            let mut pp = dir.display().to_string();
            if let Some(old) = std::env::var_os("PYTHONPATH").filter(|v| !v.is_empty()) {
                pp.push(':');
                pp.push_str(&old.to_string_lossy());
            }
            env.push(("PYTHONPATH".to_owned(), pp));
            env.push((
                "PYTEST_PLUGINS".to_owned(),
                pytest_plugins(std::env::var_os("PYTEST_PLUGINS")),
            ));
        }
        let trace = std::path::absolute(&self.output).unwrap_or_else(|_| self.output.clone());
        env.push(("TTALLOC_TRACE".to_owned(), trace.display().to_string()));
        env
    }

    /// A handle for other sources (compat listener, importers).
    pub fn ingest(&self) -> IngestHandle {
        self.handle.clone()
    }

    pub fn stats(&self) -> LiveSnapshot {
        self.handle.stats()
    }

    /// Native connections currently open.
    pub fn active_connections(&self) -> usize {
        self.listener.as_ref().map_or(0, |l| l.active_connections())
    }

    /// Stops accepting, lets open connections finish for up to `grace`, reads
    /// what the rest already sent, writes everything and seals the trace.
    /// Sources registered through [`Session::ingest`] should be ended first;
    /// events they send later are lost.
    pub fn finish(mut self, grace: Duration) -> Result<Summary, SessionError> {
        self.shutdown(grace)
    }

    fn shutdown(&mut self, grace: Duration) -> Result<Summary, SessionError> {
        if let Some(l) = self.listener.take() {
            l.close(grace);
        }
        if self.remove_socket {
            let _ = fs::remove_file(&self.socket_path);
        }
        self.handle.shutdown();
        let outcome = self
            .writer
            .take()
            .ok_or_else(|| SessionError::Writer("already finished".into()))?
            .join()
            .map_err(|_| SessionError::Writer("the writer thread panicked".into()))?;
        Ok(Summary {
            output: self.output.clone(),
            snapshot: outcome.snapshot,
            events_written: outcome.events_written,
            write_error: outcome.write_error,
        })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = self.shutdown(Duration::ZERO);
        }
    }
}

fn bind(path: &Path) -> Result<UnixListener, SessionError> {
    let err = |source| SessionError::Socket {
        path: path.to_owned(),
        source,
    };
    if let Ok(meta) = fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a socket",
            )));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(SessionError::SocketInUse {
                path: path.to_owned(),
            });
        }
        // A stale socket left by a dead recorder.
        fs::remove_file(path).map_err(err)?;
    }
    let l = UnixListener::bind(path).map_err(err)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(err)?;
    Ok(l)
}

/// The bundled pytest plugin, loaded by any pytest the recorded command runs
/// (`PYTEST_PLUGINS` is read by pytest only; other programs ignore it). A
/// value already set is kept and the plugin appended to it.
pub const PYTEST_PLUGIN: &str = "ttalloc.pytest_plugin";

fn pytest_plugins(existing: Option<std::ffi::OsString>) -> String {
    match existing.map(|v| v.to_string_lossy().trim().to_owned()) {
        Some(v) if !v.is_empty() => {
            if v.split(',').any(|p| p.trim() == PYTEST_PLUGIN) {
                v
            } else {
                format!("{v},{PYTEST_PLUGIN}")
            }
        }
        _ => PYTEST_PLUGIN.to_owned(),
    }
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pytest_plugin_is_appended_to_existing_plugins() {
        assert_eq!(pytest_plugins(None), "ttalloc.pytest_plugin");
        assert_eq!(pytest_plugins(Some("".into())), "ttalloc.pytest_plugin");
        assert_eq!(
            pytest_plugins(Some("myplugin".into())),
            "myplugin,ttalloc.pytest_plugin"
        );
        // Already there (a nested `ttalloc record`): not twice.
        assert_eq!(
            pytest_plugins(Some("a, ttalloc.pytest_plugin".into())),
            "a, ttalloc.pytest_plugin"
        );
    }
}
