//! `ttalloc serve -o TRACE [--compat] [--socket PATH]`: a standalone recorder
//! (drop-in for `allocation_server_poc`) that records every process started
//! with the environment it prints, until Ctrl-C / SIGTERM, then seals the trace.

use crate::stdout;
use anyhow::Context;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use ttalloc_model::units::plural;
use ttalloc_recorder::compat::state::fmt_g;
use ttalloc_recorder::compat::{
    signals, CompatListener, CompatOptions, IngestOutput, Numbering, DEFAULT_SOCKET,
};
use ttalloc_recorder::stats::LiveSnapshot;
use ttalloc_recorder::{Session, SessionOptions, SocketSpec};

#[derive(clap::Args)]
pub struct Args {
    /// Trace to write.
    #[arg(short, long, value_name = "TRACE")]
    output: PathBuf,
    /// Overwrite TRACE if it exists.
    #[arg(long)]
    force: bool,
    /// Native-protocol socket [default: ttalloc-serve-<uid>/ttalloc.sock in the temp directory].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Also listen where tt-metal's allocation client connects (allocation-server protocol).
    #[arg(long)]
    compat: bool,
    /// Allocation-server socket for --compat.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    compat_socket: PathBuf,
    /// Buffer-type numbering of the allocation-server clients: tt-metal (0 DRAM, 1 L1,
    /// 2 SYSTEM_MEMORY, 3 L1_SMALL, 4 TRACE) or python-demo (0 DRAM, 1 L1, 2 L1_SMALL, 3 TRACE).
    #[arg(long, value_name = "NUMBERING", default_value = "tt-metal", value_parser = parse_numbering)]
    compat_types: Numbering,
    /// Clock resolution the trace keeps: timestamps are rounded down to it
    /// (1ns keeps every digit; the digits below 100 ns of a Python client's
    /// stamps are noise that cost most of a trace's bytes). 1ns to 1s.
    #[arg(long, value_name = "TICK", default_value = crate::clock_tick::DEFAULT, value_parser = crate::clock_tick::parse)]
    clock_tick: u64,
    /// Seconds between statistics blocks (the original server printed one every 10 s; 0 = never).
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    stats_interval: f64,
    /// Seconds to let connected processes finish sending after Ctrl-C.
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    grace: f64,
}

fn parse_numbering(s: &str) -> Result<Numbering, String> {
    s.parse()
}

/// A private (0700) directory for the default socket and the bundled Python client.
fn private_dir() -> anyhow::Result<PathBuf> {
    let uid = ttalloc_recorder::compat::current_uid();
    let dir = std::env::temp_dir().join(format!("ttalloc-serve-{uid}"));
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot make {} private", dir.display()))?;
    Ok(dir)
}

/// The original allocation server's statistics block, from the live state.
/// A closed device's leftovers are not current allocations (tt-metal freed
/// them with the device): one line says what outlived it.
fn statistics(s: &LiveSnapshot) -> String {
    let mut out = String::from("\n📊 Current Statistics:\n");
    let mut active = 0;
    for (dev, d) in &s.devices {
        let total = d.total();
        if d.closed {
            if d.live_buffers > 0 {
                out.push_str(&format!(
                    "  Device {dev}: closed; {} ({}) outlived it\n",
                    plural(d.live_buffers, "buffer"),
                    ttalloc_model::units::bytes(total)
                ));
            }
            continue;
        }
        active += d.live_buffers;
        if total > 0 || d.live_buffers > 0 {
            let dram = d.dram();
            let l1 = d.bytes(ttalloc_model::BufferType::L1);
            out.push_str(&format!("  Device {dev}:\n"));
            out.push_str(&format!("    Buffers: {}\n", d.live_buffers));
            out.push_str(&format!(
                "    DRAM: {dram} bytes ({} KB)\n",
                fmt_g(dram as f64 / 1024.0)
            ));
            out.push_str(&format!(
                "    L1: {l1} bytes ({} KB)\n",
                fmt_g(l1 as f64 / 1024.0)
            ));
            out.push_str(&format!("    Total: {total} bytes\n"));
        }
    }
    out.push_str(&format!("  Active allocations: {active}"));
    out
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    signals::install().context("cannot install the Ctrl-C handler")?;
    let dir = private_dir()?;
    let socket = args
        .socket
        .clone()
        .unwrap_or_else(|| dir.join("ttalloc.sock"));
    // One client copy per serve: another serve may be running with its own socket.
    let client_dir = dir.join(format!("python-{}", std::process::id()));
    ttalloc_recorder::client_bundle::install(&client_dir).with_context(|| {
        format!(
            "cannot write the Python client into {}",
            client_dir.display()
        )
    })?;

    let mut argv = vec!["ttalloc".to_owned(), "serve".to_owned()];
    argv.extend(std::env::args().skip(2));
    let mut opts = SessionOptions::new(&args.output, argv);
    opts.overwrite = args.force;
    opts.writer.clock_tick_ns = args.clock_tick;
    opts.socket = SocketSpec::Path(socket.clone());
    let session = match Session::start(opts) {
        Ok(s) => s,
        Err(e) => {
            clean_up(&dir, &client_dir);
            return Err(anyhow::Error::new(e).context(format!(
                "cannot start recording into {}",
                args.output.display()
            )));
        }
    };

    let compat = if args.compat {
        let mut copts = CompatOptions::new(&args.compat_socket, args.compat_types);
        copts.print = Arc::new(stdout::print_or_remember);
        let output = Arc::new(IngestOutput::new(session.ingest()));
        match CompatListener::start(copts, output) {
            Ok(l) => Some(l),
            Err(e) => {
                let _ = session.finish(Duration::ZERO);
                let _ = fs::remove_file(&args.output);
                clean_up(&dir, &client_dir);
                return Err(e.into());
            }
        }
    } else {
        None
    };

    stdout::print_or_remember(&format!(
        "🚀 ttalloc serve: recording into {}",
        args.output.display()
    ));
    stdout::print_or_remember(&format!(
        "   native socket: {}",
        session.socket_path().display()
    ));
    if let Some(c) = &compat {
        stdout::print_or_remember(&format!(
            "   allocation-server socket: {} (buffer types: {})",
            c.socket_path().display(),
            args.compat_types.name()
        ));
    }
    stdout::print_or_remember("   Run the programs to record with:");
    stdout::print_or_remember(&format!(
        "     export TTALLOC_SOCKET={}",
        shell_quote(session.socket_path())
    ));
    stdout::print_or_remember("     export TT_ALLOC_TRACKING_ENABLED=1");
    // Prepended in the user's own shell: their PYTHONPATH there is kept.
    stdout::print_or_remember(&format!(
        "     export PYTHONPATH={}${{PYTHONPATH:+:$PYTHONPATH}}",
        shell_quote(&client_dir)
    ));
    // pytest loads the plugin that makes each test a cycle (other programs
    // ignore the variable); appended so the user's own plugins still load.
    stdout::print_or_remember(&format!(
        "     export PYTEST_PLUGINS=${{PYTEST_PLUGINS:+$PYTEST_PLUGINS,}}{}",
        ttalloc_recorder::session::PYTEST_PLUGIN
    ));
    stdout::print_or_remember("   Press Ctrl+C to stop and seal the trace.");

    let interval =
        (args.stats_interval > 0.0).then(|| Duration::from_secs_f64(args.stats_interval));
    // Sleep until Ctrl-C/SIGTERM (the handler wakes us) or the next
    // statistics block is due.
    let mut next_stats = interval.map(|iv| Instant::now() + iv);
    loop {
        let timeout = next_stats.map(|t| t.saturating_duration_since(Instant::now()));
        if signals::wait_for_stop(timeout) {
            break;
        }
        if let (Some(t), Some(iv)) = (next_stats, interval) {
            if Instant::now() >= t {
                next_stats = Some(Instant::now() + iv);
                stdout::print_or_remember(&statistics(&session.stats()));
            }
        }
    }
    stdout::print_or_remember(&format!(
        "\n🛑 stopping: draining what clients sent and sealing {}",
        args.output.display()
    ));
    let compat_report = compat.map(|c| c.stop());
    let summary = session
        .finish(Duration::from_secs_f64(args.grace.max(0.0)))
        .with_context(|| format!("recording into {}", args.output.display()))?;
    clean_up(&dir, &client_dir);
    stdout::print_or_remember(&statistics(&summary.snapshot));
    stdout::print_or_remember(&format!(
        "ttalloc: recorded {} from {} into {}",
        plural(summary.events_written, "event"),
        plural(summary.snapshot.sources_total, "process"),
        args.output.display()
    ));
    if let Some(r) = compat_report {
        stdout::print_or_remember(&format!(
            "ttalloc: allocation-server clients: {}, {}, {}, {}",
            plural(r.connections, "connection"),
            plural(r.messages, "message"),
            plural(r.unknown_frees, "unknown free"),
            plural(r.misframed_connections, "misframed stream")
        ));
    }
    stdout::print_or_remember(&format!(
        "ttalloc: left behind at the end: {}",
        summary.snapshot.left_behind()
    ));
    if let Some(e) = &summary.write_error {
        anyhow::bail!(
            "writing {} failed: {e} (what was sealed before is readable)",
            args.output.display()
        );
    }
    stdout::print_or_remember(&format!(
        "ttalloc: analyse it with: ttalloc replay {} --bisect",
        args.output.display()
    ));
    // Recording went on whatever happened to standard output; now say so.
    stdout::failure()?;
    Ok(ExitCode::SUCCESS)
}

/// Removes this serve's client copy, and the private directory when no
/// other serve uses it any more (remove_dir fails on a non-empty one).
fn clean_up(dir: &Path, client_dir: &Path) {
    let _ = fs::remove_dir_all(client_dir);
    let _ = fs::remove_dir(dir);
}

fn shell_quote(p: &Path) -> String {
    let s = p.display().to_string();
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-:+=,".contains(c))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
