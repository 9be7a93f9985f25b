//! Every command's standard output: a write that fails (`> /dev/full`) is an
//! error (status 2, one line naming standard output), never a status 0 with
//! truncated output nor a panic; a reader that closed the pipe early
//! (`| head`) is not an error (status 0).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use ttalloc_corpora::synth::{write_trace, LeakSite, SynthOptions};

const BIN: &str = env!("CARGO_BIN_EXE_ttalloc");

/// A small synthetic trace (site 7 leaks from cycle 4 of 10, so `minimize`
/// has a finding to keep) and the bundled graph fixture.
fn inputs(dir: &Path) -> (PathBuf, PathBuf) {
    let trace = dir.join("synth.zst");
    let opts = SynthOptions {
        events: 2_000,
        cycles: 10,
        leak_site: Some(LeakSite {
            site: 7,
            from_cycle: 4,
        }),
        ..SynthOptions::default()
    };
    write_trace(&trace, &opts, Default::default()).unwrap();
    let graph =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpora/graphs/add_old_string_params.json");
    (trace, graph)
}

/// Every command that prints to standard output, with its arguments.
fn commands(dir: &Path, trace: &Path, graph: &Path) -> Vec<Vec<String>> {
    let t = trace.display().to_string();
    let g = graph.display().to_string();
    let out = |name: &str| dir.join(name).display().to_string();
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        v(&["replay", &t]),
        v(&["replay", "--json", &t]),
        v(&["info", &t]),
        v(&["info", "--json", &t]),
        v(&["cat", &t]),
        v(&["cat", "--jsonl", &t]),
        v(&["import", &g, "--force", "-o", &out("imported.zst")]),
        v(&[
            "import",
            &g,
            "--force",
            "--json",
            "-o",
            &out("imported.zst"),
        ]),
        v(&["repair", &t, "--force", "-o", &out("repaired.zst")]),
        v(&["report", &t]),
        v(&["report", "--format", "md", &t]),
        v(&["export", &t, "--format", "perfetto"]),
        v(&["export", &t, "--format", "folded", "--metric", "peak"]),
        v(&["diff", &t, &t]),
        v(&["diff", "--json", &t, &t]),
        v(&["minimize", &t, "--force", "-o", &out("minimized.zst")]),
        v(&[
            "minimize",
            &t,
            "--force",
            "--json",
            "-o",
            &out("minimized.zst"),
        ]),
        v(&["repro", &t, "--force", "-o", &out("repro.py")]),
    ]
}

fn run(args: &[String], stdout: Stdio) -> Output {
    Command::new(BIN)
        .args(args)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .expect("run ttalloc")
}

#[test]
fn a_full_disk_on_stdout_is_an_error_of_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let (trace, graph) = inputs(dir.path());
    for args in commands(dir.path(), &trace, &graph) {
        let full = File::options().write(true).open("/dev/full").unwrap();
        let out = run(&args, full.into());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "ttalloc {args:?}: {err}");
        assert!(
            err.contains("ttalloc: error: writing to standard output"),
            "ttalloc {args:?}: {err}"
        );
    }
}

#[test]
fn a_reader_that_closed_the_pipe_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (trace, graph) = inputs(dir.path());
    for args in commands(dir.path(), &trace, &graph) {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = run(&args, writer.into());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "ttalloc {args:?}: {err}");
        assert!(!err.contains("error"), "ttalloc {args:?}: {err}");
    }
}

/// `serve` keeps recording when its standard output fails, seals the trace,
/// and then exits 2 saying why.
#[test]
fn serve_seals_the_trace_then_reports_the_failed_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("served.zst");
    let socket = dir.path().join("serve.sock");
    let full = File::options().write(true).open("/dev/full").unwrap();
    let child = Command::new(BIN)
        .args(["serve", "--stats-interval", "0", "--grace", "0", "-o"])
        .arg(&trace)
        .arg("--socket")
        .arg(&socket)
        .stdout(full)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !socket.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "serve never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("ttalloc: error: writing to standard output"),
        "{err}"
    );
    let reader = ttalloc_trace::TraceReader::open(&trace).expect("the trace is readable");
    assert!(reader.truncation().is_none(), "the trace is sealed");
}
