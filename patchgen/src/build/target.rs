//! The target kernel of a build: a kernel cache entry from `scripts/setup`
//! (source configured and prepared, kbuild headers, identity), or explicit
//! paths.

use crate::kernel_line::KernelLine;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::build_root::BuildRoot;
use super::BuildError;

/// Everything a build needs to know about its target kernel.
#[derive(Debug, Clone)]
pub struct KernelTarget {
    /// Kernel release, e.g. `6.1.0-50-amd64`.
    pub release: String,
    /// Debian package version, when known.
    pub package_version: Option<String>,
    /// GNU build-id of the target's vmlinux (hex).
    pub build_id: String,
    /// Configured and prepared source tree (never modified by a build).
    pub source: PathBuf,
    /// kbuild headers for out-of-tree modules.
    pub headers: PathBuf,
    /// The compiler the kernel was built with (`gcc-12`).
    pub cc: String,
    /// The kernel image (bzImage), whose kallsyms tables give the exact
    /// `/proc/kallsyms` of the kernel.
    pub image: Option<PathBuf>,
    /// The `vmlinux` with its symbol table (Debian's `-dbg` package), when
    /// one was found for this release.
    pub debug_vmlinux: Option<PathBuf>,
    /// Where the target's compiler and kbuild run when the host does not
    /// have that compiler (Debian 13's gcc-14 on Debian 12).
    pub build_root: Option<BuildRoot>,
}

impl KernelTarget {
    /// The target's kernel line: what patchgen knows of its layouts.
    pub fn line(&self) -> Result<&'static KernelLine, BuildError> {
        KernelLine::of_release(&self.release).ok_or_else(|| BuildError::UnsupportedLine {
            release: self.release.clone(),
            supported: KernelLine::supported(),
        })
    }

    /// A command of the target's toolchain (`make`, the compiler, `sh`
    /// running a kbuild command line): in its build root if it has one.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        match &self.build_root {
            Some(root) => root.command(program),
            None => Command::new(program),
        }
    }
}

/// The kernel cache directory (`SUTURE_CACHE`, default `~/.cache/suture`).
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SUTURE_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/root/.cache"));
    base.join("suture")
}

impl KernelTarget {
    /// The cache entry of `release`.
    pub fn from_cache(release: &str) -> Result<Self, BuildError> {
        let dir = cache_dir().join("kernels").join(release);
        if !dir.join(".done").is_file() {
            return Err(BuildError::NoKernelCache {
                release: release.to_string(),
                dir,
            });
        }
        let identity =
            std::fs::read_to_string(dir.join("identity")).map_err(|source| BuildError::Io {
                what: "cannot read",
                path: dir.join("identity"),
                source,
            })?;
        let field = |key: &str| {
            identity
                .lines()
                .find_map(|l| l.strip_prefix(key).map(str::to_string))
        };
        let build_id = field("build_id=").ok_or_else(|| BuildError::NoKernelCache {
            release: release.to_string(),
            dir: dir.clone(),
        })?;
        let mut target = Self::explicit(
            release,
            field("version="),
            &build_id,
            &dir.join("source"),
            &dir.join("headers"),
            BuildRoot::of_cache_entry(&dir),
        )?;
        target.image = Some(dir.join("vmlinuz")).filter(|p| p.is_file());
        target.debug_vmlinux = crate::target_symbols::find_debug_vmlinux(&dir, release);
        Ok(target)
    }

    /// A target given by paths.
    pub fn explicit(
        release: &str,
        package_version: Option<String>,
        build_id: &str,
        source: &Path,
        headers: &Path,
        build_root: Option<BuildRoot>,
    ) -> Result<Self, BuildError> {
        if build_id.len() < 16 || !build_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BuildError::BadIdentity {
                what: format!("build-id '{build_id}' is not hex"),
            });
        }
        for (what, p) in [("source tree", source), ("headers", headers)] {
            if !p.join("Makefile").is_file() {
                return Err(BuildError::BadIdentity {
                    what: format!("{what} {} has no Makefile", p.display()),
                });
            }
        }
        let config = std::fs::read_to_string(source.join(".config")).map_err(|source_err| {
            BuildError::Io {
                what: "cannot read the target's configuration",
                path: source.join(".config"),
                source: source_err,
            }
        })?;
        let cc_text = config
            .lines()
            .find_map(|l| l.strip_prefix("CONFIG_CC_VERSION_TEXT="))
            .map(|v| v.trim_matches('"').to_string())
            .ok_or_else(|| BuildError::BadIdentity {
                what: "the target's .config has no CONFIG_CC_VERSION_TEXT".to_string(),
            })?;
        let cc = cc_text
            .split_whitespace()
            .next()
            .unwrap_or("gcc")
            .to_string();
        let target = Self {
            release: release.to_string(),
            package_version,
            build_id: build_id.to_ascii_lowercase(),
            source: source.to_path_buf(),
            headers: headers.to_path_buf(),
            cc,
            image: None,
            debug_vmlinux: None,
            build_root,
        };
        target.check_compiler(&cc_text)?;
        Ok(target)
    }

    /// The compiler on this machine must be the one the kernel was built
    /// with: another one makes different code and a different module ABI.
    fn check_compiler(&self, expected: &str) -> Result<(), BuildError> {
        let out = self.command(&self.cc).arg("--version").output();
        let found = match out {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string(),
            _ => String::new(),
        };
        if found.trim() != expected.trim() {
            return Err(BuildError::CompilerMismatch {
                expected: expected.to_string(),
                found: if found.is_empty() {
                    match &self.build_root {
                        Some(root) => {
                            format!("no {} in the build root {}", self.cc, root.path().display())
                        }
                        None => format!("no {} on this machine", self.cc),
                    }
                } else {
                    found
                },
            });
        }
        Ok(())
    }
}
