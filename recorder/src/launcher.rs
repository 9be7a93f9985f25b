//! Starts the recorded command with the session's environment, forwards
//! SIGINT/SIGTERM/SIGHUP to it and waits for it.
//!
//! Forwarding: a signal sent with kill(2) (by `timeout`, a CI runner, the
//! user's `kill`) is passed on to CMD. A Ctrl-C typed at the terminal is sent
//! by the kernel to the whole foreground process group, CMD included, so it is
//! not forwarded again (a Python program would otherwise get two
//! KeyboardInterrupts and could lose its atexit flush). Either way the
//! recorder itself keeps running so it can drain and seal the trace.
//!
//! Waiting does not poll: SIGCHLD writes to a pipe ([`ChildEvents`]) and the
//! wait sleeps in poll(2) on it, waking only when a child changes state or
//! the caller's progress tick is due.

use crate::session::Session;
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::exfiltrator::WithOrigin;
use signal_hook::iterator::SignalsInfo;
use signal_hook::low_level::siginfo::Cause;
use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

/// How the command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandOutcome {
    pub status: ExitStatus,
    /// Shell convention: the exit code, or 128 + signal number when killed.
    pub code: i32,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
}

impl CommandOutcome {
    fn from_status(status: ExitStatus) -> CommandOutcome {
        match (status.code(), status.signal()) {
            (Some(c), _) => CommandOutcome {
                status,
                code: c,
                signal: None,
            },
            (None, Some(s)) => CommandOutcome {
                status,
                code: 128 + s,
                signal: Some(s),
            },
            (None, None) => CommandOutcome {
                status,
                code: 1,
                signal: None,
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("{0}: command not found")]
    NotFound(String),
    #[error("{0}: permission denied (not executable)")]
    NotExecutable(String),
    #[error("no command given")]
    Empty,
    #[error("cannot run {cmd}: {source}")]
    Spawn { cmd: String, source: io::Error },
    #[error("waiting for {cmd} failed: {source}")]
    Wait { cmd: String, source: io::Error },
}

/// Resolves CMD the way execvp would, so a missing command is reported
/// before anything is recorded.
pub fn resolve(cmd: &OsStr) -> Result<PathBuf, LaunchError> {
    use std::os::unix::fs::PermissionsExt;
    let name = cmd.to_string_lossy().into_owned();
    let is_exec = |p: &Path| {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .ok()
    };
    if name.is_empty() {
        return Err(LaunchError::Empty);
    }
    if name.contains('/') {
        let p = PathBuf::from(cmd);
        return match is_exec(&p) {
            Some(true) => Ok(p),
            Some(false) => Err(LaunchError::NotExecutable(name)),
            None => Err(LaunchError::NotFound(name)),
        };
    }
    let path =
        std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin"));
    for dir in std::env::split_paths(&path) {
        let p = dir.join(cmd);
        if is_exec(&p) == Some(true) {
            return Ok(p);
        }
    }
    Err(LaunchError::NotFound(name))
}

/// Runs `cmd` under the session; `on_tick` is called every `tick` (if any)
/// while it runs (and while its orphans are waited for).
///
/// The recorder makes itself a child subreaper, so processes CMD started and
/// left behind become its children when CMD exits: it then waits up to
/// `grace` for them to exit too (they may still be sending), reaping them.
pub fn run_command(
    session: &Session,
    cmd: &[OsString],
    grace: Duration,
    tick: Option<Duration>,
    mut on_tick: impl FnMut(),
) -> Result<CommandOutcome, LaunchError> {
    let (prog, args) = cmd.split_first().ok_or(LaunchError::Empty)?;
    let name = prog.to_string_lossy().into_owned();
    resolve(prog)?;
    // Best effort: without it, orphans are simply not waited for.
    let subreaper = nix::sys::prctl::set_child_subreaper(true).is_ok();
    // Register the handlers before the child exists so no signal is missed.
    let mut signals =
        SignalsInfo::<WithOrigin>::new([SIGINT, SIGTERM, SIGHUP]).map_err(|source| {
            LaunchError::Spawn {
                cmd: name.clone(),
                source,
            }
        })?;
    let sig_handle = signals.handle();
    // Before the child exists, so its exit cannot be missed. Without it
    // (cannot happen short of running out of descriptors) waits sleep instead.
    let child_events = ChildEvents::new().ok();
    let mut command = Command::new(prog);
    command.args(args).envs(session.env());
    // SAFETY: between fork and exec only async-signal-safe sigaction(2) runs.
    unsafe {
        command.pre_exec(|| {
            // The recorder ignores SIGXFSZ; CMD gets the default disposition back.
            use nix::sys::signal::{signal, SigHandler, Signal};
            signal(Signal::SIGXFSZ, SigHandler::SigDfl)
                .map(|_| ())
                .map_err(io::Error::from)
        });
    }
    let mut child = command.spawn().map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => LaunchError::NotFound(name.clone()),
        io::ErrorKind::PermissionDenied => LaunchError::NotExecutable(name.clone()),
        _ => LaunchError::Spawn {
            cmd: name.clone(),
            source,
        },
    })?;
    let child_pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let ingest = session.ingest();
    ingest.await_exit_status(child.id());
    let forwarder = std::thread::Builder::new()
        .name("ttalloc-signals".into())
        .spawn(move || {
            for origin in signals.forever() {
                let from_terminal = origin.signal == SIGINT && origin.cause == Cause::Kernel;
                if from_terminal {
                    continue;
                }
                if let Ok(sig) = nix::sys::signal::Signal::try_from(origin.signal) {
                    let _ = nix::sys::signal::kill(child_pid, sig);
                }
            }
        })
        .ok();
    let mut ticker = Ticker::new(tick);
    let result = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(CommandOutcome::from_status(status)),
            Ok(None) => {}
            Err(source) => {
                break Err(LaunchError::Wait {
                    cmd: name.clone(),
                    source,
                })
            }
        }
        ChildEvents::wait(child_events.as_ref(), ticker.until_due());
        ticker.tick_if_due(&mut on_tick);
    };
    if let Ok(o) = &result {
        ingest.exit_status(child.id(), o.signal.map_or(o.code, |s| -s));
    }
    if result.is_ok() && subreaper {
        wait_for_orphans(grace, child_events.as_ref(), &mut ticker, &mut on_tick);
    }
    sig_handle.close();
    if let Some(t) = forwarder {
        let _ = t.join();
    }
    result
}

/// Reaps CMD's descendants that were re-parented to us, until none is left
/// or `grace` is over.
fn wait_for_orphans(
    grace: Duration,
    child_events: Option<&ChildEvents>,
    ticker: &mut Ticker,
    on_tick: &mut impl FnMut(),
) {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let deadline = Instant::now() + grace;
    loop {
        match waitpid(nix::unistd::Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return;
                }
                let timeout = ticker.until_due().map_or(left, |t| t.min(left));
                ChildEvents::wait(child_events, Some(timeout));
                ticker.tick_if_due(on_tick);
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            // ECHILD: nobody left.
            Err(_) => return,
        }
    }
}

/// SIGCHLD, turned into a readable pipe: a wait sleeps in poll(2) until a
/// child of the recorder changes state.
struct ChildEvents {
    read: UnixStream,
    id: signal_hook::SigId,
}

impl ChildEvents {
    fn new() -> io::Result<ChildEvents> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        let id = signal_hook::low_level::pipe::register(SIGCHLD, write)?;
        Ok(ChildEvents { read, id })
    }

    /// Sleeps until a child changes state (since the last wait) or `timeout`
    /// (if any) passes. Without `events`, sleeps a short while instead.
    fn wait(events: Option<&ChildEvents>, timeout: Option<Duration>) {
        let Some(events) = events else {
            let nap = Duration::from_millis(20);
            std::thread::sleep(timeout.map_or(nap, |t| t.min(nap)));
            return;
        };
        if crate::wake::wait_readable(events.read.as_raw_fd(), timeout).is_err() {
            std::thread::sleep(Duration::from_millis(20));
        }
        // Drain: the next wait sleeps until the next SIGCHLD.
        let mut buf = [0u8; 64];
        while let Ok(1..) = (&events.read).read(&mut buf) {}
    }
}

impl Drop for ChildEvents {
    fn drop(&mut self) {
        signal_hook::low_level::unregister(self.id);
    }
}

/// When the caller's progress tick is next due.
struct Ticker {
    every: Option<Duration>,
    next: Option<Instant>,
}

impl Ticker {
    fn new(every: Option<Duration>) -> Ticker {
        Ticker {
            every,
            next: every.map(|e| Instant::now() + e),
        }
    }

    fn until_due(&self) -> Option<Duration> {
        self.next
            .map(|t| t.saturating_duration_since(Instant::now()))
    }

    fn tick_if_due(&mut self, on_tick: &mut impl FnMut()) {
        if let (Some(t), Some(every)) = (self.next, self.every) {
            let now = Instant::now();
            if now >= t {
                on_tick();
                self.next = Some(now + every);
            }
        }
    }
}
