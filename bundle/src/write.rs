//! Writing a bundle: [`build`] lays out a validated manifest and the patch
//! module and signs them; [`Unverified::resign`] replaces the signature of
//! an existing bundle and nothing else.
//!
//! The output depends only on the inputs: the manifest's JSON has a fixed
//! field order, its creation time comes from the manifest (see
//! [`creation_time`]), and ed25519 signatures are deterministic, so the same
//! inputs give a byte-identical bundle.

use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

use crate::layout::{
    PartKind, FORMAT_VERSION, HEADER_LEN, MAGIC, MAX_BUNDLE_SIZE, MAX_MANIFEST_SIZE, MAX_PART_SIZE,
    OFF_SIGNER, PART_ENTRY_LEN, PUBLIC_KEY_LEN, SIGNATURE_LEN,
};
use crate::manifest::{Manifest, ManifestError};
use crate::read::Unverified;

/// Why a bundle could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The manifest does not validate.
    #[error("cannot build a bundle from an invalid manifest")]
    Manifest {
        /// Which field and why.
        #[source]
        source: ManifestError,
    },
    /// The manifest's JSON is larger than [`MAX_MANIFEST_SIZE`].
    #[error("the manifest is {size} bytes as JSON, more than the limit of {MAX_MANIFEST_SIZE}: split the patch into several bundles")]
    ManifestTooLarge {
        /// Its size.
        size: usize,
    },
    /// The module is empty or larger than [`MAX_PART_SIZE`].
    #[error("the patch module is {size} bytes; a module must be 1 to {MAX_PART_SIZE} bytes (strip debug info from a large one)")]
    ModuleSize {
        /// Its size.
        size: usize,
    },
    /// The whole bundle would be larger than [`MAX_BUNDLE_SIZE`].
    #[error("the bundle would be {size} bytes, more than the limit of {MAX_BUNDLE_SIZE}: make the patch module smaller")]
    TooLarge {
        /// The size it would have.
        size: usize,
    },
    /// `SOURCE_DATE_EPOCH` is set but is not a unix time.
    #[error("SOURCE_DATE_EPOCH is {value}, not a number of seconds since 1970: set it to a decimal unix time or unset it")]
    SourceDateEpoch {
        /// The value, escaped.
        value: String,
    },
    /// The manifest could not be serialized (serde_json failed; not
    /// expected for a validated manifest).
    #[error("cannot serialize the manifest")]
    Serialize {
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// Builds and signs a bundle of `manifest` and the patch `module`.
///
/// The manifest is validated first; the module is opaque bytes here.
pub fn build(manifest: &Manifest, module: &[u8], key: &SigningKey) -> Result<Vec<u8>, BuildError> {
    manifest
        .validate()
        .map_err(|source| BuildError::Manifest { source })?;
    let manifest_bytes =
        serde_json::to_vec(manifest).map_err(|source| BuildError::Serialize { source })?;
    if manifest_bytes.len() > MAX_MANIFEST_SIZE {
        return Err(BuildError::ManifestTooLarge {
            size: manifest_bytes.len(),
        });
    }
    if module.is_empty() || module.len() > MAX_PART_SIZE {
        return Err(BuildError::ModuleSize { size: module.len() });
    }
    let parts = [(PartKind::Module, module)];
    // Every term is capped, so this cannot overflow; saturate all the same.
    let size = HEADER_LEN
        .saturating_add(PART_ENTRY_LEN.saturating_mul(parts.len()))
        .saturating_add(manifest_bytes.len())
        .saturating_add(SIGNATURE_LEN)
        .saturating_add(module.len());
    if size > MAX_BUNDLE_SIZE {
        return Err(BuildError::TooLarge { size });
    }

    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // flags
    out.extend_from_slice(&le_u32(manifest_bytes.len()).to_le_bytes());
    out.extend_from_slice(&le_u32(parts.len()).to_le_bytes());
    out.extend_from_slice(key.verifying_key().as_bytes());
    out.extend_from_slice(&Sha256::digest(&manifest_bytes));
    for (kind, bytes) in parts {
        out.extend_from_slice(&kind.to_field());
        out.extend_from_slice(&u64::try_from(bytes.len()).unwrap_or(u64::MAX).to_le_bytes());
        out.extend_from_slice(&Sha256::digest(bytes));
    }
    out.extend_from_slice(&manifest_bytes);
    let signature = key.sign(&out);
    out.extend_from_slice(&signature.to_bytes());
    for (_, bytes) in parts {
        out.extend_from_slice(bytes);
    }
    Ok(out)
}

/// A length already checked against a cap far below `u32::MAX`.
fn le_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

impl Unverified<'_> {
    /// The same bundle signed by `key` instead: the manifest and the parts
    /// are unchanged (their digests were checked by [`crate::parse`]), the
    /// signer field and the signature are new.
    pub fn resign(&self, key: &SigningKey) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes.len());
        out.extend_from_slice(self.bytes.get(..self.signed_len).unwrap_or_default());
        if let Some(signer) = out.get_mut(OFF_SIGNER..OFF_SIGNER + PUBLIC_KEY_LEN) {
            signer.copy_from_slice(key.verifying_key().as_bytes());
        }
        let signature = key.sign(&out);
        out.extend_from_slice(&signature.to_bytes());
        let parts_start = self.signed_len.saturating_add(SIGNATURE_LEN);
        out.extend_from_slice(self.bytes.get(parts_start..).unwrap_or_default());
        out
    }
}

/// The creation time for a new manifest: `SOURCE_DATE_EPOCH` when it is set
/// (reproducible builds), the current time otherwise.
pub fn creation_time() -> Result<u64, BuildError> {
    match std::env::var_os("SOURCE_DATE_EPOCH") {
        Some(value) => value
            .to_str()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| BuildError::SourceDateEpoch {
                value: crate::manifest::shown(&value.to_string_lossy()),
            }),
        None => Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())),
    }
}
