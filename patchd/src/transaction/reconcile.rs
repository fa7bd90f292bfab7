//! Reconciling the state file with what the kernel really has
//! (`/proc/modules` and `/sys/kernel/suture/`), at the start of every
//! command, so that a crash or a kill at any point never leaves a patch
//! half applied or a loaded patch forgotten.
//!
//! - An apply that was still open is undone as a whole, newest bundle
//!   first: all or nothing holds across a crash too. A bundle that cannot be
//!   disabled stays, recorded as applied (the truth).
//! - Otherwise, per bundle, by what the kernel shows ([`decide`]): a bundle
//!   recorded as loading, enabling or reverting whose module is loaded but
//!   not enabled is unloaded; one that is enabled is recorded as applied; a
//!   bundle recorded as applied whose module is gone is marked lost. A held
//!   bundle (the crash-loop guard) is read as a lost one.
//! - An apply that the machine's crash cut short (found open by the first
//!   patchd run of a boot after a crash) is undone too, but its new bundles
//!   are kept, held, with their copies: the crash may have been theirs, so
//!   the watch directory must not apply them again by itself.
//!
//! A module of a recorded id that is not a patch patchd loaded (not
//! registered with the companion module under its own name) is read as
//! nothing loaded: its record goes or is marked lost, the module is never
//! unloaded ([`super::take_out`]).
//!
//! Every change is written to the state file and the audit log.

use tracing::{info, warn};

use super::audit::{AuditAction, AuditResult};
use super::crash_guard::hold_reason;
use super::session::{ReconcileReport, Reconciled, Session};
use super::state::{Phase, StateError};
use super::take_out::{
    entry_of, foreign_text, module_found, patch_enabled, phase_in_kernel, take_out, ModuleFound,
};
use crate::kernel::KernelError;

/// What to do with one record, given what the kernel shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The record is right.
    Keep,
    /// Record this phase instead.
    Record(Phase),
    /// Unload the module (it is loaded but not enabled), then forget it.
    UnloadAndForget,
    /// Nothing is in the kernel: forget it.
    Forget,
}

/// The rule table (the module doc explains it).
pub fn decide(phase: Phase, loaded: bool, enabled: bool) -> Decision {
    use Decision::{Forget, Keep, Record, UnloadAndForget};
    match (phase, loaded, enabled) {
        (Phase::Applied, _, true) => Keep,
        (_, _, true) => Record(Phase::Applied),
        (Phase::Loading | Phase::Enabling | Phase::Reverting, true, false) => UnloadAndForget,
        (Phase::Loading | Phase::Enabling | Phase::Reverting, false, false) => Forget,
        (Phase::Applied | Phase::Lost | Phase::Held, true, false) => Record(Phase::Disabled),
        (Phase::Disabled, true, false) => Keep,
        (Phase::Applied | Phase::Disabled, false, false) => Record(Phase::Lost),
        (Phase::Lost | Phase::Held, false, false) => Keep,
    }
}

/// Why reconciling stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The kernel's state could not be read.
    #[error("cannot read the kernel's state to reconcile it with patchd's")]
    Kernel(#[source] KernelError),
    /// The state could not be written.
    #[error(transparent)]
    State(StateError),
}

/// Brings the session's state in line with the kernel (see the module doc).
pub(crate) fn reconcile(session: &mut Session<'_>) -> Result<ReconcileReport, ReconcileError> {
    let mut report = ReconcileReport::default();
    if let Some(open) = session.state.open_transaction.take() {
        warn!(
            transaction = open.id,
            "an apply did not finish (patchd was stopped): undoing it"
        );
        let ids: Vec<String> = session
            .state
            .bundles
            .iter()
            .filter(|b| b.transaction == open.id)
            .map(|b| b.id.clone())
            .collect();
        for id in ids.iter().rev() {
            let before = match (open.held.contains(id), open.reapplying.contains(id)) {
                (true, _) => Some(Phase::Held),
                (false, true) => Some(Phase::Lost),
                (false, false) => None,
            };
            undo_unfinished(session, id, before, &mut report).map_err(ReconcileError::State)?;
        }
        session.save().map_err(ReconcileError::State)?;
    }

    let ids: Vec<String> = session.state.bundles.iter().map(|b| b.id.clone()).collect();
    for id in ids {
        let Some(phase) = session.state.get(&id).map(|b| b.phase) else {
            continue;
        };
        let kernel = session.kernel;
        let module = module_found(session, &id).map_err(ReconcileError::Kernel)?;
        // A module of that name that is not a patch patchd loaded counts
        // as nothing loaded: it is never unloaded, never recorded as ours.
        let loaded = module == ModuleFound::Patch;
        let enabled = loaded && patch_enabled(kernel, &id).map_err(ReconcileError::Kernel)?;
        let foreign;
        let found = match (loaded, enabled) {
            (_, true) => "enabled",
            (true, false) => "loaded but not enabled",
            (false, _) if module == ModuleFound::Foreign => {
                foreign = format!("not loaded as a patch ({})", foreign_text(&id));
                warn!(bundle = %id, "{}", foreign_text(&id));
                foreign.as_str()
            }
            (false, _) => "not loaded",
        };
        let (what, gone) = match decide(phase, loaded, enabled) {
            Decision::Keep => continue,
            Decision::Record(new) => {
                if let Some(record) = session.state.get_mut(&id) {
                    record.phase = new;
                    record.updated_at = session.clock.now();
                }
                let what = format!(
                    "recorded as {}, found {found}: now recorded as {}",
                    phase.as_str(),
                    new.as_str()
                );
                (what, false)
            }
            Decision::UnloadAndForget => match take_out(session, &id) {
                Ok(()) => (
                    format!("recorded as {}, found {found}: unloaded", phase.as_str()),
                    true,
                ),
                Err(error) => {
                    let text = crate::error_text(&error);
                    warn!(bundle = %id, error = %text, "cannot unload");
                    let what = format!(
                        "recorded as {}, found {found}: could not unload it ({text}); left as is",
                        phase.as_str()
                    );
                    (what, false)
                }
            },
            Decision::Forget => (
                format!("recorded as {}, found {found}: forgotten", phase.as_str()),
                true,
            ),
        };
        note(session, &id, &what, gone, &mut report).map_err(ReconcileError::State)?;
        session.save().map_err(ReconcileError::State)?;
    }
    Ok(report)
}

/// Undoes one bundle of an apply that did not finish. A bundle that was
/// being re-applied (recorded `before` as lost or held) is recorded so
/// again, with its copy, once nothing of it is left in the kernel; a new one
/// is forgotten, or held when the machine's crash cut the apply short.
fn undo_unfinished(
    session: &mut Session<'_>,
    id: &str,
    before: Option<Phase>,
    report: &mut ReconcileReport,
) -> Result<(), StateError> {
    let outcome = match take_out(session, id) {
        Ok(()) => gone_from_kernel(session, id, before, "undone".to_owned()),
        Err(error) => {
            let text = crate::error_text(&error);
            match phase_in_kernel(session, id) {
                Some(phase) => {
                    set_phase(session, id, phase);
                    let what = format!(
                        "part of an apply that did not finish: could not be undone ({text}); recorded as {}",
                        phase.as_str()
                    );
                    (AuditAction::Reconcile, what, false)
                }
                None => gone_from_kernel(
                    session,
                    id,
                    before,
                    format!("undone after an error ({text})"),
                ),
            }
        }
    };
    let (action, what, gone) = outcome;
    note_as(session, action, id, &what, gone, report)
}

/// What becomes of a bundle of an unfinished apply once nothing of it is
/// in the kernel (`undone` says how): its record as it was `before`, held
/// after a crash, or forgotten. Returns the audit action, what was done and
/// whether the record goes.
fn gone_from_kernel(
    session: &mut Session<'_>,
    id: &str,
    before: Option<Phase>,
    undone: String,
) -> (AuditAction, String, bool) {
    if let Some(phase) = before {
        set_phase(session, id, phase);
        let what = format!(
            "being re-applied when an apply did not finish: {undone}; recorded as {} again",
            phase.as_str()
        );
        return (AuditAction::Reconcile, what, false);
    }
    if session.first_after_crash {
        set_phase(session, id, Phase::Held);
        let secs = session.config.crash_guard_uptime_secs;
        let reason = session
            .state
            .get(id)
            .map(|record| hold_reason(record, secs))
            .unwrap_or_default();
        let what = format!("part of an apply that a crash cut short: {undone}; {reason}");
        return (AuditAction::Hold, what, false);
    }
    let what = format!("part of an apply that did not finish: {undone}");
    (AuditAction::Reconcile, what, true)
}

/// Records `phase` for bundle `id`.
fn set_phase(session: &mut Session<'_>, id: &str, phase: Phase) {
    let now = session.clock.now();
    if let Some(record) = session.state.get_mut(id) {
        record.phase = phase;
        record.updated_at = now;
    }
}

/// Logs and audits one change; when the bundle is `gone` from the kernel,
/// forgets its record and its copy.
fn note(
    session: &mut Session<'_>,
    id: &str,
    what: &str,
    gone: bool,
    report: &mut ReconcileReport,
) -> Result<(), StateError> {
    note_as(session, AuditAction::Reconcile, id, what, gone, report)
}

/// [`note`], audited as `action`.
fn note_as(
    session: &mut Session<'_>,
    action: AuditAction,
    id: &str,
    what: &str,
    gone: bool,
    report: &mut ReconcileReport,
) -> Result<(), StateError> {
    info!(bundle = id, "reconciled: {what}");
    let record = if gone {
        session.state.remove(id)
    } else {
        session.state.get(id).cloned()
    };
    if let Some(record) = record {
        if gone {
            session.dir.remove_bundle(&record.bundle_file)?;
        }
        let mut entry = entry_of(&record);
        entry.detail = Some(what.to_owned());
        session.audit_or_log(action, AuditResult::Ok, entry);
    }
    report.changes.push(Reconciled {
        id: id.to_owned(),
        what: what.to_owned(),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_table() {
        use Decision::{Forget, Keep, Record, UnloadAndForget};
        // (phase, loaded, enabled) -> decision
        let cases = [
            (Phase::Loading, true, false, UnloadAndForget),
            (Phase::Enabling, true, false, UnloadAndForget),
            (Phase::Loading, false, false, Forget),
            (Phase::Enabling, true, true, Record(Phase::Applied)),
            (Phase::Reverting, true, true, Record(Phase::Applied)),
            (Phase::Reverting, true, false, UnloadAndForget),
            (Phase::Reverting, false, false, Forget),
            (Phase::Applied, true, true, Keep),
            (Phase::Applied, true, false, Record(Phase::Disabled)),
            (Phase::Applied, false, false, Record(Phase::Lost)),
            (Phase::Disabled, true, false, Keep),
            (Phase::Disabled, true, true, Record(Phase::Applied)),
            (Phase::Disabled, false, false, Record(Phase::Lost)),
            (Phase::Lost, false, false, Keep),
            (Phase::Lost, true, true, Record(Phase::Applied)),
            (Phase::Lost, true, false, Record(Phase::Disabled)),
            (Phase::Held, false, false, Keep),
            (Phase::Held, true, true, Record(Phase::Applied)),
            (Phase::Held, true, false, Record(Phase::Disabled)),
        ];
        for (phase, loaded, enabled, want) in cases {
            assert_eq!(
                decide(phase, loaded, enabled),
                want,
                "{phase:?} loaded={loaded} enabled={enabled}"
            );
        }
    }
}
