//! The HTML report in a real browser: headless Chromium loads it from disk
//! with the network off, the page's script runs without an error and draws
//! its charts (the report marks this in a hidden `#status` element, read
//! back from `--dump-dom`), and a screenshot — kept as a test artifact in
//! `target/test-artifacts/` — is not blank.
//!
//! Needs `chromium` (`.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ttalloc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ttalloc"))
}

#[path = "support/output.rs"]
mod output;
use output::describe;

fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("which").arg(name).output() {
            if out.status.success() {
                return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            }
        }
    }
    panic!("headless Chromium is needed for this test: apt-get install -y chromium (.ci/run does)");
}

/// Runs headless Chromium on `page` with `extra` arguments (no network, a
/// throwaway profile).
fn headless(page: &Path, profile: &Path, extra: &[&str]) -> Output {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(out.status.success(), "{}", describe(&out));
    out
}

/// The attributes of the report's `<div id="status" ...>` in the dumped DOM.
fn status_attr(dom: &str, name: &str) -> String {
    let start = dom.find("<div id=\"status\"").expect("#status in the DOM");
    let tag = &dom[start..start + dom[start..].find('>').unwrap()];
    let key = format!("{name}=\"");
    let at = tag.find(&key).unwrap_or_else(|| panic!("{name} in {tag}")) + key.len();
    tag[at..at + tag[at..].find('"').unwrap()].to_owned()
}

#[test]
fn the_report_renders_in_headless_chromium_without_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("accumulation.zst");
    let workload =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpora/workloads/accumulation/workload.py");
    let out = ttalloc()
        .args(["record", "-o"])
        .arg(&trace)
        .args(["--", "python3"])
        .arg(workload)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let page = tmp.path().join("report.html");
    let out = ttalloc()
        .arg("report")
        .arg(&trace)
        .arg("-o")
        .arg(&page)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));

    // The script ran to its end without an error and drew its charts: 9
    // memory-over-time charts (DRAM on devices 0-7, L1 on device 0) and the
    // growth-per-cycle chart.
    let dom = headless(&page, &tmp.path().join("profile-dom"), &["--dump-dom"]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(status_attr(&dom, "data-errors"), "0", "{dom}");
    assert_eq!(status_attr(&dom, "data-ok"), "1");
    assert_eq!(status_attr(&dom, "data-charts"), "10");
    assert!(dom.contains("mesh_device_initialize"));
    // The screenshot is kept as a test artifact under target/.
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let kept = artifacts.join("report-accumulation.png");
    let _ = std::fs::remove_file(&kept);
    let shot_arg = format!("--screenshot={}", kept.display());
    let shot = headless(
        &page,
        &tmp.path().join("profile-shot"),
        &["--window-size=1280,2000", &shot_arg],
    );
    // Chromium reports script errors on stderr as console messages.
    let log = String::from_utf8_lossy(&shot.stderr);
    assert!(
        !log.contains("Uncaught") && !log.contains(":CONSOLE("),
        "console output: {log}"
    );

    // Not blank: many pixels differ from the white background, in several colours.
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&kept).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let pixels = &buf[..info.buffer_size()];
    let mut inked = 0usize;
    let mut colours = std::collections::BTreeSet::new();
    for px in pixels.chunks(channels) {
        if px[..3.min(channels)].iter().any(|&c| c < 200) {
            inked += 1;
            colours.insert(px[..3.min(channels)].to_vec());
        }
    }
    let total = pixels.len() / channels;
    assert!(inked * 100 > total, "{inked} of {total} pixels drawn");
    assert!(colours.len() > 20, "{} colours", colours.len());
}
