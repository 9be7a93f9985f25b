//! A command's output on standard output. A write that fails (`> /dev/full`,
//! a closed file) is an error of the command, never a status 0 with
//! truncated output nor a panic; only a reader that closed the pipe early
//! (`ttalloc cat x | head`) is not: its output simply ends there.

use anyhow::Context;
use std::io::{ErrorKind, Write};
use std::sync::Mutex;

/// The first failure of [`print_or_remember`], reported at the end.
static FAILURE: Mutex<Option<std::io::Error>> = Mutex::new(None);

/// A write's result with a closed pipe counted as success.
pub fn closed_pipe_is_ok(result: std::io::Result<()>) -> std::io::Result<()> {
    match result {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

fn write_all(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    closed_pipe_is_ok(out.write_all(text.as_bytes()).and_then(|()| out.flush()))
}

/// Writes `text` to standard output and flushes it.
pub fn print(text: &str) -> anyhow::Result<()> {
    write_all(text).context("writing to standard output")
}

/// For long-running commands (`serve`): a line that cannot be written must
/// not stop the recording; the first failure is kept for [`failure`].
pub fn print_or_remember(line: &str) {
    let mut failure = FAILURE.lock().unwrap_or_else(|p| p.into_inner());
    if failure.is_none() {
        if let Err(e) = write_all(&format!("{line}\n")) {
            *failure = Some(e);
        }
    }
}

/// The first write failure of [`print_or_remember`], as a command error.
pub fn failure() -> anyhow::Result<()> {
    match FAILURE.lock().unwrap_or_else(|p| p.into_inner()).take() {
        Some(e) => Err(anyhow::Error::new(e).context("writing to standard output")),
        None => Ok(()),
    }
}
