//! End-to-end tests of `ttalloc record`: the real binary, the bundled Python
//! client, real processes.

#[path = "record/cli.rs"]
mod cli;
#[path = "record/client.rs"]
mod client;
#[path = "record/processes.rs"]
mod processes;
#[path = "record/signals.rs"]
mod signals;
#[path = "record/workloads.rs"]
mod workloads;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use ttalloc_model::units::thousands;
use ttalloc_model::{Event, EventKind, EventTag};
use ttalloc_trace::TraceReader;

const BIN: &str = env!("CARGO_BIN_EXE_ttalloc");
const LOCAL_MASK: u64 = (1 << 40) - 1;

fn workloads_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpora/workloads")
}

fn record(dir: &Path, trace: &Path, args: &[&str], envs: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .arg("record")
        .arg("-o")
        .arg(trace)
        .arg("--")
        .args(args);
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().expect("run ttalloc")
}

fn read_trace(path: &Path) -> (TraceReader, Vec<Event>) {
    let r = TraceReader::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let events: Vec<Event> = r.events().collect::<Result<_, _>>().expect("decode events");
    (r, events)
}

/// Starts `ttalloc record -- python3 SCRIPT`, waits for the script to print "ready".
fn spawn_ready(dir: &Path, trace: &Path, script: &str) -> std::process::Child {
    std::fs::write(dir.join("s.py"), script).unwrap();
    let mut child = Command::new(BIN)
        .current_dir(dir)
        .arg("record")
        .arg("-o")
        .arg(trace)
        .args(["--", "python3", "s.py"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    child
}

fn count(events: &[Event], tag: EventTag) -> usize {
    events.iter().filter(|e| e.kind.tag() == tag).count()
}
