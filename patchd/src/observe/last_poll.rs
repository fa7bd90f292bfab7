//! The daemon's last repository poll, for `patchd status`: the daemon
//! writes `last-poll.json` in the state directory after each poll
//! ([`record`]); status reads it ([`read`]). A missing or unreadable file
//! means no poll is known (no daemon, or no repository).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::files::{read_regular, write_atomically, Links};

/// The file in the state directory.
pub const FILE: &str = "last-poll.json";

/// Largest file read back.
const MAX_SIZE: u64 = 16 * 1024;

/// Longest error text kept.
const MAX_ERROR: usize = 512;

/// One poll's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastPoll {
    /// When it ended (Unix seconds).
    pub at: u64,
    /// The repository.
    pub url: String,
    /// Whether the index could be read.
    pub ok: bool,
    /// Bundles it downloaded.
    pub downloaded: u64,
    /// Bundles it could not download.
    pub failed: u64,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// Writes `poll` to the state directory `dir` (mode 0600, atomically).
pub fn record(dir: &Path, poll: &LastPoll) -> std::io::Result<()> {
    let mut poll = poll.clone();
    if let Some(error) = &mut poll.error {
        if error.len() > MAX_ERROR {
            let mut end = MAX_ERROR;
            while !error.is_char_boundary(end) {
                end -= 1;
            }
            error.truncate(end);
        }
    }
    let bytes = serde_json::to_vec(&poll).map_err(std::io::Error::other)?;
    write_atomically(dir, FILE, ".last-poll.json.tmp", 0o600, &bytes).map_err(|e| e.source)
}

/// The last poll recorded in the state directory `dir`, if one is.
pub fn read(dir: &Path) -> Option<LastPoll> {
    let bytes = read_regular(&dir.join(FILE), MAX_SIZE, Links::Refuse).ok()??;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poll_round_trips_and_a_long_error_is_cut() {
        let tmp = tempfile::tempdir().expect("tmp");
        assert_eq!(read(tmp.path()), None);
        let poll = LastPoll {
            at: 1_800_000_000,
            url: "https://repo.example/suture/".to_owned(),
            ok: false,
            downloaded: 0,
            failed: 0,
            error: Some("é".repeat(400)),
        };
        record(tmp.path(), &poll).expect("record");
        let back = read(tmp.path()).expect("read");
        assert!(back.error.as_ref().is_some_and(|e| e.len() <= MAX_ERROR));
        assert_eq!(back.at, poll.at);
        std::fs::write(tmp.path().join(FILE), b"not json").expect("write");
        assert_eq!(read(tmp.path()), None);
    }
}
