//! The audit log, `audit.log` in the state directory: one JSON line per
//! attempt and outcome, append-only and hash-chained. Each line's `prev` is
//! the sha256 of the previous line's bytes (without its newline; 64 zeros
//! for the first line) and `seq` counts from 1, so an edited, inserted or
//! removed line breaks the chain at that point. `audit.head` (replaced
//! atomically after each append) holds the last line's `seq` and hash, so
//! lines cut off the end are found too.
//!
//! A chain without a secret cannot stop someone who rewrites every line
//! after the one they change (and the head); it makes any smaller edit
//! visible. Lines are only ever appended: this module never rewrites one.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::state::{write_atomically, StateError};
use crate::clock::utc_rfc3339;
use crate::files::{open_no_follow, read_regular, symlink_refused, Links};
use crate::verify::sha256_hex;

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

/// The audit log of one state directory.
#[derive(Debug)]
pub struct AuditLog {
    dir: PathBuf,
}

impl AuditLog {
    /// The log in state directory `dir` (created on the first append).
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
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
            result,
            error,
            detail: entry.detail,
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
        Ok(record)
    }

    /// Walks the whole chain; `Ok(Err(_))` names the first line that was
    /// edited, inserted or removed. Returns the number of lines.
    pub fn verify(&self) -> Result<Result<u64, Tampered>, AuditError> {
        self.walk(|_| {})
    }

    /// Walks the whole chain like [`AuditLog::verify`] and returns its
    /// records, in order, only if the whole chain is intact: the lines
    /// checked are the lines returned, read once.
    pub fn read_verified(&self) -> Result<Result<Vec<AuditRecord>, Tampered>, AuditError> {
        let mut records = Vec::new();
        Ok(self.walk(|record| records.push(record))?.map(|_| records))
    }

    /// Walks the chain, handing each line that chains on to `visit`; the
    /// caller must not trust what it was handed unless the result is
    /// `Ok(Ok(_))` (a later line or the head may show tampering).
    fn walk(
        &self,
        mut visit: impl FnMut(AuditRecord),
    ) -> Result<Result<u64, Tampered>, AuditError> {
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
                    None => Ok(0),
                    Some(_) => Err(tampered(&path, 1, "the log is gone but its head exists")),
                });
            }
            Err(e) => return Err(io("open")(e)),
        };
        let mut reader = BufReader::new(file);
        let mut walk = ChainWalk::new(&path, head);
        let mut line = Vec::new();
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
            match walk.next(&line) {
                Ok(record) => visit(record),
                Err(problem) => return Ok(Err(problem)),
            }
        }
        Ok(walk.finish())
    }
}

fn tampered(path: &Path, line: u64, what: impl Into<String>) -> Tampered {
    Tampered {
        path: path.to_owned(),
        line,
        what: what.into(),
    }
}

/// The state of a walk along the chain.
struct ChainWalk<'p> {
    path: &'p Path,
    line: u64,
    prev_hash: String,
    prev_seq: u64,
    /// The recorded head: absent (`None`), unreadable (`Some(None)`).
    head: Option<Option<Head>>,
    /// The line whose seq is the head's, and its hash.
    at_head: Option<(u64, String)>,
}

impl<'p> ChainWalk<'p> {
    fn new(path: &'p Path, head: Option<Option<Head>>) -> Self {
        Self {
            path,
            line: 0,
            prev_hash: GENESIS.to_owned(),
            prev_seq: 0,
            head,
            at_head: None,
        }
    }

    /// Checks the next line (with its newline, if it has one) and returns
    /// its record.
    fn next(&mut self, raw: &[u8]) -> Result<AuditRecord, Tampered> {
        self.line += 1;
        let n = self.line;
        let fail = |line: u64, what: String| Err(tampered(self.path, line, what));
        let Some(body) = raw.strip_suffix(b"\n") else {
            return fail(
                n,
                if raw.len() > MAX_LINE {
                    "the line is longer than any line patchd writes".to_owned()
                } else {
                    "the last line has no newline: cut short by a crash, or edited".to_owned()
                },
            );
        };
        let record: AuditRecord = match serde_json::from_slice(body) {
            Ok(record) => record,
            Err(_) => return fail(n, "not an audit record: edited, or a torn write".to_owned()),
        };
        let expected_seq = self.prev_seq.saturating_add(1);
        if record.prev != self.prev_hash {
            return match record.seq {
                seq if n == 1 && seq > 1 => fail(
                    1,
                    format!("the log starts at seq {seq}: the first {} line(s) were removed", seq - 1),
                ),
                _ if n == 1 => fail(1, "its prev is not the genesis hash: the line was edited".to_owned()),
                seq if seq > expected_seq => fail(
                    n,
                    format!(
                        "seq jumps from {} to {seq}: {} line(s) were removed before this line",
                        self.prev_seq,
                        seq - expected_seq
                    ),
                ),
                seq if seq < expected_seq => fail(
                    n - 1,
                    format!(
                        "the line was inserted (line {n} repeats seq {seq} and does not chain to it)"
                    ),
                ),
                _ => fail(
                    n - 1,
                    format!("the line was edited: line {n}'s prev is not its sha256"),
                ),
            };
        }
        if record.seq != expected_seq {
            return fail(
                n,
                format!(
                    "seq {} where {expected_seq} was expected: lines were inserted or removed",
                    record.seq
                ),
            );
        }
        self.prev_hash = sha256_hex(body);
        self.prev_seq = record.seq;
        if let Some(Some(head)) = &self.head {
            if head.seq == record.seq {
                self.at_head = Some((n, self.prev_hash.clone()));
            }
        }
        Ok(record)
    }

    /// Compares the end of the chain with the recorded head. Lines after the
    /// head are allowed (a crash between an append and the head's update).
    fn finish(self) -> Result<u64, Tampered> {
        let fail = |line: u64, what: String| Err(tampered(self.path, line, what));
        match (self.head, self.at_head) {
            (None, _) if self.line == 0 => Ok(0),
            (None, _) => fail(
                self.line,
                "the head (audit.head) is missing: lines removed at the end could not be seen"
                    .to_owned(),
            ),
            (Some(None), _) => fail(self.line, "the head (audit.head) is damaged".to_owned()),
            (Some(Some(head)), None) => fail(
                self.line.saturating_add(1),
                format!(
                    "the log ends at seq {} but the head records seq {}: the last {} line(s) were removed",
                    self.prev_seq,
                    head.seq,
                    head.seq.saturating_sub(self.prev_seq)
                ),
            ),
            (Some(Some(head)), Some((line, hash))) if hash != head.sha256 => fail(
                line,
                "the line was edited: its sha256 is not the one the head (audit.head) records"
                    .to_owned(),
            ),
            (Some(Some(_)), Some(_)) => Ok(self.line),
        }
    }
}

/// The last line's seq and hash, and whether the file ends without a
/// newline; `(0, GENESIS, false)` for an empty file.
fn last_line(file: &mut File) -> std::io::Result<(u64, String, bool)> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok((0, GENESIS.to_owned(), false));
    }
    let window = u64::try_from(MAX_LINE)
        .unwrap_or(u64::MAX)
        .saturating_add(2);
    let start = len.saturating_sub(window);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    file.take(window).read_to_end(&mut tail)?;
    let torn = !tail.ends_with(b"\n");
    let body = tail.strip_suffix(b"\n").unwrap_or(&tail);
    let last = match body.iter().rposition(|&b| b == b'\n') {
        Some(at) => body.get(at + 1..).unwrap_or_default(),
        None => body,
    };
    let seq = serde_json::from_slice::<AuditRecord>(last)
        .map(|r| r.seq)
        .or_else(|_| count_lines(file))?;
    Ok((seq, sha256_hex(last), torn))
}

/// For a damaged last line: its seq is its line number.
fn count_lines(file: &mut File) -> std::io::Result<u64> {
    file.seek(SeekFrom::Start(0))?;
    let mut count = 0u64;
    let mut buffer = [0u8; 8192];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        let chunk = buffer.get(..read).unwrap_or_default();
        count += u64::try_from(chunk.iter().filter(|&&b| b == b'\n').count()).unwrap_or(0);
    }
    Ok(count.saturating_add(1))
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

#[cfg(test)]
#[path = "audit_tests.rs"]
mod tests;
