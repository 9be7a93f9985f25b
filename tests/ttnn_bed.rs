//! The ttnn test bed (the real ttnn 0.81.1 wheel against a mock cluster,
//! `../shared/ttnn-mock/`) for end-to-end tests: where it is, how to run its
//! Python, and a loud skip only when it cannot exist here (no Python 3.10,
//! which the cp310 wheel needs). Included with `mod ttnn_bed;` by the tests
//! that need it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

const DEFAULT_PREFIX: &str = "/opt/ttnn-mock";

/// Where the ttnn test bed lives and how to run its Python.
pub struct TestBed {
    pub prefix: PathBuf,
}

impl TestBed {
    pub fn python(&self) -> PathBuf {
        self.prefix.join("venv/bin/python")
    }

    /// The environment `env.sh` sets, for the mock cluster `cluster`
    /// (`n150.yaml`, ...), with tt-metal's log lines (printed on stdout,
    /// with timestamps) turned off.
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
            .env_remove("TTALLOC_TTNN")
            .env_remove("PYTEST_PLUGINS")
            .env_remove("PYTEST_ADDOPTS");
    }
}

/// Writes straight to the process's stderr, past the test harness's capture.
pub fn loud(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The first Python 3.10 the test bed's `setup.sh` would use, if any.
fn python310() -> Option<PathBuf> {
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

/// The test bed (`$TTNN_MOCK_PREFIX` or `/opt/ttnn-mock`), or None after a
/// loud SKIPPED line naming `what` when it cannot exist here because Python
/// 3.10 is absent. Panics when it should be there.
pub fn test_bed(what: &str) -> Option<TestBed> {
    let prefix: PathBuf =
        std::env::var_os("TTNN_MOCK_PREFIX").map_or_else(|| DEFAULT_PREFIX.into(), PathBuf::from);
    let bed = TestBed { prefix };
    if bed.prefix.join("env.sh").is_file() && bed.python().is_file() {
        return Some(bed);
    }
    if python310().is_none() {
        loud(&format!(
            "SKIPPED: {what}: no ttnn test bed at {} and no Python 3.10 to build one \
             (the ttnn 0.81.1 wheel is cp310); {what} is NOT tested on this machine",
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
