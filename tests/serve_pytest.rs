//! `ttalloc serve` followed by a pytest run started separately, in a shell
//! that ran the `export` lines serve printed and nothing else: the pytest
//! plugin must load from those lines alone, exactly as under `record`.
//!
//! The suite is `corpora/pytest/` on real ttnn (see `tests/pytest_plugin.rs`
//! for what each of its ten tests does): with `--ttalloc-fail-on=leak`,
//! `test_leaks_l1`, `test_cache_without_warmup`, `test_param[leaky]` and
//! `TestPeak::test_peak_over_limit` fail, so pytest ends "4 failed, 6 passed".
//! Without the PYTEST_PLUGINS line the option is unknown to pytest and the
//! run is a usage error (status 4), so this cannot pass by accident. The
//! trace then holds one `pytest:begin` marker per test: ten cycles in
//! `replay --cycles test`.

#[path = "support/ttnn_bed.rs"]
mod ttnn_bed;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use ttnn_bed::{describe, run, test_bed, ONE_AT_A_TIME};

#[test]
fn pytest_started_from_serves_printed_exports_loads_the_plugin() {
    let Some(bed) = test_bed() else { return };
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpora/pytest");
    for name in ["conftest.py", "test_kernels.py", "test_weights.py"] {
        std::fs::copy(corpus.join(name), dir.path().join(name)).unwrap();
    }
    let trace = dir.path().join("served.zst");
    let mut serve = Command::new(env!("CARGO_BIN_EXE_ttalloc"))
        .arg("serve")
        .arg("-o")
        .arg(&trace)
        .arg("--socket")
        .arg(dir.path().join("native.sock"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Read the banner up to its last line; keep draining in the background
    // so serve never blocks on a full pipe.
    let (tx, rx) = mpsc::channel();
    let stdout = serve.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut exports = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("serve prints its banner");
        if let Some(export) = line.trim().strip_prefix("export ") {
            exports.push(format!("export {export}"));
        }
        if line.contains("Press Ctrl+C") {
            break;
        }
    }
    assert!(
        exports
            .iter()
            .any(|e| e.starts_with("export PYTEST_PLUGINS=")),
        "serve prints PYTEST_PLUGINS: {exports:?}"
    );

    // The user's shell: the test bed on PATH, the printed lines, pytest.
    let mut shell = Command::new("sh");
    bed.configure(&mut shell, "n150.yaml");
    shell
        .env_remove("PYTEST_PLUGINS")
        .env_remove("PYTEST_ADDOPTS")
        .env_remove("PYTHONPATH")
        .current_dir(dir.path())
        .arg("-c")
        .arg(format!(
            "{}\nexec python -m pytest -p no:cacheprovider --ttalloc-fail-on=leak",
            exports.join("\n")
        ));
    let pytest = run("pytest under serve", &mut shell);
    let said = String::from_utf8_lossy(&pytest.stdout);
    assert_eq!(
        pytest.status.code(),
        Some(1),
        "{}",
        describe("pytest", &pytest)
    );
    assert!(
        said.lines()
            .any(|l| l.starts_with('=') && l.contains("4 failed, 6 passed")),
        "{}",
        describe("pytest", &pytest)
    );

    interrupt(serve.id());
    let status = serve.wait().unwrap();
    assert!(status.success(), "serve: {status:?}");

    let replay = run(
        "replay",
        Command::new(env!("CARGO_BIN_EXE_ttalloc"))
            .arg("replay")
            .arg(&trace)
            .args(["--cycles", "test", "--json"]),
    );
    let report: serde_json::Value = serde_json::from_slice(&replay.stdout)
        .unwrap_or_else(|e| panic!("{e}\n{}", describe("replay", &replay)));
    let names: Vec<&str> = report["cycles"]
        .as_array()
        .unwrap_or_else(|| panic!("no cycles\n{}", describe("replay", &replay)))
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names.len(), 10, "{names:?}");
    assert!(
        names.contains(&"test_kernels.py::test_leaks_l1"),
        "{names:?}"
    );
}

/// Ctrl+C, as the user stops serve.
fn interrupt(pid: u32) {
    let status = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}
