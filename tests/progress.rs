//! Progress bars: on a terminal, every command that reads a trace of 2M
//! events or more shows how far it is; off a terminal (every other test)
//! nothing is drawn. The terminal is script(1)'s (util-linux, in every
//! Debian).

use std::path::{Path, PathBuf};
use std::process::Command;
use ttalloc_corpora::synth::{write_trace, SynthOptions};

#[path = "support/output.rs"]
mod output;
use output::describe;

/// A synthetic trace of 2.1M events (one device, four cycles).
fn trace(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let opts = SynthOptions {
        events: 2_100_000,
        cycles: 4,
        devices: 1,
        seed: 5,
        ..SynthOptions::default()
    };
    write_trace(&path, &opts, Default::default()).unwrap();
    path
}

/// What `ttalloc ARGS` draws on a terminal (its stdout thrown away).
fn on_terminal(dir: &Path, args: &str) -> String {
    let typescript = dir.join("typescript");
    let out = Command::new("script")
        .args(["-q", "-e", "-c"])
        .arg(format!(
            "{} {args} >/dev/null",
            env!("CARGO_BIN_EXE_ttalloc")
        ))
        .arg(&typescript)
        .output()
        .expect("script(1) runs");
    assert_eq!(out.status.code(), Some(0), "{args}: {}", describe(&out));
    String::from_utf8_lossy(&std::fs::read(&typescript).unwrap()).into_owned()
}

/// `diff` draws a bar per side, named; `report`, `export`, `replay` one
/// replay bar; `info` a reading bar, `repair` a repairing one. Each counts
/// events.
#[test]
fn on_a_terminal_long_passes_show_their_progress() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (a, b) = (trace(dir, "a.zst"), trace(dir, "b.zst"));
    let (a, b) = (a.display(), b.display());
    let out = |name: &str| dir.join(name).display().to_string();
    let shown = on_terminal(dir, &format!("diff {a} {b}"));
    for side in ["before: replaying [", "after: replaying ["] {
        assert!(shown.contains(side), "{side}: {shown}");
    }
    for args in [
        format!("report {a} -o {}", out("r.html")),
        format!("export {a} --format perfetto -o {}", out("p.json")),
        format!("replay {a}"),
    ] {
        let shown = on_terminal(dir, &args);
        assert!(shown.contains(" replaying ["), "{args}: {shown}");
        assert!(!shown.contains("before:"), "{args}: {shown}");
        assert!(shown.contains(" events ("), "{args}: {shown}");
    }
    let shown = on_terminal(dir, &format!("info {a}"));
    assert!(shown.contains(" reading ["), "{shown}");
    let shown = on_terminal(dir, &format!("repair {a} -o {}", out("copy.zst")));
    assert!(shown.contains(" repairing ["), "{shown}");
    // Off a terminal: nothing on stderr.
    let off = Command::new(env!("CARGO_BIN_EXE_ttalloc"))
        .args(["diff", &a.to_string(), &b.to_string()])
        .output()
        .unwrap();
    assert_eq!(off.status.code(), Some(0), "{}", describe(&off));
    assert!(off.stderr.is_empty(), "{}", describe(&off));
}
