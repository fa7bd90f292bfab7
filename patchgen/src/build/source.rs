//! Applying a fix to a private copy of the files it touches, and finding the
//! objects of the target build that the fix affects.
//!
//! The cached source tree is never written: each touched file is copied into
//! the build's work directory and the fix is applied there. Compiles then
//! read the copies first (see `compile.rs`).

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use super::{BuildError, KernelTarget};

/// The fix, applied in the work directory.
#[derive(Debug, Clone)]
pub struct AppliedFix {
    /// Root of the patched copies (`<work>/src`), laid out like the tree.
    pub root: PathBuf,
    /// Every file the fix touches, relative to the tree.
    pub files: Vec<PathBuf>,
}

impl AppliedFix {
    /// The fixed build's copy of `source` (a path as kbuild names it),
    /// copied from the tree when the fix does not change it: the fixed
    /// build always compiles from the copy root, so that the files it
    /// `#include`s from its own directory are the fix's (see
    /// [`mirror_directory`]).
    pub fn copy_of(&self, target: &KernelTarget, source: &Path) -> Result<PathBuf, BuildError> {
        let rel = super::kbuild::normalize(source);
        let copy = self.root.join(&rel);
        if copy.is_file() {
            return Ok(copy);
        }
        let from = target.source.join(&rel);
        if let Some(dir) = copy.parent() {
            std::fs::create_dir_all(dir).map_err(|e| BuildError::Io {
                what: "cannot create",
                path: dir.to_path_buf(),
                source: e,
            })?;
        }
        std::fs::copy(&from, &copy).map_err(|e| BuildError::Io {
            what: "cannot copy",
            path: from,
            source: e,
        })?;
        Ok(copy)
    }
}

/// The files a unified diff touches (`-p1` paths).
pub fn touched_files(patch: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let text = crate::input::read_text(patch).map_err(|source| BuildError::Io {
        what: "cannot read the fix",
        path: patch.to_path_buf(),
        source,
    })?;
    let mut files = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("+++ ") else {
            continue;
        };
        let path = rest.split('\t').next().unwrap_or(rest).trim();
        if path == "/dev/null" {
            continue;
        }
        // -p1: drop the first component (a/, b/, or a directory name).
        let rel: PathBuf = Path::new(path).components().skip(1).collect();
        let safe = !rel.as_os_str().is_empty()
            && rel.components().all(|c| matches!(c, Component::Normal(_)));
        if !safe {
            return Err(BuildError::BadPatch {
                patch: patch.to_path_buf(),
                why: format!("'{path}' is not a path inside the kernel tree"),
            });
        }
        files.insert(rel);
    }
    if files.is_empty() {
        return Err(BuildError::BadPatch {
            patch: patch.to_path_buf(),
            why: "it has no '+++ ' file headers: not a unified diff".to_string(),
        });
    }
    Ok(files.into_iter().collect())
}

/// Copies the files the fixes touch into `<work>/src` and applies the fixes
/// there, in order.
pub fn apply(
    target: &KernelTarget,
    patches: &[PathBuf],
    work: &Path,
) -> Result<AppliedFix, BuildError> {
    let root = work.join("src");
    let mut all = BTreeSet::new();
    for patch in patches {
        // patch(1) runs in the copy root: give it an absolute path.
        let patch = &std::path::absolute(patch).map_err(|source| BuildError::Io {
            what: "cannot resolve",
            path: patch.clone(),
            source,
        })?;
        for rel in touched_files(patch)? {
            let from = target.source.join(&rel);
            let to = root.join(&rel);
            if let Some(dir) = to.parent() {
                std::fs::create_dir_all(dir).map_err(|source| BuildError::Io {
                    what: "cannot create",
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
            if from.is_file() && !to.exists() {
                std::fs::copy(&from, &to).map_err(|source| BuildError::Io {
                    what: "cannot copy",
                    path: from.clone(),
                    source,
                })?;
            }
            mirror_directory(target, &rel, &root)?;
            all.insert(rel);
        }
        let out = Command::new("patch")
            .args([
                "-p1",
                "--batch",
                "--forward",
                "--no-backup-if-mismatch",
                "-r",
                "-",
                "-d",
            ])
            .arg(&root)
            .arg("-i")
            .arg(patch)
            .output()
            .map_err(|source| BuildError::Io {
                what: "cannot run patch(1) (install the 'patch' package)",
                path: PathBuf::from("patch"),
                source,
            })?;
        if !out.status.success() {
            return Err(BuildError::PatchDoesNotApply {
                patch: patch.clone(),
                release: target.release.clone(),
                output: String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr),
            });
        }
    }
    Ok(AppliedFix {
        root,
        files: all.into_iter().collect(),
    })
}

/// Copies the C sources and headers beside `rel` in the tree into the
/// copy root (those not there yet), before the fix is applied.
///
/// `#include "x.h"` is looked up first in the directory of the file that
/// includes it, before any search path: a copy of a changed file must find
/// its unchanged neighbours in its own directory, and an unchanged file
/// whose neighbour the fix changes must be compiled from its copy, or the
/// fixed build would silently read the tree's unchanged neighbour.
fn mirror_directory(target: &KernelTarget, rel: &Path, root: &Path) -> Result<(), BuildError> {
    let Some(dir) = rel.parent() else {
        return Ok(());
    };
    let Ok(entries) = std::fs::read_dir(target.source.join(dir)) else {
        // A directory the fix creates.
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let is_code = Path::new(&name)
            .extension()
            .is_some_and(|e| e == "c" || e == "h");
        if !is_code || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let to = root.join(dir).join(&name);
        if to.exists() {
            continue;
        }
        std::fs::copy(entry.path(), &to).map_err(|source| BuildError::Io {
            what: "cannot copy",
            path: entry.path(),
            source,
        })?;
    }
    Ok(())
}

/// What kind of file a fix touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Touched {
    /// A C source: its object.
    Source(PathBuf),
    /// A header: every object that includes it.
    Header(PathBuf),
    /// Documentation and tools: not part of the kernel image.
    Ignored(PathBuf),
}

/// Sorts the touched files; refuses what a live patch cannot carry.
pub fn classify(files: &[PathBuf]) -> Result<Vec<Touched>, BuildError> {
    files
        .iter()
        .map(|f| {
            let s = f.to_string_lossy();
            let ext = f.extension().and_then(|e| e.to_str()).unwrap_or("");
            if s.starts_with("Documentation/")
                || s.starts_with("tools/")
                || s.starts_with("samples/")
            {
                Ok(Touched::Ignored(f.clone()))
            } else if ext == "c" {
                Ok(Touched::Source(f.clone()))
            } else if ext == "h" {
                Ok(Touched::Header(f.clone()))
            } else {
                Err(BuildError::NotCode { file: f.clone() })
            }
        })
        .collect()
}
