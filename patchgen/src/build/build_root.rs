//! The build root of a target whose compiler the host does not have: a
//! minimal Debian root of the kernel's own release (Debian 13's gcc-14 on a
//! Debian 12 machine), made by `scripts/setup` and linked from the kernel
//! cache entry as `buildroot`. Every compile and kbuild step of such a
//! target runs in it, through bubblewrap.
//!
//! Inside, the operating system (`/usr`, `/etc`, `/var`, ...) is the build
//! root's and every other top-level directory of the host (`/root`,
//! `/home`, `/tmp`, `/work`, ...) is the host's at the same path, so the
//! cache, the work directories and the paths kbuild records read the same
//! inside and out. `scripts/setup` (`in_root`) applies the same rule.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Top-level directories that belong to the operating system: the build
/// root's own are used, never the host's.
const SYSTEM_DIRS: &[&str] = &[
    "bin", "boot", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "run", "sbin", "sys",
    "usr", "var",
];

/// The search path inside a build root.
const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// A Debian root to run a target's toolchain in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRoot {
    root: PathBuf,
}

impl BuildRoot {
    /// The build root at `root` (a directory holding `usr/bin`).
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    /// The build root of a kernel cache entry, if it has one: the
    /// `buildroot` link that `scripts/setup` makes.
    pub fn of_cache_entry(entry: &Path) -> Option<Self> {
        let link = entry.join("buildroot");
        let root = std::fs::canonicalize(&link).ok()?;
        root.join("usr/bin").is_dir().then(|| Self::new(&root))
    }

    /// Its directory on the host.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// `program` with its arguments to come, run inside the build root.
    /// The working directory set on the returned command is kept inside
    /// (it is a host directory, seen at the same path).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("bwrap");
        cmd.arg("--bind").arg(&self.root).arg("/");
        cmd.args(["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/run"]);
        for dir in host_dirs() {
            cmd.arg("--bind").arg(&dir).arg(&dir);
        }
        cmd.args(["--setenv", "PATH", PATH, "--"]);
        cmd.arg(program);
        cmd
    }
}

/// The host's top-level directories a build root shares: every real
/// directory of `/` but the operating system's.
fn host_dirs() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/") else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| !SYSTEM_DIRS.contains(&n))
        })
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_shares_its_data_directories_not_its_system() {
        let dirs = host_dirs();
        for system in ["/usr", "/etc", "/var", "/proc", "/lib"] {
            assert!(!dirs.contains(&PathBuf::from(system)), "{system}");
        }
        assert!(dirs.contains(&PathBuf::from("/tmp")), "{dirs:?}");
    }

    #[test]
    fn a_command_binds_the_root_first_and_then_runs_the_program() {
        let root = BuildRoot::new(Path::new("/srv/root"));
        let cmd = root.command("make");
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(cmd.get_program(), "bwrap");
        assert_eq!(&args[..3], ["--bind", "/srv/root", "/"]);
        assert_eq!(args.last().map(String::as_str), Some("make"));
        let sep = args.iter().position(|a| a == "--").expect("a -- separator");
        assert_eq!(sep, args.len() - 2);
    }
}
