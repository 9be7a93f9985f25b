//! `ttalloc info TRACE [--json]`: what a trace holds and whether it is intact.

use crate::stdout;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use ttalloc_replayer::progress::{events_bar, PROGRESS_MIN_EVENTS};
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
    // A long trace shows its progress (on a terminal only).
    let bar = (std::io::stderr().is_terminal() && reader.num_events() >= PROGRESS_MIN_EVENTS)
        .then(|| events_bar(reader.num_events(), "reading".to_owned()));
    let summary = TraceSummary::compute_watched(&reader, &mut |n| {
        if let Some(b) = &bar {
            b.inc(n);
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let summary = summary?;
    if args.json {
        stdout::print(&(serde_json::to_string_pretty(&summary)? + "\n"))?;
    } else {
        stdout::print(&summary.to_text())?;
    }
    Ok(ExitCode::SUCCESS)
}
