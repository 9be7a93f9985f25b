//! The replay flags `report`, `export` and `diff` share with `replay`, and
//! where their output goes (a file, never overwritten without `--force`, or
//! stdout).

use crate::output_file::{refuse_existing, PendingOutput};
use anyhow::Context;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use ttalloc_model::Arch;
use ttalloc_replayer::{CycleMode, ReplayOptions};

#[derive(clap::Args, Clone)]
pub struct ReplayArgs {
    /// Architecture for devices the trace does not describe.
    #[arg(long, default_value = "wormhole_b0", value_parser = parse_arch)]
    pub arch: Arch,
    /// Override a device config field for every device, e.g. --set l1_small_size=1M.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Cycles to ignore for growth and bisect (caches filling up).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub warmup: usize,
    /// How the trace is cut into cycles: auto, device, marker, marker=REGEX or op=NAME.
    #[arg(long, default_value = "auto", value_parser = parse_cycles, value_name = "MODE")]
    pub cycles: CycleMode,
    #[command(flatten)]
    pub threads: ThreadsArg,
}

/// `--threads`, for every command that replays.
#[derive(clap::Args, Clone, Copy)]
pub struct ThreadsArg {
    /// Threads for a replay pass: 1 decodes and replays on one thread (the
    /// least CPU); 2 decodes the next block on a second thread meanwhile
    /// (done sooner when a core is free). Default: 2 on a machine with two
    /// cores or more.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=2))]
    pub threads: Option<u8>,
}

impl ThreadsArg {
    /// Whether a replay decodes ahead on a second thread.
    pub fn decode_ahead(self) -> bool {
        let cores = || std::thread::available_parallelism().map_or(1, |n| n.get());
        self.threads.map_or_else(|| cores() >= 2, |n| n >= 2)
    }
}

fn parse_arch(s: &str) -> Result<Arch, String> {
    s.parse()
}

fn parse_cycles(s: &str) -> Result<CycleMode, String> {
    s.parse()
}

impl ReplayArgs {
    pub fn options(&self, bisect: bool) -> anyhow::Result<ReplayOptions> {
        let mut opts = ReplayOptions {
            arch: self.arch,
            warmup: self.warmup,
            cycles: self.cycles.clone(),
            bisect,
            // A replay of a few million events or more shows its progress
            // (on a terminal only).
            progress: std::io::stderr().is_terminal(),
            decode_ahead: self.threads.decode_ahead(),
            ..ReplayOptions::default()
        };
        for s in &self.set {
            opts.set(s).map_err(anyhow::Error::msg).context("--set")?;
        }
        Ok(opts)
    }
}

/// Fails before any work when `output` exists and may not be overwritten.
pub fn check_output(output: Option<&Path>, force: bool) -> anyhow::Result<()> {
    match output {
        Some(p) if p.exists() && !force => Err(refuse_existing(p)),
        _ => Ok(()),
    }
}

/// Writes `text` to `output` (whole or not at all), or to stdout when there
/// is none.
/// Like [`write_output`] for output written piece by piece (too large to
/// build as one string first).
pub fn stream_output(
    output: Option<&PathBuf>,
    force: bool,
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    use std::io::Write;
    match output {
        Some(p) => {
            let pending = PendingOutput::create(p, force)?;
            let file = std::fs::File::create(pending.path())
                .with_context(|| format!("writing {}", p.display()))?;
            let mut out = std::io::BufWriter::new(file);
            write(&mut out)
                .and_then(|()| out.flush())
                .with_context(|| format!("writing {}", p.display()))?;
            pending.commit()
        }
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            crate::stdout::closed_pipe_is_ok(write(&mut out).and_then(|()| out.flush()))
                .context("writing to standard output")
        }
    }
}

pub fn write_output(output: Option<&PathBuf>, text: &str, force: bool) -> anyhow::Result<()> {
    match output {
        Some(p) => {
            let pending = PendingOutput::create(p, force)?;
            std::fs::write(pending.path(), text)
                .with_context(|| format!("writing {}", p.display()))?;
            pending.commit()
        }
        None => crate::stdout::print(text),
    }
}
