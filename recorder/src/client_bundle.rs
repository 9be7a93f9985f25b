//! The Python client, embedded in the binary so `ttalloc record -- python ...`
//! needs no pip step: the recorder writes it into its private directory and
//! puts that directory first on `PYTHONPATH`.

use std::fs;
use std::io;
use std::path::Path;

/// `clients/python/ttalloc/__init__.py`.
pub const PYTHON_CLIENT: &str = include_str!("../../clients/python/ttalloc/__init__.py");

/// Writes the `ttalloc` package into `dir` (creating `dir/ttalloc/__init__.py`).
pub fn install(dir: &Path) -> io::Result<()> {
    let pkg = dir.join("ttalloc");
    fs::create_dir_all(&pkg)?;
    fs::write(pkg.join("__init__.py"), PYTHON_CLIENT)
}
