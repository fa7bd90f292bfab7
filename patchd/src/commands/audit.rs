//! `patchd audit verify` and `patchd audit restart`: the audit log's chain,
//! the state it must account for, and the way out once a broken log is
//! kept as evidence.

use std::path::Path;

use patchd::ownership::default_owners;
use patchd::transaction::audit::check::{cross_check, restart};
use patchd::transaction::state::StateDir;
use patchd::{AuditLog, Clock, SystemClock};

use super::{settings, state_only};
use crate::StateArgs;

/// `patchd audit verify`: the chain, then the state against it.
pub(crate) fn cmd_audit_verify(config: Option<&Path>, state: StateArgs) -> anyhow::Result<()> {
    let settings = settings(config, state_only(state))?;
    let dir = StateDir::open_read_only(&settings.state_dir, &default_owners())?;
    let recorded = dir.load()?;
    let log = AuditLog::new(dir.path());
    let accounted = log.accounted()??;
    cross_check(&log, &accounted, &recorded)?;
    println!(
        "audit log {}: {} line(s), the hash chain is intact and accounts for the {} bundle(s) the state records; compare its last line with the last head in the system log (journalctl -t patchd)",
        log.path().display(),
        accounted.lines,
        recorded.bundles.len()
    );
    Ok(())
}

/// `patchd audit restart`.
pub(crate) fn cmd_audit_restart(config: Option<&Path>, state: StateArgs) -> anyhow::Result<()> {
    static CLOCK: SystemClock = SystemClock;
    let settings = settings(config, state_only(state))?;
    let dir = StateDir::open(&settings.state_dir, &default_owners())?;
    let recorded = dir.load()?;
    let log = AuditLog::new(dir.path()).with_syslog(settings.audit_syslog.clone());
    let restarted = restart(&log, CLOCK.now(), &recorded)?;
    println!("the audit log was broken: {}", restarted.broken);
    for kept in &restarted.kept {
        println!("kept as evidence: {}", kept.display());
    }
    println!(
        "started a new chain in {}, taking over {} bundle(s) from the state{}",
        log.path().display(),
        restarted.bundles.len(),
        if restarted.bundles.is_empty() {
            String::new()
        } else {
            format!(": {}", restarted.bundles.join(", "))
        }
    );
    Ok(())
}
