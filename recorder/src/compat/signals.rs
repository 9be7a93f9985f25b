//! A process-wide stop flag raised by SIGINT and SIGTERM: `serve` sleeps in
//! [`wait_for_stop`] until one arrives (the handler writes to a self-pipe),
//! then drains and seals the trace instead of dying mid-write.

use crate::wake::{wake_fd, Wake};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

static STOP: AtomicBool = AtomicBool::new(false);
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// The write end of [`WAKE`]'s pipe, for the handler (-1 until installed).
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
static WAKE: OnceLock<Wake> = OnceLock::new();

extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe work here: atomics and one write(2).
    SIGNAL.store(sig, Ordering::SeqCst);
    STOP.store(true, Ordering::SeqCst);
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        wake_fd(fd);
    }
}

/// Sleeps until a stop is requested or `timeout` (if any) passes; returns
/// whether a stop was requested. Without [`install`] it only sleeps (an
/// hour without a timeout).
pub fn wait_for_stop(timeout: Option<Duration>) -> bool {
    if stop_requested() {
        return true;
    }
    match WAKE.get() {
        Some(w) => {
            if w.wait(None, timeout).is_err() {
                std::thread::sleep(timeout.map_or(Duration::from_millis(100), |t| {
                    t.min(Duration::from_millis(100))
                }));
            }
        }
        None => std::thread::sleep(timeout.unwrap_or(Duration::from_secs(3600))),
    }
    stop_requested()
}

/// Installs the handlers (idempotent).
pub fn install() -> std::io::Result<()> {
    if WAKE.get().is_none() {
        let w = Wake::new()?;
        let fd = w.write_fd();
        if WAKE.set(w).is_ok() {
            WAKE_FD.store(fd, Ordering::SeqCst);
        }
    }
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with a plain handler is valid; the
        // handler only touches atomics.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = libc::SA_RESTART;
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Whether a stop was requested.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// The signal that requested the stop (0 if none).
pub fn stop_signal() -> i32 {
    SIGNAL.load(Ordering::SeqCst)
}
