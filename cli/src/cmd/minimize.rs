//! `ttalloc minimize TRACE -o OUT.zst`: the smallest sub-trace that still
//! shows a finding (1-minimal), with a header saying where it came from.

use crate::stdout;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use ttalloc_replayer::minimize::{minimize_file, FindingKind, MinimizeOptions};

#[derive(clap::Args)]
#[command(after_help = "\
The finding kept is, by default, the trace's most severe one: an out-of-memory, \
else a leak at the bisect site, else growth, unknown-free, double-free, cb-clash, divergence. \
\"The same finding\" means the same kind, buffer type and call site (and request size for \
an out-of-memory; --exact adds tt-metal's message). A leak must be a buffer that leaked in TRACE.\n\n\
Exit status: 0 the finding was kept, 2 bad usage, unreadable or truncated TRACE, or no such finding.")]
pub struct Args {
    /// The trace to minimise.
    pub trace: PathBuf,
    /// Where to write the minimised trace.
    #[arg(short, long, value_name = "OUT.zst")]
    pub output: PathBuf,
    /// The finding kind to keep: oom, leak, growth, unknown-free, double-free, cb-clash, divergence.
    #[arg(long, value_name = "KIND", value_parser = parse_kind)]
    pub keep: Option<FindingKind>,
    /// Only a finding whose call stack has a frame of this function.
    #[arg(long, value_name = "FUNCTION")]
    pub site: Option<String>,
    /// Also keep tt-metal's exact out-of-memory message.
    #[arg(long)]
    pub exact: bool,
    /// Print {original_events, kept_events, replays, finding} as JSON.
    #[arg(long)]
    pub json: bool,
    /// Overwrite OUT if it exists.
    #[arg(long)]
    pub force: bool,
}

fn parse_kind(s: &str) -> Result<FindingKind, String> {
    s.parse()
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.output.exists() && !args.force {
        anyhow::bail!(
            "{} already exists (use --force to overwrite it)",
            args.output.display()
        );
    }
    if let (Ok(a), Ok(b)) = (args.trace.canonicalize(), args.output.canonicalize()) {
        anyhow::ensure!(
            a != b,
            "{}: output is the input file",
            args.output.display()
        );
    }
    let opts = MinimizeOptions {
        keep: args.keep,
        site_function: args.site.clone(),
        exact: args.exact,
        ..MinimizeOptions::default()
    };
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} minimising: {msg}") {
            bar.set_style(style);
        }
        bar
    });
    let progress = bar.clone().map(|b| {
        Box::new(move |replays: u32, events: usize| {
            b.set_message(format!("replay {replays} ({events} events)"));
            b.tick();
        }) as Box<dyn FnMut(u32, usize)>
    });
    let result = minimize_file(&args.trace, &args.output, &opts, progress)
        .with_context(|| format!("minimising {}", args.trace.display()));
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let m = result?;
    for w in &m.warnings {
        eprintln!("ttalloc: warning: {w}");
    }
    let text = if args.json {
        serde_json::json!({
            "original_events": m.original_events,
            "kept_events": m.kept_events,
            "replays": m.replays,
            "finding": m.finding,
            "kind": m.kind,
        })
        .to_string()
            + "\n"
    } else {
        format!(
            "kept {} of {} events ({} replays): {}\nwrote {}\n",
            m.kept_events,
            m.original_events,
            m.replays,
            m.finding,
            args.output.display()
        )
    };
    stdout::print(&text)?;
    Ok(ExitCode::SUCCESS)
}
