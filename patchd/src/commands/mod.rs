//! The commands of the `patchd` binary, one function each, and what they
//! share: settings, sessions, the daemon's set-up.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tracing::info;

use patchd::daemon::exporter::{MetricsExporter, MetricsServer};
use patchd::daemon::signals::{Notifier, Stop};
use patchd::daemon::{Daemon, DaemonOptions};
use patchd::kernel::running_identity;
use patchd::observe::metrics::TEXTFILE_NAME;
use patchd::ownership::default_owners;
use patchd::privileges::{drop_to, require, RealCapabilities, DAEMON_CAPABILITIES, KERNEL_CHANGES};
use patchd::transaction::crash_guard::{self, note_work};
use patchd::transaction::release::{release, ReleaseTarget};
use patchd::transaction::state::{StateDir, StateError};
use patchd::verify::trust::TrustStore;
use patchd::{
    link::load, link_module, AuditLog, Clock, Config, Kallsyms, LinkRecord, MetricsSnapshot,
    ModuleImage, Overrides, RealKernel, RevertTarget, Session, SessionError, Settings, SystemClock,
};

mod audit;
mod observe;

pub(crate) use observe::status_check;

use super::{
    ApplyArgs, AuditCommand, Cli, Command, DaemonArgs, GuardArgs, LinkArgs, LoadModuleArgs,
    MetricsArgs, ReleaseArgs, RetryArgs, RevertArgs, StateArgs, VerifyArgs,
};

/// How long `patchd shutdown` waits for another patchd's state lock, a
/// second at a time: the machine is stopping, a command in hand finishes.
const SHUTDOWN_LOCK_ATTEMPTS: u32 = 30;

/// Runs the parsed command.
pub(crate) fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config.as_deref();
    match cli.command {
        Command::Verify(args) => cmd_verify(config, args),
        Command::Apply(args) => cmd_apply(config, args),
        Command::Revert(args) => cmd_revert(config, args),
        Command::Release(args) => cmd_release(config, args),
        Command::Shutdown(state) => cmd_shutdown(config, state),
        Command::Status(args) => observe::cmd_status(config, args),
        Command::Uname(args) => observe::cmd_uname(config, args),
        Command::Cves(args) => observe::cmd_cves(config, args),
        Command::Updates(args) => observe::cmd_updates(config, args),
        Command::Report(args) => observe::cmd_report(config, args),
        Command::Metrics(args) => cmd_metrics(config, args),
        Command::Daemon(args) => cmd_daemon(config, args),
        Command::LoadModule(args) => cmd_load_module(args),
        Command::Link(args) => cmd_link(args),
        Command::Audit {
            command: AuditCommand::Verify { state },
        } => audit::cmd_audit_verify(config, state),
        Command::Audit {
            command: AuditCommand::Restart { state },
        } => audit::cmd_audit_restart(config, state),
    }
}

/// `patchd verify`.
fn cmd_verify(config: Option<&Path>, args: VerifyArgs) -> anyhow::Result<()> {
    let VerifyArgs {
        bundles,
        keys,
        kernel_root,
    } = args;
    let settings = settings(
        config,
        Overrides {
            keys_dir: keys.keys,
            ..Overrides::default()
        },
    )?;
    let kernel = kernel_at(kernel_root);
    verify(&kernel, &bundles, &settings.keys_dir)?;
    Ok(())
}

/// `patchd apply`.
fn cmd_apply(config: Option<&Path>, args: ApplyArgs) -> anyhow::Result<()> {
    let ApplyArgs {
        bundles,
        keys,
        kmod,
        state,
        retry,
        guard,
    } = args;
    let settings = settings(
        config,
        Overrides {
            keys_dir: keys.keys,
            kmod: kmod.kmod,
            ..overrides(state, retry, guard)
        },
    )?;
    require(&RealCapabilities, KERNEL_CHANGES, "patchd apply")?;
    let kernel = RealKernel::new();
    let mut session = open_for_changes(&kernel, &settings)?;
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
    Ok(())
}

/// `patchd revert`.
fn cmd_revert(config: Option<&Path>, args: RevertArgs) -> anyhow::Result<()> {
    let RevertArgs {
        ids,
        all,
        state,
        retry,
        guard,
    } = args;
    let settings = settings(config, overrides(state, retry, guard))?;
    require(&RealCapabilities, KERNEL_CHANGES, "patchd revert")?;
    let kernel = RealKernel::new();
    let mut session = open_for_changes(&kernel, &settings)?;
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
    Ok(())
}

/// `patchd release`.
fn cmd_release(config: Option<&Path>, args: ReleaseArgs) -> anyhow::Result<()> {
    let ReleaseArgs {
        ids,
        all,
        keys,
        kmod,
        state,
        retry,
        guard,
    } = args;
    let settings = settings(
        config,
        Overrides {
            keys_dir: keys.keys,
            kmod: kmod.kmod,
            ..overrides(state, retry, guard)
        },
    )?;
    require(&RealCapabilities, KERNEL_CHANGES, "patchd release")?;
    let kernel = RealKernel::new();
    let mut session = open_for_changes(&kernel, &settings)?;
    let target = if all {
        ReleaseTarget::All
    } else {
        ReleaseTarget::Ids(ids)
    };
    let report = release(&mut session, &target)?;
    if report.released.is_empty() {
        println!("nothing is held");
    }
    for id in &report.released {
        println!("{id}: released (applied again)");
    }
    Ok(())
}

/// `patchd shutdown`: no capability needed (it writes only the root-owned
/// state directory, as `status` may), and it waits a while for the lock.
fn cmd_shutdown(config: Option<&Path>, state: StateArgs) -> anyhow::Result<()> {
    static CLOCK: SystemClock = SystemClock;
    let settings = settings(config, state_only(state))?;
    let kernel = RealKernel::new();
    let mut session = None;
    for attempt in 1..=SHUTDOWN_LOCK_ATTEMPTS {
        let config = settings.session_config(default_owners());
        match open_session_with(&kernel, &CLOCK, config) {
            Err(SessionError::State(StateError::Locked { .. }))
                if attempt < SHUTDOWN_LOCK_ATTEMPTS =>
            {
                if attempt == 1 {
                    info!("another patchd holds the state lock; waiting for it");
                }
                CLOCK.sleep(std::time::Duration::from_secs(1));
            }
            opened => {
                session = Some(opened?);
                break;
            }
        }
    }
    let Some(mut session) = session else {
        anyhow::bail!("cannot open the state to record the shutdown");
    };
    let report = crash_guard::shutdown(&mut session)?;
    match &report.boot_id {
        Some(id) => println!(
            "recorded a clean shutdown of boot {id}; applied: {}",
            if report.applied.is_empty() {
                "none".to_owned()
            } else {
                report.applied.join(", ")
            }
        ),
        None => println!(
            "cannot read this boot's id: no clean shutdown recorded (the crash-loop guard is off)"
        ),
    }
    Ok(())
}

/// `patchd metrics`.
fn cmd_metrics(config: Option<&Path>, args: MetricsArgs) -> anyhow::Result<()> {
    let MetricsArgs {
        textfile,
        state,
        kernel_root,
    } = args;
    let settings = settings(config, state_only(state))?;
    // The flag, or the config file's metrics.textfile_dir.
    let textfile = textfile.or(settings.metrics.textfile_dir);
    let kernel = kernel_at(kernel_root);
    let identity = running_identity(&kernel).context("cannot identify the running kernel")?;
    let dir = StateDir::open_read_only(&settings.state_dir, &default_owners())?;
    let state = dir.load()?;
    let audit = AuditLog::new(dir.path()).read_verified()?;
    let snapshot = MetricsSnapshot::collect(&state, audit.as_deref(), None, &identity);
    let text = patchd::render(&snapshot);
    match &textfile {
        Some(textfile) => patchd::write_textfile(textfile, &text)
            .with_context(|| format!("cannot write {}", textfile.join(TEXTFILE_NAME).display()))?,
        None => print!("{text}"),
    }
    if let Err(tampered) = audit {
        return Err(anyhow::Error::new(tampered)
            .context("the metrics drawn from the audit log were left out (suture_audit_log_intact 0); run `patchd audit verify`"));
    }
    Ok(())
}

/// `patchd daemon`.
fn cmd_daemon(config: Option<&Path>, args: DaemonArgs) -> anyhow::Result<()> {
    let DaemonArgs {
        once,
        no_repository,
        watch_dir,
        keys,
        kmod,
        state,
        retry,
        guard,
        kernel_root,
    } = args;
    let settings = settings(
        config,
        Overrides {
            keys_dir: keys.keys,
            kmod: kmod.kmod,
            watch_dir,
            ..overrides(state, retry, guard)
        },
    )?;
    daemon(settings, once, !no_repository, kernel_root)?;
    Ok(())
}

/// `patchd load-module`.
fn cmd_load_module(args: LoadModuleArgs) -> anyhow::Result<()> {
    let LoadModuleArgs {
        module,
        params,
        symbols,
        records,
    } = args;
    require(&RealCapabilities, KERNEL_CHANGES, "patchd load-module")?;
    let symbols = with_records(symbols, records.as_deref())?;
    let report = load::load_module_file(&RealKernel::new(), &module, &params.join(" "), &symbols)
        .with_context(|| format!("cannot load {}", module.display()))?;
    let name = report.module_name.unwrap_or_else(|| file_stem(&module));
    info!(
        linked = report.resolved.len(),
        signature_stripped = report.signature_stripped,
        "loaded {name}"
    );
    Ok(())
}

/// `patchd link`.
fn cmd_link(args: LinkArgs) -> anyhow::Result<()> {
    let LinkArgs {
        module,
        kallsyms,
        output,
        symbols,
        records,
    } = args;
    let symbols = with_records(symbols, records.as_deref())?;
    let image = load::read_module(&module)?;
    let text = read_text(&kallsyms, MAX_KALLSYMS_FILE)?;
    let kallsyms =
        Kallsyms::parse(&text).with_context(|| format!("cannot use {}", kallsyms.display()))?;
    let parsed =
        ModuleImage::parse(&image).with_context(|| format!("cannot link {}", module.display()))?;
    let linked = link_module(&parsed, &kallsyms, &symbols)
        .with_context(|| format!("cannot link {}", module.display()))?;
    std::fs::write(&output, &linked.image)
        .with_context(|| format!("cannot write {}", output.display()))?;
    info!(
        linked = linked.resolved.len(),
        signature_stripped = linked.signature_stripped,
        "wrote {}",
        output.display()
    );
    Ok(())
}

/// The settings: the config file (`--config`, or the default file if it
/// exists), then the flags.
pub(crate) fn settings(config: Option<&Path>, overrides: Overrides) -> anyhow::Result<Settings> {
    Ok(Settings::load(config, &overrides, &default_owners())?)
}

/// The running kernel, or a fake /proc and /sys under `root` (the hidden
/// `--kernel-root` of tests).
pub(crate) fn kernel_at(root: Option<PathBuf>) -> RealKernel {
    root.map_or_else(RealKernel::new, RealKernel::with_root)
}

/// Only `--state-dir`.
pub(crate) fn state_only(state: StateArgs) -> Overrides {
    Overrides {
        state_dir: state.state_dir,
        ..Overrides::default()
    }
}

/// The flags shared by the commands that change what is applied.
fn overrides(state: StateArgs, retry: RetryArgs, guard: GuardArgs) -> Overrides {
    Overrides {
        state_dir: state.state_dir,
        switch_attempts: retry.switch_attempts,
        switch_backoff_ms: retry.switch_backoff_ms,
        crash_guard_uptime_secs: guard.crash_guard_uptime_secs,
        ..Overrides::default()
    }
}

/// The session of a command that changes what is applied (`apply`,
/// `revert`, `release`): opened (locked, reconciled), then told of the work
/// about to happen (the crash-loop guard's survivors and shutdown mark).
fn open_for_changes<'k>(
    kernel: &'k RealKernel,
    settings: &Settings,
) -> anyhow::Result<Session<'k>> {
    let mut session = open_session(kernel, settings.session_config(default_owners()))?;
    note_work(&mut session)?;
    Ok(session)
}

/// Opens a session (locks and reconciles the state) with the system clock,
/// reporting what reconciling changed.
fn open_session(kernel: &RealKernel, config: Config) -> anyhow::Result<Session<'_>> {
    static CLOCK: SystemClock = SystemClock;
    Ok(open_session_with(kernel, &CLOCK, config)?)
}

/// [`open_session`] with its error as it is, to tell a held lock apart.
fn open_session_with<'k>(
    kernel: &'k RealKernel,
    clock: &'k SystemClock,
    config: Config,
) -> Result<Session<'k>, SessionError> {
    let session = Session::open(kernel, clock, config)?;
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
    let kernel = kernel_at(kernel_root);
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

/// Largest kallsyms file `patchd link` reads (the running kernel's is
/// about 15 MiB).
const MAX_KALLSYMS_FILE: u64 = 256 << 20;
/// Largest `--records` file `patchd link` reads.
const MAX_RECORDS_FILE: u64 = 64 << 20;

/// A text file named on the command line: a regular file (never a FIFO)
/// of at most `cap` bytes.
fn read_text(path: &Path, cap: u64) -> anyhow::Result<String> {
    let read = patchd::files::read_regular(path, cap, patchd::files::Links::Follow)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let Some(bytes) = read else {
        anyhow::bail!(
            "{} is larger than {cap} bytes: give the right file",
            path.display()
        );
    };
    String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8 text", path.display()))
}

/// The `--symbol` records plus those of a `--records` file.
fn with_records(
    mut symbols: Vec<LinkRecord>,
    file: Option<&Path>,
) -> anyhow::Result<Vec<LinkRecord>> {
    let Some(file) = file else {
        return Ok(symbols);
    };
    let text = read_text(file, MAX_RECORDS_FILE)?;
    let records: Vec<LinkRecord> = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a patchgen records file", file.display()))?;
    symbols.extend(records);
    Ok(symbols)
}
