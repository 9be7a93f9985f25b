//! Output files that appear whole or not at all: a command writes to a
//! temporary name beside the target and renames it over the target only on
//! success. A failed or interrupted run leaves no partial file that would
//! block the retry, and an existing file is never replaced without `--force`.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};

/// A file being written; dropped without [`PendingOutput::commit`], the
/// temporary file is removed.
pub struct PendingOutput {
    temp: tempfile::TempPath,
    target: PathBuf,
    overwrite: bool,
}

/// The error every command gives for an output that is already there.
pub fn refuse_existing(target: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "{} already exists (use --force to overwrite it, or choose another name with -o)",
        target.display()
    )
}

impl PendingOutput {
    /// Reserves a temporary name in `target`'s directory (so the final rename
    /// stays on one file system). Refuses an existing target unless `overwrite`.
    pub fn create(target: &Path, overwrite: bool) -> anyhow::Result<PendingOutput> {
        if !overwrite && target.exists() {
            return Err(refuse_existing(target));
        }
        if target.is_dir() {
            bail!("{} is a directory", target.display());
        }
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".partial")
            .tempfile_in(dir)
            .with_context(|| format!("cannot create a file in {}", dir.display()))?
            .into_temp_path();
        Ok(PendingOutput {
            temp,
            target: target.to_owned(),
            overwrite,
        })
    }

    /// Where to write meanwhile.
    pub fn path(&self) -> &Path {
        &self.temp
    }

    /// Gives the file its name. Without `overwrite` a target that appeared
    /// meanwhile is kept and this fails (the new file is removed).
    pub fn commit(self) -> anyhow::Result<()> {
        let PendingOutput {
            temp,
            target,
            overwrite,
        } = self;
        let result = if overwrite {
            temp.persist(&target)
        } else {
            temp.persist_noclobber(&target)
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(refuse_existing(&target))
            }
            Err(e) => Err(anyhow::Error::new(e.error))
                .with_context(|| format!("cannot write {}", target.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn the_target_appears_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.zst");
        let pending = PendingOutput::create(&target, false).unwrap();
        std::fs::write(pending.path(), b"whole").unwrap();
        assert!(!target.exists());
        pending.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"whole");
        assert_eq!(names_in(dir.path()), ["out.zst"]);
    }

    #[test]
    fn a_failed_write_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.zst");
        let pending = PendingOutput::create(&target, false).unwrap();
        std::fs::write(pending.path(), b"half").unwrap();
        drop(pending);
        assert!(names_in(dir.path()).is_empty());
    }

    #[test]
    fn an_existing_target_needs_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.zst");
        std::fs::write(&target, b"precious").unwrap();
        let err = PendingOutput::create(&target, false).err().unwrap();
        assert!(err.to_string().contains("--force"), "{err}");
        // One that appears while writing is kept too.
        let other = dir.path().join("late.zst");
        let pending = PendingOutput::create(&other, false).unwrap();
        std::fs::write(&other, b"first").unwrap();
        std::fs::write(pending.path(), b"second").unwrap();
        assert!(pending.commit().is_err());
        assert_eq!(std::fs::read(&other).unwrap(), b"first");
        let pending = PendingOutput::create(&target, true).unwrap();
        std::fs::write(pending.path(), b"new").unwrap();
        pending.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert_eq!(names_in(dir.path()), ["late.zst", "out.zst"]);
    }
}
