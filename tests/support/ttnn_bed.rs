//! The ttnn test bed for end-to-end tests: the real ttnn 0.81.1 wheel
//! against a mock cluster (`../shared/ttnn-mock/`, set up by `.ci/run` at
//! `$TTNN_MOCK_PREFIX` or `/opt/ttnn-mock`). Included by the tests that run
//! ttnn programs with `#[path = "support/ttnn_bed.rs"] mod ttnn_bed;`.
#![allow(dead_code)] // each including test uses a different part

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// ttnn programs run one at a time: tt-metal's JIT cache and its
/// `/dev/shm` statistics are shared by every process on the machine.
pub static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const DEFAULT_PREFIX: &str = "/opt/ttnn-mock";

/// Where the ttnn test bed lives and how to run its Python.
pub struct TestBed {
    pub prefix: PathBuf,
}

impl TestBed {
    pub fn python(&self) -> PathBuf {
        self.prefix.join("venv/bin/python")
    }

    /// The environment `env.sh` sets, for the mock cluster `cluster`, with
    /// tt-metal's log lines (printed on stdout, with timestamps) turned off.
    pub fn configure(&self, cmd: &mut Command, cluster: &str) {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.prefix.join("venv/bin")];
        dirs.extend(std::env::split_paths(&path));
        cmd.env("PATH", std::env::join_paths(dirs).expect("PATH joins"))
            .env(
                "TT_METAL_MOCK_CLUSTER_DESC_PATH",
                self.prefix.join("descriptors").join(cluster),
            )
            .env("OMPI_MCA_btl", "self")
            .env("TT_STUB_LOG", self.prefix.join("stubcalls.log"))
            .env("TT_LOGGER_LEVEL", "off")
            .env_remove("TTALLOC_TTNN");
    }
}

/// Writes straight to the process's stderr, past the test harness's capture.
pub fn loud(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The first Python 3.10 the test bed's `setup.sh` would use, if any.
pub fn python310() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("TTNN_MOCK_PYTHON") {
        candidates.push(p.into());
    }
    let pyenv = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pyenv")));
    if let Some(versions) = pyenv.map(|p| p.join("versions")) {
        if let Ok(entries) = std::fs::read_dir(versions) {
            let mut found: Vec<PathBuf> = entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("3.10"))
                .map(|e| e.path().join("bin/python"))
                .collect();
            found.sort();
            candidates.extend(found);
        }
    }
    candidates.push("python3.10".into());
    candidates.into_iter().find(|c| {
        Command::new(c)
            .args([
                "-c",
                "import sys; sys.exit(sys.version_info[:2] != (3, 10))",
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// The test bed, or None (after a loud SKIPPED line) when it cannot exist
/// here because Python 3.10 is absent. Panics when it should be there.
pub fn test_bed() -> Option<TestBed> {
    let prefix: PathBuf =
        std::env::var_os("TTNN_MOCK_PREFIX").map_or_else(|| DEFAULT_PREFIX.into(), PathBuf::from);
    let bed = TestBed { prefix };
    if bed.prefix.join("env.sh").is_file() && bed.python().is_file() {
        return Some(bed);
    }
    if python310().is_none() {
        loud(&format!(
            "SKIPPED: ttnn tests: no ttnn test bed at {} and no Python 3.10 to build one \
             (the ttnn 0.81.1 wheel is cp310); zero-edit capture is NOT tested on this machine",
            bed.prefix.display()
        ));
        return None;
    }
    panic!(
        "the ttnn test bed is missing at {} (no env.sh or venv/bin/python) although Python 3.10 is \
         here: set it up with `TTNN_MOCK_TORCH=0 bash ../shared/ttnn-mock/setup.sh {}` (as .ci/run \
         does), or point TTNN_MOCK_PREFIX at one",
        bed.prefix.display(),
        bed.prefix.display()
    );
}

pub fn describe(what: &str, out: &Output) -> String {
    format!(
        "{what}: status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn run(what: &str, cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"))
}
