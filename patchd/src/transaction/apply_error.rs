//! What an apply reports: what it did, or why it did not happen.

use std::path::PathBuf;

use super::audit::AuditError;
use super::state::{Phase, StateError};
use super::switch::SwitchError;
use crate::kernel::KernelError;
use crate::link::load::LoadError;
use crate::ownership::OwnershipError;
use crate::verify::trust::TrustError;
use crate::verify::VerifyError;

/// What an apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// The bundles applied now, in order.
    pub applied: Vec<AppliedBundle>,
    /// Bundles that were applied already (same id and digest).
    pub unchanged: Vec<String>,
    /// Whether this apply loaded the companion module.
    pub companion_loaded: bool,
}

/// One bundle this apply put into effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedBundle {
    /// Its id.
    pub id: String,
    /// sha256 of the bundle.
    pub sha256: String,
    /// The functions it replaces.
    pub functions: Vec<String>,
    /// How many attempts enabling took.
    pub attempts: u32,
}

/// Why an apply did not happen; the kernel and the state are as before
/// unless the error is [`ApplyError::RollbackIncomplete`].
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The running kernel's identity could not be read.
    #[error("cannot identify the running kernel")]
    Identity(#[source] KernelError),

    /// The trust store is unusable.
    #[error(transparent)]
    Trust(TrustError),

    /// A bundle failed verification.
    #[error(transparent)]
    Verify(Box<VerifyError>),

    /// The same id twice in one apply.
    #[error("bundle {id} is given twice; give each bundle once")]
    Duplicate {
        /// The id.
        id: String,
    },

    /// The id is applied from another bundle file.
    #[error("a different bundle {id} is applied already (sha256 {applied}); revert it first (patchd revert {id})")]
    OtherVersionApplied {
        /// The id.
        id: String,
        /// The digest of the applied one.
        applied: String,
    },

    /// Re-applying an id that is not recorded.
    #[error(
        "patchd has no record of a bundle {id} to re-apply: `patchd status` lists what it has"
    )]
    NotRecorded {
        /// The id.
        id: String,
    },

    /// The copy kept in the state directory is not the bundle that was
    /// applied.
    #[error("the copy of bundle {id} in the state directory has sha256 {found}, but the bundle applied had {recorded}: it was replaced; apply the bundle again from its original file after `patchd revert {id}`")]
    CopyChanged {
        /// The id.
        id: String,
        /// The digest in the state.
        recorded: String,
        /// The digest of the copy.
        found: String,
    },

    /// The id is recorded, but not applied.
    #[error("bundle {id} is recorded as {}; {}", .phase.as_str(), not_applicable_hint(.id, *.phase))]
    NotApplicable {
        /// The id.
        id: String,
        /// Its phase.
        phase: Phase,
    },

    /// A dependency is missing.
    #[error("bundle {id} needs bundle {dependency} applied first: apply {dependency} before it, or ahead of it in the same command")]
    MissingDependency {
        /// The bundle.
        id: String,
        /// What it needs.
        dependency: String,
    },

    /// An older version of a bundle id than one applied before: a
    /// downgrade (to a build that may be vulnerable) is refused.
    #[error("bundle {id} has version {version}, but version {highest} of {id} was applied on this machine: patchd never applies an older version of a bundle (it may bring back what a newer one fixed); apply version {highest} or later (`patchgen build --bundle-version N` with a higher N for a new build)")]
    Downgrade {
        /// The bundle id.
        id: String,
        /// Its version.
        version: u64,
        /// The highest version of the id applied so far.
        highest: u64,
    },

    /// A module of that name is loaded, not by patchd.
    #[error("a module named {id} is loaded, but patchd did not apply it: disable and unload it first (echo 0 > /sys/kernel/suture/{id}/enabled; rmmod {id})")]
    ForeignModule {
        /// The id.
        id: String,
    },

    /// The companion module could not be loaded.
    #[error("cannot load the companion module {path}: give its path with --kmod")]
    Companion {
        /// Its file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<LoadError>,
    },

    /// The companion module's file could have been written by someone else
    /// than root: it is not loaded (nothing was changed).
    #[error("refusing to load the companion module {path}: like the trust store, it and every directory above it must be root-owned and writable by no one else; nothing was changed")]
    UnsafeCompanion {
        /// Its file.
        path: PathBuf,
        /// What is wrong, and the chown/chmod that fixes it.
        #[source]
        source: OwnershipError,
    },

    /// A module called `suture` without the companion's sysfs directory.
    #[error("a module named suture is loaded but /sys/kernel/suture/ does not exist: it is not suture's companion module; unload it")]
    NoCompanionSysfs,

    /// A patch module did not load.
    #[error("cannot load the patch module of bundle {id}")]
    Load {
        /// The bundle.
        id: String,
        /// The cause.
        #[source]
        source: Box<LoadError>,
    },

    /// A patch module loaded without registering.
    #[error("the patch module of bundle {id} loaded but did not register with the companion module (no /sys/kernel/suture/{id}/); dmesg may say why")]
    NotRegistered {
        /// The bundle.
        id: String,
    },

    /// Enabling failed.
    #[error("cannot enable bundle {id}")]
    Enable {
        /// The bundle.
        id: String,
        /// The cause.
        #[source]
        source: SwitchError,
    },

    /// Reading the kernel's state failed.
    #[error("cannot read the kernel's state")]
    Kernel(#[source] KernelError),

    /// The state could not be written.
    #[error(transparent)]
    State(StateError),

    /// The audit log could not be written, so the change was undone.
    #[error("cannot write the audit log, so the change is undone")]
    Audit(#[source] AuditError),

    /// The apply failed and could not undo everything.
    #[error("the apply failed, and undoing it left {} in the kernel (recorded so: see patchd status); revert later with patchd revert", .remaining.join(", "))]
    RollbackIncomplete {
        /// Why the apply failed.
        #[source]
        cause: Box<ApplyError>,
        /// The bundles still in the kernel.
        remaining: Vec<String>,
    },
}

/// What to do about a bundle recorded in `phase` that an apply cannot take.
fn not_applicable_hint(id: &str, phase: Phase) -> String {
    if phase == Phase::Held {
        format!("the crash-loop guard held it back after a crash: `patchd release {id}` applies it again, `patchd revert {id}` forgets it")
    } else {
        format!("revert it first (patchd revert {id}), then apply it again")
    }
}
