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

use super::settings;
use crate::{CvesArgs, StatusArgs, UnameArgs};

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

fn kernel_at(root: Option<PathBuf>) -> RealKernel {
    root.map_or_else(RealKernel::new, RealKernel::with_root)
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
