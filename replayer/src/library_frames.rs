//! Which frames are the user's code and which are libraries', by file path,
//! so that bisect names the user's frame first (issue 13, friction 14).
//!
//! A frame is library code when its file is:
//! - under a `site-packages` or `dist-packages` directory (installed
//!   packages: ttnn's wheel, pytest, pluggy, numpy, ...);
//! - in Python's standard library: under `lib/pythonX.Y/` (or
//!   `lib64/pythonX.Y/`), or a frozen module (`<frozen runpy>`);
//! - in a package that is never the user's even when run from a source
//!   checkout: a directory named `_pytest`, `pluggy` or `ttalloc` (ttalloc's
//!   own client), or `ttnn/ttnn` (tt-metal's source layout of the ttnn package).
//!
//! Everything else (the user's scripts and tests, `<string>` of `python -c`,
//! tt-metal's own tests) is user code.

use ttalloc_model::{InternTables, SiteId};

/// Whether a frame in `file` is library code (see the module documentation).
pub fn is_library_file(file: &str) -> bool {
    if file.starts_with("<frozen ") {
        return true;
    }
    let parts: Vec<&str> = file.split(['/', '\\']).collect();
    parts.iter().enumerate().any(|(i, p)| match *p {
        "site-packages" | "dist-packages" | "_pytest" | "pluggy" | "ttalloc" => {
            // The file's own name is not a directory.
            i + 1 < parts.len()
        }
        "ttnn" => parts.get(i + 1) == Some(&"ttnn") && i + 2 < parts.len(),
        p if p.starts_with("python") && is_version(&p["python".len()..]) => {
            i > 0 && matches!(parts[i - 1], "lib" | "lib64") && i + 1 < parts.len()
        }
        _ => false,
    })
}

/// `3.10`, `2.7`: digits, one dot, digits.
fn is_version(s: &str) -> bool {
    let mut it = s.splitn(2, '.');
    let digits =
        |x: Option<&str>| x.is_some_and(|x| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()));
    digits(it.next()) && digits(it.next())
}

/// Whether the innermost frame of `site` is the user's code (the root, with
/// no frame, is not).
pub fn is_user_site(interner: &InternTables, site: SiteId) -> bool {
    interner
        .node(site)
        .and_then(|n| interner.frame(n.frame))
        .is_some_and(|f| !is_library_file(interner.string(f.file)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_packages_the_stdlib_and_test_runners_are_library_code() {
        for f in [
            "/opt/ttnn-mock/venv/lib/python3.10/site-packages/_pytest/python.py",
            "/opt/ttnn-mock/venv/lib/python3.10/site-packages/pluggy/_callers.py",
            "/usr/lib/python3/dist-packages/numpy/core/numeric.py",
            "/root/.pyenv/versions/3.10.13/lib/python3.10/runpy.py",
            "/usr/lib64/python3.12/threading.py",
            "<frozen runpy>",
            "/tmp/ttalloc-WVnTWT/python/ttalloc/pytest_plugin.py",
            "/home/me/tt-metal/ttnn/ttnn/operations/core.py",
            "/src/pluggy/src/pluggy/_hooks.py",
        ] {
            assert!(is_library_file(f), "{f}");
        }
    }

    #[test]
    fn the_users_scripts_and_tt_metals_tests_are_user_code() {
        for f in [
            "/tmp/names-pt/test_kernels.py",
            "<string>",
            "/home/me/tt-metal/tests/ttnn/unit_tests/test_add.py",
            "/home/me/models/ttnn/ttnn_model.py",
            // A file named like a library directory is not inside one.
            "/home/me/pluggy",
            "/home/me/lib/python3.10",
            "/home/me/lib/python3x/a.py",
        ] {
            assert!(!is_library_file(f), "{f}");
        }
    }
}
