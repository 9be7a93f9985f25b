//! `ttalloc repro TRACE -o repro.py`: a standalone ttnn script that makes
//! the trace's buffers again, in the recorded order, on a real device.

use crate::stdout;
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
#[command(after_help = "\
Run it on the smallest trace first: `ttalloc minimize TRACE -o small.zst`, then `ttalloc repro small.zst -o repro.py`.\n\
Exit status: 0 written, 2 bad usage, unreadable TRACE or more events than --max-events.")]
pub struct Args {
    /// The trace to turn into a script.
    pub trace: PathBuf,
    /// Where to write the Python script.
    #[arg(short, long, value_name = "repro.py")]
    pub output: PathBuf,
    /// Overwrite the output if it exists.
    #[arg(long)]
    pub force: bool,
    /// Refuse a trace of more events than this (its script would make every
    /// buffer in turn: run `ttalloc minimize` first).
    #[arg(long, value_name = "N", default_value_t = ttalloc_replayer::repro::DEFAULT_MAX_EVENTS)]
    pub max_events: u64,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.output.exists() && !args.force {
        anyhow::bail!(
            "{} already exists (use --force to overwrite it)",
            args.output.display()
        );
    }
    let (script, stats) = ttalloc_replayer::repro::repro_file(&args.trace, args.max_events)
        .with_context(|| format!("reading {}", args.trace.display()))?;
    std::fs::write(&args.output, script)
        .with_context(|| format!("writing {}", args.output.display()))?;
    stdout::print(&format!(
        "wrote {}: {} buffers in {} functions ({} not exact, {} not made)\n",
        args.output.display(),
        stats.buffers,
        stats.functions,
        stats.inexact_buffers,
        stats.skipped_buffers
    ))?;
    Ok(ExitCode::SUCCESS)
}
