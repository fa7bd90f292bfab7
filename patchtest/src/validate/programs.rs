//! The default load's programs: small C exercisers of kernel paths that a
//! busybox shell cannot reach (userfaultfd, CPU-time timers, robust
//! futexes, ptrace, keys, AF_ALG, CPU hotplug, ...), run by
//! `patchtest/guest/load.sh` from the guest's `/suture/validate/bin/`.
//!
//! Like the guest scripts, their sources are built into patchtest, so that
//! an installed patchtest needs no checkout; they are compiled on the host
//! at run time as the rig compiles its own guest programs
//! (`vm-tests/src/programs.rs`): statically (the guest has busybox and no C
//! library), by `gcc-12` (which `scripts/setup` installs) or else `gcc`,
//! once per set of sources into the build directory of the target.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::Digest;
use vm_tests::{io_err, GuestFile, HarnessError, Result};

/// The programs' sources by their path in the checkout: a shared header
/// and one program per `.c` file, named after it.
pub const SOURCES: &[(&str, &[u8])] = &[
    (
        "patchtest/guest/programs/load.h",
        include_bytes!("../../guest/programs/load.h"),
    ),
    (
        "patchtest/guest/programs/load-crypto.c",
        include_bytes!("../../guest/programs/load-crypto.c"),
    ),
    (
        "patchtest/guest/programs/load-fs.c",
        include_bytes!("../../guest/programs/load-fs.c"),
    ),
    (
        "patchtest/guest/programs/load-kernel.c",
        include_bytes!("../../guest/programs/load-kernel.c"),
    ),
    (
        "patchtest/guest/programs/load-mm.c",
        include_bytes!("../../guest/programs/load-mm.c"),
    ),
    (
        "patchtest/guest/programs/load-net.c",
        include_bytes!("../../guest/programs/load-net.c"),
    ),
    (
        "patchtest/guest/programs/load-tty.c",
        include_bytes!("../../guest/programs/load-tty.c"),
    ),
];

/// Where the programs are in the guest.
pub const GUEST_DIR: &str = "/suture/validate/bin";

/// The compilers tried, in order.
const COMPILERS: &[&str] = &["gcc-12", "gcc"];

/// The flags of every program (those of the rig's guest programs).
const FLAGS: &[&str] = &["-static", "-O2", "-Wall", "-Wextra", "-Werror", "-pthread"];

/// The program names: the `.c` files' stems.
pub fn names() -> Vec<&'static str> {
    SOURCES
        .iter()
        .filter_map(|(path, _)| path.rsplit('/').next()?.strip_suffix(".c"))
        .collect()
}

/// Compiles the programs under `build/load-programs/` (once for a set of
/// sources and compiler: a directory per digest of both) and returns them
/// as guest files in [`GUEST_DIR`].
pub fn build(build: &Path) -> Result<Vec<GuestFile>> {
    let cc = compiler()?;
    let mut digest = sha2::Sha256::new();
    digest.update(cc.as_bytes());
    digest.update(FLAGS.join(" ").as_bytes());
    for (path, bytes) in SOURCES {
        digest.update(path.as_bytes());
        digest.update(bytes.len().to_le_bytes());
        digest.update(bytes);
    }
    let digest: String = digest.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let root = build.join("load-programs");
    let dir = root.join(&digest);
    if !names().iter().all(|n| dir.join(n).is_file()) {
        compile_into(&cc, &root, &dir)?;
    }
    names()
        .into_iter()
        .map(|name| {
            let path = dir.join(name);
            Ok(GuestFile {
                path: format!("{GUEST_DIR}/{name}"),
                data: std::fs::read(&path).map_err(io_err("cannot read", &path))?,
                mode: 0o755,
            })
        })
        .collect()
}

/// Compiles every program in a directory of its own under `root`, then
/// renames it to `dir`: parallel runs never see a half-built set.
fn compile_into(cc: &str, root: &Path, dir: &Path) -> Result<()> {
    let tmp = root.join(format!(".build-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(io_err("cannot create", &tmp))?;
    for (path, bytes) in SOURCES {
        let file = tmp.join(path.rsplit('/').next().unwrap_or(path));
        std::fs::write(&file, bytes).map_err(io_err("cannot write", &file))?;
    }
    for name in names() {
        let mut cmd = Command::new(cc);
        cmd.args(FLAGS)
            .arg("-o")
            .arg(tmp.join(name))
            .arg(tmp.join(format!("{name}.c")));
        let out = cmd
            .output()
            .map_err(io_err("cannot run", PathBuf::from(cc)))?;
        if !out.status.success() {
            return Err(HarnessError::Command {
                command: format!("{cmd:?}"),
                status: out.status.to_string(),
                output: format!(
                    "{}{}(the default load's programs link statically: install libc6-dev)",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }
    }
    match std::fs::rename(&tmp, dir) {
        Ok(()) => Ok(()),
        // Another run finished the same set first.
        Err(_) if names().iter().all(|n| dir.join(n).is_file()) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(())
        }
        Err(e) => Err(HarnessError::Io {
            what: "cannot rename",
            path: tmp,
            source: e,
        }),
    }
}

/// The first of [`COMPILERS`] that runs.
fn compiler() -> Result<String> {
    for cc in COMPILERS {
        if Command::new(cc)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Ok((*cc).to_string());
        }
    }
    Err(HarnessError::Io {
        what: "the default load's programs need a C compiler (gcc-12 or gcc, with libc6-dev; scripts/setup installs them), or pass --load SCRIPT or --no-load; none found:",
        path: PathBuf::from(COMPILERS.join(", ")),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    })
}
