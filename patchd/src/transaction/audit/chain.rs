//! Walking the chain: each line against the one before it and the end
//! against the head ([`ChainWalk`]), and the last line of the file for an
//! append ([`last_line`]). Reads only.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::{AuditRecord, Head, Tampered, GENESIS, MAX_LINE};
use crate::verify::sha256_hex;

impl ChainWalk<'_> {
    /// [`ChainWalk::finish`] for the lines before a torn last one: the
    /// head must have recorded them all, so the fragment was never
    /// recorded.
    pub(super) fn finish_before_torn(&self) -> Result<u64, Tampered> {
        let head = match &self.head {
            None if self.line == 0 => return Ok(0),
            Some(Some(head)) => head,
            _ => return Err(tampered(self.path, self.line, "")),
        };
        match &self.at_head {
            Some((_, hash)) if *hash == head.sha256 && head.seq == self.prev_seq => Ok(self.line),
            _ => Err(tampered(self.path, self.line, "")),
        }
    }
}

pub(super) fn tampered(path: &Path, line: u64, what: impl Into<String>) -> Tampered {
    Tampered {
        path: path.to_owned(),
        line,
        what: what.into(),
    }
}

/// The state of a walk along the chain.
pub(super) struct ChainWalk<'p> {
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
    pub(super) fn new(path: &'p Path, head: Option<Option<Head>>) -> Self {
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
    pub(super) fn next(&mut self, raw: &[u8]) -> Result<AuditRecord, Tampered> {
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
    pub(super) fn finish(self) -> Result<u64, Tampered> {
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
pub(super) fn last_line(file: &mut File) -> std::io::Result<(u64, String, bool)> {
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
