//! `ttalloc import GRAPH.json -o TRACE [--force] [--json]`: converts a ttnn
//! graph capture (`ttnn.graph.end_graph_capture()` output or an
//! `end_graph_capture_to_file` report) into a trace.

use crate::output_file::PendingOutput;
use crate::stdout;
use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::fmt::Write as _;
use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::UNIX_EPOCH;
use ttalloc_model::units::plural;
use ttalloc_recorder::import::{import_graph, GraphForm, ImportOptions, ImportSummary};
use ttalloc_trace::{TraceHeader, TraceWriter, WriterOptions};

#[derive(clap::Args)]
pub struct Args {
    /// The graph-capture JSON (an array of nodes, or a report object with "graph" and "devices").
    #[arg(value_name = "GRAPH.json")]
    graph: PathBuf,
    /// Trace to write.
    #[arg(short, long, value_name = "TRACE")]
    output: PathBuf,
    /// Overwrite TRACE if it exists.
    #[arg(long)]
    force: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let file =
        File::open(&args.graph).with_context(|| format!("cannot read {}", args.graph.display()))?;
    if file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        bail!(
            "{} is a directory, not a graph-capture JSON file",
            args.graph.display()
        );
    }
    let pending = PendingOutput::create(&args.output, args.force)?;
    // No per-node timestamps in a capture: events are placed from the time
    // the file was written, one nanosecond per node.
    let base_ts = file
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64);
    let graph_name = args.graph.display().to_string();
    let mut header = TraceHeader::new(
        vec!["ttalloc".into(), "import".into(), graph_name.clone()],
        String::new(),
    );
    header.start_time_ns = base_ts;
    let mut writer = TraceWriter::create(pending.path(), header, WriterOptions::default())
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    let opts = ImportOptions {
        base_ts,
        source: format!("ttnn-graph-capture\0{graph_name}"),
        ..Default::default()
    };
    // Progress on stderr, drawn only when it is a terminal.
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stderr_with_hz(10));
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} importing {bytes}/{total_bytes} ({bytes_per_sec}) {wide_bar}",
        )
        .expect("static template"),
    );
    let result = import_graph(
        bar.wrap_read(BufReader::with_capacity(1 << 16, file)),
        &mut writer,
        opts,
    );
    bar.finish_and_clear();
    let finished = writer
        .finish()
        .with_context(|| format!("writing {}", args.output.display()));
    match result {
        Ok(summary) => {
            finished?;
            pending.commit()?;
            if args.json {
                let json = serde_json::to_string_pretty(&summary_json(&args, &summary))?;
                stdout::print(&(json + "\n"))?;
            } else {
                stdout::print(&summary_text(&args, &summary))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        // No partial trace is left behind (it would block the retry): the
        // error names the node and byte offset to fix.
        Err(failure) => bail!(
            "{}: {} (after {} nodes; no trace written)",
            args.graph.display(),
            failure.error,
            failure.partial.nodes
        ),
    }
}

fn mib(b: u64) -> String {
    ttalloc_recorder::stats::human_bytes(b)
}

/// The human summary of an import.
fn summary_text(args: &Args, s: &ImportSummary) -> String {
    let mut out = String::new();
    let form = match s.form {
        GraphForm::Array => "node array",
        GraphForm::Report => "report with device info",
    };
    let _ = writeln!(
        out,
        "imported {} ({form}, {}, {}) into {}: {}",
        args.graph.display(),
        mib(s.bytes),
        plural(s.nodes, "node"),
        args.output.display(),
        plural(s.events, "event")
    );
    let _ = writeln!(out,
        "  ops: {}; buffers allocated: {}, freed: {}; frees of buffers allocated before the capture: {}",
        s.ops, s.buffers_allocated, s.buffers_freed, s.unknown_frees
    );
    let _ = writeln!(
        out,
        "  circular buffers: {} allocated, {} free-all",
        s.cb_allocs, s.cb_free_alls
    );
    let devices: Vec<String> = s.devices.iter().map(|d| d.to_string()).collect();
    let _ = writeln!(
        out,
        "  devices: {}",
        if devices.is_empty() {
            "none".into()
        } else {
            devices.join(", ")
        }
    );
    if s.live_buffers == 0 {
        let _ = writeln!(out, "  left behind at the end of the capture: nothing");
    } else {
        let by_type: Vec<String> = s
            .live_bytes_by_type
            .iter()
            .map(|(t, b)| format!("{t} {}", mib(*b)))
            .collect();
        let _ = writeln!(
            out,
            "  left behind at the end of the capture: {}, {} ({})",
            plural(s.live_buffers, "buffer"),
            mib(s.live_bytes),
            by_type.join(", ")
        );
    }
    if s.error_nodes > 0 {
        let _ = writeln!(
            out,
            "  error nodes (recorded as markers): {}",
            s.error_nodes
        );
    }
    if s.open_scopes > 0 {
        let _ = writeln!(out, "  ops still open at the end: {}", s.open_scopes);
    }
    if !s.unknown_node_types.is_empty() {
        let list: Vec<String> = s
            .unknown_node_types
            .iter()
            .map(|(t, n)| format!("{t} ({n})"))
            .collect();
        let _ = writeln!(out, "  unknown node types (ignored): {}", list.join(", "));
    }
    if s.anomalies > 0 {
        let _ = writeln!(out, "  oddities: {}", s.anomalies);
        for n in &s.notes {
            let _ = writeln!(out, "    {n}");
        }
    }
    let _ = writeln!(
        out,
        "analyse it with: ttalloc replay {}",
        args.output.display()
    );
    out
}

fn summary_json(args: &Args, s: &ImportSummary) -> serde_json::Value {
    serde_json::json!({
        "graph": args.graph.display().to_string(),
        "output": args.output.display().to_string(),
        "form": match s.form { GraphForm::Array => "array", GraphForm::Report => "report" },
        "bytes": s.bytes,
        "nodes": s.nodes,
        "events": s.events,
        "ops": s.ops,
        "buffers_allocated": s.buffers_allocated,
        "buffers_freed": s.buffers_freed,
        "unknown_frees": s.unknown_frees,
        "cb_allocs": s.cb_allocs,
        "cb_free_alls": s.cb_free_alls,
        "error_nodes": s.error_nodes,
        "live_buffers": s.live_buffers,
        "live_bytes": s.live_bytes,
        "live_bytes_by_type": s.live_bytes_by_type.iter().map(|(t, b)| (t.name().to_string(), *b)).collect::<std::collections::BTreeMap<_, _>>(),
        "open_scopes": s.open_scopes,
        "devices": s.devices,
        "unknown_node_types": s.unknown_node_types,
        "anomalies": s.anomalies,
        "notes": s.notes,
    })
}
