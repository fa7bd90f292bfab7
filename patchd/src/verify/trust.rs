//! The trust store: the public keys whose signatures patchd accepts, one
//! `NAME.pub` file each (written by `patchgen keygen`) in a directory,
//! default `/etc/suture/keys/`.
//!
//! Whoever can write that directory decides what runs in the kernel, so it
//! must be root-owned and writable by no one else, and so must each key
//! file and every directory above it (see [`crate::ownership`]); otherwise
//! patchd refuses to use any key and says what to `chmod`/`chown`. It must
//! never follow a symbolic link out of the directory.

use std::path::{Path, PathBuf};

use suture_bundle::{key_id, read_verifying_key, KeyError, VerifyingKey};
use tracing::debug;

use crate::ownership::{check_trusted_entry, check_trusted_path, OwnershipError};

/// Where the trusted keys are unless `--keys` says otherwise.
pub const DEFAULT_KEYS_DIR: &str = "/etc/suture/keys";

/// At most this many keys: a trust store is a handful of release keys.
const MAX_KEYS: usize = 256;

/// One trusted key.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// Its file.
    pub path: PathBuf,
    /// Its key id.
    pub key_id: String,
    /// The key.
    pub key: VerifyingKey,
}

/// The keys of a trust store that passed every check.
#[derive(Debug, Clone)]
pub struct TrustStore {
    /// The directory.
    pub dir: PathBuf,
    /// Its keys, in file-name order.
    pub keys: Vec<TrustedKey>,
}

/// Why the trust store cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The directory does not exist.
    #[error("the trust store {dir} does not exist: create it (`install -d -m 0755 -o root -g root {dir}`) and copy the public key (NAME.pub) of each signer you trust into it")]
    Missing {
        /// The directory.
        dir: PathBuf,
    },

    /// The path is not a directory.
    #[error("the trust store {dir} is not a directory")]
    NotADirectory {
        /// The path.
        dir: PathBuf,
    },

    /// A permission or ownership problem.
    #[error("refusing to use the trust store {dir}")]
    Unsafe {
        /// The directory.
        dir: PathBuf,
        /// What is wrong, and with which path.
        #[source]
        source: OwnershipError,
    },

    /// The directory cannot be listed.
    #[error("cannot list the trust store {dir}")]
    List {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A key file is unusable.
    #[error("cannot use the trusted key {path}: remove it from the trust store or replace it")]
    Key {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: KeyError,
    },

    /// No keys at all.
    #[error("the trust store {dir} has no keys (*.pub): copy the public key of each signer you trust into it")]
    Empty {
        /// The directory.
        dir: PathBuf,
    },

    /// More keys than patchd reads.
    #[error("the trust store {dir} has more than {MAX_KEYS} keys; remove the ones no longer used")]
    TooMany {
        /// The directory.
        dir: PathBuf,
    },
}

impl TrustStore {
    /// Opens the trust store at `dir`: checks the directory, its parents and
    /// every `*.pub` file (owned by one of `owners`, not writable by group or
    /// others, no symbolic links), then reads the keys. Other files are
    /// ignored.
    pub fn open(dir: &Path, owners: &[u32]) -> Result<Self, TrustError> {
        let unsafe_path = |source| TrustError::Unsafe {
            dir: dir.to_owned(),
            source,
        };
        let metadata = match check_trusted_path(dir, owners) {
            Ok(metadata) => metadata,
            Err(OwnershipError::Stat { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Err(TrustError::Missing {
                    dir: dir.to_owned(),
                })
            }
            Err(error) => return Err(unsafe_path(error)),
        };
        if !metadata.is_dir() {
            return Err(TrustError::NotADirectory {
                dir: dir.to_owned(),
            });
        }
        let list_error = |source| TrustError::List {
            dir: dir.to_owned(),
            source,
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(list_error)? {
            let path = entry.map_err(list_error)?.path();
            if path.extension().is_some_and(|e| e == "pub") {
                paths.push(path);
            } else {
                debug!(path = %path.display(), "not a key file (*.pub); ignored");
            }
            if paths.len() > MAX_KEYS {
                return Err(TrustError::TooMany {
                    dir: dir.to_owned(),
                });
            }
        }
        paths.sort();
        let mut keys = Vec::with_capacity(paths.len());
        for path in paths {
            check_trusted_entry(&path, owners).map_err(unsafe_path)?;
            let key = read_verifying_key(&path).map_err(|source| TrustError::Key {
                path: path.clone(),
                source,
            })?;
            keys.push(TrustedKey {
                key_id: key_id(&key),
                path,
                key,
            });
        }
        if keys.is_empty() {
            return Err(TrustError::Empty {
                dir: dir.to_owned(),
            });
        }
        Ok(Self {
            dir: dir.to_owned(),
            keys,
        })
    }

    /// The keys, for [`suture_bundle::Unverified::verify`].
    pub fn verifying_keys(&self) -> Vec<VerifyingKey> {
        self.keys.iter().map(|k| k.key).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::ownership::default_owners;
    use crate::testkit::{public_key_text, signing_key, stranger_key};

    fn store() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let keys = dir.path().join("keys");
        std::fs::create_dir(&keys).expect("mkdir");
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::write(keys.join("release.pub"), public_key_text(&signing_key())).expect("w");
        std::fs::write(keys.join("README"), "not a key").expect("w");
        (dir, keys)
    }

    #[test]
    fn reads_every_pub_file_and_ignores_the_rest() {
        let (_dir, keys) = store();
        std::fs::write(keys.join("other.pub"), public_key_text(&stranger_key())).expect("w");
        let store = TrustStore::open(&keys, &default_owners()).expect("trusted");
        let ids: Vec<&str> = store.keys.iter().map(|k| k.key_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                key_id(&stranger_key().verifying_key()),
                key_id(&signing_key().verifying_key())
            ]
        );
        assert_eq!(store.verifying_keys().len(), 2);
    }

    #[test]
    fn refuses_a_writable_store_or_key_naming_the_chmod() {
        let (_dir, keys) = store();
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let error = TrustStore::open(&keys, &default_owners()).expect_err("writable dir");
        let text = format!(
            "{error}: {}",
            std::error::Error::source(&error).expect("cause")
        );
        assert!(
            text.contains("chmod go-w") && text.contains("keys"),
            "{text}"
        );

        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let key = keys.join("release.pub");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        let error = TrustStore::open(&keys, &default_owners()).expect_err("writable key");
        let cause = std::error::Error::source(&error)
            .expect("cause")
            .to_string();
        assert!(
            cause.contains("release.pub") && cause.contains("chmod go-w"),
            "{cause}"
        );
    }

    #[test]
    fn refuses_a_store_owned_by_someone_else_naming_the_chown() {
        let (_dir, keys) = store();
        // No test can chown without root: ask for an owner nobody is.
        let error = TrustStore::open(&keys, &[u32::MAX - 1]).expect_err("owner");
        let cause = std::error::Error::source(&error)
            .expect("cause")
            .to_string();
        assert!(cause.contains("chown root:root"), "{cause}");
    }

    #[test]
    fn refuses_symlinked_keys_missing_and_empty_stores() {
        let (dir, keys) = store();
        let outside = dir.path().join("outside.pub");
        std::fs::write(&outside, public_key_text(&stranger_key())).expect("w");
        std::os::unix::fs::symlink(&outside, keys.join("sneaky.pub")).expect("symlink");
        let error = TrustStore::open(&keys, &default_owners()).expect_err("symlink");
        assert!(matches!(
            error,
            TrustError::Unsafe {
                source: OwnershipError::Symlink { .. },
                ..
            }
        ));

        let missing = dir.path().join("nope");
        let error = TrustStore::open(&missing, &default_owners()).expect_err("missing");
        assert!(error.to_string().contains("install -d"), "{error}");

        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).expect("mkdir");
        assert!(matches!(
            TrustStore::open(&empty, &default_owners()),
            Err(TrustError::Empty { .. })
        ));
    }

    #[test]
    fn a_secret_key_in_the_store_is_refused() {
        let (_dir, keys) = store();
        std::fs::write(
            keys.join("oops.pub"),
            format!(
                "{}\n{}\n",
                suture_bundle::SECRET_KEY_HEADER,
                "07".repeat(32)
            ),
        )
        .expect("w");
        assert!(matches!(
            TrustStore::open(&keys, &default_owners()),
            Err(TrustError::Key { .. })
        ));
    }
}
