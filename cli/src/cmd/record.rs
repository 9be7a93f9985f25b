//! `ttalloc record [-o TRACE] [--force] [--fail-on KINDS] [--] CMD [ARGS...]`:
//! runs CMD under a recorder session and writes its events into a trace.

use crate::exit;
use crate::fail_on::{self, FailOn};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use ttalloc_model::units::plural;
use ttalloc_recorder::compat::{
    CompatListener, CompatOptions, IngestOutput, Numbering, DEFAULT_SOCKET,
};
use ttalloc_recorder::launcher::{self, LaunchError};
use ttalloc_recorder::stats::{human_bytes, LiveSnapshot};
use ttalloc_recorder::{Session, SessionOptions};
use ttalloc_replayer::ReplayOptions;

#[derive(clap::Args)]
pub struct Args {
    /// Trace to write [default: ttalloc-<UTC timestamp>.zst in the current directory].
    #[arg(short, long, value_name = "TRACE")]
    output: Option<PathBuf>,
    /// Overwrite TRACE if it exists.
    #[arg(long)]
    force: bool,
    /// Replay the trace when the command is done and exit with status 1 when
    /// a finding of these kinds is present: leak, growth, oom, unknown-free,
    /// double-free, divergence, any (the kinds of `ttalloc replay --fail-on`).
    #[arg(long, value_name = "KINDS", value_parser = fail_on::parse)]
    fail_on: Option<FailOn>,
    /// Also listen where tt-metal's allocation client connects (the allocation-server
    /// protocol of allocation_server_poc), so an unmodified tt-metal is recorded too.
    #[arg(long)]
    compat: bool,
    /// Allocation-server socket for --compat.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    compat_socket: PathBuf,
    /// Buffer-type numbering of allocation-server clients: tt-metal (0 DRAM, 1 L1,
    /// 2 SYSTEM_MEMORY, 3 L1_SMALL, 4 TRACE) or python-demo (0 DRAM, 1 L1, 2 L1_SMALL, 3 TRACE).
    #[arg(long, value_name = "NUMBERING", default_value = "tt-metal", value_parser = parse_numbering)]
    compat_types: Numbering,
    /// Clock resolution the trace keeps: timestamps are rounded down to it
    /// (1ns keeps every digit; the digits below 100 ns of a Python client's
    /// stamps are noise that cost most of a trace's bytes). 1ns to 1s.
    #[arg(long, value_name = "TICK", default_value = crate::clock_tick::DEFAULT, value_parser = crate::clock_tick::parse)]
    clock_tick: u64,
    /// Seconds to keep recording processes CMD left running after it exited.
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    grace: f64,
    /// The command to record, with its arguments.
    #[arg(
        value_name = "CMD",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    cmd: Vec<OsString>,
}

fn parse_numbering(s: &str) -> Result<Numbering, String> {
    s.parse()
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // A command that cannot run is bad usage: nothing is recorded, no file is left.
    launcher::resolve(&args.cmd[0]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let output = match args.output.clone() {
        Some(o) => o,
        None => default_output(Path::new("."), SystemTime::now()),
    };
    let argv: Vec<String> = args
        .cmd
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();

    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(10));
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("static template"),
    );
    let warn_bar = bar.clone();
    let mut opts = SessionOptions::new(&output, argv.clone());
    opts.overwrite = args.force;
    opts.writer.clock_tick_ns = args.clock_tick;
    opts.warn = Arc::new(move |m: &str| warn_bar.suspend(|| eprintln!("ttalloc: warning: {m}")));
    let session = Session::start(opts)?;
    let compat = if args.compat {
        let mut copts = CompatOptions::new(&args.compat_socket, args.compat_types);
        let print_bar = bar.clone();
        copts.print = Arc::new(move |s: &str| print_bar.suspend(|| eprintln!("{s}")));
        match CompatListener::start(copts, Arc::new(IngestOutput::new(session.ingest()))) {
            Ok(l) => Some(l),
            Err(e) => {
                let _ = session.finish(Duration::ZERO);
                let _ = std::fs::remove_file(&output);
                return Err(e.into());
            }
        }
    } else {
        None
    };

    let grace = Duration::from_secs_f64(args.grace.max(0.0));
    // The status line is redrawn 10 times a second, only when it is shown.
    let tick = (!bar.is_hidden()).then_some(Duration::from_millis(100));
    let outcome = launcher::run_command(&session, &args.cmd, grace, tick, || {
        bar.set_message(status_line(&session.stats()));
        bar.tick();
    });
    bar.set_message("draining what the processes sent…");
    let compat_report = compat.map(|c| c.stop());
    // CMD and the children it left have exited (or the grace period is over):
    // connections still open get a moment to deliver what is in flight.
    let summary = session.finish(Duration::from_millis(200));
    bar.finish_and_clear();
    let summary = summary.with_context(|| format!("recording into {}", output.display()))?;

    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            // CMD never ran: do not leave an empty trace behind.
            let _ = std::fs::remove_file(&output);
            return match e {
                LaunchError::NotFound(_) | LaunchError::NotExecutable(_) | LaunchError::Empty => {
                    Err(anyhow::anyhow!("{e}"))
                }
                other => Err(anyhow::anyhow!("{other}")),
            };
        }
    };

    let snap = &summary.snapshot;
    let devices = snap.devices.len();
    // After a write failure the counts come from the file: events accepted
    // but never sealed into it are not "recorded".
    let held = summary
        .write_error
        .as_ref()
        .and_then(|_| held_in_file(&output));
    let events = held.as_ref().map_or(summary.events_written, |h| h.0);
    eprintln!(
        "ttalloc: recorded {} from {} on {} into {}",
        plural(events, "event"),
        plural(snap.sources_total, "process"),
        plural(devices as u64, "device"),
        output.display()
    );
    // An empty capture says why, and fails `--fail-on`, instead of passing silently.
    let ttnn_switch = std::env::var(super::empty_capture::TTNN_SWITCH).ok();
    let empty = super::empty_capture::reason(snap, ttnn_switch.as_deref());
    match (&empty, &held) {
        (Some(why), _) => eprintln!("ttalloc: {why}"),
        (None, Some((_, left))) => {
            eprintln!("ttalloc: left behind at the end of what the file holds: {left}")
        }
        (None, None) => eprintln!("ttalloc: left behind at the end: {}", snap.left_behind()),
    }
    if let Some(r) = compat_report {
        eprintln!(
            "ttalloc: allocation-server clients: {}, {}, {}, {}",
            plural(r.connections, "connection"),
            plural(r.messages, "message"),
            plural(r.unknown_frees, "unknown free"),
            plural(r.misframed_connections, "misframed stream")
        );
    }
    if snap.protocol_errors > 0 {
        eprintln!(
            "ttalloc: {} connection(s) were closed because of protocol errors (see warnings above)",
            snap.protocol_errors
        );
    }
    if let Some(err) = &summary.write_error {
        eprintln!("ttalloc: error: writing {} failed: {err}", output.display());
        eprintln!(
            "ttalloc: what was written before the failure is readable: ttalloc info {}",
            output.display()
        );
    } else {
        eprintln!(
            "ttalloc: analyse it with: ttalloc replay {} --bisect",
            output.display()
        );
    }
    if let Some(sig) = outcome.signal {
        eprintln!("ttalloc: the command was killed by signal {sig}");
    }

    if outcome.code != 0 {
        return Ok(ExitCode::from(outcome.code.clamp(1, 255) as u8));
    }
    if summary.write_error.is_some() {
        return Ok(ExitCode::from(exit::BAD_INPUT));
    }
    if let Some(kinds) = &args.fail_on {
        if empty.is_some() {
            eprintln!("ttalloc: --fail-on: the capture holds no device event");
            return Ok(ExitCode::from(exit::FINDINGS));
        }
        if fails(kinds, &output)? {
            return Ok(ExitCode::from(exit::FINDINGS));
        }
    }
    Ok(ExitCode::from(exit::SUCCESS))
}

/// What a trace whose writing failed holds: (events, live bytes at its end
/// per device and type), read back from the file.
fn held_in_file(trace: &Path) -> Option<(u64, String)> {
    let reader = ttalloc_trace::TraceReader::open(trace).ok()?;
    let summary = ttalloc_trace::summary::TraceSummary::compute(&reader).ok()?;
    let parts: Vec<String> = summary
        .devices
        .iter()
        .filter(|d| !d.live_bytes_at_end.is_empty())
        .map(|d| {
            let bytes: Vec<String> = d
                .live_bytes_at_end
                .iter()
                .map(|(bt, b)| format!("{} {bt}", ttalloc_model::units::bytes(*b)))
                .collect();
            format!("device {}: {}", d.device, bytes.join(", "))
        })
        .collect();
    let left = if parts.is_empty() {
        "nothing".to_owned()
    } else {
        parts.join("; ")
    };
    Some((reader.num_events(), left))
}

/// Evaluates `--fail-on` by replaying the sealed trace, so `record` fails on
/// exactly what `ttalloc replay --fail-on` would.
fn fails(kinds: &FailOn, trace: &Path) -> anyhow::Result<bool> {
    let opts = ReplayOptions {
        progress: std::io::stderr().is_terminal(),
        ..ReplayOptions::default()
    };
    let report = ttalloc_replayer::replay_file(trace, &opts)
        .with_context(|| format!("replaying {} for --fail-on", trace.display()))?;
    let lines = fail_on::findings(kinds, &report);
    for line in &lines {
        eprintln!("ttalloc: {line}");
    }
    Ok(!lines.is_empty())
}

fn status_line(s: &LiveSnapshot) -> String {
    format!(
        "recording: {} · {} connected · {} live · DRAM {} · L1 {}",
        plural(s.events, "event"),
        plural(s.sources_connected, "process"),
        plural(s.live_buffers(), "buffer"),
        human_bytes(s.dram()),
        human_bytes(s.l1()),
    )
}

/// `ttalloc-YYYYMMDD-HHMMSS.zst` (UTC) in `dir`, or with `-2`, `-3`, ...
/// appended when that name is taken: two recordings in one second must not
/// clash (and `--force` would overwrite the first).
fn default_output(dir: &Path, now: SystemTime) -> PathBuf {
    let stamp = utc_stamp(now);
    let mut n = 1u32;
    loop {
        let name = if n == 1 {
            format!("ttalloc-{stamp}.zst")
        } else {
            format!("ttalloc-{stamp}-{n}.zst")
        };
        let path = if dir == Path::new(".") {
            PathBuf::from(name)
        } else {
            dir.join(name)
        };
        if !path.exists() && std::fs::symlink_metadata(&path).is_err() {
            return path;
        }
        n += 1;
    }
}

/// `YYYYMMDD-HHMMSS` (UTC).
fn utc_stamp(now: SystemTime) -> String {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = ((secs / 86400) as i64, secs % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn default_names_never_clash_within_one_second() {
        let dir = tempfile::tempdir().unwrap();
        // 2026-12-01 21:41:02 UTC = 1796161262 s after the epoch.
        let t = UNIX_EPOCH + Duration::from_secs(1_796_161_262);
        let first = default_output(dir.path(), t);
        assert_eq!(first, dir.path().join("ttalloc-20261201-214102.zst"));
        std::fs::write(&first, b"x").unwrap();
        let second = default_output(dir.path(), t + Duration::from_millis(300));
        assert_eq!(second, dir.path().join("ttalloc-20261201-214102-2.zst"));
        std::fs::write(&second, b"x").unwrap();
        let third = default_output(dir.path(), t);
        assert_eq!(third, dir.path().join("ttalloc-20261201-214102-3.zst"));
    }
}
