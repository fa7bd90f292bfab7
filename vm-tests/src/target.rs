//! A target kernel: one entry of the kernel cache that `scripts/setup` fills.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;

use patchgen::build::build_root::BuildRoot;

use crate::{HarnessError, Result};

/// A kernel cache entry: vmlinuz, config, kbuild headers and prepared source.
#[derive(Debug, Clone)]
pub struct Target {
    /// Kernel release, e.g. `6.1.0-50-amd64`.
    pub release: String,
    /// The cache entry's directory.
    pub dir: PathBuf,
}

impl Target {
    /// The target named by `SUTURE_KERNEL`, else the pinned default of
    /// `kernels/default.env` (built in), in `SUTURE_CACHE` (default `~/.cache/suture`).
    pub fn from_env() -> Result<Self> {
        let release = match std::env::var("SUTURE_KERNEL") {
            Ok(r) if !r.is_empty() => r,
            _ => default_release()?,
        };
        Self::open(&release)
    }

    /// The cache entry of `release`; an error says to run `scripts/setup`.
    pub fn open(release: &str) -> Result<Self> {
        let dir = cache_dir().join("kernels").join(release);
        if !dir.join(".done").is_file() {
            return Err(HarnessError::NoKernelCache {
                release: release.to_string(),
                path: dir,
            });
        }
        Ok(Self {
            release: release.to_string(),
            dir,
        })
    }

    /// The kernel image to boot.
    pub fn vmlinuz(&self) -> PathBuf {
        self.dir.join("vmlinuz")
    }

    /// kbuild-ready headers for out-of-tree modules.
    pub fn headers(&self) -> PathBuf {
        self.dir.join("headers")
    }

    /// The configured and prepared kernel source.
    pub fn source(&self) -> PathBuf {
        self.dir.join("source")
    }

    /// Where the target's toolchain runs when the host does not have the
    /// kernel's compiler (Debian 13's gcc-14 on Debian 12): the cache
    /// entry's `buildroot`, else none (the host).
    pub fn build_root(&self) -> Option<BuildRoot> {
        BuildRoot::of_cache_entry(&self.dir)
    }

    /// A command of the target's toolchain (`make`, the compiler): in its
    /// build root when it has one, as patchgen runs them.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        match self.build_root() {
            Some(root) => root.command(program),
            None => Command::new(program),
        }
    }
}

/// The kernel cache, where scripts/setup and patchgen put it.
fn cache_dir() -> PathBuf {
    patchgen::build::target::cache_dir()
}

/// The pinned default kernel of `kernels/default.env`, as built in.
fn default_release() -> Result<String> {
    pinned_release("SUTURE_DEFAULT_KERNEL")
}

/// The release `kernels/default.env` (built in) pins under `key`, e.g.
/// `SUTURE_KERNEL_6_12` for the 6.12 line.
pub fn pinned_release(key: &'static str) -> Result<String> {
    crate::embedded::DEFAULT_ENV
        .lines()
        .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim().to_string())
        .ok_or_else(|| HarnessError::Io {
            what: "no such pinned kernel (KEY=release line) in the built-in",
            path: PathBuf::from(format!("kernels/default.env: {key}")),
            source: std::io::Error::from(std::io::ErrorKind::InvalidData),
        })
}
