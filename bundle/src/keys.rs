//! Signing keys: generation, key ids, and the key files.
//!
//! A key pair is two text files. `NAME.key` (mode 0600, never overwritten):
//!
//! ```text
//! suture-ed25519-secret-key v1
//! <64 hex digits: the 32-byte ed25519 secret key>
//! ```
//!
//! `NAME.pub`:
//!
//! ```text
//! suture-ed25519-public-key v1
//! <64 hex digits: the 32-byte ed25519 public key>
//! ```
//!
//! A secret key file that other users can read or write is refused, as ssh
//! refuses one: the key may be known to others, and a bundle signed with it
//! proves nothing.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::hex;

/// First line of a secret key file.
pub const SECRET_KEY_HEADER: &str = "suture-ed25519-secret-key v1";
/// First line of a public key file.
pub const PUBLIC_KEY_HEADER: &str = "suture-ed25519-public-key v1";
/// Largest key file read (a key file is under 100 bytes).
const MAX_KEY_FILE_SIZE: u64 = 4096;

/// Why a key could not be made, read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key file could not be read.
    #[error("cannot read key file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A key file could not be written.
    #[error("cannot write key file {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A key file to be created exists already.
    #[error("{path} exists already: refusing to overwrite a key; choose another name, or move the old key away first")]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// Not a regular file, or too large to be a key file.
    #[error(
        "{path} is not a suture key file (not a regular file of at most {MAX_KEY_FILE_SIZE} bytes)"
    )]
    NotAKeyFile {
        /// The file.
        path: PathBuf,
    },
    /// A key file of the other kind.
    #[error("{path} is a {found} key file where a {expected} key is needed: sign with NAME.key, verify with NAME.pub")]
    WrongKind {
        /// The file.
        path: PathBuf,
        /// `secret` or `public`.
        found: &'static str,
        /// `secret` or `public`.
        expected: &'static str,
    },
    /// Not in the key file format.
    #[error("{path} is not a suture key file: {reason}; key files are made by `patchgen keygen`")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// A secret key file that other users may read or write.
    #[error("{path} is accessible to other users (mode {mode:04o}): refusing to use it; run `chmod 600 {path}`, and treat the key as compromised if others could read it")]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The operating system gave no random bytes.
    #[error("cannot get random bytes from the operating system for a new key")]
    Random {
        /// The cause.
        #[source]
        source: getrandom::Error,
    },
}

/// A key pair written by [`write_keypair`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPairFiles {
    /// `NAME.key`, mode 0600.
    pub secret: PathBuf,
    /// `NAME.pub`.
    pub public: PathBuf,
    /// The key id of the pair.
    pub key_id: String,
}

/// A key's id: the first 16 hex digits of the sha256 of the 32-byte public
/// key. Bundles, errors and audit records name keys by it.
pub fn key_id(key: &VerifyingKey) -> String {
    key_id_of_bytes(key.as_bytes())
}

pub(crate) fn key_id_of_bytes(public_key: &[u8; 32]) -> String {
    let digest = Sha256::digest(public_key);
    hex::encode(digest.get(..8).unwrap_or_default())
}

/// A new signing key from the operating system's random source.
pub fn generate_signing_key() -> Result<SigningKey, KeyError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|source| KeyError::Random { source })?;
    let key = SigningKey::from_bytes(&secret);
    secret.fill(0);
    Ok(key)
}

/// Generates a key pair and writes `PREFIX.key` (mode 0600) and
/// `PREFIX.pub`. Refuses when either exists; when the second cannot be
/// written, the first is removed again.
pub fn write_keypair(prefix: &Path) -> Result<KeyPairFiles, KeyError> {
    let with_suffix = |suffix: &str| {
        let mut path = prefix.as_os_str().to_owned();
        path.push(suffix);
        PathBuf::from(path)
    };
    let secret = with_suffix(".key");
    let public = with_suffix(".pub");
    for path in [&secret, &public] {
        if path.symlink_metadata().is_ok() {
            return Err(KeyError::Exists { path: path.clone() });
        }
    }
    let key = generate_signing_key()?;
    let verifying = key.verifying_key();
    let secret_text = format!("{SECRET_KEY_HEADER}\n{}\n", hex::encode(key.as_bytes()));
    create_new(&secret, secret_text.as_bytes(), 0o600)?;
    let public_text = format!(
        "{PUBLIC_KEY_HEADER}\n{}\n",
        hex::encode(verifying.as_bytes())
    );
    if let Err(e) = create_new(&public, public_text.as_bytes(), 0o644) {
        let _ = std::fs::remove_file(&secret);
        return Err(e);
    }
    Ok(KeyPairFiles {
        secret,
        public,
        key_id: key_id(&verifying),
    })
}

fn create_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), KeyError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => KeyError::Exists {
                path: path.to_owned(),
            },
            _ => KeyError::Write {
                path: path.to_owned(),
                source,
            },
        })?;
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    if let Err(source) = written {
        let _ = std::fs::remove_file(path);
        return Err(KeyError::Write {
            path: path.to_owned(),
            source,
        });
    }
    Ok(())
}

/// Reads a secret key file (`NAME.key`), refusing one that other users can
/// access.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let (kind, bytes, mode) = read_key_file(path)?;
    if kind != KeyFileKind::Secret {
        return Err(KeyError::WrongKind {
            path: path.to_owned(),
            found: kind.name(),
            expected: KeyFileKind::Secret.name(),
        });
    }
    if mode & 0o077 != 0 {
        return Err(KeyError::Exposed {
            path: path.to_owned(),
            mode: mode & 0o7777,
        });
    }
    Ok(SigningKey::from_bytes(&bytes))
}

/// Reads a public key file (`NAME.pub`).
pub fn read_verifying_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    let (kind, bytes, _) = read_key_file(path)?;
    if kind != KeyFileKind::Public {
        return Err(KeyError::WrongKind {
            path: path.to_owned(),
            found: kind.name(),
            expected: KeyFileKind::Public.name(),
        });
    }
    let format = |reason| KeyError::Format {
        path: path.to_owned(),
        reason,
    };
    let key = VerifyingKey::from_bytes(&bytes)
        .map_err(|_| format("the key is not a valid ed25519 public key"))?;
    if key.is_weak() {
        return Err(format("the key is a weak (small-order) ed25519 key"));
    }
    Ok(key)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyFileKind {
    Secret,
    Public,
}

impl KeyFileKind {
    fn name(self) -> &'static str {
        match self {
            KeyFileKind::Secret => "secret",
            KeyFileKind::Public => "public",
        }
    }
}

/// A key file's kind, its 32 key bytes and its permission bits.
fn read_key_file(path: &Path) -> Result<(KeyFileKind, [u8; 32], u32), KeyError> {
    let read_error = |source| KeyError::Read {
        path: path.to_owned(),
        source,
    };
    let (file, metadata) = crate::file::open_nonblocking(path).map_err(read_error)?;
    if !metadata.is_file() || metadata.len() > MAX_KEY_FILE_SIZE {
        return Err(KeyError::NotAKeyFile {
            path: path.to_owned(),
        });
    }
    let mut raw = Vec::new();
    file.take(MAX_KEY_FILE_SIZE + 1)
        .read_to_end(&mut raw)
        .map_err(read_error)?;
    let format = |reason| KeyError::Format {
        path: path.to_owned(),
        reason,
    };
    let text = std::str::from_utf8(&raw).map_err(|_| format("it is not text"))?;
    let mut lines = text.lines();
    let kind = match lines.next() {
        Some(SECRET_KEY_HEADER) => KeyFileKind::Secret,
        Some(PUBLIC_KEY_HEADER) => KeyFileKind::Public,
        _ => return Err(format("its first line is not a suture key header")),
    };
    let key_line = lines
        .next()
        .ok_or_else(|| format("the key line is missing"))?;
    let bytes = hex::decode::<32>(key_line.trim())
        .ok_or_else(|| format("the key line is not 64 hex digits (32 bytes)"))?;
    if lines.any(|l| !l.trim().is_empty()) {
        return Err(format("it has lines after the key"));
    }
    Ok((kind, bytes, metadata.permissions().mode()))
}
