//! Writes a synthetic trace:
//! `synth -n EVENTS -o OUT.zst [--seed S] [--cycles C] [--leak-site I[@CYCLE]] [--reopen] [--level L]`.
//! Prints the generated counts as JSON on stdout.

use std::path::PathBuf;
use std::process::ExitCode;
use ttalloc_corpora::synth::{write_trace, LeakSite, SynthOptions};
use ttalloc_trace::WriterOptions;

fn usage() -> ExitCode {
    eprintln!(
        "usage: synth -n EVENTS -o OUT.zst [--seed S] [--cycles C] [--leak-site SITE[@CYCLE]] [--reopen] [--level L]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut opts = SynthOptions::default();
    let mut wopts = WriterOptions::default();
    let mut out: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or_else(|| format!("{a} needs a value"));
        let r: Result<(), String> = (|| {
            match a.as_str() {
                "-n" | "--events" => {
                    opts.events = val()?
                        .replace('_', "")
                        .parse()
                        .map_err(|e| format!("-n: {e}"))?
                }
                "-o" | "--output" => out = Some(PathBuf::from(val()?)),
                "--seed" => opts.seed = val()?.parse().map_err(|e| format!("--seed: {e}"))?,
                "--cycles" => opts.cycles = val()?.parse().map_err(|e| format!("--cycles: {e}"))?,
                "--devices" => {
                    opts.devices = val()?.parse().map_err(|e| format!("--devices: {e}"))?
                }
                "--reopen" => opts.reopen_devices = true,
                "--level" => wopts.level = val()?.parse().map_err(|e| format!("--level: {e}"))?,
                "--leak-site" => {
                    let v = val()?;
                    let (site, from) = v.split_once('@').unwrap_or((&v, "1"));
                    opts.leak_site = Some(LeakSite {
                        site: site.parse().map_err(|e| format!("--leak-site: {e}"))?,
                        from_cycle: from.parse().map_err(|e| format!("--leak-site: {e}"))?,
                    });
                }
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown argument {other}")),
            }
            Ok(())
        })();
        if let Err(e) = r {
            if !e.is_empty() {
                eprintln!("synth: {e}");
            }
            return usage();
        }
    }
    let Some(out) = out else { return usage() };
    let t = std::time::Instant::now();
    match write_trace(&out, &opts, wopts) {
        Ok(stats) => {
            let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
            eprintln!(
                "synth: wrote {} events to {} ({} bytes, {:.2} bytes/event) in {:.2?}",
                stats.events,
                out.display(),
                size,
                size as f64 / stats.events.max(1) as f64,
                t.elapsed()
            );
            println!("{}", stats.to_json());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("synth: {e}");
            ExitCode::from(2)
        }
    }
}
