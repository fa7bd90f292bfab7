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

mod commands;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use patchd::{failure_kind, FailureKind, LinkRecord};

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
    /// [default: kmod of the config file, or the one DKMS built for the
    /// running kernel (/lib/modules/RELEASE/updates/dkms/suture.ko[.xz|.zst]),
    /// else /usr/lib/suture/suture.ko].
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

/// The crash-loop guard's uptime proof.
#[derive(Debug, Args)]
struct GuardArgs {
    /// A bundle applied this long (seconds) survives: it is re-applied
    /// after a crash instead of held back; 0: only a clean shutdown proves
    /// it [default: crash_guard_uptime_secs of the config file, or 600].
    #[arg(long, value_name = "SECS")]
    crash_guard_uptime_secs: Option<u64>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check bundles without applying them: format, digests, signature by a
    /// trusted key, made for the running kernel, loadable under lockdown.
    Verify(VerifyArgs),
    /// Apply bundles, all or nothing: verify all, load the companion module
    /// if needed, then link, load and enable each one.
    Apply(ApplyArgs),
    /// Disable and unload applied bundles, newest first.
    Revert(RevertArgs),
    /// Apply again, now, bundles the crash-loop guard held back after a
    /// crash (verified again from their copies); a failure leaves it held.
    Release(ReleaseArgs),
    /// Record a clean shutdown of this boot, so the next boot re-applies
    /// every bundle (patchd-shutdown.service runs it as the machine stops).
    Shutdown(StateArgs),
    /// Show the running kernel and every applied bundle.
    Status(StatusArgs),
    /// Print the kernel release scanners should take the running kernel
    /// for: the newest "fixes up to" version among the bundles the kernel
    /// runs, else the running one (like `uname -r`; -v, -a as uname's).
    Uname(UnameArgs),
    /// List the CVEs the live patches the kernel runs now fix; --openvex
    /// prints an OpenVEX document that Grype (--vex) and Trivy (--vex) read.
    Cves(CvesArgs),
    /// List what the daemon's next pass would try, without trying it: the
    /// watch directory's bundles not applied and the repository's bundles
    /// for this kernel not downloaded (reads the repository's index).
    Updates(UpdatesArgs),
    /// Compliance figures from the state and the verified audit log:
    /// vulnerability gap per CVE, reboots avoided, failed attempts, what is
    /// applied. Refuses an audit log that fails verification (exit 6).
    Report(ReportArgs),
    /// Print the metrics once in the Prometheus text format, or write them
    /// atomically to DIR/suture.prom for node-exporter's textfile collector.
    /// A tampered audit log leaves its figures out and exits 6.
    Metrics(MetricsArgs),
    /// Keep the kernel patched: at start re-apply the bundles a reboot
    /// took out and apply the watch directory's bundles, then apply bundles
    /// as they arrive there and poll the repository, until SIGTERM/SIGINT.
    Daemon(DaemonArgs),
    /// Work with the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Link a module's non-exported symbols against the running kernel
    /// (/proc/kallsyms) and load it with init_module.
    LoadModule(LoadModuleArgs),
    /// Link a module offline against a saved kallsyms and write the result.
    Link(LinkArgs),
}

/// The arguments of `Verify`.
#[derive(Debug, Args)]
struct VerifyArgs {
    /// The bundles.
    #[arg(required = true, value_name = "BUNDLE")]
    bundles: Vec<PathBuf>,
    #[command(flatten)]
    keys: KeysArgs,
    /// Read /proc and /sys under DIR instead of / (for tests).
    #[arg(long, value_name = "DIR", hide = true)]
    kernel_root: Option<PathBuf>,
}

/// The arguments of `Apply`.
#[derive(Debug, Args)]
struct ApplyArgs {
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
    #[command(flatten)]
    guard: GuardArgs,
}

/// The arguments of `Revert`.
#[derive(Debug, Args)]
struct RevertArgs {
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
    #[command(flatten)]
    guard: GuardArgs,
}

/// The arguments of `Release`.
#[derive(Debug, Args)]
struct ReleaseArgs {
    /// The held bundles' ids (see patchd status).
    #[arg(
        value_name = "ID",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    ids: Vec<String>,
    /// Release every held bundle.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    keys: KeysArgs,
    #[command(flatten)]
    kmod: KmodArgs,
    #[command(flatten)]
    state: StateArgs,
    #[command(flatten)]
    retry: RetryArgs,
    #[command(flatten)]
    guard: GuardArgs,
}

/// The arguments of `Status`.
#[derive(Debug, Args)]
struct StatusArgs {
    /// Print JSON instead of text.
    #[arg(long, conflicts_with = "check")]
    json: bool,
    /// For monitoring: print only the verdict and exit 0 (OK), 1
    /// (WARNING: bundles waiting in the watch directory, an apply cut
    /// short, the last repository poll failed), 2 (CRITICAL: a fix not in
    /// effect, held back after a crash) or 3 (UNKNOWN: the status cannot
    /// be read).
    #[arg(long)]
    check: bool,
    #[command(flatten)]
    state: StateArgs,
    /// Read /proc and /sys under DIR instead of / (for tests).
    #[arg(long, value_name = "DIR", hide = true)]
    kernel_root: Option<PathBuf>,
}

/// The arguments of `Uname`.
#[derive(Debug, Args)]
struct UnameArgs {
    /// The release (the default).
    #[arg(short = 'r', long = "kernel-release", conflicts_with_all = ["kernel_version", "all", "json"])]
    release: bool,
    /// The version text, with the effective Debian version.
    #[arg(short = 'v', long = "kernel-version", conflicts_with_all = ["all", "json"])]
    kernel_version: bool,
    /// Everything, as `uname -a` prints it.
    #[arg(short = 'a', long, conflicts_with = "json")]
    all: bool,
    /// The running and the effective kernel, and the bundle that raised it,
    /// as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    state: StateArgs,
    /// Read /proc and /sys under DIR instead of / (for tests).
    #[arg(long, value_name = "DIR", hide = true)]
    kernel_root: Option<PathBuf>,
}

/// The arguments of `Updates`.
#[derive(Debug, Args)]
struct UpdatesArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    state: StateArgs,
    /// Read /proc and /sys under DIR instead of / (for tests).
    #[arg(long, value_name = "DIR", hide = true)]
    kernel_root: Option<PathBuf>,
}

/// The arguments of `Cves`.
#[derive(Debug, Args)]
struct CvesArgs {
    /// Print an OpenVEX (v0.2.0) document.
    #[arg(long, conflicts_with = "json")]
    openvex: bool,
    /// Print JSON: one object per CVE with its evidence.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    state: StateArgs,
    /// Read /proc and /sys under DIR instead of / (for tests).
    #[arg(long, value_name = "DIR", hide = true)]
    kernel_root: Option<PathBuf>,
}

/// The arguments of `Report`.
#[derive(Debug, Args)]
struct ReportArgs {
    /// Print JSON instead of text.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// Print CSV, one row per bundle and CVE, the host first.
    #[arg(long)]
    csv: bool,
    /// Only audit lines from this time on (YYYY-MM-DD or RFC 3339, UTC).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only audit lines up to this time (YYYY-MM-DD: to its end; or RFC
    /// 3339, UTC).
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    #[command(flatten)]
    state: StateArgs,
    /// Read /proc and /sys under DIR instead of / (for tests).
    #[arg(long, value_name = "DIR", hide = true)]
    kernel_root: Option<PathBuf>,
}

/// The arguments of `Metrics`.
#[derive(Debug, Args)]
struct MetricsArgs {
    /// node-exporter's textfile directory.
    #[arg(long, value_name = "DIR")]
    textfile: Option<PathBuf>,
    #[command(flatten)]
    state: StateArgs,
    /// Read /proc and /sys under DIR instead of / (for tests).
    #[arg(long, value_name = "DIR", hide = true)]
    kernel_root: Option<PathBuf>,
}

/// The arguments of `Daemon`.
#[derive(Debug, Args)]
struct DaemonArgs {
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
    #[command(flatten)]
    guard: GuardArgs,
    /// Read /proc and /sys under DIR instead of / (for tests).
    #[arg(long, value_name = "DIR", hide = true)]
    kernel_root: Option<PathBuf>,
}

/// The arguments of `LoadModule`.
#[derive(Debug, Args)]
struct LoadModuleArgs {
    /// The module file.
    #[arg(value_name = "MODULE.ko")]
    module: PathBuf,
    /// Module parameters.
    #[arg(value_name = "PARAM=VALUE")]
    params: Vec<String>,
    /// Which definition a symbol links against, when kallsyms has several.
    #[arg(long = "symbol", value_name = "NAME=OBJECT[,POS]", value_parser = patchd::link::kallsyms::parse_symbol_arg)]
    symbols: Vec<LinkRecord>,
    /// Link records written by `patchgen build` (NAME.records.json).
    #[arg(long, value_name = "FILE")]
    records: Option<PathBuf>,
}

/// The arguments of `Link`.
#[derive(Debug, Args)]
struct LinkArgs {
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
    #[arg(long = "symbol", value_name = "NAME=OBJECT[,POS]", value_parser = patchd::link::kallsyms::parse_symbol_arg)]
    symbols: Vec<LinkRecord>,
    /// Link records written by `patchgen build` (NAME.records.json).
    #[arg(long, value_name = "FILE")]
    records: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Walk the hash chain and report the first edited, inserted or
    /// removed line, and check that every bundle the state records has its
    /// line (exit 6).
    Verify {
        #[command(flatten)]
        state: StateArgs,
    },
    /// After a broken audit log was kept as evidence: move audit.log and
    /// audit.head aside (audit.log.broken-TIME) and start a new chain that
    /// records why and accounts for every bundle the state records.
    /// Refused when the log is intact.
    Restart {
        #[command(flatten)]
        state: StateArgs,
    },
}

/// Restores the default action of `SIGPIPE` (the Rust runtime ignores it,
/// so a write to a closed pipe fails and `println!` panics): the process
/// then ends silently when the reader of its output has gone.
fn end_quietly_on_closed_pipe() {
    // SAFETY: called before any other thread exists; SIG_DFL installs no
    // handler code, so nothing runs in signal context.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
}

fn main() -> ExitCode {
    // `--generate man|bash|zsh|fish DIR`: the Debian packages' man pages
    // and completions (suture-clidocs); not part of the parsed command line.
    if let Some(code) =
        suture_clidocs::generate_if_asked(<Cli as clap::CommandFactory>::command, "8")
    {
        return code;
    }
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
    // Output to a closed pipe (`patchd status | head -1`) ends the command
    // quietly, as for any Unix tool, instead of a panic and an abort. Not
    // the daemon: its output goes to the journal, which may go away and
    // come back, and the daemon must not die of that.
    if !matches!(cli.command, Command::Daemon(_)) {
        end_quietly_on_closed_pipe();
    }
    init_logging();
    if let Command::Status(args) = &cli.command {
        if args.check {
            return ExitCode::from(commands::status_check(cli.config.as_deref(), args));
        }
    }
    match commands::run(cli) {
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
