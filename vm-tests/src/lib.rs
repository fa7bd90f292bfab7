//! The QEMU rig of suture: builds the companion module and the test modules
//! for a target kernel from the kernel cache (`scripts/setup`), packs them with
//! busybox, `patchd` and guest scripts into an initramfs, boots the target's
//! real Debian kernel under QEMU TCG and reads back each guest check's result,
//! the guest's dmesg and its taint flags.
//!
//! Nothing in the kernel path is mocked: what runs in the guest is the real
//! kernel, the real module loader and our real modules. A check that cannot
//! run is an error, never a skip.
//!
//! The VM tests of the companion module and patchd (`tests/`), `suture-vm`
//! and the benchmarks are built on this library, and so is the `patchtest`
//! crate, which validates bundles in a guest.

pub mod embedded;
pub mod fixes;
pub mod initramfs;
pub mod kernel_modules;
pub mod modules;
pub mod programs;
pub mod qemu;
pub mod report;
pub mod target;

use std::path::PathBuf;

pub use kernel_modules::kernel_module_closure;
pub use modules::{build_companion, build_modules, build_modules_for, BuiltModules, FixSelection};
pub use qemu::{run_guest, run_guest_in, GuestFile, GuestSpec};
pub use report::{CheckResult, GuestRun};
pub use target::Target;

/// Errors of the rig. Each says what to do when there is something to do.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The kernel cache entry is missing or incomplete.
    #[error(
        "kernel cache for {release} not found at {path}: run scripts/setup --kernel {release}"
    )]
    NoKernelCache { release: String, path: PathBuf },
    /// A file the rig needs could not be read or written.
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An external command failed.
    #[error("{command} failed ({status}); its output:\n{output}")]
    Command {
        command: String,
        status: String,
        output: String,
    },
    /// A built object lacks a symbol the tests need.
    #[error("{path} has no symbol {symbol}")]
    MissingSymbol { path: PathBuf, symbol: String },
    /// An object could not be parsed.
    #[error("cannot parse {path}")]
    Object {
        path: PathBuf,
        #[source]
        source: object::Error,
    },
    /// The guest did not finish in time.
    #[error("guest '{name}' did not power off within {seconds} s; serial log: {log}")]
    Timeout {
        name: String,
        seconds: u64,
        log: PathBuf,
    },
}

/// Result type of the rig.
pub type Result<T> = std::result::Result<T, HarnessError>;

/// The workspace root (the directory holding `kernels/` and `kmod/`), found
/// at run time: `$SUTURE_SOURCE_DIR`, else the checkout whose `target/`
/// holds the running executable (the rig's commands, the VM tests and the
/// benchmarks run from there), else the parent of the package directory
/// cargo names in `$CARGO_MANIFEST_DIR` (`cargo run`, `cargo test`), else
/// the current directory. Only the developers' side of the rig uses it:
/// the VM tests, `suture-vm` and the benchmarks read their guest checks,
/// test modules and fixes from the checkout, build `patchd` there
/// ([`qemu::build_patchd`]) and work under its `target/` ([`work_dir`]).
/// What an installed command needs (the guest's `/init` and library, the
/// default kernel, the companion's sources) is built in ([`embedded`]), and
/// [`run_guest_in`] takes the run directory and `patchd` from its caller.
pub fn workspace_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("SUTURE_SOURCE_DIR") {
        return PathBuf::from(dir);
    }
    let is_root = |dir: &std::path::Path| {
        dir.join("kernels/default.env").is_file() && dir.join("vm-tests").is_dir()
    };
    if let Ok(exe) = std::env::current_exe() {
        if let Some(root) = exe.ancestors().skip(1).find(|dir| is_root(dir)) {
            return root.to_path_buf();
        }
    }
    if let Some(manifest) = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from) {
        if let Some(root) = manifest.ancestors().find(|dir| is_root(dir)) {
            return root.to_path_buf();
        }
    }
    PathBuf::from(".")
}

/// Where the rig's developer side writes builds, initramfs images and logs:
/// `target/vm-tests` of the checkout (or of `CARGO_TARGET_DIR`).
pub fn work_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("vm-tests")
}

/// Restores the default action of `SIGPIPE` for a command of the rig or of
/// patchtest (the Rust runtime ignores it, so a write to a closed pipe
/// fails and `println!` panics): the process then ends silently when the
/// reader of its output has gone. Call it first in `main`.
pub fn end_quietly_on_closed_pipe() {
    // SAFETY: called first in main, before any other thread exists; SIG_DFL
    // installs no handler code, so nothing runs in signal context.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
}

/// The error for an I/O failure on `path`, as a `map_err` argument:
/// `what` says what was being done (`"cannot read"`).
pub fn io_err(
    what: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> HarnessError {
    let path = path.into();
    move |source| HarnessError::Io { what, path, source }
}

/// Runs a command, returning its combined output, or an error carrying it.
pub(crate) fn run_command(cmd: &mut std::process::Command) -> Result<String> {
    let described = format!("{cmd:?}");
    let out = cmd.output().map_err(|source| HarnessError::Io {
        what: "cannot run",
        path: PathBuf::from(cmd.get_program()),
        source,
    })?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        Ok(text)
    } else {
        Err(HarnessError::Command {
            command: described,
            status: out.status.to_string(),
            output: text,
        })
    }
}
