//! `patchgen`: the command line over the patchgen library.
//!
//! Exit codes of `patchgen diff`: 0 changed (output written), 3 nothing
//! changed (no output), 4 refused (the change cannot be live-patched; the
//! report says why), 1 error (bad input, I/O), 2 usage.
//!
//! Exit codes of `patchgen keygen`, `sign`, `inspect` and `verify`: 0 done
//! (for `verify`, and `inspect --key`: signed by one of the given keys),
//! 5 bundle rejected (malformed, damaged, a digest or the signature does
//! not match, or signed by none of the given keys), 1 error (a file or key
//! that cannot be read or written, an exposed secret key, a key file that
//! exists already), 2 usage.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "patchgen", version, about = "suture's patch generator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

mod cli_build;
mod cli_diff;
mod cli_index;
mod cli_kbuild;
mod cli_keys;
mod cli_shell;

#[derive(Subcommand)]
enum Command {
    /// Build a patch module for one target kernel from a source fix.
    ///
    /// Exit status: 0 built, 3 nothing to patch, 4 refused (cannot be
    /// live-patched safely), 1 error, 2 usage.
    Build(cli_build::BuildArgs),
    /// Generate a signing key pair: NAME.key and NAME.pub; prints the key id.
    Keygen(cli_keys::KeygenArgs),
    /// Re-sign a bundle with another key (manifest and module unchanged).
    Sign(cli_keys::SignArgs),
    /// Show what a bundle holds (checks format and digests; the signature
    /// only with --key).
    Inspect(cli_keys::InspectArgs),
    /// Check that a bundle is signed by one of the given public keys.
    ///
    /// Exit status: 0 signed by one of them, 5 rejected, 1 error, 2 usage.
    Verify(cli_keys::VerifyArgs),
    /// Record what kbuild builds for a target kernel and, with --deps,
    /// which files each object's compilation reads (once per target; `build`
    /// makes them on first need). Prints the objects reading FILE.
    Kbuild(cli_kbuild::KbuildArgs),
    /// Write a bundle repository's index (DIR/index.json, which patchd's
    /// daemon reads) for the signed bundles in DIR.
    Index(cli_index::IndexArgs),
    /// Diff the original and fixed builds of one kernel object.
    ///
    /// Exit status: 0 changed (OUT written), 3 nothing changed, 4 refused,
    /// 1 error, 2 usage.
    Diff(cli_diff::DiffArgs),
    /// Run a command with a target's toolchain: in the target's build root
    /// when it has one (`patchgen shell --kernel R -- make -C ...`).
    ///
    /// Exit status: the command's.
    Shell(cli_shell::ShellArgs),
}

/// Restores the default action of `SIGPIPE` (the Rust runtime ignores it,
/// so a write to a closed pipe fails and `println!` panics): the process
/// then ends silently when the reader of its output has gone
/// (`patchgen inspect B | head -1`).
fn end_quietly_on_closed_pipe() {
    // SAFETY: called first in main, before any other thread exists; SIG_DFL
    // installs no handler code, so nothing runs in signal context.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
}

fn main() -> ExitCode {
    end_quietly_on_closed_pipe();
    // `--generate man|bash|zsh|fish DIR`: the Debian packages' man pages
    // and completions (suture-clidocs); not part of the parsed command line.
    if let Some(code) =
        suture_clidocs::generate_if_asked(<Cli as clap::CommandFactory>::command, "1")
    {
        return code;
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // Argument errors clap cannot see alone are usage errors too.
    if let Command::Build(args) = &cli.command {
        if let Err(e) = args.cve_published() {
            return usage_error("build", e);
        }
    }
    // -v on build: every command run and its output (tracing debug).
    let verbose = matches!(&cli.command, Command::Build(a) if a.verbose);
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(if verbose { "debug" } else { "info" })
            }),
        )
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("patchgen: error: {e:#}");
            if let Some(b) = e.downcast_ref::<patchgen::build::BuildError>() {
                return ExitCode::from(b.exit_code());
            }
            e.downcast_ref::<patchgen::keys::BundleCommandError>()
                .map_or(ExitCode::FAILURE, |e| ExitCode::from(e.exit_code()))
        }
    }
}

/// Prints a usage error of `subcommand` as clap prints its own (with the
/// usage line) and gives exit status 2.
fn usage_error(subcommand: &str, message: impl std::fmt::Display) -> ExitCode {
    let kind = clap::error::ErrorKind::ArgumentConflict;
    let mut command = <Cli as clap::CommandFactory>::command();
    command.build();
    let error = match command.find_subcommand_mut(subcommand) {
        Some(sub) => sub.error(kind, message),
        None => command.error(kind, message),
    };
    let _ = error.print();
    ExitCode::from(2)
}

/// Runs the parsed command: one function per subcommand.
fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Build(args) => {
            cli_build::run_and_report(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Keygen(args) => cli_keys::keygen(&args),
        Command::Sign(args) => cli_keys::sign(&args),
        Command::Inspect(args) => cli_keys::inspect(&args),
        Command::Verify(args) => cli_keys::verify(&args),
        Command::Kbuild(args) => cli_kbuild::run(args),
        Command::Diff(args) => cli_diff::run(args),
        Command::Index(args) => cli_index::run(&args),
        Command::Shell(args) => cli_shell::run(args),
    }
}
