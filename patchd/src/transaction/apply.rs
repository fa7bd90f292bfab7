//! Applying bundles, all or nothing: verify every bundle first, plan, then
//! for each bundle link and load its patch module and enable it through the
//! companion module (loaded first if absent). Any failure takes out what
//! this apply put in, newest first (including the companion module if this
//! apply loaded it), and leaves the state as it was.
//!
//! The apply is a transaction in the state file: it is recorded as open
//! before the kernel is touched, each bundle's phase is recorded before each
//! step, and the transaction is closed only when every bundle is applied.
//! A crash in between is undone by the next start ([`crate::transaction::reconcile`]).
//!
//! [`reapply`] puts a bundle recorded as lost (its module is gone, after a
//! reboot) or held (by the crash-loop guard) back from its copy in the
//! state directory, through the same steps; undoing it records it as lost
//! or held again instead of forgetting it. [`release`] is the same for a
//! held bundle, asked for by the operator.

use std::path::{Path, PathBuf};

use tracing::info;

pub use super::apply_error::{AppliedBundle, ApplyError, ApplyReport};
use super::audit::{AuditAction, AuditEntry, AuditResult};
use super::companion::{check_companion, ensure_companion};
use super::rollback::roll_back;
use super::session::Session;
use super::state::{BundleRecord, OpenTransaction, Phase};
use super::switch::switch_patch;
use super::take_out::entry_of_bundle;
use crate::files::{read_regular, Links};
use crate::kernel::{running_identity, PatchAttribute};
use crate::link::load::load_module;
use crate::verify::trust::TrustStore;
use crate::verify::{verify_or_claim, Claimed, Refused, VerifiedBundle, VerifyError};

/// A bundle file read already, by a caller that had to open it itself (the
/// daemon refuses symbolic links and reads each file once): the bytes
/// verified and applied are these.
#[derive(Clone)]
pub struct ReadBundle {
    /// Where it was read from, for messages and the audit log.
    pub path: PathBuf,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for ReadBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadBundle")
            .field("path", &self.path)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// Where a bundle of an apply comes from.
enum Source {
    /// A file, read when its turn comes.
    File(PathBuf),
    /// Bytes read already.
    Read(ReadBundle),
    /// A copy in the state directory's `applied/`: never read through a
    /// symbolic link, never a FIFO.
    Copy(PathBuf),
}

/// New bundles, a bundle recorded as lost or held put back, or a held
/// bundle released by the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    New,
    Reapply,
    Release,
}

/// Applies the bundles at `paths`, in order, all or nothing.
pub fn apply(session: &mut Session<'_>, paths: &[PathBuf]) -> Result<ApplyReport, ApplyError> {
    let sources = paths.iter().cloned().map(Source::File).collect();
    run(session, sources, Mode::New)
}

/// Applies bundles read already, in order, all or nothing: as [`apply`].
pub fn apply_read(
    session: &mut Session<'_>,
    bundles: Vec<ReadBundle>,
) -> Result<ApplyReport, ApplyError> {
    let sources = bundles.into_iter().map(Source::Read).collect();
    run(session, sources, Mode::New)
}

/// Applies again a bundle recorded as lost (applied once, its module gone,
/// as after a reboot) or held (by the crash-loop guard) from its copy in
/// the state directory: verified again against the trust store and the
/// running kernel, then loaded and enabled as by [`apply`]. On failure it
/// stays recorded as it was, with its copy.
pub fn reapply(session: &mut Session<'_>, id: &str) -> Result<ApplyReport, ApplyError> {
    from_copy(session, id, Mode::Reapply)
}

/// Applies again a bundle the crash-loop guard held back (`patchd
/// release`), as [`reapply`] does; only a held bundle is released. It is
/// not a survivor for that: held again if the machine goes down again too
/// soon.
pub fn release(session: &mut Session<'_>, id: &str) -> Result<ApplyReport, ApplyError> {
    from_copy(session, id, Mode::Release)
}

/// [`reapply`] and [`release`]: the record's copy, in `mode`.
fn from_copy(session: &mut Session<'_>, id: &str, mode: Mode) -> Result<ApplyReport, ApplyError> {
    let Some(record) = session.state.get(id) else {
        return Err(ApplyError::NotRecorded { id: id.to_owned() });
    };
    let fits = match mode {
        Mode::Release => record.phase == Phase::Held,
        _ => record.phase.is_gone(),
    };
    if !fits {
        let phase = record.phase;
        return Err(ApplyError::NotApplicable {
            id: id.to_owned(),
            phase,
        });
    }
    let path = session.dir.copy_path(&record.bundle_file);
    run(session, vec![Source::Copy(path)], mode)
}

fn run(
    session: &mut Session<'_>,
    sources: Vec<Source>,
    mode: Mode,
) -> Result<ApplyReport, ApplyError> {
    let bundles = verify_all(session, sources)?;
    let (todo, unchanged) = plan(session, bundles, mode)?;
    let mut report = ApplyReport {
        unchanged,
        ..ApplyReport::default()
    };
    if todo.is_empty() {
        return Ok(report);
    }
    // Before anything is recorded: a refused companion changes nothing.
    if let Err(error) = check_companion(session) {
        for bundle in &todo {
            let mut entry = entry_of_bundle(bundle);
            entry.error = Some(crate::error_text(&error));
            session.audit_or_log(AuditAction::Apply, AuditResult::Refused, entry);
        }
        return Err(error);
    }
    // The records of lost or held bundles as they were, to put back on
    // failure.
    let before: Vec<BundleRecord> = todo
        .iter()
        .filter_map(|bundle| session.state.get(bundle.id()).cloned())
        .collect();

    let transaction = session.state.next_transaction;
    session.state.next_transaction = transaction.saturating_add(1);
    session.state.open_transaction = Some(OpenTransaction {
        id: transaction,
        started: session.clock.now(),
        reapplying: before.iter().map(|record| record.id.clone()).collect(),
        held: before
            .iter()
            .filter(|record| record.phase == Phase::Held)
            .map(|record| record.id.clone())
            .collect(),
    });
    session.save().map_err(ApplyError::State)?;
    crate::killpoint::reached("apply-transaction-open");

    let mut failed_at = None;
    let result = apply_all(
        session,
        &todo,
        (transaction, mode),
        &mut report,
        &mut failed_at,
    );
    match result {
        Ok(()) => {
            session.state.open_transaction = None;
            session.save().map_err(ApplyError::State)?;
            crate::killpoint::reached("apply-transaction-closed");
            Ok(report)
        }
        Err(cause) => {
            let text = crate::error_text(&cause);
            // The bundle that failed, or all of them if the companion did.
            let failed: Vec<&VerifiedBundle> = match failed_at {
                Some(index) => todo.get(index).into_iter().collect(),
                None => todo.iter().collect(),
            };
            for bundle in failed {
                let mut entry = entry_of_bundle(bundle);
                entry.error = Some(text.clone());
                session.audit_or_log(AuditAction::Apply, AuditResult::Failed, entry);
            }
            let remaining = roll_back(session, transaction, report.companion_loaded, &before);
            session.state.open_transaction = None;
            session.save().map_err(ApplyError::State)?;
            if remaining.is_empty() {
                Err(cause)
            } else {
                Err(ApplyError::RollbackIncomplete {
                    cause: Box::new(cause),
                    remaining,
                })
            }
        }
    }
}

/// Reads and verifies every bundle before anything is done; the first
/// refusal is audited and returned.
fn verify_all(
    session: &Session<'_>,
    sources: Vec<Source>,
) -> Result<Vec<VerifiedBundle>, ApplyError> {
    let refuse = |path: &Path, claimed: Claimed, error: ApplyError| {
        let entry = AuditEntry {
            bundle_id: claimed.id,
            bundle_sha256: claimed.sha256,
            signer_key_id: claimed.signer_key_id,
            cves: claimed.cves,
            // What an unverified bundle claims is not recorded as a fact.
            bundle_created: None,
            cve_published: Default::default(),
            error: Some(crate::error_text(&error)),
            detail: Some(format!("from {}", path.display())),
        };
        session.audit_or_log(AuditAction::Apply, AuditResult::Refused, entry);
        error
    };
    let running = running_identity(session.kernel).map_err(ApplyError::Identity)?;
    let trust = TrustStore::open(&session.config.keys_dir, &session.config.trusted_owners);
    let trust = match trust {
        Ok(trust) => trust,
        Err(error) => {
            let path = match sources.first() {
                Some(
                    Source::File(path) | Source::Copy(path) | Source::Read(ReadBundle { path, .. }),
                ) => path.as_path(),
                None => Path::new(""),
            };
            return Err(refuse(path, Claimed::default(), ApplyError::Trust(error)));
        }
    };
    let keys = trust.verifying_keys();
    let mut bundles = Vec::with_capacity(sources.len());
    for source in sources {
        let (path, bytes) = match source {
            Source::File(path) => match suture_bundle::read_file(&path) {
                Ok(bytes) => (path, bytes),
                Err(error) => {
                    let error = ApplyError::Verify(Box::new(VerifyError::Read(error)));
                    return Err(refuse(&path, Claimed::default(), error));
                }
            },
            Source::Copy(path) => match read_copy(session, &path) {
                Ok(bytes) => (path, bytes),
                Err(error) => return Err(refuse(&path, Claimed::default(), error)),
            },
            Source::Read(ReadBundle { path, bytes }) => (path, bytes),
        };
        let path = path.as_path();
        let bundle =
            verify_or_claim(session.kernel, &keys, &running, path, bytes).map_err(|refused| {
                let Refused { error, claimed } = *refused;
                refuse(path, claimed, ApplyError::Verify(Box::new(error)))
            })?;
        info!(
            bundle = bundle.id(),
            sha256 = %bundle.sha256(),
            signer = %bundle.signer_key_id(),
            "verified {}",
            path.display()
        );
        bundles.push(bundle);
    }
    Ok(bundles)
}

/// Reads a bundle copy of the state directory: `applied/` checked, the
/// copy a regular file that is not a link, at most the bundle size cap.
fn read_copy(session: &Session<'_>, path: &Path) -> Result<Vec<u8>, ApplyError> {
    session.dir.applied_dir().map_err(ApplyError::State)?;
    let cap = u64::try_from(suture_bundle::MAX_BUNDLE_SIZE).unwrap_or(u64::MAX);
    let read = |source| {
        let error = suture_bundle::FileError::Read {
            path: path.to_owned(),
            source,
        };
        ApplyError::Verify(Box::new(VerifyError::Read(error)))
    };
    match read_regular(path, cap, Links::Refuse).map_err(read)? {
        Some(bytes) => Ok(bytes),
        None => Err(ApplyError::Verify(Box::new(VerifyError::Read(
            suture_bundle::FileError::TooLarge {
                path: path.to_owned(),
                size: cap.saturating_add(1),
            },
        )))),
    }
}

/// Splits the verified bundles into those to apply and those applied
/// already, refusing duplicates, other versions, missing dependencies and
/// modules patchd does not manage.
fn plan(
    session: &Session<'_>,
    bundles: Vec<VerifiedBundle>,
    mode: Mode,
) -> Result<(Vec<VerifiedBundle>, Vec<String>), ApplyError> {
    let mut todo: Vec<VerifiedBundle> = Vec::new();
    let mut unchanged = Vec::new();
    let loaded = session
        .kernel
        .loaded_modules()
        .map_err(ApplyError::Kernel)?;
    for bundle in bundles {
        let id = bundle.id().to_owned();
        let refused = |error: ApplyError| {
            let mut entry = entry_of_bundle(&bundle);
            entry.error = Some(crate::error_text(&error));
            session.audit_or_log(AuditAction::Apply, AuditResult::Refused, entry);
            error
        };
        if todo.iter().any(|b| b.id() == id) || unchanged.contains(&id) {
            return Err(refused(ApplyError::Duplicate { id }));
        }
        let (version, highest) = (
            bundle.manifest().bundle_version,
            session.state.highest_version(&id),
        );
        if version < highest {
            return Err(refused(ApplyError::Downgrade {
                id,
                version,
                highest,
            }));
        }
        match session.state.get(&id) {
            Some(record) if mode != Mode::New && record.sha256 != bundle.sha256() => {
                let recorded = record.sha256.clone();
                let found = bundle.sha256().to_string();
                return Err(refused(ApplyError::CopyChanged {
                    id,
                    recorded,
                    found,
                }));
            }
            // Loaded by someone else since the session reconciled.
            Some(record) if mode != Mode::New && record.phase.is_gone() && loaded.contains(&id) => {
                return Err(refused(ApplyError::ForeignModule { id }));
            }
            Some(record) if mode != Mode::New && record.phase.is_gone() => {}
            Some(record) if record.sha256 != bundle.sha256() => {
                let applied = record.sha256.clone();
                return Err(refused(ApplyError::OtherVersionApplied { id, applied }));
            }
            Some(record) if record.phase != Phase::Applied => {
                let phase = record.phase;
                return Err(refused(ApplyError::NotApplicable { id, phase }));
            }
            Some(_) => {
                info!(bundle = %id, "applied already");
                unchanged.push(id);
                continue;
            }
            None if loaded.contains(&id) => {
                return Err(refused(ApplyError::ForeignModule { id }));
            }
            None => {}
        }
        for dependency in &bundle.manifest().dependencies {
            let applied = session
                .state
                .get(dependency)
                .is_some_and(|r| r.phase == Phase::Applied);
            if !applied && !todo.iter().any(|b| b.id() == dependency) {
                let dependency = dependency.clone();
                return Err(refused(ApplyError::MissingDependency { id, dependency }));
            }
        }
        todo.push(bundle);
    }
    Ok((todo, unchanged))
}

fn apply_all(
    session: &mut Session<'_>,
    todo: &[VerifiedBundle],
    (transaction, mode): (u64, Mode),
    report: &mut ApplyReport,
    failed_at: &mut Option<usize>,
) -> Result<(), ApplyError> {
    report.companion_loaded = ensure_companion(session)?;
    for (index, bundle) in todo.iter().enumerate() {
        *failed_at = Some(index);
        let attempts = apply_one(session, bundle, transaction, mode)?;
        report.applied.push(AppliedBundle {
            id: bundle.id().to_owned(),
            sha256: bundle.sha256().to_string(),
            functions: bundle
                .manifest()
                .replaced_functions
                .iter()
                .map(|f| f.old_name.clone())
                .collect(),
            attempts,
        });
    }
    *failed_at = None;
    Ok(())
}

/// Applies one bundle; returns the attempts enabling took.
fn apply_one(
    session: &mut Session<'_>,
    bundle: &VerifiedBundle,
    transaction: u64,
    mode: Mode,
) -> Result<u32, ApplyError> {
    let id = bundle.id();
    let now = session.clock.now();
    let was = session.state.get(id).map(|record| record.phase);
    if let Some(record) = session.state.get_mut(id) {
        // A lost bundle: its record and its copy are there already.
        record.phase = Phase::Loading;
        record.transaction = transaction;
        record.updated_at = now;
    } else {
        let file = session
            .dir
            .store_bundle(bundle)
            .map_err(ApplyError::State)?;
        session
            .state
            .bundles
            .push(BundleRecord::loading(bundle, transaction, now, file));
    }
    session.save().map_err(ApplyError::State)?;
    crate::killpoint::reached("apply-loading-saved");

    let records = bundle.link_records();
    let loaded =
        load_module(session.kernel, &bundle.patch_module(), "", &records).map_err(|source| {
            ApplyError::Load {
                id: id.to_owned(),
                source: Box::new(source),
            }
        })?;
    session.loaded_here.insert(id.to_owned());
    info!(bundle = id, linked = loaded.resolved.len(), "loaded");
    crate::killpoint::reached("apply-module-loaded");
    let registered = session
        .kernel
        .read_patch_attribute(id, PatchAttribute::Enabled)
        .map_err(ApplyError::Kernel)?;
    if registered.is_none() {
        return Err(ApplyError::NotRegistered { id: id.to_owned() });
    }
    set_phase(session, id, Phase::Enabling)?;
    crate::killpoint::reached("apply-enabling-saved");

    let attempts = switch_patch(
        session.kernel,
        session.clock,
        &session.config.retry,
        id,
        true,
    )
    .map_err(|source| ApplyError::Enable {
        id: id.to_owned(),
        source,
    })?;
    crate::killpoint::reached("apply-enabled");
    set_phase(session, id, Phase::Applied)?;
    crate::killpoint::reached("apply-applied-saved");
    let mut entry = entry_of_bundle(bundle);
    let mut details = Vec::new();
    if let Some(was) = was {
        details.push(reapplied_detail(was, mode));
    }
    if attempts > 1 {
        details.push(format!("enabled after {attempts} attempts"));
    }
    if !details.is_empty() {
        entry.detail = Some(details.join("; "));
    }
    session
        .audit(AuditAction::Apply, AuditResult::Ok, entry)
        .map_err(ApplyError::Audit)?;
    info!(bundle = id, attempts, "applied");
    Ok(attempts)
}

/// The audit detail of a re-apply: where from, and why it had to be.
fn reapplied_detail(was: Phase, mode: Mode) -> String {
    const FROM: &str = "re-applied from the copy in the state directory";
    match (mode, was) {
        (Mode::Release, _) => {
            format!("released: {FROM} (the crash-loop guard had held it back)")
        }
        (_, Phase::Held) => format!(
            "{FROM} (the crash-loop guard had held it back; this boot did not follow a crash)"
        ),
        _ => format!("{FROM} (it was lost)"),
    }
}

fn set_phase(session: &mut Session<'_>, id: &str, phase: Phase) -> Result<(), ApplyError> {
    let now = session.clock.now();
    if let Some(record) = session.state.get_mut(id) {
        record.phase = phase;
        record.updated_at = now;
        if phase == Phase::Applied {
            record.applied_at = Some(now);
            let version = record.manifest.bundle_version;
            session.state.note_applied_version(id, version);
        }
    }
    session.save().map_err(ApplyError::State)
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "reapply_tests.rs"]
mod reapply_tests;

#[cfg(test)]
#[path = "version_tests.rs"]
mod version_tests;
