//! The crash-loop guard: after the machine went down without a clean
//! shutdown, the bundles that might have brought it down are held back
//! instead of being re-applied at the next boot, so a bad patch cannot
//! crash the machine again at every boot.
//!
//! - **Boot identity**: at every session opening, [`begin_boot`] reads the
//!   kernel's boot id. A new id is a new boot: the state's [`BootRecord`]
//!   is replaced, and `after_crash` set when the boot before did not end
//!   with `patchd shutdown` while a bundle that had not survived was
//!   recorded. An unreadable boot id turns the guard off (logged), never
//!   patchd.
//! - **Survivors**: a bundle survives when it was applied at a clean
//!   shutdown (marked at the boot after it, [`begin_boot`], so a
//!   `patchd shutdown` that was not followed by a shutdown proves nothing)
//!   or when patchd saw it applied for `crash_guard_uptime_secs`
//!   ([`note_work`], from the daemon's passes and the commands that change
//!   what is applied, never from read-only ones). Once survived, always.
//! - **Clean shutdown**: [`shutdown`] (`patchd shutdown`, run by
//!   `patchd-shutdown.service` when the machine stops) marks this boot as
//!   ended cleanly; any later work in the same boot voids the mark.
//! - **Holding**: the daemon's boot re-apply after a crash puts a lost
//!   bundle that has not survived in phase held ([`hold`]); an apply the
//!   crash cut short is held too (reconcile). `patchd release` or a boot
//!   after a clean shutdown applies them again.

use std::sync::atomic::{AtomicBool, Ordering};

use tracing::{debug, info, warn};

use super::audit::{AuditAction, AuditEntry, AuditError, AuditResult};
use super::session::Session;
use super::state::{BootRecord, BundleRecord, Phase, State, StateError};
use super::take_out::entry_of;

pub use super::session::{DEFAULT_CRASH_GUARD_UPTIME_SECS, MAX_CRASH_GUARD_UPTIME_SECS};

/// Whether this process warned already that the boot id cannot be read.
static WARNED_NO_BOOT_ID: AtomicBool = AtomicBool::new(false);

/// Squares the state's boot record with the running boot: called when a
/// session opens, before reconciling. A boot id that cannot be read leaves
/// the record as it is and the guard off for this session.
pub(crate) fn begin_boot(session: &mut Session<'_>) -> Result<(), StateError> {
    let id = match session.kernel.boot_id() {
        Ok(id) => id,
        Err(error) => {
            let error = crate::error_text(&error);
            let text = "crash-loop guard off: cannot read this boot's id; lost bundles are re-applied as if the machine had shut down cleanly";
            // Once per process as a warning: the daemon opens a session
            // for every batch.
            if WARNED_NO_BOOT_ID.swap(true, Ordering::Relaxed) {
                debug!(error = %error, "{text}");
            } else {
                warn!(error = %error, "{text}");
            }
            return Ok(());
        }
    };
    session.boot_id = Some(id.clone());
    if session
        .state
        .boot
        .as_ref()
        .is_some_and(|boot| boot.id == id)
    {
        return Ok(());
    }
    let previous = session.state.boot.take();
    let clean = previous.as_ref().is_some_and(|boot| boot.clean_shutdown);
    let now = session.clock.now();
    if clean {
        for record in &mut session.state.bundles {
            if record.phase == Phase::Applied && !record.survived {
                record.survived = true;
                record.updated_at = now;
                info!(bundle = %record.id, "crash-loop guard: {} was applied at a clean shutdown: it survived", record.id);
            }
        }
    }
    let unproven: Vec<&str> = session
        .state
        .bundles
        .iter()
        .filter(|record| !record.survived)
        .map(|record| record.id.as_str())
        .collect();
    let after_crash = previous.is_some() && !clean && !unproven.is_empty();
    if after_crash {
        warn!(
            boot_id = %id,
            "crash-loop guard: the machine went down without a clean shutdown while {} was recorded; those not seen applied for {} s are held back",
            unproven.join(", "),
            session.config.crash_guard_uptime_secs
        );
    } else {
        info!(boot_id = %id, clean_shutdown = clean, "crash-loop guard: a new boot");
    }
    session.first_after_crash = after_crash;
    session.state.boot = Some(BootRecord {
        id,
        clean_shutdown: false,
        after_crash,
    });
    session.save()
}

/// Whether this boot followed a crash, so bundles that have not survived
/// are held back. False when the boot id is unknown (the guard is off).
pub fn after_crash(session: &Session<'_>) -> bool {
    match (&session.boot_id, &session.state.boot) {
        (Some(id), Some(boot)) => boot.id == *id && boot.after_crash,
        _ => false,
    }
}

/// What a command that changes what is applied (a daemon pass, `apply`,
/// `revert`, `release`) tells the guard before its work: a clean shutdown
/// recorded in this boot is void (the machine did not go down after all),
/// and every bundle applied for `crash_guard_uptime_secs` survives.
/// Returns the bundles that survived now.
pub fn note_work(session: &mut Session<'_>) -> Result<Vec<String>, StateError> {
    let mut voided = false;
    if let (Some(id), Some(boot)) = (&session.boot_id, session.state.boot.as_mut()) {
        if boot.id == *id && boot.clean_shutdown {
            boot.clean_shutdown = false;
            voided = true;
            info!("crash-loop guard: patchd works again after `patchd shutdown` in this boot; the clean shutdown it recorded is void");
        }
    }
    let secs = session.config.crash_guard_uptime_secs;
    let now = session.clock.now();
    let mut survivors = Vec::new();
    for record in &mut session.state.bundles {
        if secs > 0 && due(record, secs).is_some_and(|at| at <= now) {
            record.survived = true;
            record.updated_at = now;
            info!(bundle = %record.id, "crash-loop guard: {} has been applied for {secs} s: it survived", record.id);
            survivors.push(record.id.clone());
        }
    }
    if voided || !survivors.is_empty() {
        session.save()?;
    }
    Ok(survivors)
}

/// When a bundle applied and not yet survived will have been applied for
/// `secs` (Unix seconds).
fn due(record: &BundleRecord, secs: u64) -> Option<u64> {
    if record.phase != Phase::Applied || record.survived {
        return None;
    }
    record.applied_at.map(|at| at.saturating_add(secs))
}

/// When [`note_work`] next has a survivor to mark (Unix seconds), for the
/// daemon's timer; `None` when no applied bundle waits for its proof or
/// the uptime proof is off.
pub fn next_survivor_at(state: &State, secs: u64) -> Option<u64> {
    if secs == 0 {
        return None;
    }
    state
        .bundles
        .iter()
        .filter_map(|record| due(record, secs))
        .min()
}

/// Why a held bundle is held, as the audit log and `patchd status` say it;
/// `secs` is the uptime proof.
pub fn hold_reason(record: &BundleRecord, secs: u64) -> String {
    let id = &record.id;
    match record.applied_at {
        Some(_) => format!(
            "held back: the machine went down without a clean shutdown while it was applied, before patchd had seen it applied for {secs} s; `patchd release {id}` re-applies it"
        ),
        None => format!(
            "held back: the machine went down without a clean shutdown while it was being applied; `patchd release {id}` applies it"
        ),
    }
}

/// Holds back bundle `id`, recorded as lost, instead of re-applying it
/// (the daemon's boot re-apply after a crash): records it as held, logs a
/// warning and writes a `hold` audit line.
pub fn hold(session: &mut Session<'_>, id: &str) -> Result<(), StateError> {
    let now = session.clock.now();
    let secs = session.config.crash_guard_uptime_secs;
    let Some(record) = session.state.get_mut(id) else {
        return Ok(());
    };
    record.phase = Phase::Held;
    record.updated_at = now;
    let reason = hold_reason(record, secs);
    let mut entry = entry_of(record);
    session.save()?;
    warn!(bundle = id, "boot re-apply: {id} {reason}");
    entry.detail = Some(reason);
    session.audit_or_log(AuditAction::Hold, AuditResult::Ok, entry);
    Ok(())
}

/// What `patchd shutdown` recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// The boot whose clean shutdown was recorded; `None` when its id could
    /// not be read (nothing was recorded: the guard is off).
    pub boot_id: Option<String>,
    /// The bundles applied now: they survive if the machine now goes down.
    pub applied: Vec<String>,
}

/// Records a clean shutdown of this boot (`patchd shutdown`, as the
/// machine stops): the next boot re-applies every bundle, and counts those
/// applied now as survivors. Audited as `shutdown`.
pub fn shutdown(session: &mut Session<'_>) -> Result<ShutdownReport, ShutdownError> {
    let applied: Vec<String> = session
        .state
        .bundles
        .iter()
        .filter(|record| record.phase == Phase::Applied)
        .map(|record| record.id.clone())
        .collect();
    let listed = if applied.is_empty() {
        "none".to_owned()
    } else {
        format!(
            "{} (they survive if the machine goes down now)",
            applied.join(", ")
        )
    };
    let boot_id = session.boot_id.clone();
    let mut entry = AuditEntry::default();
    let result = match (&boot_id, session.state.boot.as_mut()) {
        (Some(id), Some(boot)) if boot.id == *id => {
            boot.clean_shutdown = true;
            session.save().map_err(ShutdownError::State)?;
            entry.detail = Some(format!("clean shutdown of boot {id}; applied: {listed}"));
            AuditResult::Ok
        }
        _ => {
            entry.error = Some("cannot read this boot's id: no clean shutdown recorded (the crash-loop guard is off)".to_owned());
            AuditResult::Failed
        }
    };
    session
        .audit(AuditAction::Shutdown, result, entry)
        .map_err(ShutdownError::Audit)?;
    Ok(ShutdownReport {
        boot_id: boot_id.filter(|_| result == AuditResult::Ok),
        applied,
    })
}

/// Why `patchd shutdown` could not record the shutdown.
#[derive(Debug, thiserror::Error)]
pub enum ShutdownError {
    /// The state could not be written.
    #[error("cannot record the clean shutdown in the state")]
    State(#[source] StateError),
    /// The audit log could not be written.
    #[error("recorded the clean shutdown, but cannot write it to the audit log")]
    Audit(#[source] AuditError),
}

#[cfg(test)]
#[path = "crash_guard_tests.rs"]
mod tests;
