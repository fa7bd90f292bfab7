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
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use patchgen::diff::report::Outcome;
use patchgen::{DiffOptions, ObjectFile};

#[derive(Parser)]
#[command(name = "patchgen", version, about = "suture's patch generator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

mod cli_build;
mod cli_keys;

#[derive(Subcommand)]
enum Command {
    /// Build a patch module for one target kernel from a source fix.
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
    Kbuild {
        /// The target kernel (a kernel cache entry).
        #[arg(long, value_name = "RELEASE")]
        kernel: String,
        /// Also find every object's dependencies (minutes, once).
        #[arg(long)]
        deps: bool,
        /// Print the objects built from, or reading, these files (implies
        /// --deps).
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Diff the original and fixed builds of one kernel object.
    ///
    /// Exit status: 0 changed (OUT written), 3 nothing changed, 4 refused,
    /// 1 error, 2 usage.
    Diff {
        /// The original object (built with -ffunction-sections -fdata-sections).
        orig: PathBuf,
        /// The fixed object, built the same way.
        fixed: PathBuf,
        /// Where to write the object with the changed and new functions.
        #[arg(short, long)]
        output: PathBuf,
        /// Also write the report as JSON here.
        #[arg(long)]
        report: Option<PathBuf>,
        /// The source fix the two objects differ by (-p1 unified diff): line
        /// numbers it moves are not changes where code holds them as
        /// immediates (`__LINE__`). Names the object's source with --source.
        #[arg(long, value_name = "FIX.patch", requires = "source")]
        fix: Option<PathBuf>,
        /// The object's source file in the fix, e.g. fs/ext4/namei.c.
        #[arg(long, value_name = "PATH")]
        source: Option<String>,
        /// Take the special sections' entry sizes from this target
        /// kernel's headers (a kernel cache entry) instead of the Debian 6.1
        /// x86-64 defaults.
        #[arg(long, value_name = "RELEASE")]
        kernel: Option<String>,
        /// Entry size of a special section, e.g. __bug_table=12 (overrides
        /// the defaults and --kernel; repeatable).
        #[arg(long = "entry-size", value_name = "SECTION=BYTES")]
        entry_sizes: Vec<String>,
        /// Accept a layout change of TYPE (`struct foo`, `union bar`, a
        /// typedef name) that the changed code reaches. Only safe when no
        /// object of the old layout can reach the new code (repeatable).
        #[arg(long = "accept-layout-change", value_name = "TYPE")]
        accept_layout: Vec<String>,
        /// Leave the changed function NAME out (it is not fixed; the
        /// report lists it under `skipped`; repeatable).
        #[arg(long = "skip-function", value_name = "NAME")]
        skip: Vec<String>,
    },
}

const EXIT_NOTHING_CHANGED: u8 = 3;
const EXIT_REFUSED: u8 = 4;

fn main() -> ExitCode {
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
        Command::Kbuild {
            kernel,
            deps,
            files,
        } => {
            let target = patchgen::build::KernelTarget::from_cache(&kernel)?;
            let mut progress = |line: &str| eprintln!("patchgen: {line}");
            let record = patchgen::build::kbuild::Record::load(&target, &mut progress)?;
            eprintln!(
                "patchgen: {} objects ({} in modules)",
                record.objects.len(),
                record.objects.iter().filter(|b| b.module).count()
            );
            let mut found = None;
            if deps {
                found = Some(record.deps(&target, &mut progress)?);
            }
            let mut out = std::io::stdout().lock();
            for file in &files {
                // Compiled from FILE, or reading it (a header, an
                // #included C file).
                let mut objects: Vec<&patchgen::build::kbuild::Built> = record.compiled_from(file);
                let d = match &mut found {
                    Some(d) => d,
                    None => found.insert(record.deps(&target, &mut progress)?),
                };
                for b in d
                    .objects_reading(file)
                    .into_iter()
                    .filter_map(|i| record.objects.get(i))
                {
                    if !objects.iter().any(|o| o.object == b.object) {
                        objects.push(b);
                    }
                }
                for b in objects {
                    let line = format!(
                        "{}\t{}\t{}\n",
                        file.display(),
                        patchgen::build::kbuild::normalize(&b.object).display(),
                        if b.module { "module" } else { "vmlinux" }
                    );
                    if let Err(e) = std::io::Write::write_all(&mut out, line.as_bytes()) {
                        if e.kind() == std::io::ErrorKind::BrokenPipe {
                            return Ok(ExitCode::SUCCESS);
                        }
                        return Err(e.into());
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Diff {
            orig,
            fixed,
            output,
            report,
            kernel,
            fix,
            source,
            entry_sizes,
            accept_layout,
            skip,
        } => {
            let mut opts = DiffOptions {
                accept_layout,
                skip,
                ..DiffOptions::default()
            };
            if let (Some(fix), Some(source)) = (&fix, &source) {
                let text = std::fs::read_to_string(fix)
                    .with_context(|| format!("cannot read {}", fix.display()))?;
                opts.line_map = patchgen::diff::lines::LineMap::from_patch(&text, source);
                if opts.line_map.is_empty() {
                    bail!("{} has no hunks for {source}: give the source path as the fix names it (+++ b/PATH)", fix.display());
                }
            }
            if let Some(release) = &kernel {
                let target = patchgen::build::KernelTarget::from_cache(release)?;
                let work = tempfile::tempdir().context("cannot create a work directory")?;
                opts.entry_sizes =
                    patchgen::build::entry_sizes::from_headers(&target, work.path())?;
            }
            for spec in &entry_sizes {
                let Some((name, size)) = spec.split_once('=') else {
                    bail!("--entry-size takes SECTION=BYTES, not '{spec}'");
                };
                let size: u64 = size
                    .parse()
                    .with_context(|| format!("--entry-size {spec}: BYTES is not a number"))?;
                if size == 0 {
                    bail!("--entry-size {spec}: an entry cannot be 0 bytes");
                }
                opts.entry_sizes.set(name, size);
            }
            let o = ObjectFile::read(&orig)?;
            let f = ObjectFile::read(&fixed)?;
            let result = patchgen::diff(&o, &f, &opts);
            let unmatched: Vec<&String> = opts
                .skip
                .iter()
                .filter(|s| {
                    !result
                        .report
                        .skipped
                        .iter()
                        .any(|c| c.name == **s || c.name.split('.').next() == Some(s.as_str()))
                })
                .collect();
            if !unmatched.is_empty() && result.report.refusals.is_empty() {
                bail!(
                    "--skip-function {}: no function of that name changes; give the name as the report shows it",
                    unmatched.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                );
            }
            if let Some(path) = &report {
                let json = serde_json::to_string_pretty(&result.report)?;
                std::fs::write(path, json + "\n")
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            eprint!("{}", result.report.summary());
            // The process ends next: the objects' tens of thousands of
            // allocations are left to the exit rather than freed one by one
            // (a tenth of a small diff's time).
            std::mem::forget(o);
            std::mem::forget(f);
            match (result.report.result, result.object) {
                (Outcome::Changed, Some(bytes)) => {
                    std::fs::write(&output, bytes)
                        .with_context(|| format!("cannot write {}", output.display()))?;
                    Ok(ExitCode::SUCCESS)
                }
                (Outcome::NothingChanged, _) => Ok(ExitCode::from(EXIT_NOTHING_CHANGED)),
                _ => Ok(ExitCode::from(EXIT_REFUSED)),
            }
        }
    }
}
