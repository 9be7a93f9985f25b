//! `ttalloc serve --compat` as a child process, with its output collected.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) struct Serve {
    pub(crate) child: Child,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) out: Arc<Mutex<String>>,
    pub(crate) err: Arc<Mutex<String>>,
}

pub(crate) fn collect(stream: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text: Arc<Mutex<String>> = Arc::default();
    let t = text.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let mut g = t.lock().unwrap();
            g.push_str(&line);
            g.push('\n');
        }
    });
    text
}

pub(crate) fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Serve {
    pub(crate) fn start(extra: &[&str]) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        // Its own temporary directory: what serve leaves there is checked.
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_ttalloc"))
            .env("TMPDIR", dir.path().join("tmp"))
            .arg("serve")
            .arg("-o")
            .arg(dir.path().join("trace.zst"))
            .arg("--socket")
            .arg(dir.path().join("native.sock"))
            .arg("--compat")
            .arg("--compat-socket")
            .arg(dir.path().join("alloc.sock"))
            .args(["--stats-interval", "0.3"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = collect(child.stdout.take().unwrap());
        let err = collect(child.stderr.take().unwrap());
        let s = Serve {
            child,
            dir,
            out,
            err,
        };
        let out = s.out.clone();
        let err = s.err.clone();
        wait_until("serve to start", Duration::from_secs(20), || {
            out.lock().unwrap().contains("Press Ctrl+C") || !err.lock().unwrap().is_empty()
        });
        assert!(
            s.out().contains("Press Ctrl+C"),
            "serve did not start: {}",
            s.err()
        );
        s
    }
    pub(crate) fn compat_socket(&self) -> PathBuf {
        self.dir.path().join("alloc.sock")
    }
    pub(crate) fn trace(&self) -> PathBuf {
        self.dir.path().join("trace.zst")
    }
    pub(crate) fn out(&self) -> String {
        self.out.lock().unwrap().clone()
    }
    pub(crate) fn err(&self) -> String {
        self.err.lock().unwrap().clone()
    }
    /// Ctrl-C, then wait for the exit.
    pub(crate) fn interrupt(&mut self) -> ExitStatus {
        // The shell's builtin `kill`: no procps needed.
        let ok = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -INT {}", self.child.id()))
            .status()
            .unwrap();
        assert!(ok.success());
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                // Let the reader threads take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return st;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "serve did not stop on SIGINT"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
