//! README.md's examples are part of the suite: every `ttalloc ...` command
//! of its shell blocks, and every inline one that names what it works on, is
//! run against a recording of the bundled accumulation workload and must
//! succeed. Synopses (`[--flag]`, `...`, alternatives) and programs that are
//! placeholders (`python my_test.py`) are not examples; `serve` runs until
//! Ctrl-C and is left to its own tests.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ttalloc");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `ttalloc ...` commands of README.md, in order, each once: shell-block
/// lines (comments dropped, `a && b` split, `./target/release/ttalloc`
/// spelled `ttalloc`) and inline code spans with a positional argument.
fn examples(readme: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |cmd: &str| {
        let cmd = cmd.trim().trim_start_matches("./target/release/");
        if cmd.starts_with("ttalloc ") && !out.iter().any(|c| c == cmd) {
            out.push(cmd.to_owned());
        }
    };
    let mut in_shell = false;
    for line in readme.lines() {
        if line.starts_with("```") {
            in_shell = line == "```sh";
            continue;
        }
        if in_shell {
            let code = line.split(" # ").next().unwrap_or("");
            code.split("&&").for_each(&mut add);
        } else {
            for span in line.split('`').skip(1).step_by(2) {
                let positional = span.split_whitespace().skip(2).any(|w| !w.starts_with('-'));
                if positional {
                    add(span);
                }
            }
        }
    }
    out
}

/// Arguments that run `cmd` here, or why it is not a runnable example.
fn arguments(cmd: &str, trace: &Path, outputs: &Path) -> Result<Vec<String>, String> {
    if cmd.contains(['[', '|']) || cmd.contains("...") {
        return Err("a synopsis".into());
    }
    let words: Vec<&str> = cmd.split_whitespace().skip(1).collect();
    if words.first() == Some(&"serve") {
        return Err("serve runs until Ctrl-C".into());
    }
    let graph = repo().join("corpora/graphs/add_old_string_params.json");
    let mut args = Vec::new();
    let mut program = false;
    for (i, w) in words.iter().enumerate() {
        let after_o = i > 0 && words[i - 1] == "-o";
        let placeholder = w.len() > 1 && w.chars().all(|c| c.is_ascii_uppercase() || c == '_');
        let arg = if ["TRACE", "BEFORE", "AFTER", "IN"].contains(w) {
            trace.display().to_string()
        } else if placeholder {
            return Err(format!("{w} is a placeholder"));
        } else if after_o {
            outputs.join(w).display().to_string()
        } else if program && w.ends_with(".py") {
            // The recorded program must be one of the repository's.
            let path = repo().join(w);
            if !path.exists() {
                return Err(format!("{w} is a placeholder program"));
            }
            path.display().to_string()
        } else if w.ends_with(".zst") {
            trace.display().to_string()
        } else if w.eq_ignore_ascii_case("graph.json") {
            graph.display().to_string()
        } else {
            w.to_string()
        };
        program |= *w == "--";
        args.push(arg);
    }
    Ok(args)
}

#[test]
fn every_runnable_readme_example_succeeds() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("accumulation.zst");
    let rec = Command::new(BIN)
        .arg("record")
        .arg("-o")
        .arg(&trace)
        .args(["--", "python3"])
        .arg(repo().join("corpora/workloads/accumulation/workload.py"))
        .output()
        .expect("run ttalloc record");
    assert!(
        rec.status.success(),
        "{}",
        String::from_utf8_lossy(&rec.stderr)
    );

    let mut ran = Vec::new();
    let mut failures = Vec::new();
    for (i, cmd) in examples(&readme).iter().enumerate() {
        // Each example in its own directory: outputs never clash.
        let dir = tmp.path().join(format!("example-{i}"));
        std::fs::create_dir(&dir).unwrap();
        let args = match arguments(cmd, &trace, &dir) {
            Ok(args) => args,
            Err(why) => {
                eprintln!("not run ({why}): {cmd}");
                continue;
            }
        };
        let out = Command::new(BIN)
            .args(&args)
            .current_dir(&dir)
            .output()
            .expect("run ttalloc");
        if !out.status.success() {
            failures.push(format!(
                "{cmd}\n  exit {:?}: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        ran.push(cmd.clone());
    }
    assert!(
        failures.is_empty(),
        "README examples that fail:\n{}",
        failures.join("\n")
    );
    // The examples this test exists for must have been found and run.
    for must in [
        "ttalloc record --force -o accumulation.zst -- python3 corpora/workloads/accumulation/workload.py",
        "ttalloc replay accumulation.zst --bisect",
        "ttalloc replay run.zst --set l1_small_size=1M",
        "ttalloc info run.zst",
        "ttalloc import graph.json -o run.zst",
    ] {
        assert!(ran.iter().any(|c| c == must), "not run: {must}\nran: {ran:#?}");
    }
}

#[test]
fn synopses_and_placeholders_are_not_examples() {
    let dir = Path::new("/out");
    let trace = Path::new("/t.zst");
    for cmd in [
        "ttalloc replay TRACE [--arch A]",
        "ttalloc record -o run.zst -- python my_test.py",
        "ttalloc repair IN -o OUT",
        "ttalloc serve -o run.zst",
    ] {
        assert!(arguments(cmd, trace, dir).is_err(), "{cmd}");
    }
    assert_eq!(
        arguments("ttalloc diff BEFORE AFTER --json", trace, dir).unwrap(),
        ["diff", "/t.zst", "/t.zst", "--json"]
    );
    assert_eq!(
        examples("see `ttalloc info` and `ttalloc info x.zst`\n```sh\nttalloc a b # c\n```\n"),
        ["ttalloc info x.zst", "ttalloc a b"]
    );
}
