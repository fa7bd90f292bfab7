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

/// The files a unified diff touches (`-p1` paths).
pub fn touched_files(patch: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let text = std::fs::read_to_string(patch).map_err(|source| BuildError::Io {
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

/// Objects of the target build that include `header`, from kbuild's
/// dependency files (`.<obj>.cmd`), which exist only after a full build.
pub fn objects_including(target: &KernelTarget, header: &Path) -> Result<Vec<PathBuf>, BuildError> {
    if !target.source.join("vmlinux.o").is_file() {
        return Err(BuildError::NoDependencyData {
            header: header.to_path_buf(),
            command: format!(
                "make -C {} CC={} -j$(nproc) vmlinux modules",
                target.source.display(),
                target.cc
            ),
        });
    }
    let needle = header.to_string_lossy().into_owned();
    let mut found = BTreeSet::new();
    let mut stack = vec![target.source.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() && !name.starts_with('.') {
                stack.push(path);
            } else if name.starts_with('.') && name.ends_with(".o.cmd") {
                let Ok(text) = std::fs::read_to_string(&path) else {
                    continue;
                };
                let hit = text.lines().any(|l| {
                    let l = l.trim().trim_end_matches('\\').trim();
                    !l.starts_with("$(wildcard")
                        && (l == needle || l.ends_with(&format!("/{needle}")))
                });
                if hit {
                    let obj = name
                        .trim_start_matches('.')
                        .trim_end_matches(".cmd")
                        .to_string();
                    if let Ok(rel) = dir.join(obj).strip_prefix(&target.source) {
                        found.insert(rel.to_path_buf());
                    }
                }
            }
        }
    }
    Ok(found.into_iter().collect())
}

/// Whether an object is part of the target build, from the kbuild
/// makefiles and the target's `.config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// Built, into vmlinux (`y`) or a module (`m`).
    Built,
    /// Not built with this configuration.
    NotBuilt,
    /// The makefiles say it in a way this reader does not evaluate.
    Unknown,
}

/// Reads the kbuild makefiles as far as needed to tell whether `object`
/// (relative to the tree) is built with the target's configuration: the
/// object must be listed in its directory's `obj-`/`lib-` lines (directly
/// or as part of a composite object) under a condition that holds, and
/// every directory above it must be descended into the same way.
pub fn membership(target: &KernelTarget, object: &Path) -> Membership {
    let config = std::fs::read_to_string(target.source.join(".config")).unwrap_or_default();
    let eval = |cond: &str| -> Option<bool> {
        match cond {
            "y" | "m" => Some(true),
            c => {
                let inner = c.strip_prefix("$(")?.strip_suffix(')')?;
                let name = inner.split(':').next()?;
                if !name.starts_with("CONFIG_") {
                    return None;
                }
                let on = config
                    .lines()
                    .any(|l| l == format!("{name}=y") || l == format!("{name}=m"));
                Some(on)
            }
        }
    };
    let dir = object.parent().unwrap_or(Path::new(""));
    let name = object
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match listed(target, dir, &name, &eval, 0) {
        Membership::Built => reachable(target, dir, &eval),
        other => other,
    }
}

type Eval<'a> = dyn Fn(&str) -> Option<bool> + 'a;

/// The assignments of a directory's kbuild file: (variable, values).
fn assignments(target: &KernelTarget, dir: &Path) -> Vec<(String, Vec<String>)> {
    let text = ["Kbuild", "Makefile"]
        .iter()
        .find_map(|f| std::fs::read_to_string(target.source.join(dir).join(f)).ok())
        .unwrap_or_default();
    let joined = text.replace("\\\n", " ");
    joined
        .lines()
        .filter_map(|line| {
            let line = line.split('#').next().unwrap_or("");
            let (lhs, rhs) = ["+=", ":=", "?=", "="]
                .iter()
                .find_map(|op| line.split_once(op))?;
            let lhs = lhs.trim();
            if lhs.is_empty() || lhs.contains(' ') {
                return None;
            }
            Some((
                lhs.to_string(),
                rhs.split_whitespace().map(str::to_string).collect(),
            ))
        })
        .collect()
}

fn listed(
    target: &KernelTarget,
    dir: &Path,
    name: &str,
    eval: &Eval<'_>,
    depth: u32,
) -> Membership {
    if depth > 4 {
        return Membership::Unknown;
    }
    let mut result = Membership::NotBuilt;
    for (lhs, values) in assignments(target, dir) {
        if !values.iter().any(|v| v == name) {
            continue;
        }
        let (var, cond) = match lhs.strip_suffix("-objs") {
            Some(comp) => (comp.to_string(), "y".to_string()),
            None => match lhs.split_once('-') {
                Some((v, c)) => (v.to_string(), c.to_string()),
                None => continue,
            },
        };
        if matches!(
            var.as_str(),
            "ccflags" | "CFLAGS" | "subdir" | "always" | "targets" | "extra" | "hostprogs"
        ) {
            continue;
        }
        let verdict = match eval(&cond) {
            Some(false) => Membership::NotBuilt,
            None => Membership::Unknown,
            Some(true)
                if var == "obj"
                    || var == "lib"
                    || var == "core"
                    || var == "drivers"
                    || var == "libs" =>
            {
                Membership::Built
            }
            // Part of a composite object (`var.o`) or of a list used as
            // `$(var-y)`: that must be built.
            Some(true) => match listed(target, dir, &format!("{var}.o"), eval, depth + 1) {
                Membership::NotBuilt => {
                    listed(target, dir, &format!("$({var}-y)"), eval, depth + 1)
                }
                other => other,
            },
        };
        match verdict {
            Membership::Built => return Membership::Built,
            Membership::Unknown => result = Membership::Unknown,
            Membership::NotBuilt => {}
        }
    }
    result
}

/// Whether kbuild descends into `dir`: listed as `sub/` in its parent's
/// kbuild file (or the top-level Kbuild and the arch Makefile).
/// Whether the top-level Makefile puts `entry` (`lib/`) into vmlinux
/// through `core-y`, `drivers-y` or `libs-y` rather than the top-level
/// Kbuild's `obj-y`.
fn top_makefile_lists(target: &KernelTarget, entry: &str) -> bool {
    let text = std::fs::read_to_string(target.source.join("Makefile")).unwrap_or_default();
    let joined = text.replace("\\\n", " ");
    joined.lines().any(|line| {
        let Some((lhs, rhs)) = line.split_once(":=").or_else(|| line.split_once("+=")) else {
            return false;
        };
        matches!(lhs.trim(), "core-y" | "drivers-y" | "libs-y")
            && rhs.split_whitespace().any(|v| v == entry)
    })
}

fn reachable(target: &KernelTarget, dir: &Path, eval: &Eval<'_>) -> Membership {
    let mut cur = dir.to_path_buf();
    while let (Some(parent), Some(leaf)) = (cur.parent().map(Path::to_path_buf), cur.file_name()) {
        let entry = format!("{}/", leaf.to_string_lossy());
        let full = format!("{}/", cur.display());
        let in_parent = listed(target, &parent, &entry, eval, 0);
        let verdict = if parent.as_os_str().is_empty() {
            // Top level: the tree's Kbuild (obj-y += fs/ ...); arch/x86 is
            // listed as arch/$(SRCARCH)/.
            if cur == Path::new("arch") || top_makefile_lists(target, &entry) {
                Membership::Built
            } else {
                in_parent
            }
        } else if in_parent == Membership::NotBuilt {
            // Arch makefiles list their directories by full path.
            match listed(target, Path::new("arch/x86"), &full, eval, 0) {
                Membership::NotBuilt
                    if cur.starts_with("arch/x86") && parent == Path::new("arch") =>
                {
                    Membership::Built
                }
                other => other,
            }
        } else {
            in_parent
        };
        match verdict {
            Membership::Built => {}
            other => {
                if cur.starts_with("arch") && !cur.starts_with("arch/x86") {
                    return Membership::NotBuilt;
                }
                return other;
            }
        }
        cur = parent;
    }
    Membership::Built
}
