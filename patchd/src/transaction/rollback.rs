//! Undoing a failed apply: every bundle of its transaction taken out,
//! newest first, and the companion module unloaded if the apply loaded it.

use tracing::{info, warn};

use super::audit::{AuditAction, AuditResult};
use super::session::Session;
use super::state::{BundleRecord, Phase};
use super::take_out::{entry_of, phase_in_kernel, take_out};
use crate::kernel::COMPANION_MODULE;

/// Takes out every bundle of `transaction`, newest first, then the
/// companion module if this apply loaded it and nothing else uses it.
/// Bundles that were lost `before` get their old record back (and keep
/// their copy); the others are forgotten. Returns the bundles that could not
/// be taken out (recorded as what the kernel has).
pub(super) fn roll_back(
    session: &mut Session<'_>,
    transaction: u64,
    companion_loaded: bool,
    before: &[BundleRecord],
) -> Vec<String> {
    let ids: Vec<(String, Phase)> = session
        .state
        .bundles
        .iter()
        .filter(|b| b.transaction == transaction)
        .map(|b| (b.id.clone(), b.phase))
        .collect();
    let mut remaining = Vec::new();
    for (id, phase) in ids.iter().rev() {
        let lost_before = before.iter().find(|record| &record.id == id);
        match take_out(session, id) {
            Ok(()) => {
                let record = match lost_before {
                    Some(old) => session
                        .state
                        .get_mut(id)
                        .map(|record| std::mem::replace(record, old.clone())),
                    None => session.state.remove(id),
                };
                if let Some(record) = record {
                    if lost_before.is_none() {
                        if let Err(error) = session.dir.remove_bundle(&record.bundle_file) {
                            warn!(bundle = %id, error = %error, "cannot remove the bundle copy");
                        }
                    }
                    if *phase == Phase::Applied {
                        let mut entry = entry_of(&record);
                        entry.detail =
                            Some("undone: a later bundle of the same apply failed".into());
                        session.audit_or_log(AuditAction::Rollback, AuditResult::Ok, entry);
                    }
                }
                info!(bundle = %id, "rolled back");
            }
            Err(error) => {
                let text = crate::error_text(&error);
                warn!(bundle = %id, error = %text, "cannot roll back");
                let now = session.clock.now();
                let in_kernel = phase_in_kernel(session, id);
                let entry = match in_kernel {
                    Some(phase) => session.state.get_mut(id).map(|record| {
                        record.phase = phase;
                        record.updated_at = now;
                        if phase == Phase::Applied && record.applied_at.is_none() {
                            record.applied_at = Some(now);
                        }
                        entry_of(record)
                    }),
                    None => match lost_before {
                        Some(old) => session.state.get_mut(id).map(|record| {
                            *record = old.clone();
                            entry_of(record)
                        }),
                        None => session.state.remove(id).map(|record| entry_of(&record)),
                    },
                };
                if let Some(mut entry) = entry {
                    entry.error = Some(text);
                    session.audit_or_log(AuditAction::Rollback, AuditResult::Failed, entry);
                }
                if in_kernel.is_some() && session.state.get(id).is_some() {
                    remaining.push(id.clone());
                }
            }
        }
        if let Err(error) = session.save() {
            warn!(error = %crate::error_text(&error), "cannot write the state during a rollback");
        }
    }
    if companion_loaded && remaining.is_empty() {
        let unused = matches!(session.kernel.suture_patches(), Ok(Some(p)) if p.is_empty());
        if unused {
            match session.kernel.delete_module(COMPANION_MODULE) {
                Ok(()) => info!("unloaded the companion module this apply had loaded"),
                Err(error) => warn!(error = %error, "cannot unload the companion module"),
            }
        }
    }
    remaining
}
