//! The record of every object kbuild compiles for the target, made once
//! per target from kbuild's dry run and kept in the tree.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::deps::{compute_deps, Deps};
use super::dry_run::dry_run;
use super::store::{read_objects, write_objects, CacheLock};
use super::{normalize, Built};
use crate::build::{BuildError, KernelTarget};

/// Every object kbuild compiles for the target.
#[derive(Debug)]
pub struct Record {
    dir: PathBuf,
    key: String,
    /// In the order kbuild lists them, each once.
    pub objects: Vec<Built>,
    /// Objects by their normalized source.
    by_source: HashMap<PathBuf, Vec<usize>>,
}

impl Record {
    /// The target's record, made on first need (with `progress`).
    pub fn load(target: &KernelTarget, progress: &mut dyn FnMut(&str)) -> Result<Self, BuildError> {
        let dir = target.source.join(".suture-kbuild");
        let key = record_key(target)?;
        let path = dir.join("objects");
        if let Some(record) = Self::read(&dir, &key)? {
            return Ok(record);
        }
        let _lock = CacheLock::take(&dir)?;
        // Another build may have made it while this one waited.
        if let Some(record) = Self::read(&dir, &key)? {
            return Ok(record);
        }
        progress("listing what kbuild builds for the target (make -n, once per target)");
        let objects = dry_run(target)?;
        write_objects(&path, &key, &objects)?;
        Ok(Self::new(dir, key, objects))
    }

    fn new(dir: PathBuf, key: String, objects: Vec<Built>) -> Self {
        let mut by_source: HashMap<PathBuf, Vec<usize>> = HashMap::new();
        for (i, b) in objects.iter().enumerate() {
            by_source.entry(b.source_path()).or_default().push(i);
        }
        Self {
            dir,
            key,
            objects,
            by_source,
        }
    }

    /// The record in `dir` if it is there and made for `key`.
    fn read(dir: &Path, key: &str) -> Result<Option<Self>, BuildError> {
        Ok(read_objects(&dir.join("objects"), key)?
            .map(|objects| Self::new(dir.to_path_buf(), key.to_string(), objects)))
    }

    /// The objects compiled from `source` itself (a path as a fix names
    /// it): one, or several when a file is built twice (into vmlinux and a
    /// module, or into two modules).
    pub fn compiled_from(&self, source: &Path) -> Vec<&Built> {
        self.by_source
            .get(&normalize(source))
            .map(|v| v.iter().filter_map(|&i| self.objects.get(i)).collect())
            .unwrap_or_default()
    }

    /// The dependency record if it has been made (see [`Self::deps`]).
    pub fn deps_if_made(&self) -> Result<Option<Deps>, BuildError> {
        Deps::read(&self.dir.join("deps"), &self.key, self.objects.len())
    }

    /// The objects (indices) whose sources `#include` the C file `file`
    /// (`fs/compat_binfmt_elf.c` includes `binfmt_elf.c`), found by
    /// reading every built source's `#include` lines for its name: seconds,
    /// where the dependency record takes minutes to make. A superset of
    /// the exact answer (a same-named file elsewhere, an include under a
    /// false condition), which costs at most an object compiled for
    /// nothing, never a missed one.
    pub fn includers_of(&self, target: &KernelTarget, file: &Path) -> Vec<usize> {
        let file = normalize(file);
        let Some(name) = file.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for (i, b) in self.objects.iter().enumerate() {
            let source = b.source_path();
            if source == file {
                continue;
            }
            let Ok(text) = std::fs::read(target.source.join(&source)) else {
                continue;
            };
            let text = String::from_utf8_lossy(&text);
            if !text.contains(name.as_str()) {
                continue;
            }
            let includes = text.lines().any(|l| {
                let l = l.trim_start();
                l.starts_with('#') && l.contains("include") && l.contains(name.as_str())
            });
            if includes {
                found.push(i);
            }
        }
        found
    }

    /// Which files each object reads, computed on first need (minutes,
    /// once per target, with `progress`).
    pub fn deps(
        &self,
        target: &KernelTarget,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Deps, BuildError> {
        let path = self.dir.join("deps");
        if let Some(deps) = Deps::read(&path, &self.key, self.objects.len())? {
            return Ok(deps);
        }
        let _lock = CacheLock::take(&self.dir)?;
        if let Some(deps) = Deps::read(&path, &self.key, self.objects.len())? {
            return Ok(deps);
        }
        let deps = compute_deps(target, &self.objects, progress)?;
        deps.write(&path, &self.key)?;
        Ok(deps)
    }
}

/// What makes a record stale: another kernel build or configuration.
fn record_key(target: &KernelTarget) -> Result<String, BuildError> {
    let config = target.source.join(".config");
    let bytes = std::fs::read(&config).map_err(|source| BuildError::Io {
        what: "cannot read the target's configuration",
        path: config,
        source,
    })?;
    let digest = Sha256::digest(&bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("build-id {} config {hex}", target.build_id))
}
