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
            eprintln!("ttalloc: error: {}", one_line(&err));
            ExitCode::from(BAD_INPUT)
        }
    }
}

/// The error and its causes on one line ("reading x.zst: corrupt block 3 at
/// ..."), saying nothing twice: a cause already in the line is left out
/// ("x: No such file (os error 2)" is not followed by its own io error
/// again), and a cause that starts with what the line ends with ("replaying
/// x.zst" then "x.zst: not a trace") continues it instead of repeating it.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain().map(|c| c.to_string()) {
        if line.is_empty() {
            line = cause;
        } else if line.contains(&cause) {
            continue;
        } else if let Some(rest) = continuation(&line, &cause) {
            line.push_str(rest);
        } else {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
}

/// `cause` after the overlap, when `line` ends with a word-aligned prefix of
/// `cause` that is followed there by ": ".
fn continuation<'a>(line: &str, cause: &'a str) -> Option<&'a str> {
    line.char_indices()
        .filter(|&(i, c)| i == 0 || c == ' ')
        .map(|(i, c)| if c == ' ' { i + 1 } else { i })
        .map(|i| &line[i..])
        .filter(|tail| !tail.is_empty())
        .find_map(|tail| {
            cause
                .strip_prefix(tail)
                .filter(|rest| rest.starts_with(": "))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    fn not_found() -> std::io::Error {
        std::io::Error::from_raw_os_error(2)
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{path}: {source}")]
    struct PathError {
        path: String,
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_said_is_not_repeated() {
        let e = anyhow::Error::new(PathError {
            path: "nonexist.zst".into(),
            source: not_found(),
        });
        assert_eq!(
            one_line(&e),
            "nonexist.zst: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn a_context_ending_with_the_path_continues_into_the_cause() {
        let e = Err::<(), _>(PathError {
            path: "nonexist.zst".into(),
            source: not_found(),
        })
        .context("replaying nonexist.zst")
        .unwrap_err();
        assert_eq!(
            one_line(&e),
            "replaying nonexist.zst: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn distinct_causes_are_all_kept() {
        let e = Err::<(), _>(not_found())
            .context("reading x.zst")
            .context("replaying for --fail-on")
            .unwrap_err();
        assert_eq!(
            one_line(&e),
            "replaying for --fail-on: reading x.zst: No such file or directory (os error 2)"
        );
    }
}
