//! The repository index, `index.json` at the repository's base URL: which
//! bundle files the repository serves, for which kernels, with their size
//! and sha256 (docs/patchd.md has the format). `patchgen index` writes it,
//! patchd's daemon reads it: one definition for both.
//!
//! The index is not trusted: it only says what to download. Its size and
//! sha256 bound and check the download; the bundle's signature and target
//! are verified on apply, as for any bundle. Everything in it is checked
//! before use: a name is a plain file name (no `/`, no leading dot, ends in
//! `.bundle`), so it can neither leave the watch directory nor hide as a
//! partial file; sizes are capped; unknown fields are refused.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::MAX_BUNDLE_SIZE;

/// The suffix of a bundle file.
pub const BUNDLE_SUFFIX: &str = ".bundle";

/// The index's file name under the base URL.
pub const INDEX_FILE: &str = "index.json";
/// The version of the index this patchd reads.
pub const INDEX_VERSION: u32 = 1;
/// An index larger than this is refused unread: 16384 entries of a few
/// hundred bytes fit.
pub const MAX_INDEX_SIZE: u64 = 8 << 20;
/// Most entries in one index.
pub const MAX_ENTRIES: usize = 16384;
/// Longest bundle file name.
pub const MAX_NAME_LEN: usize = 128;
/// Longest kernel release (`uname -r` is at most 64 bytes).
const MAX_RELEASE_LEN: usize = 64;
/// Longest build-id in hex (GNU build-ids are 20 bytes; allow 64).
const MAX_BUILD_ID_LEN: usize = 128;
/// Most CVEs listed for one bundle (the manifest's cap).
const MAX_CVES: usize = crate::manifest::MAX_CVES;

/// `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Index {
    /// [`INDEX_VERSION`].
    pub version: u32,
    /// The bundle files.
    pub bundles: Vec<IndexEntry>,
}

/// One bundle file of the repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexEntry {
    /// Its file name, relative to the base URL.
    pub name: String,
    /// sha256 of the file, lowercase hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// The kernel it is for (as its manifest says).
    pub target: IndexTarget,
    /// The CVEs it fixes (for people reading the index; not used).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cves: Vec<String>,
}

/// The kernel a bundle is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexTarget {
    /// `uname -r`.
    pub kernel_release: String,
    /// The GNU build-id, hex.
    pub build_id: String,
    /// The distribution's package version (for people; not used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_version: Option<String>,
}

impl IndexTarget {
    /// Whether this is the kernel of `release` and `build_id` (hex).
    pub fn is(&self, release: &str, build_id: &str) -> bool {
        self.kernel_release == release && self.build_id == build_id
    }
}

/// Why an index is refused.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Not JSON of the index's layout.
    #[error("not a repository index")]
    Json(#[source] serde_json::Error),

    /// Another version.
    #[error("index version {0}; this patchd reads version {INDEX_VERSION}")]
    Version(u32),

    /// Too many entries.
    #[error("{0} entries; at most {MAX_ENTRIES} are read")]
    TooManyEntries(usize),

    /// One entry is unusable.
    #[error("entry {position} ({name:?}): {reason}")]
    Entry {
        /// 0-based position in `bundles`.
        position: usize,
        /// Its name, as given.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
}

impl Index {
    /// Parses and checks an index.
    pub fn parse(bytes: &[u8]) -> Result<Self, IndexError> {
        #[derive(Deserialize)]
        struct Versioned {
            version: u32,
        }
        let versioned: Versioned = serde_json::from_slice(bytes).map_err(IndexError::Json)?;
        if versioned.version != INDEX_VERSION {
            return Err(IndexError::Version(versioned.version));
        }
        let index: Self = serde_json::from_slice(bytes).map_err(IndexError::Json)?;
        if index.bundles.len() > MAX_ENTRIES {
            return Err(IndexError::TooManyEntries(index.bundles.len()));
        }
        let mut names = HashSet::new();
        for (position, entry) in index.bundles.iter().enumerate() {
            let refuse = |reason| IndexError::Entry {
                position,
                name: entry.name.escape_debug().to_string(),
                reason,
            };
            check_entry(entry).map_err(refuse)?;
            if !names.insert(entry.name.as_str()) {
                return Err(refuse("the name is listed twice"));
            }
        }
        Ok(index)
    }
}

fn check_entry(entry: &IndexEntry) -> Result<(), &'static str> {
    let name = &entry.name;
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'));
    if name.len() > MAX_NAME_LEN
        || !plain
        || name.starts_with('.')
        || name.len() <= BUNDLE_SUFFIX.len()
        || !name.ends_with(BUNDLE_SUFFIX)
    {
        return Err("the name must be a file name of at most 128 bytes of A-Z a-z 0-9 . _ - +, not starting with a dot, ending in .bundle");
    }
    let hex = |text: &str| text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if entry.sha256.len() != 64 || !hex(&entry.sha256) {
        return Err("sha256 must be 64 lowercase hex digits");
    }
    let cap = u64::try_from(MAX_BUNDLE_SIZE).unwrap_or(u64::MAX);
    if entry.size == 0 || entry.size > cap {
        return Err("size must be 1 to 83886080 bytes (the bundle size cap)");
    }
    let target = &entry.target;
    if target.kernel_release.is_empty()
        || target.kernel_release.len() > MAX_RELEASE_LEN
        || target.kernel_release.bytes().any(|b| !b.is_ascii_graphic())
    {
        return Err("target.kernel_release must be 1 to 64 printable characters");
    }
    if target.build_id.is_empty()
        || target.build_id.len() > MAX_BUILD_ID_LEN
        || !hex(&target.build_id)
    {
        return Err("target.build_id must be lowercase hex");
    }
    if entry.cves.len() > MAX_CVES {
        return Err("more than 256 cves");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str) -> serde_json::Value {
        serde_json::json!({
            "name": name,
            "sha256": "ab".repeat(32),
            "size": 1234,
            "target": { "kernel_release": "6.1.0-50-amd64", "build_id": "06f8bde30046985060c60820f7a11515a33afb06" },
            "cves": ["CVE-2024-0001"]
        })
    }

    fn index_of(entries: Vec<serde_json::Value>) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "version": 1, "bundles": entries })).expect("json")
    }

    #[test]
    fn a_valid_index_reads_back_and_matches_its_kernel() {
        let index = Index::parse(&index_of(vec![
            entry("fix_a.bundle"),
            entry("fix+b-2.bundle"),
        ]))
        .expect("valid");
        assert_eq!(index.bundles.len(), 2);
        let (release, build_id) = ("6.1.0-50-amd64", "06f8bde30046985060c60820f7a11515a33afb06");
        assert!(index.bundles[0].target.is(release, build_id));
        assert!(!index.bundles[0].target.is(release, &"00".repeat(20)));
        // Written back, it parses to the same index.
        let text = serde_json::to_vec(&index).expect("json");
        assert_eq!(Index::parse(&text).expect("again"), index);
    }

    #[test]
    fn bad_entries_are_refused_with_their_position() {
        let mut cases: Vec<(serde_json::Value, &str)> = vec![
            (entry("../etc/passwd.bundle"), "the name must be"),
            (entry("a/b.bundle"), "the name must be"),
            (entry(".hidden.bundle"), "the name must be"),
            (entry("fix_a.bundle.part"), "the name must be"),
            (entry(".bundle"), "the name must be"),
            (entry("fix a.bundle"), "the name must be"),
            (
                entry(&format!("{}.bundle", "a".repeat(128))),
                "the name must be",
            ),
        ];
        let mut bad_sha = entry("x.bundle");
        bad_sha["sha256"] = serde_json::json!("AB".repeat(32));
        cases.push((bad_sha, "sha256"));
        let mut big = entry("x.bundle");
        big["size"] = serde_json::json!(80u64 * 1024 * 1024 + 1);
        cases.push((big, "size"));
        let mut empty = entry("x.bundle");
        empty["size"] = serde_json::json!(0);
        cases.push((empty, "size"));
        let mut release = entry("x.bundle");
        release["target"]["kernel_release"] = serde_json::json!("6.1 amd64");
        cases.push((release, "kernel_release"));
        let mut build_id = entry("x.bundle");
        build_id["target"]["build_id"] = serde_json::json!("xyz");
        cases.push((build_id, "build_id"));
        for (bad, want) in cases {
            let text = index_of(vec![entry("ok.bundle"), bad.clone()]);
            let error = Index::parse(&text).expect_err("refused");
            let message = error.to_string();
            assert!(
                message.starts_with("entry 1 ") && message.contains(want),
                "{bad}: {message}"
            );
        }
        let twice = index_of(vec![entry("a.bundle"), entry("a.bundle")]);
        assert!(Index::parse(&twice)
            .expect_err("twice")
            .to_string()
            .contains("listed twice"));
    }

    #[test]
    fn other_versions_unknown_fields_and_garbage_are_refused() {
        let v2 =
            serde_json::to_vec(&serde_json::json!({ "version": 2, "bundles": [], "mirrors": [] }))
                .expect("json");
        assert!(matches!(Index::parse(&v2), Err(IndexError::Version(2))));
        let mut extra = entry("a.bundle");
        extra["signature"] = serde_json::json!("none");
        assert!(matches!(
            Index::parse(&index_of(vec![extra])),
            Err(IndexError::Json(_))
        ));
        assert!(matches!(Index::parse(b"<html>"), Err(IndexError::Json(_))));
        assert!(matches!(Index::parse(b""), Err(IndexError::Json(_))));
    }
}
