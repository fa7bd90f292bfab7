//! Signing keys and finished bundles: the `keygen`, `sign`, `inspect` and
//! `verify` commands. The bundle format, key files and every check are
//! `suture_bundle`'s; this module only joins them to files and paths, and
//! must never parse bundle bytes itself.

use std::path::{Path, PathBuf};

use suture_bundle::{
    parse, read_file, read_signing_key, read_verifying_key, write_file, FileError, KeyError,
    KeyPairFiles, ParseError, VerifyError, VerifyingKey,
};

/// Exit status for a bundle that is malformed, damaged, or not signed by
/// one of the given keys.
pub const EXIT_REJECTED: u8 = 5;

/// Why a bundle command failed.
#[derive(Debug, thiserror::Error)]
pub enum BundleCommandError {
    /// A key file could not be made or used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A bundle file could not be read or written.
    #[error(transparent)]
    File(#[from] FileError),
    /// The bundle is malformed or damaged.
    #[error("{path} is rejected")]
    Rejected {
        /// The bundle.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: ParseError,
    },
    /// The bundle is not signed by one of the given keys.
    #[error("{path} is rejected")]
    Untrusted {
        /// The bundle.
        path: PathBuf,
        /// Whose signature, and what is wrong with it.
        #[source]
        source: VerifyError,
    },
    /// `--json` output could not be made (not expected).
    #[error("cannot write the inspection as JSON")]
    Json(#[source] serde_json::Error),
}

impl BundleCommandError {
    /// The exit status: [`EXIT_REJECTED`] when the bundle itself is at
    /// fault, 1 for everything else (files, keys).
    pub fn exit_code(&self) -> u8 {
        match self {
            BundleCommandError::Rejected { .. } | BundleCommandError::Untrusted { .. } => {
                EXIT_REJECTED
            }
            _ => 1,
        }
    }
}

/// A successful signature check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// The signer's key id.
    pub key_id: String,
    /// The public key file it matched.
    pub key_path: PathBuf,
    /// The patch id.
    pub patch_id: String,
    /// The kernel release the bundle is for.
    pub kernel_release: String,
}

/// A re-signed bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resigned {
    /// The key id of the previous signer.
    pub previous_key_id: String,
    /// The key id of the new signer.
    pub key_id: String,
}

/// `patchgen keygen -o PREFIX`: writes `PREFIX.key` and `PREFIX.pub`.
pub fn keygen(prefix: &Path) -> Result<KeyPairFiles, BundleCommandError> {
    Ok(suture_bundle::write_keypair(prefix)?)
}

/// `patchgen sign BUNDLE --key KEY [-o OUTPUT]`: checks the bundle's layout
/// and digests, then writes it to `output` (atomically; it may be `bundle`
/// itself) signed by `key`, manifest and parts unchanged.
pub fn sign(bundle: &Path, key: &Path, output: &Path) -> Result<Resigned, BundleCommandError> {
    let key = read_signing_key(key)?;
    let bytes = read_file(bundle)?;
    let unverified = parse(&bytes).map_err(|source| BundleCommandError::Rejected {
        path: bundle.to_owned(),
        source,
    })?;
    let resigned = unverified.resign(&key);
    write_file(output, &resigned)?;
    Ok(Resigned {
        previous_key_id: unverified.signer_key_id(),
        key_id: suture_bundle::key_id(&key.verifying_key()),
    })
}

/// `patchgen inspect BUNDLE [--key PUB...] [--json]`: the bundle's text dump
/// or JSON. With no keys the signature is not checked (the dump says so);
/// with keys it must verify against one of them.
pub fn inspect(bundle: &Path, keys: &[PathBuf], json: bool) -> Result<String, BundleCommandError> {
    let bytes = read_file(bundle)?;
    let unverified = parse(&bytes).map_err(|source| BundleCommandError::Rejected {
        path: bundle.to_owned(),
        source,
    })?;
    let inspection = if keys.is_empty() {
        unverified.inspection()
    } else {
        let trusted = read_keys(keys)?;
        let verified =
            unverified
                .verify(&trusted)
                .map_err(|source| BundleCommandError::Untrusted {
                    path: bundle.to_owned(),
                    source,
                })?;
        verified.inspection()
    };
    if json {
        let mut text =
            serde_json::to_string_pretty(&inspection).map_err(BundleCommandError::Json)?;
        text.push('\n');
        Ok(text)
    } else {
        Ok(inspection.to_string())
    }
}

/// `patchgen verify BUNDLE --key PUB...`: the bundle is well formed, its
/// digests match, and one of `keys` signed it.
pub fn verify(bundle: &Path, keys: &[PathBuf]) -> Result<Verification, BundleCommandError> {
    let trusted = read_keys(keys)?;
    let bytes = read_file(bundle)?;
    let unverified = parse(&bytes).map_err(|source| BundleCommandError::Rejected {
        path: bundle.to_owned(),
        source,
    })?;
    let verified = unverified
        .verify(&trusted)
        .map_err(|source| BundleCommandError::Untrusted {
            path: bundle.to_owned(),
            source,
        })?;
    let key_id = verified.signer_key_id();
    let key_path = keys
        .iter()
        .zip(&trusted)
        .find(|(_, key)| suture_bundle::key_id(key) == key_id)
        .map(|(path, _)| path.clone())
        .unwrap_or_default();
    Ok(Verification {
        key_id,
        key_path,
        patch_id: verified.manifest().id.clone(),
        kernel_release: verified.manifest().target.kernel_release.clone(),
    })
}

fn read_keys(paths: &[PathBuf]) -> Result<Vec<VerifyingKey>, BundleCommandError> {
    paths
        .iter()
        .map(|path| read_verifying_key(path).map_err(BundleCommandError::from))
        .collect()
}
