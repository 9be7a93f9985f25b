//! The command line: default output names, exit-status pass-through, a
//! missing command.

use super::*;

#[test]
fn default_output_name_and_exit_status_pass_through() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .current_dir(tmp.path())
        .args([
            "record",
            "python3",
            "-c",
            "import ttalloc, sys; assert ttalloc.enabled(); ttalloc.mark('x'); sys.exit(3)",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].starts_with("ttalloc-") && files[0].ends_with(".zst"),
        "{files:?}"
    );
    let (_, events) = read_trace(&tmp.path().join(&files[0]));
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind.tag() == EventTag::Marker)
            .count(),
        1
    );
    let exit = events
        .iter()
        .find(|e| e.kind.tag() == EventTag::ProcessExit)
        .unwrap();
    assert_eq!(
        exit.kind,
        EventKind::ProcessExit { status: Some(3) },
        "CMD's exit code"
    );
}

#[test]
fn two_recordings_in_a_row_get_two_default_names() {
    let tmp = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = Command::new(BIN)
            .current_dir(tmp.path())
            .args([
                "record",
                "python3",
                "-c",
                "import ttalloc; ttalloc.mark('x')",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let files: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert_eq!(files.len(), 2, "{files:?}");
}

#[test]
fn missing_command_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("never.zst");
    let out = record(
        tmp.path(),
        &trace,
        &["ttalloc-no-such-command-xyz", "arg"],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("ttalloc-no-such-command-xyz: command not found"),
        "{stderr}"
    );
    assert!(!trace.exists(), "no trace for a command that never ran");
}
