//! The audit log, `audit.log` in the state directory: one JSON line per
//! attempt and outcome, append-only and hash-chained. Each line's `prev` is
//! the sha256 of the previous line's bytes (without its newline; 64 zeros
//! for the first line) and `seq` counts from 1, so an edited, inserted or
//! removed line breaks the chain at that point. `audit.head` (replaced
//! atomically after each append) holds the last line's `seq` and hash, so
//! lines cut off the end are found too.
//!
//! Before every append the whole chain is walked against the head, and a
//! broken chain is refused ([`AuditError::Broken`]): an append never
//! launders a cut (a new head over a shortened log). After every append the
//! new head also goes to the system log ([`witness`]), which
//! someone who rewrites the chain later cannot take back.
//!
//! A chain without a secret cannot stop someone who rewrites every line
//! after the one they change (and the head); it makes any smaller edit
//! visible, and the heads in the system log show the rewrite. Lines are
//! only ever appended: this module never rewrites one. The one exception
//! is a fragment after the head that a crash cut short in the middle of an
//! append (the head never recorded it): it is cut off before the next
//! line, which says so.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::state::{write_atomically, StateError};
use crate::clock::utc_rfc3339;
use crate::files::{open_no_follow, read_regular, symlink_refused, Links};
use crate::verify::sha256_hex;
use chain::{last_line, tampered, ChainWalk};
use witness::witness_head;

/// The log's file name in the state directory.
pub const AUDIT_FILE: &str = "audit.log";
/// The head's file name in the state directory.
pub const HEAD_FILE: &str = "audit.head";
/// `prev` of the first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// A line longer than this is not one patchd wrote.
const MAX_LINE: usize = 64 << 10;
/// `audit.head` is one short JSON object; anything longer is damaged.
const MAX_HEAD: u64 = 4096;
/// Error texts are cut to this many bytes.
const MAX_ERROR_TEXT: usize = 4096;

/// What was attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// Applying a bundle.
    Apply,
    /// Undoing an applied bundle because a later one of the same apply failed.
    Rollback,
    /// `patchd audit restart`: a new chain after a broken one was set
    /// aside; one line for the restart, then one per bundle the state
    /// records, so the new chain accounts for them.
    Restart,
    /// Reverting a bundle.
    Revert,
    /// At start, the kernel and the state disagreed and the state was fixed.
    Reconcile,
    /// The crash-loop guard held a bundle back instead of re-applying it:
    /// the machine went down without a clean shutdown while it was applied.
    Hold,
    /// `patchd shutdown` recorded a clean shutdown of this boot.
    Shutdown,
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditResult {
    /// Done.
    Ok,
    /// Refused before the kernel was touched (verification, plan).
    Refused,
    /// Tried and failed; what was done was undone.
    Failed,
}

/// One line of the log. The field order is the line's layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// 1 for the first line, then one more per line.
    pub seq: u64,
    /// When, RFC 3339 UTC.
    pub time: String,
    /// What was attempted.
    pub action: AuditAction,
    /// The bundle's id (as it claims, if it was refused unverified).
    pub bundle_id: Option<String>,
    /// sha256 of the bundle file.
    pub bundle_sha256: Option<String>,
    /// Key id of the signer.
    pub signer_key_id: Option<String>,
    /// The CVEs the bundle fixes.
    pub cves: Vec<String>,
    /// When patchgen made the bundle (its manifest's `created`), RFC 3339
    /// UTC: with `time`, the vulnerability gap of `patchd report`. Absent
    /// from lines written before patchd recorded it, hence the default.
    #[serde(default)]
    pub bundle_created: Option<String>,
    /// The publication dates its manifest declares for its CVEs
    /// (`YYYY-MM-DD` by CVE id): with `time`, the exposure of `patchd
    /// report`. Absent when there are none (always for a bundle refused
    /// before it was verified), so such lines are as before the field.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cve_published: BTreeMap<String, String>,
    /// How it ended.
    pub result: AuditResult,
    /// What went wrong.
    pub error: Option<String>,
    /// What was found or done, when the action alone does not say it
    /// (reconciling, rollbacks).
    pub detail: Option<String>,
    /// sha256 of the previous line, hex.
    pub prev: String,
}

/// A line to append: everything but `seq`, `time` and `prev`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditEntry {
    /// The bundle's id.
    pub bundle_id: Option<String>,
    /// sha256 of the bundle file.
    pub bundle_sha256: Option<String>,
    /// Key id of the signer.
    pub signer_key_id: Option<String>,
    /// The CVEs.
    pub cves: Vec<String>,
    /// When patchgen made the bundle (Unix seconds), if it was verified.
    pub bundle_created: Option<u64>,
    /// The CVE publication dates of its manifest, if it was verified.
    pub cve_published: BTreeMap<String, String>,
    /// What went wrong.
    pub error: Option<String>,
    /// What was found or done.
    pub detail: Option<String>,
}

/// The last line's position and hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Head {
    seq: u64,
    sha256: String,
}

/// Why the log could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file operation failed.
    #[error("cannot {what} the audit log {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The head could not be replaced.
    #[error("cannot record the audit log's head")]
    Head(#[source] StateError),
    /// The chain is broken (or does not account for what the state
    /// records): nothing is added to it, and nothing was changed.
    #[error("refusing to add to the audit log {path}: it was tampered with or damaged, so patchd changes nothing until it is dealt with; keep audit.log and audit.head as evidence (patchd audit verify says what is wrong), then run `patchd audit restart` to set them aside and start a new chain")]
    Broken {
        /// The log.
        path: PathBuf,
        /// The first broken place.
        #[source]
        source: Tampered,
    },
}

/// The first place the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the audit log {path} has been tampered with: line {line}: {what}")]
pub struct Tampered {
    /// The log.
    pub path: PathBuf,
    /// 1-based line number in the file.
    pub line: u64,
    /// What is wrong there.
    pub what: String,
}

/// What an intact chain accounts for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accounted {
    /// Its lines.
    pub lines: u64,
    /// The sha256 of every bundle with an `ok` line (applied, reconciled,
    /// held, taken over by a restart, reverted).
    pub bundles: std::collections::HashSet<String>,
}

/// The audit log of one state directory.
#[derive(Debug)]
pub struct AuditLog {
    dir: PathBuf,
    /// The system log socket each new head is sent to, if any.
    syslog: Option<PathBuf>,
}

impl AuditLog {
    /// The log in state directory `dir` (created on the first append),
    /// sending no head to the system log.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            syslog: None,
        }
    }

    /// This log, sending each new head to the syslog socket `socket`
    /// (`None`: nowhere).
    pub fn with_syslog(mut self, socket: Option<PathBuf>) -> Self {
        self.syslog = socket;
        self
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(AUDIT_FILE)
    }

    /// Appends a line, fsyncs it, then records the new head. `now` is Unix
    /// seconds.
    pub fn append(
        &self,
        now: u64,
        action: AuditAction,
        result: AuditResult,
        entry: AuditEntry,
    ) -> Result<AuditRecord, AuditError> {
        let path = self.path();
        let io = |what| {
            let path = path.clone();
            move |source| AuditError::Io { what, path, source }
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
            .open(&path)
            .map_err(|error| match error.raw_os_error() {
                Some(nix::libc::ELOOP) => symlink_refused(),
                _ => error,
            })
            .map_err(io("open"))?;
        if !file.metadata().map_err(io("inspect"))?.is_file() {
            return Err(io("open")(crate::files::not_regular()));
        }
        // Never on a broken chain: a new head over a cut log would hide it.
        let torn = match self.walk(|_| {}, Tolerate::TornTail)? {
            Ok(Walked { torn, .. }) => torn,
            Err(tampered) => {
                return Err(AuditError::Broken {
                    path,
                    source: tampered,
                })
            }
        };
        let mut detail = entry.detail;
        if let Some(fragment) = torn {
            // Cut short by a crash in an append the head never recorded.
            file.set_len(fragment.start)
                .map_err(io("cut the torn end of"))?;
            let note = format!(
                "the previous append was cut short by a crash: its {} byte(s), never recorded in the head, were removed",
                fragment.len
            );
            detail = Some(match detail {
                Some(detail) => format!("{detail}; {note}"),
                None => note,
            });
        }
        let (last_seq, prev, torn) = last_line(&mut file).map_err(io("read"))?;
        let mut error = entry.error;
        if let Some(text) = error.as_mut() {
            truncate_at_char(text, MAX_ERROR_TEXT);
        }
        let record = AuditRecord {
            seq: last_seq.saturating_add(1),
            time: utc_rfc3339(now),
            action,
            bundle_id: entry.bundle_id,
            bundle_sha256: entry.bundle_sha256,
            signer_key_id: entry.signer_key_id,
            cves: entry.cves,
            bundle_created: entry.bundle_created.map(utc_rfc3339),
            cve_published: entry.cve_published,
            result,
            error,
            detail,
            prev,
        };
        let line = serde_json::to_string(&record).map_err(|e| io("encode a line of")(e.into()))?;
        let mut bytes = Vec::with_capacity(line.len().saturating_add(2));
        if torn {
            // A crash cut the last line short: end it, so the chain records
            // the damage instead of gluing this line to it.
            bytes.push(b'\n');
        }
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        file.write_all(&bytes).map_err(io("append to"))?;
        file.sync_data().map_err(io("fsync"))?;
        let head = Head {
            seq: record.seq,
            sha256: sha256_hex(line.as_bytes()),
        };
        let head = serde_json::to_vec(&head).map_err(|e| io("encode the head of")(e.into()))?;
        write_atomically(&self.dir, HEAD_FILE, &head).map_err(AuditError::Head)?;
        if let Some(socket) = &self.syslog {
            witness_head(socket, &path, record.seq, &sha256_hex(line.as_bytes()));
        }
        Ok(record)
    }

    /// Walks the whole chain; `Ok(Err(_))` names the first line that was
    /// edited, inserted or removed. Returns the number of lines.
    pub fn verify(&self) -> Result<Result<u64, Tampered>, AuditError> {
        Ok(self
            .walk(|_| {}, Tolerate::Nothing)?
            .map(|walked| walked.lines))
    }

    /// Walks the whole chain like [`AuditLog::verify`] and returns its
    /// records, in order, only if the whole chain is intact: the lines
    /// checked are the lines returned, read once.
    pub fn read_verified(&self) -> Result<Result<Vec<AuditRecord>, Tampered>, AuditError> {
        let mut records = Vec::new();
        let walked = self.walk(|record| records.push(record), Tolerate::Nothing)?;
        Ok(walked.map(|_| records))
    }

    /// Walks the whole chain like [`AuditLog::verify`] and returns what
    /// it accounts for ([`Accounted`]), keeping only the sha256 of bundles
    /// with an `ok` line in memory, however long the log.
    pub fn accounted(&self) -> Result<Result<Accounted, Tampered>, AuditError> {
        self.accounted_with(Tolerate::Nothing)
    }

    /// [`AuditLog::accounted`] for an append: a fragment after the head
    /// that a crash cut short is not tampering.
    pub(crate) fn accounted_for_append(&self) -> Result<Result<Accounted, Tampered>, AuditError> {
        self.accounted_with(Tolerate::TornTail)
    }

    fn accounted_with(
        &self,
        tolerate: Tolerate,
    ) -> Result<Result<Accounted, Tampered>, AuditError> {
        let mut bundles = std::collections::HashSet::new();
        let walked = self.walk(
            |record| {
                if let (AuditResult::Ok, Some(sha256)) = (record.result, record.bundle_sha256) {
                    bundles.insert(sha256);
                }
            },
            tolerate,
        )?;
        Ok(walked.map(|walked| Accounted {
            lines: walked.lines,
            bundles,
        }))
    }

    /// Walks the chain, handing each line that chains on to `visit`; the
    /// caller must not trust what it was handed unless the result is
    /// `Ok(Ok(_))` (a later line or the head may show tampering).
    fn walk(
        &self,
        mut visit: impl FnMut(AuditRecord),
        tolerate: Tolerate,
    ) -> Result<Result<Walked, Tampered>, AuditError> {
        let path = self.path();
        let io = |what| {
            let path = path.clone();
            move |source| AuditError::Io { what, path, source }
        };
        let head = match read_regular(&self.dir.join(HEAD_FILE), MAX_HEAD, Links::Refuse) {
            Ok(Some(bytes)) => Some(serde_json::from_slice::<Head>(&bytes).ok()),
            // Larger than any head patchd writes: damaged.
            Ok(None) => Some(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io("read the head of")(e)),
        };
        let file = match open_no_follow(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(match head {
                    None => Ok(Walked::default()),
                    Some(_) => Err(tampered(&path, 1, "the log is gone but its head exists")),
                });
            }
            Err(e) => return Err(io("open")(e)),
        };
        let mut reader = BufReader::new(file);
        let mut walk = ChainWalk::new(&path, head);
        let mut line = Vec::new();
        let mut offset = 0u64;
        loop {
            line.clear();
            let read = (&mut reader)
                .take(
                    u64::try_from(MAX_LINE)
                        .unwrap_or(u64::MAX)
                        .saturating_add(1),
                )
                .read_until(b'\n', &mut line)
                .map_err(io("read"))?;
            if read == 0 {
                break;
            }
            let len = u64::try_from(read).unwrap_or(u64::MAX);
            // Only the last line lacks a newline; one after the head is an
            // append a crash cut short, if the caller tolerates it.
            if tolerate == Tolerate::TornTail && !line.ends_with(b"\n") && read <= MAX_LINE {
                if let Ok(lines) = walk.finish_before_torn() {
                    let torn = Some(Torn { start: offset, len });
                    return Ok(Ok(Walked { lines, torn }));
                }
            }
            offset = offset.saturating_add(len);
            match walk.next(&line) {
                Ok(record) => visit(record),
                Err(problem) => return Ok(Err(problem)),
            }
        }
        Ok(walk.finish().map(|lines| Walked { lines, torn: None }))
    }
}

/// What a walk lets pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tolerate {
    /// Nothing: `audit verify`, reports.
    Nothing,
    /// A last line without a newline after the head (an append cut short).
    TornTail,
}

/// A chain walked without a break.
#[derive(Debug, Default)]
struct Walked {
    /// Its complete lines.
    lines: u64,
    /// A fragment after the head cut short by a crash.
    torn: Option<Torn>,
}

/// Where a torn last line starts, and its length.
#[derive(Debug, Clone, Copy)]
struct Torn {
    start: u64,
    len: u64,
}

fn truncate_at_char(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str(" [...]");
    }
}

mod chain;
pub mod check;
pub mod witness;

#[cfg(test)]
mod tests;
