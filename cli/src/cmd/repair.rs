//! `ttalloc repair IN -o OUT`: writes a sealed copy of a truncated (or
//! damaged) trace holding every event that can still be read.

use crate::output_file::PendingOutput;
use crate::stdout;
use anyhow::Context;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use ttalloc_replayer::progress::{events_bar, PROGRESS_MIN_EVENTS};
use ttalloc_trace::{repair, TraceReader, WriterOptions};

#[derive(clap::Args)]
pub struct Args {
    /// The truncated or damaged trace.
    pub input: PathBuf,
    /// Where to write the sealed copy.
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// Overwrite OUT if it exists.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let pending = PendingOutput::create(&args.output, args.force)?;
    let reader = TraceReader::open(&args.input)?;
    let truncation = reader.truncation().cloned();
    // A long trace shows its progress (on a terminal only).
    let bar = (std::io::stderr().is_terminal() && reader.num_events() >= PROGRESS_MIN_EVENTS)
        .then(|| events_bar(reader.num_events(), "repairing".to_owned()));
    drop(reader);
    let report = repair::repair_watched(
        &args.input,
        pending.path(),
        WriterOptions::default(),
        &mut |n| {
            if let Some(b) = &bar {
                b.inc(n);
            }
        },
    );
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let report = report.with_context(|| format!("writing {}", args.output.display()))?;
    pending.commit()?;
    let mut text = match truncation {
        Some(t) => format!(
            "{}: truncated at byte {} of {} ({})\n",
            args.input.display(),
            t.valid_up_to,
            t.file_size,
            t.reason
        ),
        None => format!("{}: was already finished\n", args.input.display()),
    };
    text += &format!(
        "wrote {} events ({} blocks) to {}\n",
        report.events_written,
        report.blocks_copied,
        args.output.display()
    );
    if !report.blocks_skipped.is_empty() {
        text += &format!(
            "skipped {} damaged block(s) {:?}: {} events lost\n",
            report.blocks_skipped.len(),
            report.blocks_skipped,
            report.events_lost
        );
    }
    if !report.blocks_untimed.is_empty() {
        text += &format!(
            "kept {} block(s) {:?} whose times are damaged: their events are at each block's first timestamp\n",
            report.blocks_untimed.len(),
            report.blocks_untimed
        );
    }
    stdout::print(&text)?;
    Ok(ExitCode::SUCCESS)
}
