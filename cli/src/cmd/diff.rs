//! `ttalloc diff BEFORE AFTER`: compares two recordings of the same program
//! and, with `--fail-on-regression`, gates CI on AFTER leaving no more
//! behind, having no new finding and peaking no higher.

use crate::analysis_args::ReplayArgs;
use crate::exit;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use ttalloc_replayer::analysis::{analyse_file_pair, Analysis, AnalysisOptions};
use ttalloc_replayer::ReplayOptions;
use ttalloc_trace::TraceReader;

#[derive(clap::Args)]
#[command(
    after_help = "A regression: AFTER leaves more bytes behind per cycle, or grows more per cycle on a device \
and buffer type, than BEFORE (by more than --threshold); peaks higher (by more than --peak-threshold); \
or has a kind of finding BEFORE did not have.\n\
On two cores or more, traces within half of each other's length are replayed at once, on a thread each \
(--threads 1: one after the other).\n\
Exit status: 0 success (or no regression), 1 a regression with --fail-on-regression, 2 bad usage or unreadable trace."
)]
pub struct Args {
    /// The recording before the change.
    pub before: PathBuf,
    /// The recording after the change.
    pub after: PathBuf,
    /// Print one JSON object instead of the human report.
    #[arg(long)]
    pub json: bool,
    /// Exit with status 1 when AFTER is a regression.
    #[arg(long)]
    pub fail_on_regression: bool,
    /// Bytes per cycle AFTER may leave behind (or grow) beyond BEFORE without a regression, e.g. 4K.
    #[arg(long, default_value = "0", value_name = "BYTES", value_parser = parse_bytes)]
    pub threshold: u64,
    /// Bytes a peak (per device and buffer type) of AFTER may exceed BEFORE's by, e.g. 1M.
    #[arg(long, default_value = "0", value_name = "BYTES", value_parser = parse_bytes)]
    pub peak_threshold: u64,
    #[command(flatten)]
    pub replay: ReplayArgs,
}

fn parse_bytes(s: &str) -> Result<u64, String> {
    ttalloc_model::config::parse_quantity(s)
}

/// Both sides' analyses; an error names the trace it is about.
fn analyse_both(paths: [&Path; 2], opts: &ReplayOptions) -> anyhow::Result<[Analysis; 2]> {
    let open = |path: &Path| {
        TraceReader::open(path).with_context(|| format!("reading {}", path.display()))
    };
    let readers = [open(paths[0])?, open(paths[1])?];
    let aopts = AnalysisOptions {
        timeline: false,
        ..AnalysisOptions::default()
    };
    analyse_file_pair(
        [&readers[0], &readers[1]],
        ["before", "after"],
        opts,
        &aopts,
    )
    .map_err(|(side, e)| {
        anyhow::Error::new(e).context(format!("replaying {}", paths[side].display()))
    })
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let opts = args.replay.options(true)?;
    let [before, after] = analyse_both([&args.before, &args.after], &opts)?;
    let diff = ttalloc_replayer::diff::diff(&before, &after, args.threshold, args.peak_threshold);
    let text = if args.json {
        diff.to_json() + "\n"
    } else {
        diff.render_human()
    };
    crate::stdout::print(&text)?;
    Ok(ExitCode::from(
        if args.fail_on_regression && diff.is_regression() {
            exit::FINDINGS
        } else {
            exit::SUCCESS
        },
    ))
}
