//! A finished command's status and output, for assertion messages.
//! Included with `#[path = "support/output.rs"] mod output;`.

use std::process::Output;

/// Its status, stdout and stderr, each under a heading.
pub fn describe(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
