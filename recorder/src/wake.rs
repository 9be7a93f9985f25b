//! Blocking on a socket with a way to be woken: a listener's accept thread
//! sleeps in poll(2) until a client connects or [`Wake::wake`] is called
//! (on stop), instead of trying `accept` and sleeping in a loop.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// A self-pipe: [`Wake::wake`] makes [`Wake::wait`] return.
pub struct Wake {
    read: OwnedFd,
    write: OwnedFd,
}

/// What ended a [`Wake::wait`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Woken {
    /// The watched descriptor is readable (a connection to accept, data).
    Ready,
    /// [`Wake::wake`] was called.
    Wake,
    /// The timeout passed.
    Timeout,
}

impl Wake {
    pub fn new() -> io::Result<Wake> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded: both descriptors are open and ours alone.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(Wake { read, write })
    }

    /// Wakes the waiter (now, or at its next wait). Async-signal-safe.
    pub fn wake(&self) {
        wake_fd(self.write.as_raw_fd());
    }

    /// The write end, for a signal handler that calls [`wake_fd`].
    pub fn write_fd(&self) -> RawFd {
        self.write.as_raw_fd()
    }

    /// Blocks until `fd` (if any) is readable, [`Wake::wake`] is called, or
    /// `timeout` passes. A wake-up is for good (it means "stop"): every
    /// later wait returns [`Woken::Wake`] at once.
    pub fn wait(&self, fd: Option<RawFd>, timeout: Option<Duration>) -> io::Result<Woken> {
        let mut fds = [
            libc::pollfd {
                fd: self.read.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: fd.unwrap_or(-1),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as libc::c_int);
        loop {
            // SAFETY: `fds` is a valid array of two pollfd; a negative fd is ignored.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if r == 0 {
                return Ok(Woken::Timeout);
            }
            if fds[0].revents != 0 {
                return Ok(Woken::Wake);
            }
            return Ok(Woken::Ready);
        }
    }
}

/// Blocks until `fd` is readable (true) or `timeout` (if any) passes (false).
pub fn wait_readable(fd: RawFd, timeout: Option<Duration>) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.map_or(-1, |t| {
        // Rounded up: a wait of 0.5 ms must not be a busy poll of 0 ms.
        t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int
    });
    loop {
        // SAFETY: `pfd` is one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r >= 0 {
            return Ok(r > 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Writes one byte to a wake pipe; a full pipe already holds a wake-up.
pub fn wake_fd(fd: RawFd) {
    let byte = 1u8;
    // SAFETY: writing one byte from a valid buffer; write(2) is async-signal-safe.
    let _ = unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn a_wait_ends_on_a_connection_a_wake_or_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let wake = Arc::new(Wake::new().unwrap());
        let fd = Some(listener.as_raw_fd());
        assert_eq!(
            wake.wait(fd, Some(Duration::from_millis(20))).unwrap(),
            Woken::Timeout
        );
        let _client = UnixStream::connect(&path).unwrap();
        assert_eq!(wake.wait(fd, None).unwrap(), Woken::Ready);
        listener.accept().unwrap();
        // A wake from another thread ends a wait that has no timeout.
        let w = wake.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            w.wake();
        });
        let start = Instant::now();
        assert_eq!(wake.wait(fd, None).unwrap(), Woken::Wake);
        assert!(start.elapsed() >= Duration::from_millis(40));
        t.join().unwrap();
    }
}
