//! The `[repository]` section of the config file, checked when it is
//! read: the URL (https unless opted out), the poll's timing and limits,
//! and a CA file for a repository behind an internal PKI.

use std::time::Duration;

use crate::files::{read_regular, Links};
use crate::ownership::check_trusted_path;

use super::{
    ConfigError, FileRepository, RepositorySettings, DEFAULT_INTERVAL_SECS, DEFAULT_JITTER_SECS,
    DEFAULT_MAX_POLL_BYTES, DEFAULT_MAX_POLL_FILES, DEFAULT_TIMEOUT_SECS, MAX_MAX_POLL_FILES,
    MAX_POLL_BYTES_RANGE, MAX_TIMEOUT_SECS, MAX_URL_LEN, MIN_INTERVAL_SECS,
};

pub(super) fn repository_settings(
    origin: &str,
    file: FileRepository,
) -> Result<RepositorySettings, ConfigError> {
    let value = |key: &'static str, value: String, reason: String| ConfigError::Value {
        origin: origin.to_owned(),
        key,
        value,
        reason,
    };
    let base_url = base_url(&file.url)
        .map_err(|reason| value("repository.url", format!("{:?}", file.url), reason.into()))?;
    if base_url.starts_with("http://") && file.allow_insecure_http != Some(true) {
        return Err(value(
            "repository.url",
            format!("{:?}", file.url),
            "plain http:// lets anyone on the path see which fixes this host lacks and hold back or replay old index files; give an https:// URL, or set allow_insecure_http = true in [repository] to accept that (bundles are still verified by their signatures)".to_owned(),
        ));
    }
    let interval = file.interval_secs.unwrap_or(DEFAULT_INTERVAL_SECS);
    if interval < MIN_INTERVAL_SECS {
        return Err(value(
            "repository.interval_secs",
            interval.to_string(),
            format!("give at least {MIN_INTERVAL_SECS}"),
        ));
    }
    let jitter = file
        .jitter_secs
        .unwrap_or(DEFAULT_JITTER_SECS.min(interval / 2));
    if jitter > interval / 2 {
        return Err(value(
            "repository.jitter_secs",
            jitter.to_string(),
            format!("give at most half the interval ({})", interval / 2),
        ));
    }
    let timeout = file.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS);
    if !(1..=MAX_TIMEOUT_SECS).contains(&timeout) {
        return Err(value(
            "repository.timeout_secs",
            timeout.to_string(),
            format!("give 1 to {MAX_TIMEOUT_SECS}"),
        ));
    }
    let max_poll_files = file.max_poll_files.unwrap_or(DEFAULT_MAX_POLL_FILES);
    if !(1..=MAX_MAX_POLL_FILES).contains(&max_poll_files) {
        return Err(value(
            "repository.max_poll_files",
            max_poll_files.to_string(),
            format!("give 1 to {MAX_MAX_POLL_FILES}"),
        ));
    }
    let max_poll_bytes = file.max_poll_bytes.unwrap_or(DEFAULT_MAX_POLL_BYTES);
    if !MAX_POLL_BYTES_RANGE.contains(&max_poll_bytes) {
        return Err(value(
            "repository.max_poll_bytes",
            max_poll_bytes.to_string(),
            format!(
                "give {} to {} (bytes)",
                MAX_POLL_BYTES_RANGE.start(),
                MAX_POLL_BYTES_RANGE.end()
            ),
        ));
    }
    Ok(RepositorySettings {
        base_url,
        interval: Duration::from_secs(interval),
        jitter: Duration::from_secs(jitter),
        timeout: Duration::from_secs(timeout),
        max_poll_files,
        max_poll_bytes,
        ca_file: match file.ca_file {
            Some(path) if !path.is_absolute() => {
                return Err(value(
                    "repository.ca_file",
                    format!("{:?}", path.display().to_string()),
                    "give an absolute path".to_owned(),
                ))
            }
            other => other,
        },
        ca_pem: None,
    })
}

/// The repository's base URL with a trailing `/`: `http` or `https`, a
/// host, no query, no fragment, no spaces or control characters.
fn base_url(url: &str) -> Result<String, &'static str> {
    if url.len() > MAX_URL_LEN {
        return Err("the URL is too long");
    }
    if url.bytes().any(|b| b.is_ascii_control() || b == b' ') || !url.is_ascii() {
        return Err("give a URL without spaces, control or non-ASCII characters");
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("give an http:// or https:// URL")?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || host.contains('@') {
        return Err("give a URL with a host (and no user name)");
    }
    if url.contains('?') || url.contains('#') {
        return Err("give the repository's directory, without ?query or #fragment");
    }
    let mut base = url.to_owned();
    if !base.ends_with('/') {
        base.push('/');
    }
    Ok(base)
}

/// Largest CA file read.
const MAX_CA_FILE: u64 = 1 << 20;

/// Reads the repository's `ca_file`, if it names one: a file only
/// `owners` can change (as the trust store), holding at least one PEM
/// certificate. Its text goes into `ca_pem`.
pub(super) fn load_ca(
    repository: &mut RepositorySettings,
    owners: &[u32],
    origin: &str,
) -> Result<(), ConfigError> {
    let Some(path) = repository.ca_file.clone() else {
        return Ok(());
    };
    let refuse = |reason: String| ConfigError::Value {
        origin: origin.to_owned(),
        key: "repository.ca_file",
        value: format!("{:?}", path.display().to_string()),
        reason,
    };
    check_trusted_path(&path, owners).map_err(|e| {
        refuse(format!(
            "{}: a CA file decides which servers patchd trusts, so only root may be able to change it",
            crate::error_text(&e)
        ))
    })?;
    let pem = read_regular(&path, MAX_CA_FILE, Links::Follow)
        .map_err(|e| refuse(format!("cannot read it: {e}")))?
        .ok_or_else(|| refuse("it does not exist".to_owned()))?;
    let certificates = certificates(&pem);
    if certificates == 0 {
        return Err(refuse(
            "it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned(),
        ));
    }
    repository.ca_pem = Some(pem);
    Ok(())
}

/// How many certificates the PEM text `pem` holds.
pub(crate) fn certificates(pem: &[u8]) -> usize {
    ureq::tls::parse_pem(pem)
        .filter(|item| matches!(item, Ok(ureq::tls::PemItem::Certificate(_))))
        .count()
}
