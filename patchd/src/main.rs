//! The `patchd` command line: a thin layer over the `patchd` library.
//!
//! Exit codes:
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | success |
//! | 1 | the operation failed (the message says why and what to do); the kernel and the state are as before unless the message says otherwise |
//! | 2 | the command line was wrong |
//! | 3 | busy: the companion module kept refusing a switch with EBUSY (a task was inside a function being switched); nothing changed, try again later |
//! | 4 | the bundle is for another kernel (release or build-id) |
//! | 5 | the bundle is rejected: malformed, truncated, damaged, or not signed by a trusted key |
//! | 6 | `audit verify`, `report`, `metrics`: the audit log was edited, or lines were inserted or removed |
//!
//! Results go to stdout; logs go to stderr, `RUST_LOG` sets their level
//! (default `info`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tracing::info;
use tracing_subscriber::EnvFilter;

use patchd::daemon::exporter::{MetricsExporter, MetricsServer};
use patchd::daemon::signals::{Notifier, Stop};
use patchd::daemon::{Daemon, DaemonOptions};
use patchd::kernel::running_identity;
use patchd::metrics::TEXTFILE_NAME;
use patchd::ownership::default_owners;
use patchd::privileges::{drop_to, require, RealCapabilities, DAEMON_CAPABILITIES, KERNEL_CHANGES};
use patchd::state::StateDir;
use patchd::trust::TrustStore;
use patchd::{
    failure_kind, link_module, load, AuditLog, Config, FailureKind, Kallsyms, LinkRecord,
    MetricsSnapshot, Overrides, RealKernel, RevertTarget, Session, Settings, SystemClock,
};

/// Exit code for an operation that failed.
const EXIT_FAILURE: u8 = 1;
/// Exit code for a command line that could not be parsed.
const EXIT_USAGE: u8 = 2;
/// Exit code for a switch refused with EBUSY until the retries ran out.
const EXIT_BUSY: u8 = 3;
/// Exit code for a bundle made for another kernel.
const EXIT_WRONG_KERNEL: u8 = 4;
/// Exit code for a bad bundle (same as `patchgen verify`).
const EXIT_REJECTED: u8 = 5;
/// Exit code for an audit log that fails verification (`audit verify`,
/// `report`, `metrics`).
const EXIT_TAMPERED: u8 = 6;

/// suture's server side: verifies, applies and reverts live patches.
#[derive(Debug, Parser)]
#[command(
    name = "patchd",
    version,
    after_help = "Exit codes: 0 success, 1 the operation failed, 2 usage error, 3 busy (EBUSY retries ran out; nothing changed), 4 bundle for another kernel, 5 bundle rejected (malformed, damaged, untrusted), 6 audit log tampered with. Results go to stdout, logs to stderr; RUST_LOG sets the level (default info)."
)]
struct Cli {
    /// The config file [default: /etc/suture/patchd.toml if it exists];
    /// flags win over it.
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// Where the state is.
#[derive(Debug, Args)]
struct StateArgs {
    /// patchd's state directory (state.json, audit.log, applied bundles)
    /// [default: state_dir of the config file, or /var/lib/suture].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

/// The trust store.
#[derive(Debug, Args)]
struct KeysArgs {
    /// The trust store: a root-owned directory of NAME.pub files
    /// [default: keys_dir of the config file, or /etc/suture/keys].
    #[arg(long, value_name = "DIR")]
    keys: Option<PathBuf>,
}

/// The companion module.
#[derive(Debug, Args)]
struct KmodArgs {
    /// The companion module, loaded through the link step if absent
    /// [default: kmod of the config file, or /usr/lib/suture/suture.ko].
    #[arg(long, value_name = "PATH")]
    kmod: Option<PathBuf>,
}

/// How to retry switches the companion module refuses with EBUSY.
#[derive(Debug, Args)]
struct RetryArgs {
    /// Attempts to enable or disable a patch before giving up
    /// [default: switch_attempts of the config file, or 10].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    switch_attempts: Option<u32>,
    /// Wait after the first refusal, doubled after each further one (at
    /// most 1 s) [default: switch_backoff_ms of the config file, or 20].
    #[arg(long, value_name = "MS")]
    switch_backoff_ms: Option<u64>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check bundles without applying them: format, digests, signature by a
    /// trusted key, made for the running kernel, loadable under lockdown.
    Verify {
        /// The bundles.
        #[arg(required = true, value_name = "BUNDLE")]
        bundles: Vec<PathBuf>,
        #[command(flatten)]
        keys: KeysArgs,
        /// Read /proc and /sys under DIR instead of / (for tests).
        #[arg(long, value_name = "DIR", hide = true)]
        kernel_root: Option<PathBuf>,
    },
    /// Apply bundles, all or nothing: verify all, load the companion module
    /// if needed, then link, load and enable each one.
    Apply {
        /// The bundles, applied in this order.
        #[arg(required = true, value_name = "BUNDLE")]
        bundles: Vec<PathBuf>,
        #[command(flatten)]
        keys: KeysArgs,
        #[command(flatten)]
        kmod: KmodArgs,
        #[command(flatten)]
        state: StateArgs,
        #[command(flatten)]
        retry: RetryArgs,
    },
    /// Disable and unload applied bundles, newest first.
    Revert {
        /// The bundle ids (see patchd status).
        #[arg(
            value_name = "ID",
            required_unless_present = "all",
            conflicts_with = "all"
        )]
        ids: Vec<String>,
        /// Revert every bundle patchd applied.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        state: StateArgs,
        #[command(flatten)]
        retry: RetryArgs,
    },
    /// Show the running kernel and every applied bundle.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Compliance figures from the state and the verified audit log:
    /// vulnerability gap per CVE, reboots avoided, failed attempts, what is
    /// applied. Refuses an audit log that fails verification (exit 6).
    Report {
        /// Print JSON instead of text.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Print CSV, one row per bundle and CVE.
        #[arg(long)]
        csv: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Print the metrics once in the Prometheus text format, or write them
    /// atomically to DIR/suture.prom for node-exporter's textfile collector.
    /// A tampered audit log leaves its figures out and exits 6.
    Metrics {
        /// node-exporter's textfile directory.
        #[arg(long, value_name = "DIR")]
        textfile: Option<PathBuf>,
        #[command(flatten)]
        state: StateArgs,
        /// Read /proc and /sys under DIR instead of / (for tests).
        #[arg(long, value_name = "DIR", hide = true)]
        kernel_root: Option<PathBuf>,
    },
    /// Keep the kernel patched: at start re-apply the bundles a reboot
    /// took out and apply the watch directory's bundles, then apply bundles
    /// as they arrive there and poll the repository, until SIGTERM/SIGINT.
    Daemon {
        /// Do the start-up work and one repository poll, then exit; exit 1
        /// if a bundle could not be applied or the repository failed.
        #[arg(long)]
        once: bool,
        /// Do not poll the repository (an early boot unit has no network).
        #[arg(long)]
        no_repository: bool,
        /// The directory of *.bundle files to apply [default: watch_dir of
        /// the config file, or /var/lib/suture/bundles].
        #[arg(long, value_name = "DIR")]
        watch_dir: Option<PathBuf>,
        #[command(flatten)]
        keys: KeysArgs,
        #[command(flatten)]
        kmod: KmodArgs,
        #[command(flatten)]
        state: StateArgs,
        #[command(flatten)]
        retry: RetryArgs,
        /// Read /proc and /sys under DIR instead of / (for tests).
        #[arg(long, value_name = "DIR", hide = true)]
        kernel_root: Option<PathBuf>,
    },
    /// Work with the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
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
        #[arg(long = "symbol", value_name = "NAME=OBJECT[,POS]", value_parser = patchd::kallsyms::parse_symbol_arg)]
        symbols: Vec<LinkRecord>,
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
        #[arg(long = "symbol", value_name = "NAME=OBJECT[,POS]", value_parser = patchd::kallsyms::parse_symbol_arg)]
        symbols: Vec<LinkRecord>,
        /// Link records written by `patchgen build` (NAME.records.json).
        #[arg(long, value_name = "FILE")]
        records: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Walk the hash chain and report the first edited, inserted or
    /// removed line (exit 6).
    Verify {
        #[command(flatten)]
        state: StateArgs,
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
            let kind = error
                .chain()
                .map(failure_kind)
                .find(|kind| *kind != FailureKind::Other)
                .unwrap_or(FailureKind::Other);
            ExitCode::from(match kind {
                FailureKind::Busy => EXIT_BUSY,
                FailureKind::WrongKernel => EXIT_WRONG_KERNEL,
                FailureKind::Rejected => EXIT_REJECTED,
                FailureKind::Tampered => EXIT_TAMPERED,
                FailureKind::Other => EXIT_FAILURE,
            })
        }
    }
}

fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // NO_COLOR (https://no-color.org): consoles that keep escapes, such
        // as a serial log, stay readable.
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .without_time()
        .init();
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config.as_deref();
    match cli.command {
        Command::Verify {
            bundles,
            keys,
            kernel_root,
        } => {
            let settings = settings(
                config,
                Overrides {
                    keys_dir: keys.keys,
                    ..Overrides::default()
                },
            )?;
            let kernel = kernel_root.map_or_else(RealKernel::new, RealKernel::with_root);
            verify(&kernel, &bundles, &settings.keys_dir)?;
        }
        Command::Apply {
            bundles,
            keys,
            kmod,
            state,
            retry,
        } => {
            let settings = settings(
                config,
                Overrides {
                    keys_dir: keys.keys,
                    kmod: kmod.kmod,
                    ..overrides(state, retry)
                },
            )?;
            require(&RealCapabilities, KERNEL_CHANGES, "patchd apply")?;
            let config = settings.session_config(default_owners());
            let kernel = RealKernel::new();
            let mut session = open_session(&kernel, config)?;
            let report = patchd::apply(&mut session, &bundles)?;
            if report.companion_loaded {
                println!("loaded the companion module");
            }
            for id in &report.unchanged {
                println!("{id}: applied already");
            }
            for bundle in &report.applied {
                println!(
                    "{}: applied ({}; sha256 {})",
                    bundle.id,
                    bundle.functions.join(", "),
                    bundle.sha256
                );
            }
        }
        Command::Revert {
            ids,
            all,
            state,
            retry,
        } => {
            let settings = settings(config, overrides(state, retry))?;
            require(&RealCapabilities, KERNEL_CHANGES, "patchd revert")?;
            let config = settings.session_config(default_owners());
            let kernel = RealKernel::new();
            let mut session = open_session(&kernel, config)?;
            let target = if all {
                RevertTarget::All
            } else {
                RevertTarget::Ids(ids)
            };
            let report = patchd::revert(&mut session, &target)?;
            if report.reverted.is_empty() {
                println!("nothing to revert");
            }
            for id in &report.reverted {
                println!("{id}: reverted");
            }
        }
        Command::Status { json, state } => {
            let settings = settings(
                config,
                Overrides {
                    state_dir: state.state_dir,
                    ..Overrides::default()
                },
            )?;
            let config = settings.session_config(default_owners());
            let kernel = RealKernel::new();
            let session = open_session(&kernel, config)?;
            let status = patchd::status(&session).context("cannot read the kernel's state")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{status}");
            }
        }
        Command::Report { json, csv, state } => {
            let settings = settings(config, state_only(state))?;
            let dir = StateDir::open(&settings.state_dir, &default_owners())?;
            let report = patchd::report(&dir)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else if csv {
                print!("{}", report.to_csv());
            } else {
                print!("{report}");
            }
        }
        Command::Metrics {
            textfile,
            state,
            kernel_root,
        } => {
            let settings = settings(config, state_only(state))?;
            // The flag, or the config file's metrics.textfile_dir.
            let textfile = textfile.or(settings.metrics.textfile_dir);
            let kernel = kernel_root.map_or_else(RealKernel::new, RealKernel::with_root);
            let identity =
                running_identity(&kernel).context("cannot identify the running kernel")?;
            let dir = StateDir::open(&settings.state_dir, &default_owners())?;
            let state = dir.load()?;
            let audit = AuditLog::new(dir.path()).read_verified()?;
            let snapshot = MetricsSnapshot::collect(&state, audit.as_deref(), None, &identity);
            let text = patchd::render(&snapshot);
            match &textfile {
                Some(textfile) => patchd::write_textfile(textfile, &text).with_context(|| {
                    format!("cannot write {}", textfile.join(TEXTFILE_NAME).display())
                })?,
                None => print!("{text}"),
            }
            if let Err(tampered) = audit {
                return Err(anyhow::Error::new(tampered)
                    .context("the metrics drawn from the audit log were left out (suture_audit_log_intact 0); run `patchd audit verify`"));
            }
        }
        Command::Daemon {
            once,
            no_repository,
            watch_dir,
            keys,
            kmod,
            state,
            retry,
            kernel_root,
        } => {
            let settings = settings(
                config,
                Overrides {
                    keys_dir: keys.keys,
                    kmod: kmod.kmod,
                    watch_dir,
                    ..overrides(state, retry)
                },
            )?;
            daemon(settings, once, !no_repository, kernel_root)?;
        }
        Command::Audit {
            command: AuditCommand::Verify { state },
        } => {
            let settings = settings(
                config,
                Overrides {
                    state_dir: state.state_dir,
                    ..Overrides::default()
                },
            )?;
            let dir = StateDir::open(&settings.state_dir, &default_owners())?;
            let log = AuditLog::new(dir.path());
            let lines = log.verify()??;
            println!(
                "audit log {}: {lines} line(s), the hash chain is intact",
                log.path().display()
            );
        }
        Command::LoadModule {
            module,
            params,
            symbols,
            records,
        } => {
            require(&RealCapabilities, KERNEL_CHANGES, "patchd load-module")?;
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

/// The settings: the config file (`--config`, or the default file if it
/// exists), then the flags.
fn settings(config: Option<&Path>, overrides: Overrides) -> anyhow::Result<Settings> {
    Ok(Settings::load(config, &overrides, &default_owners())?)
}

/// Only `--state-dir`.
fn state_only(state: StateArgs) -> Overrides {
    Overrides {
        state_dir: state.state_dir,
        ..Overrides::default()
    }
}

/// The flags shared by the commands that work with the state.
fn overrides(state: StateArgs, retry: RetryArgs) -> Overrides {
    Overrides {
        state_dir: state.state_dir,
        switch_attempts: retry.switch_attempts,
        switch_backoff_ms: retry.switch_backoff_ms,
        ..Overrides::default()
    }
}

/// Opens a session (locks and reconciles the state) with the system clock,
/// reporting what reconciling changed.
fn open_session(kernel: &RealKernel, config: Config) -> anyhow::Result<Session<'_>> {
    static CLOCK: SystemClock = SystemClock;
    let session = Session::open(kernel, &CLOCK, config)?;
    for change in &session.reconciled().changes {
        eprintln!("patchd: reconciled {}: {}", change.id, change.what);
    }
    Ok(session)
}

/// `patchd daemon`.
fn daemon(
    settings: Settings,
    once: bool,
    repository: bool,
    kernel_root: Option<PathBuf>,
) -> anyhow::Result<()> {
    static CLOCK: SystemClock = SystemClock;
    require(&RealCapabilities, KERNEL_CHANGES, "patchd daemon")?;
    // Before any thread exists (ureq's resolver and the metrics endpoint
    // start some): every thread inherits the blocked mask, so SIGTERM
    // reaches only the signalfd.
    let stop = if once {
        None
    } else {
        Some(Stop::on_signals().context("cannot route SIGTERM and SIGINT to a signalfd")?)
    };
    let metrics = settings.metrics.clone();
    let server = match metrics.listen.filter(|_| !once) {
        Some(address) => Some(
            MetricsServer::bind(address)
                .with_context(|| format!("cannot serve metrics on {address} (metrics.listen)"))?,
        ),
        None => None,
    };
    // Capabilities are per thread: dropped while this is the only one.
    drop_to(&RealCapabilities, DAEMON_CAPABILITIES)
        .context("cannot drop the capabilities the daemon does not need")?;
    let kernel = kernel_root.map_or_else(RealKernel::new, RealKernel::with_root);
    let options = DaemonOptions { repository };
    let mut daemon = Daemon::new(&kernel, &CLOCK, settings, default_owners(), options)?;
    daemon.set_notifier(Notifier::from_env());
    if metrics.textfile_dir.is_some() || server.is_some() {
        let served = server.as_ref().map(MetricsServer::text);
        let exporter = MetricsExporter::new(metrics.textfile_dir, served, daemon.running().clone());
        daemon.add_observer(Box::new(exporter));
    }
    if let Some(server) = server {
        let address = server.local_addr()?;
        server
            .spawn()
            .context("cannot start the metrics endpoint's thread")?;
        info!("metrics: serving http://{address}/metrics");
    }
    let Some(stop) = stop else {
        return once_result(&daemon.run_once()?);
    };
    // A daemon stopped by a signal did its job, whatever failed on the way
    // (the log and the audit log have it).
    daemon.run(&stop)?;
    Ok(())
}

/// `--once` fails when anything failed, so a boot unit shows it.
fn once_result(summary: &patchd::daemon::Summary) -> anyhow::Result<()> {
    if !summary.is_clean() {
        anyhow::bail!(
            "{} bundle(s) or file(s) could not be applied ({}) and {} repository request(s) failed; the log and the audit log say why",
            summary.failed.len(),
            summary.failed.join(", "),
            summary.repository_failures
        );
    }
    Ok(())
}

/// `patchd verify`: every bundle, one line each on stdout.
fn verify(kernel: &RealKernel, bundles: &[PathBuf], keys: &Path) -> anyhow::Result<()> {
    let trust = TrustStore::open(keys, &default_owners())?;
    let running = running_identity(kernel).context("cannot identify the running kernel")?;
    for path in bundles {
        let bundle = patchd::verify_bundle(kernel, &trust.verifying_keys(), &running, path)?;
        let manifest = &bundle.manifest();
        let functions: Vec<&str> = manifest
            .replaced_functions
            .iter()
            .map(|f| f.old_name.as_str())
            .collect();
        let cves = if manifest.cves.is_empty() {
            "none".to_owned()
        } else {
            manifest.cves.join(", ")
        };
        println!(
            "{}: ok: {} for {} (build-id {}), signed by {}, sha256 {}; replaces {}; fixes {}",
            path.display(),
            manifest.id,
            running.release,
            running.build_id,
            bundle.signer_key_id(),
            bundle.sha256(),
            functions.join(", "),
            cves
        );
    }
    Ok(())
}

/// The module name implied by a file name (`dir/foo.ko` -> `foo`), for
/// modules without a `name=` in `.modinfo`.
fn file_stem(path: &Path) -> String {
    path.file_stem().map_or_else(
        || path.display().to_string(),
        |stem| stem.to_string_lossy().into_owned(),
    )
}

/// The `--symbol` records plus those of a `--records` file.
fn with_records(
    mut symbols: Vec<LinkRecord>,
    file: Option<&Path>,
) -> anyhow::Result<Vec<LinkRecord>> {
    let Some(file) = file else {
        return Ok(symbols);
    };
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let records: Vec<LinkRecord> = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a patchgen records file", file.display()))?;
    symbols.extend(records);
    Ok(symbols)
}
