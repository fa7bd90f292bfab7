//! `patchgen shell`: runs a command with a target's toolchain, in the
//! target's build root when it has one (Debian 13's gcc-14 on a Debian 12
//! machine), on the host otherwise, the way `patchgen build` runs its own
//! compile and kbuild steps. What scripts use for the steps they run
//! themselves (`scripts/test` builds the companion module with W=1).

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::Context;
use patchgen::build::KernelTarget;

/// Arguments of `patchgen shell`.
#[derive(clap::Args)]
pub struct ShellArgs {
    /// The target kernel (a kernel cache entry).
    #[arg(long, value_name = "RELEASE")]
    pub kernel: String,
    /// The command and its arguments (default: `sh`); the working
    /// directory is kept.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// Runs the command and exits with its status (1 when it was killed by a
/// signal).
pub fn run(args: ShellArgs) -> anyhow::Result<ExitCode> {
    let target = KernelTarget::from_cache(&args.kernel)?;
    let mut words = args.command.into_iter();
    let program = words.next().unwrap_or_else(|| "sh".into());
    let mut cmd = target.command(&program);
    cmd.args(words);
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {}", program.to_string_lossy()))?;
    let code = status.code().unwrap_or(1);
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}
