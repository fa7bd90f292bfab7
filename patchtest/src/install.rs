//! Where an installed `patchtest` finds what it needs outside itself: the
//! `patchd` executable it puts into the guest and the work directory it
//! builds and boots in. Nothing here depends on the checkout patchtest was
//! built in; its guest scripts, its load programs' sources, the rig's
//! `/init` and the companion module's sources are built into the binary.

use std::path::{Path, PathBuf};

/// The environment variable naming the `patchd` executable to use.
pub const PATCHD_ENV: &str = "SUTURE_PATCHD";

/// Where the `suture-patchd` package installs patchd: not on a user's
/// `PATH` on Debian, so looked at last.
pub const INSTALLED_PATCHD: &str = "/usr/sbin/patchd";

/// The environment variable naming the work directory.
pub const WORK_DIR_ENV: &str = "SUTURE_WORK_DIR";

/// Why patchtest cannot find what it needs.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// No `patchd` executable anywhere patchtest looks.
    #[error("cannot find patchd: not given with --patchd, {PATCHD_ENV} is not set, there is no {beside}, none on PATH and no {INSTALLED_PATCHD}; install the suture-patchd package, put patchd beside patchtest or pass --patchd PATH")]
    NoPatchd {
        /// Where it looked beside the running executable.
        beside: String,
    },
    /// `--patchd` or `SUTURE_PATCHD` names something that is not a file.
    #[error("{path} (from {source_of}) is not a patchd executable: no such file")]
    BadPatchd {
        /// The path given.
        path: PathBuf,
        /// `--patchd` or `SUTURE_PATCHD`.
        source_of: &'static str,
    },
    /// No work directory: none set and no home to put the cache in.
    #[error("no work directory: set {WORK_DIR_ENV} (or XDG_CACHE_HOME or HOME)")]
    NoWorkDir,
    /// The run's directory could not be made.
    #[error("cannot create the run directory {path}")]
    RunDir {
        /// The directory.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where one validation builds and boots.
#[derive(Debug, Clone)]
pub struct Places {
    /// Builds shared between runs for the target (the companion module),
    /// under a lock.
    pub build: PathBuf,
    /// This run's own directory: initramfs, serial log, dmesg, report.
    pub run: PathBuf,
    /// The `patchd` executable put into the guest.
    pub patchd: PathBuf,
}

/// The `patchd` to put into the guest: `flag` (`--patchd`), else
/// `$SUTURE_PATCHD`, else a `patchd` beside the running executable, else
/// one on `PATH`, else the package's [`INSTALLED_PATCHD`].
pub fn find_patchd(flag: Option<&Path>) -> Result<PathBuf, SetupError> {
    if let Some(path) = flag {
        return given(path, "--patchd");
    }
    if let Some(path) = std::env::var_os(PATCHD_ENV).filter(|p| !p.is_empty()) {
        return given(Path::new(&path), PATCHD_ENV);
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("patchd")));
    if let Some(path) = beside.as_ref().filter(|p| p.is_file()) {
        return Ok(path.clone());
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("patchd"))
            .find(|p| p.is_file())
    });
    let installed = Path::new(INSTALLED_PATCHD);
    let on_path = on_path.or_else(|| installed.is_file().then(|| installed.to_path_buf()));
    on_path.ok_or_else(|| SetupError::NoPatchd {
        beside: beside.map_or_else(
            || "patchd beside patchtest".to_string(),
            |p| p.display().to_string(),
        ),
    })
}

/// A `patchd` path given by `source_of`, if it is a file.
fn given(path: &Path, source_of: &'static str) -> Result<PathBuf, SetupError> {
    if path.is_file() {
        Ok(path.to_path_buf())
    } else {
        Err(SetupError::BadPatchd {
            path: path.to_path_buf(),
            source_of,
        })
    }
}

/// The work directory: `$SUTURE_WORK_DIR`, else
/// `$XDG_CACHE_HOME/suture/patchtest`, else `~/.cache/suture/patchtest`.
pub fn work_dir() -> Result<PathBuf, SetupError> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var(WORK_DIR_ENV) {
        return Ok(PathBuf::from(dir));
    }
    let cache = var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .ok_or(SetupError::NoWorkDir)?;
    Ok(cache.join("suture").join("patchtest"))
}

/// A new directory of its own for a run named `name` under `work`:
/// `runs/NAME-SECONDS-PID`, so that parallel runs never share one.
pub fn run_dir(work: &Path, name: &str) -> Result<PathBuf, SetupError> {
    let runs = work.join("runs");
    std::fs::create_dir_all(&runs).map_err(|source| SetupError::RunDir {
        path: runs.clone(),
        source,
    })?;
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let dir = runs.join(format!("{name}-{seconds}-{}", std::process::id()));
    std::fs::create_dir(&dir).map_err(|source| SetupError::RunDir {
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}

/// The places of a validation of `release` named `name`: the work
/// directory's `build/RELEASE/` and a new run directory, with `patchd`
/// found by [`find_patchd`].
pub fn places(release: &str, name: &str, patchd: Option<&Path>) -> Result<Places, SetupError> {
    let patchd = find_patchd(patchd)?;
    let work = work_dir()?;
    Ok(Places {
        build: work.join("build").join(release),
        run: run_dir(&work, name)?,
        patchd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patchd_flag_naming_no_file_is_an_error_naming_the_flag() {
        let err = find_patchd(Some(Path::new("/nonexistent/patchd"))).expect_err("no such file");
        assert!(err.to_string().contains("--patchd"), "{err}");
    }

    #[test]
    fn a_run_directory_is_new_and_named_after_the_run() {
        let work = std::env::temp_dir().join(format!("patchtest-runs-{}", std::process::id()));
        let dir = run_dir(&work, "demo").expect("run directory");
        assert!(dir.is_dir() && dir.starts_with(work.join("runs")));
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        assert!(name.starts_with("demo-"), "{name}");
        let _ = std::fs::remove_dir_all(&work);
    }
}
