//! `ttalloc report TRACE -o report.html`: a self-contained HTML report (or,
//! with `--format md`, a Markdown summary for a GitHub issue).

use crate::analysis_args::{check_output, write_output, ReplayArgs};
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use ttalloc_replayer::analysis::{analyse_file_summarised, AnalysisOptions};
use ttalloc_trace::summary::SummaryTally;
use ttalloc_trace::TraceReader;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One self-contained HTML file (charts, tables; no network).
    Html,
    /// A Markdown summary (under 10 KB) to paste into an issue.
    Md,
}

#[derive(clap::Args)]
#[command(
    after_help = "Without -o the report goes to stdout. The format defaults to md for an OUT ending in .md, else html.\n\
Exit status: 0 success, 2 bad usage or unreadable trace."
)]
pub struct Args {
    /// The trace file.
    pub trace: PathBuf,
    /// Where to write the report (default: stdout).
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// html or md.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Overwrite OUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// Most points per memory-over-time chart.
    #[arg(long, default_value_t = 1000, value_name = "N", value_parser = clap::value_parser!(u64).range(2..=100_000))]
    pub points: u64,
    #[command(flatten)]
    pub replay: ReplayArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    check_output(args.output.as_deref(), args.force)?;
    let format =
        args.format
            .unwrap_or_else(|| match args.output.as_ref().and_then(|p| p.extension()) {
                Some(ext) if ext.eq_ignore_ascii_case("md") => Format::Md,
                _ => Format::Html,
            });
    let opts = args.replay.options(true)?;
    let name = args.trace.display().to_string();
    let reader = TraceReader::open(&args.trace).with_context(|| format!("reading {name}"))?;
    let aopts = AnalysisOptions {
        points: args.points as usize,
        ..AnalysisOptions::default()
    };
    // The report shows no live bytes of the summary's (the replay's own).
    let tally = SummaryTally::without_live_bytes();
    let (analysis, summary) = analyse_file_summarised(&reader, &opts, &aopts, tally)
        .with_context(|| format!("replaying {name}"))?;
    let text = match format {
        Format::Html => ttalloc_replayer::html::html(&analysis, &summary, &name),
        Format::Md => ttalloc_replayer::markdown::markdown(&analysis, &summary, &name),
    };
    write_output(args.output.as_ref(), &text, args.force)?;
    Ok(ExitCode::SUCCESS)
}
