//! `ttalloc cat TRACE [--from N] [--to M] [--jsonl]`: events one per line,
//! with ordinal, timestamp and call site resolved to frames.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use ttalloc_model::buffer_name::StreamNames;
use ttalloc_trace::{render, TraceReader};

#[derive(clap::Args)]
pub struct Args {
    /// The trace file (.zst).
    pub trace: PathBuf,
    /// First event to print (ordinal, from 0).
    #[arg(long, value_name = "N")]
    pub from: Option<u64>,
    /// Stop before this event (ordinal; exclusive).
    #[arg(long, value_name = "M")]
    pub to: Option<u64>,
    /// One JSON object per line (raw timestamps and whole paths).
    #[arg(long)]
    pub jsonl: bool,
    /// Print raw epoch-nanosecond timestamps and whole file paths, instead of
    /// seconds since the first event and paths under the trace's common directory.
    #[arg(long)]
    pub absolute: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let from = args.from.unwrap_or(0);
    let to = args.to.unwrap_or(u64::MAX);
    if from > to {
        anyhow::bail!("--from {from} is after --to {to}");
    }
    let reader = TraceReader::open(&args.trace)?;
    if let Some(t) = reader.truncation() {
        eprintln!(
            "ttalloc: warning: {} is truncated ({}); showing the {} events recovered",
            args.trace.display(),
            t.reason,
            t.events_recovered
        );
    }
    let tables = reader.interner();
    let style = match reader.blocks().first() {
        Some(b) if !args.absolute => render::LineStyle::relative(b.first_ts, tables),
        _ => render::LineStyle::absolute(),
    };
    if !args.jsonl && style.start_ts.is_some() {
        let under = if style.path_prefix.is_empty() {
            String::new()
        } else {
            format!("; files under {}", style.path_prefix)
        };
        eprintln!(
            "ttalloc: times in seconds since the first event{under} (--absolute for raw values)"
        );
    }
    let stdout = std::io::stdout();
    // Lines are ~150 bytes and millions: fewer, larger writes.
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut lines = render::LineRenderer::new(tables, style.clone());
    let mut json_lines = render::JsonLineRenderer::new(tables);
    let mut line = String::new();
    let mut io_err: Option<std::io::Error> = None;
    // Buffers are named as every command names them; a compat free's name
    // needs its alloc's address. What was live at the checkpoint before
    // --from is known from it; the events from there to --from are read
    // for names only (a trace without checkpoints: from --from's block).
    let mut names = StreamNames::default();
    let mut first_block = reader.block_of(from);
    let checkpoint = reader
        .checkpoint_before(from)
        .and_then(|i| reader.checkpoint(i).ok());
    if let Some(cp) = checkpoint {
        for (_, alloc) in &cp.objects {
            names.name(alloc, tables);
        }
        first_block = first_block.min(cp.after_block + 1);
    }
    for i in first_block..reader.blocks().len() {
        if reader.blocks()[i].first_event >= to || io_err.is_some() {
            break;
        }
        reader.visit_block(i, |ord, e| {
            if ord >= to || io_err.is_some() {
                return;
            }
            let name = names.name(&e, tables);
            if ord < from {
                return;
            }
            line.clear();
            if args.jsonl {
                json_lines.write_line(&mut line, ord, &e, name.as_deref());
            } else {
                lines.write_line(&mut line, ord, &e, name.as_deref());
            }
            line.push('\n');
            if let Err(err) = out.write_all(line.as_bytes()) {
                io_err = Some(err);
            }
        })?;
    }
    if let Some(err) = io_err.or_else(|| out.flush().err()) {
        // `ttalloc cat x | head` closes the pipe early: that is not an error.
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            return Ok(ExitCode::SUCCESS);
        }
        return Err(anyhow::Error::new(err).context("writing to standard output"));
    }
    for w in reader.warnings() {
        eprintln!("ttalloc: warning: {w}");
    }
    Ok(ExitCode::SUCCESS)
}
