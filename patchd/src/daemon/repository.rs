//! Polling a static bundle repository: `index.json` at a base URL, and the
//! bundle files beside it ([`super::index`] has the format).
//!
//! Each poll asks for the index with the validators of the last answer
//! (`If-None-Match` with its `ETag`, `If-Modified-Since` with its
//! `Last-Modified`), so an unchanged index costs a `304`. Then every entry
//! for the running kernel whose sha256 patchd does not have yet is
//! downloaded, at most the size the index gives, checked against the
//! index's sha256, and written to the watch directory as `.NAME.part`,
//! linked to `NAME` when complete (never over a file that is there: an
//! operator's file is not replaced): the watch directory's normal path
//! applies it, with the full verification (the index is not trusted; the
//! signature is). One poll downloads at most `max_poll_files` bundles and
//! `max_poll_bytes` bytes (by the index's sizes, which the downloads are
//! held to); the rest waits for the next polls, so a hostile index cannot
//! fill the disk in one go. A poll holds no lock: the state is not touched
//! here.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::{debug, info, warn};

use super::index::{Index, IndexEntry, IndexError, INDEX_FILE, MAX_INDEX_SIZE};
use crate::config::RepositorySettings;
use crate::files::read_capped;
use crate::kernel::KernelIdentity;
use crate::verify::sha256_hex;

/// Longest validator (`ETag`, `Last-Modified`) kept for the next poll.
const MAX_VALIDATOR_LEN: usize = 1024;
/// Redirects followed (a CDN in front of the repository).
const MAX_REDIRECTS: u32 = 3;

/// Why a poll or a download failed.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// The request failed: DNS, connection, TLS, timeout, protocol.
    #[error("cannot fetch {url}")]
    Fetch {
        /// The URL.
        url: String,
        /// What ureq found.
        #[source]
        source: Box<ureq::Error>,
    },

    /// An HTTP status other than 200 (or 304 for the index).
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
    },

    /// The body could not be read.
    #[error("cannot read the answer of {url}")]
    Body {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// The index is larger than patchd reads.
    #[error("{url} is larger than {MAX_INDEX_SIZE} bytes: not a repository index")]
    IndexTooLarge {
        /// The URL.
        url: String,
    },

    /// The index is not one.
    #[error("the repository index {url} is refused")]
    Index {
        /// The URL.
        url: String,
        /// What is wrong.
        #[source]
        source: IndexError,
    },

    /// A 304 to a request without validators.
    #[error("{url} answered 304 Not Modified to a request that was not conditional")]
    UnexpectedNotModified {
        /// The URL.
        url: String,
    },

    /// A bundle of another size than the index says.
    #[error("{url}: the index says {expected} bytes, but the server {seen}: not downloaded")]
    Size {
        /// The URL.
        url: String,
        /// The index's size.
        expected: u64,
        /// What the server announced or sent.
        seen: String,
    },

    /// A bundle whose sha256 is not the index's.
    #[error("{url} has sha256 {found}, but the index says {expected}: not downloaded")]
    Digest {
        /// The URL.
        url: String,
        /// The index's digest.
        expected: String,
        /// The download's.
        found: String,
    },

    /// A file of that name is in the watch directory already (and is not
    /// this download: its sha256 would have been known).
    #[error("{path} exists already and is not the repository's {name}: not overwritten; rename the file in the watch directory, or the bundle in the repository")]
    Exists {
        /// The file that is there.
        path: PathBuf,
        /// The index's name.
        name: String,
    },

    /// The download could not be written to the watch directory.
    #[error("cannot {what} {path}")]
    Write {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// What one poll did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PollReport {
    /// The index had not changed (HTTP 304).
    pub not_modified: bool,
    /// Entries in the index.
    pub entries: usize,
    /// Entries for other kernels, skipped.
    pub other_kernel: usize,
    /// Entries patchd has already (applied, tried, or in the watch
    /// directory).
    pub present: usize,
    /// Files written to the watch directory.
    pub downloaded: Vec<Download>,
    /// Entries left for the next polls: over this poll's file count or
    /// byte budget.
    pub deferred: usize,
    /// Downloads that failed, with the reason (retried at the next poll).
    pub failed: Vec<(String, String)>,
}

/// A file a poll wrote into the watch directory: which one it is, so the
/// daemon removes it (and only it) if it is not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    /// Its name in the watch directory.
    pub name: OsString,
    /// Its sha256 (the index's, checked).
    pub sha256: String,
    /// Its device and inode, to tell it from a file put there later.
    pub identity: (u64, u64),
}

/// The repository client and what it remembers between polls.
#[derive(Debug)]
pub struct Repository {
    settings: RepositorySettings,
    agent: ureq::Agent,
    /// The last index read, with its `ETag` and `Last-Modified`.
    cached: Option<CachedIndex>,
}

#[derive(Debug)]
struct CachedIndex {
    index: Index,
    etag: Option<String>,
    last_modified: Option<String>,
}

impl Repository {
    /// A client for the repository of `settings`.
    pub fn new(settings: RepositorySettings) -> Self {
        let https = settings.base_url.starts_with("https://");
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(pem) = &settings.ca_pem {
            // Only the CA file's authorities (checked when the config was
            // read); a certificate that does not parse is left out, so
            // nothing else is trusted in its place.
            let certificates: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certificates));
        }
        let config = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .timeout_global(Some(settings.timeout))
            // 304, 404 and 5xx are answers the poll looks at.
            .http_status_as_error(false)
            // A redirect never downgrades an https repository to http.
            .https_only(https)
            .max_redirects(MAX_REDIRECTS)
            .user_agent(concat!("patchd/", env!("CARGO_PKG_VERSION")))
            .build();
        Self {
            settings,
            agent: config.into(),
            cached: None,
        }
    }

    /// The repository's settings.
    pub fn settings(&self) -> &RepositorySettings {
        &self.settings
    }

    /// The index's URL.
    pub fn index_url(&self) -> String {
        format!("{}{INDEX_FILE}", self.settings.base_url)
    }

    /// Fetches the index (conditionally), then downloads into `watch_dir`
    /// every bundle for `running` whose sha256 `have` does not know.
    pub fn poll(
        &mut self,
        running: &KernelIdentity,
        have: &dyn Fn(&str) -> bool,
        watch_dir: &Path,
    ) -> Result<PollReport, RepositoryError> {
        let mut report = PollReport {
            not_modified: !self.fetch_index()?,
            ..PollReport::default()
        };
        let Some(cached) = &self.cached else {
            return Ok(report);
        };
        report.entries = cached.index.bundles.len();
        let mut wanted = Vec::new();
        let mut digests = BTreeSet::new();
        for entry in &cached.index.bundles {
            if !entry.target.is(&running.release, &running.build_id) {
                debug!(
                    bundle = %entry.name,
                    release = %entry.target.kernel_release,
                    build_id = %entry.target.build_id,
                    "repository: for another kernel, skipped"
                );
                report.other_kernel += 1;
            } else if have(&entry.sha256) || !digests.insert(entry.sha256.clone()) {
                debug!(bundle = %entry.name, sha256 = %entry.sha256, "repository: present already");
                report.present += 1;
            } else {
                wanted.push(entry.clone());
            }
        }
        let (mut files, mut bytes) = (0u32, 0u64);
        for entry in wanted {
            let after = bytes.saturating_add(entry.size);
            if files >= self.settings.max_poll_files || after > self.settings.max_poll_bytes {
                debug!(bundle = %entry.name, size = entry.size, "repository: over this poll's limits; left for the next poll");
                report.deferred += 1;
                continue;
            }
            files += 1;
            bytes = after;
            match self.download(&entry, watch_dir) {
                Ok(identity) => {
                    info!(bundle = %entry.name, sha256 = %entry.sha256, size = entry.size, "repository: downloaded {}", entry.name);
                    report.downloaded.push(Download {
                        name: OsString::from(&entry.name),
                        sha256: entry.sha256.clone(),
                        identity,
                    });
                }
                Err(error) => {
                    let text = crate::error_text(&error);
                    warn!(bundle = %entry.name, error = %text, "repository: download failed; retried at the next poll");
                    report.failed.push((entry.name.clone(), text));
                }
            }
        }
        if report.deferred > 0 {
            warn!(
                deferred = report.deferred,
                max_poll_files = self.settings.max_poll_files,
                max_poll_bytes = self.settings.max_poll_bytes,
                "repository: {} bundle(s) over this poll's limits (repository.max_poll_files, max_poll_bytes) are left for the next polls",
                report.deferred
            );
        }
        Ok(report)
    }

    /// The index's bundles for `running` whose sha256 `have` does not know,
    /// each once: what the next poll would download (`patchd updates`).
    /// Reads the index only; writes nothing.
    pub fn not_downloaded(
        &mut self,
        running: &KernelIdentity,
        have: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<IndexEntry>, RepositoryError> {
        self.fetch_index()?;
        let mut seen = BTreeSet::new();
        Ok(self
            .cached
            .iter()
            .flat_map(|c| &c.index.bundles)
            .filter(|e| {
                e.target.is(&running.release, &running.build_id)
                    && !have(&e.sha256)
                    && seen.insert(&e.sha256)
            })
            .cloned()
            .collect())
    }

    /// Fetches the index unless it is unchanged; returns whether a new one
    /// was read.
    fn fetch_index(&mut self) -> Result<bool, RepositoryError> {
        let url = self.index_url();
        let mut request = self.agent.get(&url);
        if let Some(cached) = &self.cached {
            if let Some(etag) = &cached.etag {
                request = request.header("If-None-Match", etag);
            }
            if let Some(last_modified) = &cached.last_modified {
                request = request.header("If-Modified-Since", last_modified);
            }
        }
        let mut response = request.call().map_err(|source| RepositoryError::Fetch {
            url: url.clone(),
            source: Box::new(source),
        })?;
        match response.status().as_u16() {
            304 if self.cached.is_some() => {
                debug!(url = %url, "repository: index not modified");
                return Ok(false);
            }
            304 => return Err(RepositoryError::UnexpectedNotModified { url }),
            200 => {}
            status => return Err(RepositoryError::Status { url, status }),
        }
        let validator = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .filter(|value| !value.is_empty() && value.len() <= MAX_VALIDATOR_LEN)
                .map(str::to_owned)
        };
        let etag = validator("etag");
        let last_modified = validator("last-modified");
        let reader = response.body_mut().as_reader();
        let read = read_capped(reader, MAX_INDEX_SIZE).map_err(|source| RepositoryError::Body {
            url: url.clone(),
            source,
        })?;
        let Some(bytes) = read else {
            return Err(RepositoryError::IndexTooLarge { url });
        };
        let index = Index::parse(&bytes).map_err(|source| RepositoryError::Index {
            url: url.clone(),
            source,
        })?;
        info!(url = %url, entries = index.bundles.len(), "repository: read the index");
        self.cached = Some(CachedIndex {
            index,
            etag,
            last_modified,
        });
        Ok(true)
    }

    /// Downloads one bundle, checks its size and sha256, and puts it into
    /// the watch directory atomically; returns the file's identity.
    fn download(
        &self,
        entry: &IndexEntry,
        watch_dir: &Path,
    ) -> Result<(u64, u64), RepositoryError> {
        let url = format!("{}{}", self.settings.base_url, entry.name);
        let mut response =
            self.agent
                .get(&url)
                .call()
                .map_err(|source| RepositoryError::Fetch {
                    url: url.clone(),
                    source: Box::new(source),
                })?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(RepositoryError::Status { url, status });
        }
        if let Some(length) = response.body().content_length() {
            if length != entry.size {
                return Err(RepositoryError::Size {
                    url,
                    expected: entry.size,
                    seen: format!("announced {length} (Content-Length)"),
                });
            }
        }
        let reader = response.body_mut().as_reader();
        // Reading stops one byte past the expected size.
        let read = read_capped(reader, entry.size).map_err(|source| RepositoryError::Body {
            url: url.clone(),
            source,
        })?;
        let seen = match &read {
            None => Some("sent more".to_owned()),
            Some(bytes) if u64::try_from(bytes.len()).unwrap_or(u64::MAX) != entry.size => {
                Some(format!("sent {}", bytes.len()))
            }
            Some(_) => None,
        };
        if let Some(seen) = seen {
            return Err(RepositoryError::Size {
                url,
                expected: entry.size,
                seen,
            });
        }
        let bytes = read.unwrap_or_default();
        let found = sha256_hex(&bytes);
        if found != entry.sha256 {
            return Err(RepositoryError::Digest {
                url,
                expected: entry.sha256.clone(),
                found,
            });
        }
        write_into(watch_dir, &entry.name, &bytes)
    }
}

/// Writes `dir/name` as `dir/.name.part` (fsynced), then links it to
/// `name` only if nothing is there (`link(2)` never replaces a file: an
/// operator's file of that name stays as it is), removes the temporary
/// name and fsyncs `dir`: the watcher sees only the complete file, under
/// its final name. Returns the file's device and inode.
pub fn write_into(dir: &Path, name: &str, bytes: &[u8]) -> Result<(u64, u64), RepositoryError> {
    use std::os::unix::fs::MetadataExt;
    let temp = format!(".{name}.part");
    let write = |what, path: PathBuf| move |source| RepositoryError::Write { what, path, source };
    let final_path = dir.join(name);
    match std::fs::symlink_metadata(&final_path) {
        Ok(_) => {
            return Err(RepositoryError::Exists {
                path: final_path,
                name: name.to_owned(),
            })
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(write("inspect", final_path)(error)),
    }
    // Written complete under the temporary name first (a crash leaves at
    // most that name, which the next write replaces).
    let unused = format!(".{name}.unused");
    crate::files::write_atomically(dir, &temp, &unused, 0o600, bytes).map_err(|e| {
        RepositoryError::Write {
            what: e.what,
            path: e.path,
            source: e.source,
        }
    })?;
    let temp_path = dir.join(&temp);
    let linked = std::fs::hard_link(&temp_path, &final_path);
    let _ = std::fs::remove_file(&temp_path);
    match linked {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(RepositoryError::Exists {
                path: final_path,
                name: name.to_owned(),
            })
        }
        Err(error) => return Err(write("link into place", final_path)(error)),
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(write("fsync", dir.to_owned()))?;
    let metadata = std::fs::symlink_metadata(&final_path).map_err(write("inspect", final_path))?;
    Ok((metadata.dev(), metadata.ino()))
}

/// The wait before the next poll: `interval` moved by up to `jitter`
/// either way, from `random` (uniform over `-jitter..=jitter` seconds).
pub fn next_poll_in(interval: Duration, jitter: Duration, random: u64) -> Duration {
    let jitter = jitter.as_secs().min(interval.as_secs());
    let span = jitter.saturating_mul(2).saturating_add(1);
    let offset = random % span;
    let earliest = interval.as_secs().saturating_sub(jitter);
    Duration::from_secs(earliest.saturating_add(offset))
}

#[cfg(test)]
#[path = "repository_tests.rs"]
mod tests;
