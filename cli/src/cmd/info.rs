//! `ttalloc info TRACE [--json]`: what a trace holds and whether it is intact.

use crate::stdout;
use std::path::PathBuf;
use std::process::ExitCode;
use ttalloc_trace::summary::TraceSummary;
use ttalloc_trace::TraceReader;

#[derive(clap::Args)]
pub struct Args {
    /// The trace file (.zst).
    pub trace: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let reader = TraceReader::open(&args.trace)?;
    let summary = TraceSummary::compute(&reader)?;
    if args.json {
        stdout::print(&(serde_json::to_string_pretty(&summary)? + "\n"))?;
    } else {
        stdout::print(&summary.to_text())?;
    }
    Ok(ExitCode::SUCCESS)
}
