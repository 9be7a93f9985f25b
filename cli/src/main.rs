//! The `ttalloc` binary: parses arguments, calls the library crates, prints.

mod analysis_args;
mod block_pages;
mod clock_tick;
mod cmd;
mod exit;
mod fail_on;
mod output_file;
mod stdout;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Decoded trace blocks in huge pages (see `block_pages`).
#[global_allocator]
static ALLOCATOR: block_pages::BlockPages = block_pages::BlockPages;

/// Record and replay device-memory allocations of tt-metal programs, and find
/// what is left behind.
#[derive(Parser)]
#[command(name = "ttalloc", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a command and record its device-memory events into a trace.
    Record(cmd::record::Args),
    /// Run as a standalone recorder (drop-in for allocation_server_poc) until Ctrl-C.
    Serve(cmd::serve::Args),
    /// Convert a ttnn graph-capture JSON file into a trace.
    Import(cmd::import::Args),
    /// Replay a trace through the simulated allocator: leaks, growth, OOM, bisect.
    Replay(cmd::replay::Args),
    /// Write a self-contained HTML report (or a Markdown summary) of a replay.
    Report(cmd::report::Args),
    /// Export a replay for Perfetto, or as a flame graph (folded stacks, SVG).
    Export(cmd::export::Args),
    /// Compare two recordings; --fail-on-regression makes it a CI gate.
    Diff(cmd::diff::Args),
    /// Summarise a trace: version, command, events, devices, peaks, integrity.
    Info(cmd::info::Args),
    /// Print a trace's events, one per line.
    Cat(cmd::cat::Args),
    /// Write a sealed copy of a truncated trace.
    Repair(cmd::repair::Args),
    /// Shrink a trace to the fewest events that still show a finding.
    Minimize(cmd::minimize::Args),
    /// Write a ttnn Python script that makes the trace's buffers again on a device.
    Repro(cmd::repro::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Record(a) => cmd::record::run(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Import(a) => cmd::import::run(a),
        Command::Replay(a) => cmd::replay::run(a),
        Command::Report(a) => cmd::report::run(a),
        Command::Export(a) => cmd::export::run(a),
        Command::Diff(a) => cmd::diff::run(a),
        Command::Info(a) => cmd::info::run(a),
        Command::Cat(a) => cmd::cat::run(a),
        Command::Repair(a) => cmd::repair::run(a),
        Command::Minimize(a) => cmd::minimize::run(a),
        Command::Repro(a) => cmd::repro::run(a),
    };
    exit::finish(result)
}
