//! The read-only commands that show what the kernel runs: `patchd status`,
//! `patchd uname` (the kernel version scanners should see) and `patchd
//! cves` (the CVEs fixed, for scanners and auditors). Each opens the state
//! read-only: nothing is reconciled, written or created.

use std::path::{Path, PathBuf};

use anyhow::Context;

use patchd::daemon::watch::not_applied;
use patchd::observe::uname::{uname, uname_of, Uname};
use patchd::observe::verdict::UNKNOWN_EXIT_CODE;
use patchd::observe::vex::{fixed_cves, openvex};
use patchd::ownership::default_owners;
use patchd::transaction::state::StateError;
use patchd::Status;
use patchd::{Clock, Overrides, RealKernel, Session, SystemClock};

use super::{kernel_at, settings};
use crate::{CvesArgs, ReportArgs, StatusArgs, UnameArgs, UpdatesArgs};

static CLOCK: SystemClock = SystemClock;

/// Runs `show` on a read-only session of the state `state_dir` names.
fn read_only<T>(
    config: Option<&Path>,
    state_dir: Option<PathBuf>,
    kernel: &RealKernel,
    show: impl FnOnce(&Session<'_>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let settings = settings(
        config,
        Overrides {
            state_dir,
            ..Overrides::default()
        },
    )?;
    let config = settings.session_config(default_owners());
    // The kernel's side of each bundle is shown as the kernel has it.
    let session = Session::open_read_only(kernel, &CLOCK, config)?;
    show(&session)
}

/// The status with the watch directory's bundles not applied.
fn full_status(config: Option<&Path>, args: &StatusArgs) -> anyhow::Result<Status> {
    let watch_dir = settings(config, Overrides::default())?.watch_dir;
    read_only(
        config,
        args.state.state_dir.clone(),
        &kernel_at(args.kernel_root.clone()),
        |session| {
            let mut status = patchd::status(session).context("cannot read the kernel's state")?;
            let applied = status.bundles.iter().map(|b| b.sha256.as_str()).collect();
            let pending = not_applied(&watch_dir, &applied);
            status.set_pending(pending);
            Ok(status)
        },
    )
}

/// `patchd status`.
pub(crate) fn cmd_status(config: Option<&Path>, args: StatusArgs) -> anyhow::Result<()> {
    let status = full_status(config, &args)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{status}");
    }
    Ok(())
}

/// `patchd status --check`: the verdict and its monitoring exit code.
pub(crate) fn status_check(config: Option<&Path>, args: &StatusArgs) -> u8 {
    match full_status(config, args) {
        Ok(status) => {
            println!("{}", status.verdict);
            status.verdict.level.exit_code()
        }
        Err(error) => {
            println!("UNKNOWN: {error:#}");
            UNKNOWN_EXIT_CODE
        }
    }
}

/// Runs `show` on a read-only session, or with `None` when there is no
/// state directory: patchd has applied nothing on this machine.
fn read_only_or_none<T>(
    config: Option<&Path>,
    state_dir: Option<PathBuf>,
    kernel: &RealKernel,
    show: impl Fn(&RealKernel, Option<&Session<'_>>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    match read_only(config, state_dir, kernel, |session| {
        show(kernel, Some(session))
    }) {
        Err(e)
            if e.downcast_ref::<StateError>()
                .is_some_and(|e| matches!(e, StateError::Missing { .. })) =>
        {
            show(kernel, None)
        }
        other => other,
    }
}

/// The effective version, also without a state.
fn uname_here(kernel: &RealKernel, session: Option<&Session<'_>>) -> anyhow::Result<Uname> {
    match session {
        Some(session) => uname(session),
        None => uname_of(kernel, None),
    }
    .context("cannot read the running kernel")
}

/// `patchd uname`.
pub(crate) fn cmd_uname(config: Option<&Path>, args: UnameArgs) -> anyhow::Result<()> {
    let kernel = kernel_at(args.kernel_root);
    let u = read_only_or_none(config, args.state.state_dir, &kernel, uname_here)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&u)?);
    } else if args.all {
        println!("{}", u.all());
    } else if args.kernel_version {
        println!("{}", u.effective.version);
    } else {
        println!("{}", u.effective.release);
    }
    Ok(())
}

/// `patchd cves`.
pub(crate) fn cmd_cves(config: Option<&Path>, args: CvesArgs) -> anyhow::Result<()> {
    let kernel = kernel_at(args.kernel_root);
    let (cves, u) = read_only_or_none(config, args.state.state_dir, &kernel, |kernel, session| {
        let cves = match session {
            Some(session) => {
                fixed_cves(&patchd::status(session).context("cannot read the kernel's state")?)
            }
            None => Vec::new(),
        };
        Ok((cves, uname_here(kernel, session)?))
    })?;
    if args.openvex {
        let tooling = format!("suture patchd {}", env!("CARGO_PKG_VERSION"));
        let doc = openvex(&cves, &u, CLOCK.now(), &tooling);
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else if args.json {
        println!("{}", serde_json::to_string_pretty(&cves)?);
    } else if cves.is_empty() {
        println!("no CVE is fixed by a live patch the kernel runs now");
    } else {
        for c in &cves {
            println!(
                "{} fixed by {} (applied {}, sha256 {})",
                c.cve,
                c.bundle,
                c.applied_at.as_deref().unwrap_or("at an unknown time"),
                c.sha256
            );
        }
    }
    Ok(())
}

/// What `patchd updates` found.
#[derive(Debug, serde::Serialize)]
struct Updates {
    /// Bundle files of the watch directory not applied.
    watch_dir: Vec<String>,
    /// Bundles of the repository for this kernel not downloaded or applied.
    repository: Vec<patchd::daemon::index::IndexEntry>,
    /// Why the repository could not be read, if it could not.
    repository_error: Option<String>,
}

/// `patchd updates`: what the daemon's next pass would try, without
/// trying it: the watch directory's bundles not applied, and the
/// repository's bundles for the running kernel that are neither applied
/// nor in the watch directory. Reads only (the repository's index over
/// the network); exit 1 when the repository cannot be read.
pub(crate) fn cmd_updates(config: Option<&Path>, args: UpdatesArgs) -> anyhow::Result<()> {
    let settings = settings(config, Overrides::default())?;
    let kernel = kernel_at(args.kernel_root);
    let applied: Vec<String> = read_only_or_none(config, args.state.state_dir, &kernel, |_, s| {
        Ok(
            s.map(|s| s.state().bundles.iter().map(|b| b.sha256.clone()).collect())
                .unwrap_or_default(),
        )
    })?;
    let applied_set = applied.iter().map(String::as_str).collect();
    let watch_dir = not_applied(&settings.watch_dir, &applied_set);
    let mut updates = Updates {
        watch_dir,
        repository: Vec::new(),
        repository_error: None,
    };
    if let Some(repository) = settings.repository.clone() {
        let running = patchd::kernel::running_identity(&kernel)?;
        let in_watch = patchd::daemon::watch::digests(&settings.watch_dir);
        let have = |sha256: &str| applied_set.contains(sha256) || in_watch.contains(sha256);
        match patchd::daemon::repository::Repository::new(repository)
            .not_downloaded(&running, &have)
        {
            Ok(entries) => updates.repository = entries,
            Err(error) => updates.repository_error = Some(patchd::error_text(&error)),
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&updates)?);
    } else {
        print_updates(&updates, settings.repository.is_some());
    }
    match &updates.repository_error {
        Some(error) => anyhow::bail!("cannot read the repository: {error}"),
        None => Ok(()),
    }
}

fn print_updates(updates: &Updates, has_repository: bool) {
    if updates.watch_dir.is_empty() {
        println!("watch directory: nothing to apply");
    }
    for name in &updates.watch_dir {
        println!("watch directory: {name} (not applied)");
    }
    if !has_repository {
        println!("repository: none configured");
    } else if updates.repository_error.is_none() && updates.repository.is_empty() {
        println!("repository: nothing new for this kernel");
    }
    for entry in &updates.repository {
        let cves = if entry.cves.is_empty() {
            String::new()
        } else {
            format!(", {}", entry.cves.join(" "))
        };
        println!(
            "repository: {} ({} bytes{cves}, not downloaded)",
            entry.name, entry.size
        );
    }
}

/// `patchd report`: the figures with the header an auditor needs.
pub(crate) fn cmd_report(config: Option<&Path>, args: ReportArgs) -> anyhow::Result<()> {
    use patchd::observe::report_header::{report_with_header, ReportHeader, Window};
    use patchd::Kernel;
    let window = Window {
        since: args
            .since
            .as_deref()
            .map(|t| time_arg("--since", t, false))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|t| time_arg("--until", t, true))
            .transpose()?,
    };
    let settings = settings(config, super::state_only(args.state))?;
    let dir = patchd::transaction::state::StateDir::open_read_only(
        &settings.state_dir,
        &default_owners(),
    )?;
    let kernel = kernel_at(args.kernel_root);
    let identity = patchd::kernel::running_identity(&kernel).ok();
    let header = ReportHeader {
        host: kernel.host_name().unwrap_or_else(|_| "unknown".to_owned()),
        machine_id: std::fs::read_to_string("/etc/machine-id")
            .ok()
            .map(|id| id.trim().chars().take(64).collect()),
        kernel_release: identity
            .as_ref()
            .map_or("unknown".to_owned(), |i| i.release.clone()),
        kernel_build_id: identity.map_or("unknown".to_owned(), |i| i.build_id),
        generated_at: patchd::clock::utc_rfc3339(CLOCK.now()),
        ..ReportHeader::default()
    };
    let report = report_with_header(&dir, window, header)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if args.csv {
        print!("{}", report.to_csv());
    } else {
        print!("{report}");
    }
    Ok(())
}

/// A time given on the command line: `YYYY-MM-DD` (its start, or with
/// `end_of_day` its last second) or RFC 3339; Unix seconds.
fn time_arg(flag: &str, text: &str, end_of_day: bool) -> anyhow::Result<u64> {
    let full = if text.len() == 10 && text.as_bytes().get(4) == Some(&b'-') {
        format!(
            "{text}T{}Z",
            if end_of_day { "23:59:59" } else { "00:00:00" }
        )
    } else {
        text.to_owned()
    };
    let time = humantime::parse_rfc3339_weak(&full)
        .or_else(|_| humantime::parse_rfc3339(&full))
        .map_err(|e| {
            anyhow::anyhow!("{flag} {text:?} is not a time (YYYY-MM-DD or RFC 3339): {e}")
        })?;
    Ok(time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()))
}
