//! The `patchd` command line: a thin layer over the `patchd` library.
//!
//! Exit codes: 0 success, 1 an operation failed (the message says why),
//! 2 the command line was wrong. Logs go to stderr; `RUST_LOG` sets the
//! level (default `info`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing::info;
use tracing_subscriber::EnvFilter;

use patchd::kallsyms::LinkRecordFile;
use patchd::{link_module, load, Kallsyms, RealKernel, SymbolRecord};

/// Exit code for an operation that failed.
const EXIT_FAILURE: u8 = 1;
/// Exit code for a command line that could not be parsed.
const EXIT_USAGE: u8 = 2;

/// suture's server side: links and loads live-patch modules.
#[derive(Debug, Parser)]
#[command(
    name = "patchd",
    version,
    after_help = "Exit codes: 0 success, 1 the operation failed, 2 usage error. Logs go to stderr; RUST_LOG sets the level (default info)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Link a module's non-exported symbols against the running kernel
    /// (/proc/kallsyms) and load it with init_module.
    LoadModule {
        /// The module file.
        #[arg(value_name = "MODULE.ko")]
        module: PathBuf,
        /// Module parameters.
        #[arg(value_name = "PARAM=VALUE")]
        params: Vec<String>,
        /// Which definition a symbol links against, when kallsyms has several.
        #[arg(long = "symbol", value_name = "NAME=OBJECT[,POS]")]
        symbols: Vec<SymbolRecord>,
        /// Link records written by `patchgen build` (NAME.records.json).
        #[arg(long, value_name = "FILE")]
        records: Option<PathBuf>,
    },
    /// Link a module offline against a saved kallsyms and write the result.
    Link {
        /// The module file.
        #[arg(value_name = "MODULE.ko")]
        module: PathBuf,
        /// A copy of the target's /proc/kallsyms.
        #[arg(long, value_name = "FILE")]
        kallsyms: PathBuf,
        /// Where to write the linked module.
        #[arg(short, long, value_name = "OUT.ko")]
        output: PathBuf,
        /// Which definition a symbol links against, when kallsyms has several.
        #[arg(long = "symbol", value_name = "NAME=OBJECT[,POS]")]
        symbols: Vec<SymbolRecord>,
        /// Link records written by `patchgen build` (NAME.records.json).
        #[arg(long, value_name = "FILE")]
        records: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // Printing help or the version is not a usage error.
            let code = if error.use_stderr() { EXIT_USAGE } else { 0 };
            // Nothing sensible is left to do if stderr is gone.
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("patchd: error: {error:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .init();
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::LoadModule {
            module,
            params,
            symbols,
            records,
        } => {
            let symbols = with_records(symbols, records.as_deref())?;
            let image = load::read_module(&module)?;
            let report = load::load_module(&RealKernel::new(), &image, &params.join(" "), &symbols)
                .with_context(|| format!("cannot load {}", module.display()))?;
            let name = report.module_name.unwrap_or_else(|| file_stem(&module));
            info!(
                linked = report.resolved.len(),
                signature_stripped = report.signature_stripped,
                "loaded {name}"
            );
        }
        Command::Link {
            module,
            kallsyms,
            output,
            symbols,
            records,
        } => {
            let symbols = with_records(symbols, records.as_deref())?;
            let image = load::read_module(&module)?;
            let text = std::fs::read_to_string(&kallsyms)
                .with_context(|| format!("cannot read {}", kallsyms.display()))?;
            let kallsyms = Kallsyms::parse(&text)
                .with_context(|| format!("cannot use {}", kallsyms.display()))?;
            let linked = link_module(&image, &kallsyms, &symbols)
                .with_context(|| format!("cannot link {}", module.display()))?;
            std::fs::write(&output, &linked.image)
                .with_context(|| format!("cannot write {}", output.display()))?;
            info!(
                linked = linked.resolved.len(),
                signature_stripped = linked.signature_stripped,
                "wrote {}",
                output.display()
            );
        }
    }
    Ok(())
}

/// The module name implied by a file name (`dir/foo.ko` -> `foo`), for
/// modules without a `name=` in `.modinfo`.
fn file_stem(path: &std::path::Path) -> String {
    path.file_stem().map_or_else(
        || path.display().to_string(),
        |stem| stem.to_string_lossy().into_owned(),
    )
}

/// The `--symbol` records plus those of a `--records` file.
fn with_records(
    mut symbols: Vec<SymbolRecord>,
    file: Option<&std::path::Path>,
) -> anyhow::Result<Vec<SymbolRecord>> {
    let Some(file) = file else {
        return Ok(symbols);
    };
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let records: Vec<LinkRecordFile> = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a patchgen records file", file.display()))?;
    symbols.extend(records.into_iter().map(SymbolRecord::from));
    Ok(symbols)
}
