//! `ttalloc replay TRACE`: drive a trace through the simulated allocator and
//! report what is left behind, growth per cycle, out-of-memory, bad frees;
//! `--bisect` finds the call site that first leaves bytes behind.

use crate::analysis_args::ThreadsArg;
use crate::exit;
use crate::fail_on::{self, FailOn};
use crate::stdout;
use anyhow::Context;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use ttalloc_model::Arch;
use ttalloc_replayer::{CycleMode, ReplayError, ReplayOptions};
use ttalloc_trace::TraceReader;

#[derive(clap::Args)]
#[command(
    after_help = "Exit status: 0 success, 1 a finding of a --fail-on kind is present, 2 bad usage or unreadable trace.\n\
The --json schema is documented in replayer/README.md."
)]
pub struct Args {
    /// The trace file to replay.
    pub trace: PathBuf,
    /// Architecture for devices the trace does not describe.
    #[arg(long, default_value = "wormhole_b0", value_parser = parse_arch)]
    pub arch: Arch,
    /// Override a device config field for every device (what-if replays), e.g. --set l1_small_size=1M.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Cycles to ignore for growth and bisect (caches filling up).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub warmup: usize,
    /// How the trace is cut into cycles: auto, test (pytest tests), device, marker, marker=REGEX or op=NAME.
    #[arg(long, default_value = "auto", value_parser = parse_cycles, value_name = "MODE")]
    pub cycles: CycleMode,
    /// Find the first leaking cycle and allocation, rank call sites, run delta debugging.
    #[arg(long)]
    pub bisect: bool,
    /// Print one JSON object instead of the human report.
    #[arg(long)]
    pub json: bool,
    /// Exit with status 1 when a finding of these kinds is present:
    /// leak, growth, oom, unknown-free, double-free, divergence, any.
    #[arg(long, value_name = "KINDS", value_parser = fail_on::parse)]
    pub fail_on: Option<FailOn>,
    #[command(flatten)]
    pub threads: ThreadsArg,
}

/// An architecture with a preset; "" or "unknown" would replay devices
/// with no memory layout at all.
fn parse_arch(s: &str) -> Result<Arch, String> {
    match s.parse()? {
        a @ (Arch::WormholeB0 | Arch::Blackhole) => Ok(a),
        _ => Err(format!(
            "'{s}' has no memory preset (expected wormhole_b0 or blackhole)"
        )),
    }
}

fn parse_cycles(s: &str) -> Result<CycleMode, String> {
    s.parse()
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut opts = ReplayOptions {
        arch: args.arch,
        warmup: args.warmup,
        cycles: args.cycles,
        bisect: args.bisect,
        progress: std::io::stderr().is_terminal(),
        decode_ahead: args.threads.decode_ahead(),
        ..ReplayOptions::default()
    };
    for s in &args.set {
        opts.set(s).map_err(anyhow::Error::msg).context("--set")?;
    }
    let context = || format!("replaying {}", args.trace.display());
    let reader = TraceReader::open(&args.trace)
        .map_err(ReplayError::from)
        .with_context(context)?;
    let report = ttalloc_replayer::replay_reader(&reader, &opts).with_context(context)?;
    // The process ends right after printing: the reader's map and its pool
    // of decoded-block buffers (megabytes, in their own maps) are left to
    // the exit instead of unmapped one by one (~3% of workload W's CPU).
    std::mem::forget(reader);
    let text = if args.json {
        report.to_json() + "\n"
    } else {
        report.render_human()
    };
    stdout::print(&text)?;
    let failed = args.fail_on.is_some_and(|kinds| report.fails(&kinds.0));
    Ok(ExitCode::from(if failed {
        exit::FINDINGS
    } else {
        exit::SUCCESS
    }))
}
