//! Reverting applied bundles: disable through the companion module (with
//! the same `EBUSY` retries as enabling), unload the patch module, forget
//! the bundle. The record says `reverting` before the kernel is touched, so
//! a crash in between is finished or undone by the next start.
//!
//! The take-out step itself (disable, unload) is [`super::take_out`], which
//! a failed apply's roll-back and reconciling use too.

use tracing::info;

use super::audit::{AuditAction, AuditResult};
use super::session::Session;
use super::state::{Phase, StateError};
use super::take_out::{entry_of, phase_in_kernel, take_out, TakeOutError};

/// What to revert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevertTarget {
    /// These bundles.
    Ids(Vec<String>),
    /// Every bundle patchd applied.
    All,
}

/// What a revert did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevertReport {
    /// The bundles reverted, in the order they were.
    pub reverted: Vec<String>,
}

/// Why a revert stopped.
#[derive(Debug, thiserror::Error)]
pub enum RevertError {
    /// An id that patchd did not apply.
    #[error("patchd has not applied a bundle {id}: `patchd status` lists what it has")]
    NotApplied {
        /// The id.
        id: String,
    },

    /// Another applied bundle needs this one.
    #[error("bundle {dependent} depends on bundle {id}: revert {dependent} first, or both in one command")]
    Dependent {
        /// The bundle asked for.
        id: String,
        /// The bundle that needs it.
        dependent: String,
    },

    /// Taking the patch out failed; the record says what the kernel has.
    #[error("cannot revert bundle {id}; it is recorded as {}", .phase.map_or("gone", |p| p.as_str()))]
    Failed {
        /// The bundle.
        id: String,
        /// Its phase now, if it is still recorded.
        phase: Option<Phase>,
        /// The cause.
        #[source]
        source: TakeOutError,
    },

    /// The state could not be written.
    #[error(transparent)]
    State(StateError),
}

/// Reverts bundles, newest first; stops at the first that cannot be.
pub fn revert(
    session: &mut Session<'_>,
    target: &RevertTarget,
) -> Result<RevertReport, RevertError> {
    let selected: Vec<String> = match target {
        RevertTarget::All => session.state.bundles.iter().map(|b| b.id.clone()).collect(),
        RevertTarget::Ids(ids) => {
            for id in ids {
                if session.state.get(id).is_none() {
                    return Err(RevertError::NotApplied { id: id.clone() });
                }
            }
            session
                .state
                .bundles
                .iter()
                .filter(|b| ids.contains(&b.id))
                .map(|b| b.id.clone())
                .collect()
        }
    };
    for id in &selected {
        let dependent =
            session.state.bundles.iter().find(|b| {
                !selected.contains(&b.id) && b.manifest.dependencies.iter().any(|d| d == id)
            });
        if let Some(dependent) = dependent {
            return Err(RevertError::Dependent {
                id: id.clone(),
                dependent: dependent.id.clone(),
            });
        }
    }
    let mut report = RevertReport::default();
    for id in selected.iter().rev() {
        revert_one(session, id)?;
        report.reverted.push(id.clone());
    }
    Ok(report)
}

fn revert_one(session: &mut Session<'_>, id: &str) -> Result<(), RevertError> {
    let now = session.clock.now();
    let Some(record) = session.state.get_mut(id) else {
        return Err(RevertError::NotApplied { id: id.to_owned() });
    };
    record.phase = Phase::Reverting;
    record.updated_at = now;
    session.save().map_err(RevertError::State)?;
    match take_out(session, id) {
        Ok(()) => {
            if let Some(record) = session.state.remove(id) {
                session
                    .dir
                    .remove_bundle(&record.bundle_file)
                    .map_err(RevertError::State)?;
                session.save().map_err(RevertError::State)?;
                session.audit_or_log(AuditAction::Revert, AuditResult::Ok, entry_of(&record));
                info!(bundle = id, "reverted");
            }
            Ok(())
        }
        Err(source) => {
            let phase = phase_in_kernel(session, id);
            let mut entry = None;
            match phase {
                Some(phase) => {
                    if let Some(record) = session.state.get_mut(id) {
                        record.phase = phase;
                        record.updated_at = now;
                        entry = Some(entry_of(record));
                    }
                }
                None => {
                    if let Some(record) = session.state.remove(id) {
                        session
                            .dir
                            .remove_bundle(&record.bundle_file)
                            .map_err(RevertError::State)?;
                        entry = Some(entry_of(&record));
                    }
                }
            }
            session.save().map_err(RevertError::State)?;
            let error = RevertError::Failed {
                id: id.to_owned(),
                phase,
                source,
            };
            if let Some(mut entry) = entry {
                entry.error = Some(crate::error_text(&error));
                session.audit_or_log(AuditAction::Revert, AuditResult::Failed, entry);
            }
            Err(error)
        }
    }
}
