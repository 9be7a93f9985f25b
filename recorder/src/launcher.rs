//! Starts the recorded command with the session's environment, forwards
//! SIGINT/SIGTERM/SIGHUP to it and waits for it.
//!
//! Forwarding: a signal sent with kill(2) (by `timeout`, a CI runner, the
//! user's `kill`) is passed on to CMD. A Ctrl-C typed at the terminal is sent
//! by the kernel to the whole foreground process group, CMD included, so it is
//! not forwarded again (a Python program would otherwise get two
//! KeyboardInterrupts and could lose its atexit flush). Either way the
//! recorder itself keeps running so it can drain and seal the trace.

use crate::session::Session;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::exfiltrator::WithOrigin;
use signal_hook::iterator::SignalsInfo;
use signal_hook::low_level::siginfo::Cause;
use std::ffi::{OsStr, OsString};
use std::io;
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

/// Runs `cmd` under the session; `on_tick` is called about every 100 ms while it runs.
///
/// The recorder makes itself a child subreaper, so processes CMD started and
/// left behind become its children when CMD exits: it then waits up to
/// `grace` for them to exit too (they may still be sending), reaping them.
pub fn run_command(
    session: &Session,
    cmd: &[OsString],
    grace: Duration,
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
    let mut last_tick = Instant::now();
    let mut sleep = Duration::from_millis(2);
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
        if last_tick.elapsed() >= Duration::from_millis(100) {
            last_tick = Instant::now();
            on_tick();
        }
        std::thread::sleep(sleep);
        sleep = (sleep * 2).min(Duration::from_millis(50));
    };
    if let Ok(o) = &result {
        ingest.exit_status(child.id(), o.signal.map_or(o.code, |s| -s));
    }
    if result.is_ok() && subreaper {
        wait_for_orphans(grace, &mut on_tick);
    }
    sig_handle.close();
    if let Some(t) = forwarder {
        let _ = t.join();
    }
    result
}

/// Reaps CMD's descendants that were re-parented to us, until none is left
/// or `grace` is over.
fn wait_for_orphans(grace: Duration, on_tick: &mut impl FnMut()) {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let deadline = Instant::now() + grace;
    let mut last_tick = Instant::now();
    loop {
        match waitpid(nix::unistd::Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {
                if Instant::now() >= deadline {
                    return;
                }
                if last_tick.elapsed() >= Duration::from_millis(100) {
                    last_tick = Instant::now();
                    on_tick();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            // ECHILD: nobody left.
            Err(_) => return,
        }
    }
}
