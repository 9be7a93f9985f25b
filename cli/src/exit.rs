//! Exit statuses a CI job can rely on: 0 success, 1 findings (`--fail-on`),
//! 2 bad usage or unreadable input; a recorded command's own non-zero status
//! passes through.

use std::process::ExitCode;

pub const SUCCESS: u8 = 0;
pub const FINDINGS: u8 = 1;
pub const BAD_INPUT: u8 = 2;

/// Prints an error as one clear line and maps it to exit status 2.
pub fn finish(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(err) => {
            // `{:#}` joins the context chain on one line: "reading x.zst: corrupt block 3 at ..."
            eprintln!("ttalloc: error: {err:#}");
            ExitCode::from(BAD_INPUT)
        }
    }
}
