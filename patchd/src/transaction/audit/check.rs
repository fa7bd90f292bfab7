//! The audit log against the state: every bundle `state.json` records as
//! having been applied must have a line in the chain that says so (an
//! `ok` line with its sha256: the apply, a reconcile that found it
//! enabled, a hold, or a restart that took it over). A log deleted with
//! its head verifies as an empty chain; this check is what finds it.
//!
//! [`check_before_changes`] runs when a session that may change the kernel
//! opens, before anything is touched; [`restart`] is the operator's way
//! out once the evidence is kept. This module never edits a line.

use std::path::PathBuf;

use super::{
    Accounted, AuditAction, AuditEntry, AuditError, AuditLog, AuditResult, Tampered, AUDIT_FILE,
    HEAD_FILE,
};
use crate::transaction::state::{Phase, State};

/// Refuses the first bundle the state records that the chain does not
/// account for.
pub fn cross_check(log: &AuditLog, accounted: &Accounted, state: &State) -> Result<(), Tampered> {
    for bundle in &state.bundles {
        // Records of an apply in flight get their line when it finishes;
        // one cut short by a kill is undone (and audited) by reconciling.
        let in_flight = state
            .open_transaction
            .as_ref()
            .is_some_and(|open| open.id == bundle.transaction);
        if in_flight || matches!(bundle.phase, Phase::Loading | Phase::Enabling) {
            continue;
        }
        if !accounted.bundles.contains(&bundle.sha256) {
            let line = accounted.lines.saturating_add(1);
            return Err(Tampered {
                path: log.path(),
                line,
                what: format!(
                    "state.json records bundle {} (sha256 {}) as {}, but no line of the log says it was applied: lines were removed, or the log was replaced",
                    bundle.id,
                    bundle.sha256,
                    bundle.phase.as_str()
                ),
            });
        }
    }
    Ok(())
}

/// Refuses to go on when the chain is broken or does not account for
/// `state`: called before a session changes anything.
pub fn check_before_changes(log: &AuditLog, state: &State) -> Result<(), AuditError> {
    let broken = |tampered| AuditError::Broken {
        path: log.path(),
        source: tampered,
    };
    let accounted = log.accounted_for_append()?.map_err(broken)?;
    cross_check(log, &accounted, state).map_err(broken)
}

/// What [`restart`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restarted {
    /// What was wrong with the old chain.
    pub broken: String,
    /// Where the old log and head were moved (those that existed).
    pub kept: Vec<PathBuf>,
    /// The bundles the new chain took over from the state.
    pub bundles: Vec<String>,
}

/// Why the log cannot be restarted.
#[derive(Debug, thiserror::Error)]
pub enum RestartError {
    /// The chain is intact and accounts for the state.
    #[error("the audit log {path} is intact and accounts for every bundle the state records: there is nothing to restart")]
    Intact {
        /// The log.
        path: PathBuf,
    },
    /// Reading or writing the log failed.
    #[error(transparent)]
    Audit(AuditError),
    /// The old files could not be moved aside.
    #[error("cannot move {path} aside")]
    Move {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Sets a broken log and its head aside (`audit.log.broken-NOW`,
/// `audit.head.broken-NOW`, kept for the investigation) and starts a new
/// chain: a `restart` line saying why, with the old log's sha256, then a
/// `restart` line per bundle the state records, so the new chain accounts
/// for them. Refused when the log is intact.
pub fn restart(log: &AuditLog, now: u64, state: &State) -> Result<Restarted, RestartError> {
    let broken = match log.accounted().map_err(RestartError::Audit)? {
        Err(tampered) => tampered,
        Ok(accounted) => match cross_check(log, &accounted, state) {
            Err(tampered) => tampered,
            Ok(()) => return Err(RestartError::Intact { path: log.path() }),
        },
    };
    let old_sha256 = file_sha256(&log.path())
        .unwrap_or_else(|error| format!("unknown (cannot read it: {error})"));
    let mut kept = Vec::new();
    for name in [AUDIT_FILE, HEAD_FILE] {
        let from = log.dir().join(name);
        let to = log.dir().join(format!("{name}.broken-{now}"));
        match std::fs::rename(&from, &to) {
            Ok(()) => kept.push(to),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(RestartError::Move { path: from, source }),
        }
    }
    let kept_names: Vec<String> = kept.iter().map(|p| p.display().to_string()).collect();
    let why = crate::error_text(&broken);
    let detail = format!(
        "a new chain: the old one was broken ({why}); it is kept as {} (sha256 of the log {old_sha256})",
        if kept_names.is_empty() { "nothing (both files were gone)".to_owned() } else { kept_names.join(" and ") }
    );
    let append = |action, entry| {
        log.append(now, action, AuditResult::Ok, entry)
            .map_err(RestartError::Audit)
    };
    append(
        AuditAction::Restart,
        AuditEntry {
            detail: Some(detail),
            ..AuditEntry::default()
        },
    )?;
    let mut bundles = Vec::new();
    for record in &state.bundles {
        let entry = AuditEntry {
            bundle_id: Some(record.id.clone()),
            bundle_sha256: Some(record.sha256.clone()),
            signer_key_id: Some(record.signer_key_id.clone()),
            cves: record.manifest.cves.clone(),
            bundle_created: Some(record.manifest.created),
            cve_published: record.manifest.cve_published.clone(),
            error: None,
            detail: Some(format!(
                "recorded as {} in state.json when the audit log was restarted",
                record.phase.as_str()
            )),
        };
        append(AuditAction::Restart, entry)?;
        bundles.push(record.id.clone());
    }
    Ok(Restarted {
        broken: why,
        kept,
        bundles,
    })
}

/// The sha256 of a file, read in pieces (a log may be large), never
/// through a link or from a FIFO.
fn file_sha256(path: &std::path::Path) -> std::io::Result<String> {
    use sha2::Digest;
    let mut file = crate::files::open_no_follow(path)?;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect())
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
