//! `ttalloc export TRACE --format perfetto|folded|svg -o OUT`: the replay in
//! other tools' formats — a Perfetto / chrome://tracing timeline, collapsed
//! stacks for flame-graph tools, or the flame graph itself.

use crate::analysis_args::{check_output, stream_output, write_output, ReplayArgs};
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use ttalloc_replayer::analysis::{analyse_file, AnalysisOptions};
use ttalloc_replayer::export::{folded, perfetto, svg, Metric};
use ttalloc_trace::TraceReader;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Chrome trace-event JSON: counters per device and buffer type, op and cycle slices, findings.
    Perfetto,
    /// Collapsed stacks, `outer;...;inner bytes`, one line per call site.
    Folded,
    /// An interactive SVG flame graph (inferno).
    Svg,
}

#[derive(clap::Args)]
#[command(after_help = "Without -o the export goes to stdout.\n\
Exit status: 0 success, 2 bad usage or unreadable trace.")]
pub struct Args {
    /// The trace file.
    pub trace: PathBuf,
    /// perfetto, folded or svg.
    #[arg(long, value_enum)]
    pub format: Format,
    /// Where to write it (default: stdout).
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Overwrite OUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// For folded and svg: weigh call sites by the bytes still allocated at
    /// the end (leaked) or resident at the highest peak (peak).
    #[arg(long, default_value = "leaked", value_parser = parse_metric)]
    pub metric: Metric,
    /// For perfetto: most points per counter track.
    #[arg(long, default_value_t = 10_000, value_name = "N", value_parser = clap::value_parser!(u64).range(2..=1_000_000))]
    pub points: u64,
    /// For perfetto: most op scopes shown as slices.
    #[arg(long, default_value_t = 200_000, value_name = "N")]
    pub max_ops: usize,
    #[command(flatten)]
    pub replay: ReplayArgs,
}

fn parse_metric(s: &str) -> Result<Metric, String> {
    s.parse()
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    check_output(args.output.as_deref(), args.force)?;
    let opts = args.replay.options(false)?;
    let name = args.trace.display().to_string();
    let reader = TraceReader::open(&args.trace).with_context(|| format!("reading {name}"))?;
    let perfetto = args.format == Format::Perfetto;
    let aopts = AnalysisOptions {
        points: args.points as usize,
        max_ops: if perfetto { args.max_ops } else { 0 },
        max_leak_marks: if perfetto { 1000 } else { 0 },
        // Only the peak needs the replay observed among folded and svg.
        timeline: perfetto || args.metric == Metric::Peak,
    };
    let analysis =
        analyse_file(&reader, &opts, &aopts).with_context(|| format!("replaying {name}"))?;
    let text = match args.format {
        Format::Perfetto => {
            return stream_output(args.output.as_ref(), args.force, |out| {
                perfetto::write_perfetto(&analysis, out)
            })
            .map(|()| ExitCode::SUCCESS);
        }
        Format::Folded => folded::folded(&analysis, args.metric),
        Format::Svg => {
            let what = match args.metric {
                Metric::Leaked => "bytes still allocated at the end",
                Metric::Peak => "bytes resident at the highest peak",
            };
            let svg = svg::svg(&analysis, args.metric, &format!("{name}: {what}"))
                .context("drawing the flame graph")?;
            String::from_utf8(svg).context("inferno wrote an SVG that is not UTF-8")?
        }
    };
    write_output(args.output.as_ref(), &text, args.force)?;
    Ok(ExitCode::SUCCESS)
}
