//! patchd's config file, `/etc/suture/patchd.toml` unless `--config` names
//! another: where the state, the trust store, the companion module and the
//! watch directory are, how to retry busy switches, the bundle repository to
//! poll, where to publish metrics and how long a bundle must have been
//! applied to survive a crash (the crash-loop guard). Command-line flags win over the file,
//! and the file over the defaults ([`Settings::load`]).
//!
//! The file decides which keys are trusted and which modules are loaded, so
//! it must be as safe as the trust store: root-owned, not writable by group
//! or others, no symbolic link, and the same for every directory above it
//! ([`crate::ownership`]). Unknown keys are refused, naming the key and the
//! file, so a typo never silently falls back to a default. A missing default
//! file means the defaults; a missing file given with `--config` is an
//! error. This module only reads; it never creates or changes a file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::ownership::{check_trusted_path, OwnershipError};

#[path = "config_repository.rs"]
mod repository;
use crate::transaction::audit::witness::DEFAULT_SYSLOG_SOCKET;
use crate::transaction::session::DEFAULT_MODULES_DIR;
use crate::transaction::session::{
    Config, DEFAULT_CRASH_GUARD_UPTIME_SECS, DEFAULT_KMOD, MAX_CRASH_GUARD_UPTIME_SECS,
};
use crate::transaction::state::DEFAULT_STATE_DIR;
use crate::transaction::switch::RetryPolicy;
use crate::verify::trust::DEFAULT_KEYS_DIR;
use repository::repository_settings;

/// The config file read when `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/suture/patchd.toml";
/// The directory the daemon applies bundles from.
pub const DEFAULT_WATCH_DIR: &str = "/var/lib/suture/bundles";
/// Attempts to enable or disable a patch before giving up.
pub const DEFAULT_SWITCH_ATTEMPTS: u32 = 10;
/// Wait after the first busy refusal (doubled after each further one).
pub const DEFAULT_SWITCH_BACKOFF_MS: u64 = 20;
/// Most attempts allowed: with the backoff capped at 1 s, about 17 minutes.
pub const MAX_SWITCH_ATTEMPTS: u32 = 1000;
/// Longest first backoff allowed.
pub const MAX_SWITCH_BACKOFF_MS: u64 = 60_000;
/// Time between two polls of the repository.
pub const DEFAULT_INTERVAL_SECS: u64 = 3600;
/// Shortest interval allowed: a fleet polling more often than this only
/// loads the repository.
pub const MIN_INTERVAL_SECS: u64 = 60;
/// Each poll happens up to this much earlier or later, so a fleet started
/// together does not poll together.
pub const DEFAULT_JITTER_SECS: u64 = 300;
/// Longest one request (the index or one bundle) may take, connect to last
/// byte.
pub const DEFAULT_TIMEOUT_SECS: u64 = 120;
/// Longest timeout allowed.
pub const MAX_TIMEOUT_SECS: u64 = 3600;
/// Most bundles one repository poll downloads.
pub const DEFAULT_MAX_POLL_FILES: u32 = 16;
/// Most bundle files allowed per poll.
pub const MAX_MAX_POLL_FILES: u32 = 1024;
/// Most bytes one repository poll downloads: 256 MiB, three of the
/// largest bundles.
pub const DEFAULT_MAX_POLL_BYTES: u64 = 256 << 20;
/// The smallest and largest byte budgets allowed: 1 MiB to 64 GiB.
pub const MAX_POLL_BYTES_RANGE: std::ops::RangeInclusive<u64> = (1 << 20)..=(64 << 30);
/// A config file larger than this is not one.
const MAX_CONFIG_FILE: u64 = 1 << 20;
/// Longest repository URL accepted.
const MAX_URL_LEN: usize = 2048;

/// The file's layout: every key optional, nothing else allowed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    state_dir: Option<PathBuf>,
    keys_dir: Option<PathBuf>,
    kmod: Option<PathBuf>,
    watch_dir: Option<PathBuf>,
    switch_attempts: Option<u32>,
    switch_backoff_ms: Option<u64>,
    crash_guard_uptime_secs: Option<u64>,
    audit_syslog: Option<PathBuf>,
    repository: Option<FileRepository>,
    metrics: Option<FileMetrics>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRepository {
    url: String,
    interval_secs: Option<u64>,
    jitter_secs: Option<u64>,
    timeout_secs: Option<u64>,
    allow_insecure_http: Option<bool>,
    max_poll_files: Option<u32>,
    max_poll_bytes: Option<u64>,
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMetrics {
    textfile_dir: Option<PathBuf>,
    listen: Option<String>,
}

/// Settings given on the command line; each one set wins over the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--state-dir`.
    pub state_dir: Option<PathBuf>,
    /// `--keys`.
    pub keys_dir: Option<PathBuf>,
    /// `--kmod`.
    pub kmod: Option<PathBuf>,
    /// `--watch-dir`.
    pub watch_dir: Option<PathBuf>,
    /// `--switch-attempts`.
    pub switch_attempts: Option<u32>,
    /// `--switch-backoff-ms`.
    pub switch_backoff_ms: Option<u64>,
    /// `--crash-guard-uptime-secs`.
    pub crash_guard_uptime_secs: Option<u64>,
}

/// The bundle repository the daemon polls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositorySettings {
    /// The base URL, ending with `/`: `index.json` and the bundles are
    /// fetched relative to it.
    pub base_url: String,
    /// Time between polls.
    pub interval: Duration,
    /// Each poll is moved by a random amount up to this, earlier or later.
    pub jitter: Duration,
    /// Longest one request may take.
    pub timeout: Duration,
    /// Most bundles one poll downloads.
    pub max_poll_files: u32,
    /// Most bytes one poll downloads.
    pub max_poll_bytes: u64,
    /// `ca_file`: the only certificate authorities an https repository's
    /// certificate may chain to (an internal PKI); `None`: the public ones.
    pub ca_file: Option<PathBuf>,
    /// Its PEM text, read (and checked) when the config is loaded.
    pub ca_pem: Option<Vec<u8>>,
}

/// Where metrics go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSettings {
    /// A directory for node_exporter's textfile collector.
    pub textfile_dir: Option<PathBuf>,
    /// A loopback address to serve `GET /metrics` on.
    pub listen: Option<SocketAddr>,
}

/// patchd's settings: the defaults, then the config file, then flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The config file read, if one was.
    pub file: Option<PathBuf>,
    /// The state directory.
    pub state_dir: PathBuf,
    /// The trust store.
    pub keys_dir: PathBuf,
    /// The companion module.
    pub kmod: PathBuf,
    /// The directory the daemon applies bundles from.
    pub watch_dir: PathBuf,
    /// Attempts to switch a patch.
    pub switch_attempts: u32,
    /// First wait after a busy refusal, in milliseconds.
    pub switch_backoff_ms: u64,
    /// How long a bundle must have been applied to survive a crash (the
    /// crash-loop guard), in seconds; 0: only a clean shutdown proves it.
    pub crash_guard_uptime_secs: u64,
    /// The syslog socket each new audit head is sent to; `None` only in
    /// tests (the file can move it, not turn it off).
    pub audit_syslog: Option<PathBuf>,
    /// The repository, if one is configured.
    pub repository: Option<RepositorySettings>,
    /// Metrics.
    pub metrics: MetricsSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            file: None,
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            keys_dir: PathBuf::from(DEFAULT_KEYS_DIR),
            kmod: PathBuf::from(DEFAULT_KMOD),
            watch_dir: PathBuf::from(DEFAULT_WATCH_DIR),
            switch_attempts: DEFAULT_SWITCH_ATTEMPTS,
            switch_backoff_ms: DEFAULT_SWITCH_BACKOFF_MS,
            crash_guard_uptime_secs: DEFAULT_CRASH_GUARD_UPTIME_SECS,
            audit_syslog: Some(PathBuf::from(DEFAULT_SYSLOG_SOCKET)),
            repository: None,
            metrics: MetricsSettings::default(),
        }
    }
}

/// Why the settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A config file named with `--config` does not exist.
    #[error("the config file {path} does not exist: create it, or leave out --config to use {DEFAULT_CONFIG_FILE} or the defaults")]
    Missing {
        /// The file.
        path: PathBuf,
    },

    /// The file, or a directory above it, could be changed by someone else
    /// than root.
    #[error("refusing the config file {path}")]
    Unsafe {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: OwnershipError,
    },

    /// The file could not be read.
    #[error("cannot read the config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// The file is over the size cap.
    #[error("the config file {path} is larger than {MAX_CONFIG_FILE} bytes: it is not patchd's")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },

    /// Not TOML, an unknown key, or a value of the wrong type. The cause
    /// names the key and its line.
    #[error("cannot use the config file {path}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What the TOML reader found.
        #[source]
        source: Box<toml::de::Error>,
    },

    /// A value of the right type that patchd cannot use.
    #[error("{origin}: {key} = {value}: {reason}")]
    Value {
        /// The file, or `command line`.
        origin: String,
        /// The key (or flag).
        key: &'static str,
        /// The value given.
        value: String,
        /// Why it is refused, and what to give instead.
        reason: String,
    },
}

impl Settings {
    /// Reads the config file (`path`, or [`DEFAULT_CONFIG_FILE`] when
    /// `None`), checks who could have written it, and applies `overrides`.
    /// The file's owner must be one of `owners` ([`crate::ownership`]).
    pub fn load(
        path: Option<&Path>,
        overrides: &Overrides,
        owners: &[u32],
    ) -> Result<Self, ConfigError> {
        let explicit = path.is_some();
        let path = path.unwrap_or(Path::new(DEFAULT_CONFIG_FILE));
        let settings = match read_config(path, owners)? {
            Some(text) => Self::parse(&text, path)?,
            None if explicit => {
                return Err(ConfigError::Missing {
                    path: path.to_owned(),
                })
            }
            None => Self::default(),
        };
        let mut settings = settings.with_overrides(overrides)?;
        if let Some(repository) = &mut settings.repository {
            repository::load_ca(repository, owners, &path.display().to_string())?;
        }
        Ok(settings)
    }

    /// The settings a config file's text gives over the defaults; `path`
    /// names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|source| ConfigError::Syntax {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        let origin = path.display().to_string();
        let absolute = |key: &'static str, value: Option<PathBuf>, default: PathBuf| {
            let Some(value) = value else {
                return Ok(default);
            };
            if value.is_absolute() {
                Ok(value)
            } else {
                Err(ConfigError::Value {
                    origin: origin.clone(),
                    key,
                    value: format!("{:?}", value.display().to_string()),
                    reason: "give an absolute path (patchd's working directory is not fixed)"
                        .to_owned(),
                })
            }
        };
        let defaults = Self::default();
        let metrics = file.metrics.unwrap_or_default();
        let settings = Self {
            file: Some(path.to_owned()),
            state_dir: absolute("state_dir", file.state_dir, defaults.state_dir)?,
            keys_dir: absolute("keys_dir", file.keys_dir, defaults.keys_dir)?,
            kmod: absolute("kmod", file.kmod, defaults.kmod)?,
            watch_dir: absolute("watch_dir", file.watch_dir, defaults.watch_dir)?,
            switch_attempts: file.switch_attempts.unwrap_or(defaults.switch_attempts),
            switch_backoff_ms: file.switch_backoff_ms.unwrap_or(defaults.switch_backoff_ms),
            crash_guard_uptime_secs: file
                .crash_guard_uptime_secs
                .unwrap_or(defaults.crash_guard_uptime_secs),
            audit_syslog: match file.audit_syslog {
                Some(socket) => Some(absolute("audit_syslog", Some(socket), PathBuf::new())?),
                None => defaults.audit_syslog,
            },
            repository: file
                .repository
                .map(|repository| repository_settings(&origin, repository))
                .transpose()?,
            metrics: MetricsSettings {
                textfile_dir: metrics
                    .textfile_dir
                    .map(|dir| absolute("metrics.textfile_dir", Some(dir), PathBuf::new()))
                    .transpose()?,
                listen: metrics
                    .listen
                    .map(|listen| loopback_address(&origin, &listen))
                    .transpose()?,
            },
        };
        check_switches(
            &origin,
            settings.switch_attempts,
            settings.switch_backoff_ms,
        )?;
        check_uptime(&origin, settings.crash_guard_uptime_secs)?;
        Ok(settings)
    }

    /// These settings with the flags given on the command line.
    pub fn with_overrides(mut self, overrides: &Overrides) -> Result<Self, ConfigError> {
        let set = |target: &mut PathBuf, value: &Option<PathBuf>| {
            if let Some(value) = value {
                target.clone_from(value);
            }
        };
        set(&mut self.state_dir, &overrides.state_dir);
        set(&mut self.keys_dir, &overrides.keys_dir);
        set(&mut self.kmod, &overrides.kmod);
        set(&mut self.watch_dir, &overrides.watch_dir);
        if let Some(attempts) = overrides.switch_attempts {
            self.switch_attempts = attempts;
        }
        if let Some(backoff) = overrides.switch_backoff_ms {
            self.switch_backoff_ms = backoff;
        }
        if let Some(secs) = overrides.crash_guard_uptime_secs {
            self.crash_guard_uptime_secs = secs;
        }
        check_switches("command line", self.switch_attempts, self.switch_backoff_ms)?;
        check_uptime("command line", self.crash_guard_uptime_secs)?;
        Ok(self)
    }

    /// How to retry switches the companion module refuses: the first wait
    /// doubles after each refusal, up to 1 s (or the first wait if longer).
    pub fn retry(&self) -> RetryPolicy {
        let initial = Duration::from_millis(self.switch_backoff_ms);
        RetryPolicy {
            attempts: self.switch_attempts,
            initial_backoff: initial,
            max_backoff: RetryPolicy::default().max_backoff.max(initial),
        }
    }

    /// The settings of a session working with the state.
    pub fn session_config(&self, trusted_owners: Vec<u32>) -> Config {
        Config {
            state_dir: self.state_dir.clone(),
            keys_dir: self.keys_dir.clone(),
            kmod: self.kmod.clone(),
            // A companion named elsewhere (flag or file) is the one loaded.
            dkms_modules_dir: (self.kmod == Path::new(DEFAULT_KMOD))
                .then(|| DEFAULT_MODULES_DIR.into()),
            retry: self.retry(),
            trusted_owners,
            crash_guard_uptime_secs: self.crash_guard_uptime_secs,
            audit_syslog: self.audit_syslog.clone(),
        }
    }
}

/// The file's text, or `None` if it does not exist; refused when someone
/// else than `owners` could have written it.
fn read_config(path: &Path, owners: &[u32]) -> Result<Option<String>, ConfigError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            })
        }
    }
    check_trusted_path(path, owners).map_err(|source| ConfigError::Unsafe {
        path: path.to_owned(),
        source,
    })?;
    let read = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    // O_NOFOLLOW: the link check above and this open see the same file.
    let file = crate::files::open_no_follow(path).map_err(read)?;
    let Some(bytes) = crate::files::read_capped(file, MAX_CONFIG_FILE).map_err(read)? else {
        return Err(ConfigError::TooLarge {
            path: path.to_owned(),
        });
    };
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| read(std::io::Error::from(std::io::ErrorKind::InvalidData)))
}

fn check_switches(origin: &str, attempts: u32, backoff_ms: u64) -> Result<(), ConfigError> {
    if !(1..=MAX_SWITCH_ATTEMPTS).contains(&attempts) {
        return Err(ConfigError::Value {
            origin: origin.to_owned(),
            key: "switch_attempts",
            value: attempts.to_string(),
            reason: format!("give 1 to {MAX_SWITCH_ATTEMPTS}"),
        });
    }
    if backoff_ms > MAX_SWITCH_BACKOFF_MS {
        return Err(ConfigError::Value {
            origin: origin.to_owned(),
            key: "switch_backoff_ms",
            value: backoff_ms.to_string(),
            reason: format!("give at most {MAX_SWITCH_BACKOFF_MS} (one minute)"),
        });
    }
    Ok(())
}

/// Refuses an uptime proof longer than [`MAX_CRASH_GUARD_UPTIME_SECS`] (a
/// value in milliseconds, most likely).
fn check_uptime(origin: &str, secs: u64) -> Result<(), ConfigError> {
    if secs > MAX_CRASH_GUARD_UPTIME_SECS {
        return Err(ConfigError::Value {
            origin: origin.to_owned(),
            key: "crash_guard_uptime_secs",
            value: secs.to_string(),
            reason: format!(
                "give at most {MAX_CRASH_GUARD_UPTIME_SECS} (30 days), in seconds; 0 leaves only a clean shutdown as proof"
            ),
        });
    }
    Ok(())
}

/// A metrics address: an IP literal and a port, on loopback only. Metrics
/// tell which CVEs are not yet fixed on this host; they are not for the
/// network without a proxy that decides who may see them.
fn loopback_address(origin: &str, listen: &str) -> Result<SocketAddr, ConfigError> {
    let refuse = |reason: &str| ConfigError::Value {
        origin: origin.to_owned(),
        key: "metrics.listen",
        value: format!("{listen:?}"),
        reason: reason.to_owned(),
    };
    let address: SocketAddr = listen
        .parse()
        .map_err(|_| refuse("give an IP address and port, as 127.0.0.1:9464 or [::1]:9464"))?;
    if !address.ip().is_loopback() {
        return Err(refuse(
            "not a loopback address: patchd serves metrics on 127.0.0.0/8 or ::1 only; \
             let a local proxy or node_exporter's textfile collector (metrics.textfile_dir) \
             publish them",
        ));
    }
    Ok(address)
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
