//! The Python client, embedded in the binary so `ttalloc record -- python ...`
//! needs no pip step: the recorder writes it into its private directory and
//! puts that directory first on `PYTHONPATH`. Besides the `ttalloc` package
//! it holds a `sitecustomize` that turns on the zero-edit ttnn capture in
//! every Python process (and loads any other `sitecustomize` on the path).

use std::fs;
use std::io;
use std::path::Path;

macro_rules! client_files {
    ($($path:literal),* $(,)?) => {
        /// (path under the client directory, content) of every bundled file.
        pub const PYTHON_CLIENT_FILES: &[(&str, &str)] = &[
            $(($path, include_str!(concat!("../../clients/python/", $path)))),*
        ];
    };
}

client_files!(
    "sitecustomize.py",
    "ttalloc/__init__.py",
    "ttalloc/_connection.py",
    "ttalloc/_events.py",
    "ttalloc/_sites.py",
    "ttalloc/_wire.py",
    "ttalloc/pytest_plugin.py",
    "ttalloc/ttnn_capture/__init__.py",
    "ttalloc/ttnn_capture/capture.py",
    "ttalloc/ttnn_capture/devices.py",
    "ttalloc/ttnn_capture/emit.py",
    "ttalloc/ttnn_capture/graph.py",
    "ttalloc/ttnn_capture/install.py",
    "ttalloc/ttnn_capture/oom.py",
    "ttalloc/ttnn_capture/translate.py",
);

/// Writes the client into `dir`: `dir/sitecustomize.py` and the `dir/ttalloc` package.
pub fn install(dir: &Path) -> io::Result<()> {
    for (path, content) in PYTHON_CLIENT_FILES {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(target, content)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every .py file of the client is bundled: a module left out would make
    /// the capture fail with an ImportError only in recorded processes.
    #[test]
    fn every_client_file_is_bundled() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/python");
        let mut on_disk = Vec::new();
        for dir in [
            root.clone(),
            root.join("ttalloc"),
            root.join("ttalloc/ttnn_capture"),
        ] {
            for entry in fs::read_dir(&dir).unwrap() {
                let p = entry.unwrap().path();
                if p.extension().is_some_and(|e| e == "py") {
                    let rel = p
                        .strip_prefix(&root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned();
                    on_disk.push(rel);
                }
            }
        }
        on_disk.retain(|p| p != "bench_client.py");
        on_disk.sort();
        let mut bundled: Vec<String> = PYTHON_CLIENT_FILES
            .iter()
            .map(|(p, _)| p.to_string())
            .collect();
        bundled.sort();
        assert_eq!(on_disk, bundled);
    }
}
