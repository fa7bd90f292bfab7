//! Taking a patch out of the kernel — disable it if it is enabled, unload
//! its module if it is loaded — the one step that reverting, rolling back a
//! failed apply and reconciling after a crash all use, with what they need
//! around it: whether a patch is enabled, what is left after a failure, the
//! audit entry of a recorded bundle.
//!
//! It unloads only a module it can prove is a patch patchd loaded: a
//! module whose name is a valid patch id, listed in `/proc/modules`, and
//! either registered with the companion module under its own name
//! (`/sys/kernel/suture/ID/module` names it) or loaded by this very
//! process ([`Session::loaded_here`]). A record forged or edited to name
//! another module (`ext4`) never makes patchd unload it.

use suture_bundle::names::is_patch_id;
use tracing::{info, warn};

use super::audit::AuditEntry;
use super::session::Session;
use super::state::{BundleRecord, Phase};
use super::switch::{switch_patch, SwitchError};
use crate::kernel::{Kernel, KernelError, PatchAttribute};

/// What the kernel has under a recorded bundle's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ModuleFound {
    /// No module of that name is loaded.
    Absent,
    /// A patch module patchd can have loaded (see the module doc).
    Patch,
    /// A module of that name is loaded that is not such a patch: never
    /// unloaded, and the record is read as if nothing were loaded.
    Foreign,
}

/// What the kernel has under `id` (see [`ModuleFound`]).
pub(crate) fn module_found(session: &Session<'_>, id: &str) -> Result<ModuleFound, KernelError> {
    let kernel = session.kernel;
    if !is_patch_id(id) {
        // Refused when the state was read; never a module name to touch.
        return Ok(ModuleFound::Foreign);
    }
    if !kernel.module_loaded(id)? {
        return Ok(ModuleFound::Absent);
    }
    let registered = kernel
        .read_patch_attribute(id, PatchAttribute::Module)?
        .is_some_and(|module| module.trim() == id);
    if registered || session.loaded_here.contains(id) {
        Ok(ModuleFound::Patch)
    } else {
        Ok(ModuleFound::Foreign)
    }
}

/// The warning for a module that is not patchd's.
pub(crate) fn foreign_text(id: &str) -> String {
    format!("a module {id} is loaded but it is not a patch registered with the companion module: patchd did not load it and leaves it loaded")
}
use crate::verify::VerifiedBundle;

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
    match module_found(session, id).map_err(read)? {
        ModuleFound::Patch => {
            kernel
                .delete_module(id)
                .map_err(|source| TakeOutError::Unload {
                    id: id.to_owned(),
                    source,
                })?;
            info!(patch = id, "unloaded");
        }
        ModuleFound::Foreign => warn!(patch = id, "{}", foreign_text(id)),
        ModuleFound::Absent => {}
    }
    Ok(())
}

/// After a failed [`take_out`]: what the kernel has now, as a phase
/// (`None`: nothing of the patch is left).
pub(crate) fn phase_in_kernel(session: &Session<'_>, id: &str) -> Option<Phase> {
    if patch_enabled(session.kernel, id).unwrap_or(false) {
        Some(Phase::Applied)
    } else if module_found(session, id).map_or(true, |found| found == ModuleFound::Patch) {
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
        cve_published: record.manifest.cve_published.clone(),
        error: None,
        detail: None,
    }
}

/// The audit entry of a verified bundle.
pub(crate) fn entry_of_bundle(bundle: &VerifiedBundle) -> AuditEntry {
    AuditEntry {
        bundle_id: Some(bundle.id().to_owned()),
        bundle_sha256: Some(bundle.sha256().to_string()),
        signer_key_id: Some(bundle.signer_key_id().to_string()),
        cves: bundle.manifest().cves.clone(),
        bundle_created: Some(bundle.manifest().created),
        cve_published: bundle.manifest().cve_published.clone(),
        error: None,
        detail: None,
    }
}
