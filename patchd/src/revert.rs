//! Reverting applied bundles: disable through the companion module (with
//! the same `EBUSY` retries as enabling), unload the patch module, forget
//! the bundle. The record says `reverting` before the kernel is touched, so
//! a crash in between is finished or undone by the next start.
//!
//! [`take_out`] — disable if enabled, unload if loaded — is also how a
//! failed apply is rolled back and how reconciling removes half-applied
//! patches.

use tracing::info;

use crate::audit::{AuditAction, AuditEntry, AuditResult};
use crate::kernel::{Kernel, KernelError, PatchAttribute};
use crate::session::Session;
use crate::state::{BundleRecord, Phase, StateError};
use crate::switch::{switch_patch, SwitchError};

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

/// Why a patch could not be taken out of the kernel.
#[derive(Debug, thiserror::Error)]
pub enum TakeOutError {
    /// Disabling was refused.
    #[error(transparent)]
    Switch(SwitchError),
    /// Its state in the kernel could not be read.
    #[error("cannot read the state of patch {id} in the kernel")]
    Read {
        /// The patch.
        id: String,
        /// The cause.
        #[source]
        source: KernelError,
    },
    /// Unloading failed.
    #[error("cannot unload patch module {id}")]
    Unload {
        /// The patch.
        id: String,
        /// The cause.
        #[source]
        source: KernelError,
    },
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

/// Whether a patch is enabled (its sysfs `enabled` reads `1`).
pub(crate) fn patch_enabled(kernel: &dyn Kernel, id: &str) -> Result<bool, KernelError> {
    Ok(kernel
        .read_patch_attribute(id, PatchAttribute::Enabled)?
        .is_some_and(|value| value.trim() == "1"))
}

/// Takes patch `id` out of the kernel: disables it if it is enabled, then
/// unloads its module if it is loaded.
pub(crate) fn take_out(session: &Session<'_>, id: &str) -> Result<(), TakeOutError> {
    let kernel = session.kernel;
    let read = |source| TakeOutError::Read {
        id: id.to_owned(),
        source,
    };
    if patch_enabled(kernel, id).map_err(read)? {
        switch_patch(kernel, session.clock, &session.config.retry, id, false)
            .map_err(TakeOutError::Switch)?;
    }
    if kernel.module_loaded(id).map_err(read)? {
        kernel
            .delete_module(id)
            .map_err(|source| TakeOutError::Unload {
                id: id.to_owned(),
                source,
            })?;
        info!(patch = id, "unloaded");
    }
    Ok(())
}

/// After a failed [`take_out`]: what the kernel has now, as a phase
/// (`None`: nothing is left).
pub(crate) fn phase_in_kernel(kernel: &dyn Kernel, id: &str) -> Option<Phase> {
    if patch_enabled(kernel, id).unwrap_or(false) {
        Some(Phase::Applied)
    } else if kernel.module_loaded(id).unwrap_or(true) {
        Some(Phase::Disabled)
    } else {
        None
    }
}

/// The audit entry of a recorded bundle.
pub(crate) fn entry_of(record: &BundleRecord) -> AuditEntry {
    AuditEntry {
        bundle_id: Some(record.id.clone()),
        bundle_sha256: Some(record.sha256.clone()),
        signer_key_id: Some(record.signer_key_id.clone()),
        cves: record.manifest.cves.clone(),
        bundle_created: Some(record.manifest.created),
        error: None,
        detail: None,
    }
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
            let phase = phase_in_kernel(session.kernel, id);
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
