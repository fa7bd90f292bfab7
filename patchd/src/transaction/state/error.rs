//! Why the state directory cannot be used: one error for the state file,
//! its directory, its lock and the bundle copies.

use std::path::PathBuf;

use super::{MAX_STATE_FILE, STATE_VERSION};
use crate::ownership::OwnershipError;

/// Why the state directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A file or directory operation failed.
    #[error("cannot {what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// The directory is not safe to trust.
    #[error("refusing to use the state directory {dir}")]
    Unsafe {
        /// The directory.
        dir: PathBuf,
        /// What is wrong.
        #[source]
        source: OwnershipError,
    },

    /// Another patchd holds the lock.
    #[error("another patchd is working on {dir} (it holds {dir}/lock); wait for it to finish and try again")]
    Locked {
        /// The directory.
        dir: PathBuf,
    },

    /// The state file is not patchd's JSON.
    #[error("the state file {path} is damaged: restore it from a backup, or move it away and let patchd start afresh (patches loaded now stay loaded and show as not managed by patchd)")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What serde_json found.
        #[source]
        source: serde_json::Error,
    },

    /// A field of the state file that patchd must not act on: an id that
    /// is not a patch id (it would be a module name to unload), a copy
    /// elsewhere than `applied/ID.bundle`, a time past the year 9999.
    #[error("the state file {path} is damaged or was edited: {field} is {value}, which is not {expected}; nothing was done: restore the file from a backup or correct that field (patches loaded now stay loaded)")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The field, e.g. `bundles[0].id`.
        field: String,
        /// Its value, quoted and escaped.
        value: String,
        /// What it must be.
        expected: &'static str,
    },

    /// A state file of another version.
    #[error("the state file {path} has version {version}; this patchd reads version {STATE_VERSION}: use the patchd that wrote it")]
    Version {
        /// The file.
        path: PathBuf,
        /// Its version.
        version: u32,
    },

    /// The state directory of a read-only command does not exist.
    #[error("there is no state directory {dir}: patchd has applied nothing on this machine, or --state-dir (or state_dir in the config) names another directory")]
    Missing {
        /// The directory.
        dir: PathBuf,
    },

    /// A read-only command tried to change the state (a defect).
    #[error("the state directory {dir} was opened read-only; nothing was changed")]
    ReadOnly {
        /// The directory.
        dir: PathBuf,
    },

    /// The state file is over its cap.
    #[error("the state file {path} is larger than {MAX_STATE_FILE} bytes: it is not patchd's")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
}
