//! Reading a bundle: [`parse`] checks the layout, the size caps and every
//! digest, and decodes and validates the manifest, giving an [`Unverified`]
//! bundle; [`Unverified::verify`] checks the signature against trusted keys
//! and gives a [`Verified`] one, the only kind that hands out the manifest
//! and the module for use.
//!
//! This module must never panic or allocate on the strength of a declared
//! length: every length is checked against its cap and against the bytes
//! actually present before it is used, with checked arithmetic.

use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::hex;
use crate::layout::{
    read_array, read_u32, read_u64, slice, PartKind, FORMAT_VERSION, HEADER_LEN, MAGIC,
    MAX_BUNDLE_SIZE, MAX_MANIFEST_SIZE, MAX_PARTS, MAX_PART_SIZE, OFF_FLAGS, OFF_MAGIC,
    OFF_MANIFEST_LEN, OFF_MANIFEST_SHA256, OFF_PART_COUNT, OFF_SIGNER, OFF_VERSION, PART_ENTRY_LEN,
    PART_OFF_KIND, PART_OFF_LEN, PART_OFF_SHA256, PUBLIC_KEY_LEN, SHA256_LEN, SIGNATURE_LEN,
};
use crate::manifest::{Manifest, ManifestError};

/// Why bytes are not a well-formed bundle (layout, caps, digests, manifest).
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Larger than [`MAX_BUNDLE_SIZE`].
    #[error("the bundle is {size} bytes, more than the limit of {MAX_BUNDLE_SIZE}: not a suture bundle, or a damaged one")]
    TooLarge {
        /// The size found.
        size: u64,
    },
    /// Shorter than its header says.
    #[error("the bundle is truncated: {size} bytes where its header declares {expected}; copy it again from its source")]
    Truncated {
        /// The size found.
        size: usize,
        /// The size the header declares (so far as it could be read).
        expected: usize,
    },
    /// Longer than its header says.
    #[error("the bundle has trailing data after its last part: {size} bytes where its header declares {expected}; copy it again from its source")]
    TrailingData {
        /// The size found.
        size: usize,
        /// The size the header declares.
        expected: usize,
    },
    /// The magic is missing.
    #[error("not a suture bundle: the file does not start with the bundle magic")]
    BadMagic,
    /// A format version this crate does not read.
    #[error("bundle format version {version} is not supported (this suture reads version {FORMAT_VERSION}); use a suture release that reads it")]
    UnsupportedVersion {
        /// The version found.
        version: u32,
    },
    /// Header flags this version does not define.
    #[error("the bundle sets unknown header flags {flags:#x}: it needs a newer suture, or it is damaged")]
    UnknownFlags {
        /// The flags found.
        flags: u32,
    },
    /// A manifest length outside 1..=[`MAX_MANIFEST_SIZE`].
    #[error("the bundle declares a manifest of {size} bytes; a manifest is 1 to {MAX_MANIFEST_SIZE} bytes")]
    ManifestSize {
        /// The declared length.
        size: u32,
    },
    /// A part count outside 1..=[`MAX_PARTS`].
    #[error("the bundle declares {count} parts; a bundle has 1 to {MAX_PARTS}")]
    PartCount {
        /// The declared count.
        count: u32,
    },
    /// A part kind this version does not know.
    #[error("part {index} of the bundle has unknown kind {kind}: it needs a newer suture, or it is damaged")]
    UnknownPart {
        /// The part's index in the table.
        index: usize,
        /// The kind field, escaped.
        kind: String,
    },
    /// The same kind twice.
    #[error("the bundle has two {kind} parts; a bundle has at most one of each kind")]
    DuplicatePart {
        /// The repeated kind.
        kind: PartKind,
    },
    /// A required part is missing.
    #[error("the bundle has no {kind} part")]
    MissingPart {
        /// The missing kind.
        kind: PartKind,
    },
    /// A part length outside 1..=[`MAX_PART_SIZE`].
    #[error(
        "the bundle declares a {kind} part of {size} bytes; a part is 1 to {MAX_PART_SIZE} bytes"
    )]
    PartSize {
        /// The part.
        kind: PartKind,
        /// The declared length.
        size: u64,
    },
    /// A part's bytes do not match their digest.
    #[error("the sha256 of the bundle's {part} is {actual} but the bundle records {expected}: the bundle is damaged or was altered; do not use it")]
    DigestMismatch {
        /// `manifest` or a part kind.
        part: &'static str,
        /// The digest recorded in the bundle.
        expected: String,
        /// The digest of the bytes.
        actual: String,
    },
    /// The manifest is not JSON of the version 1 manifest's shape.
    #[error("the bundle's manifest is not a version {FORMAT_VERSION} manifest")]
    ManifestSyntax {
        /// What serde_json found.
        #[source]
        source: serde_json::Error,
    },
    /// The manifest parses but is not byte-for-byte what this crate writes.
    #[error("the bundle's manifest is not in canonical form (field order, spacing or escapes differ from what suture writes): it was not written by suture, or was altered")]
    ManifestNotCanonical,
    /// A manifest field is invalid.
    #[error("the bundle's manifest is invalid")]
    Manifest {
        /// Which field and why.
        #[source]
        source: ManifestError,
    },
}

/// Why a well-formed bundle is not trusted.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// No trusted key was given at all.
    #[error("no trusted public key given: the signature cannot be checked; give the public key of the bundle's signer (key id {key_id})")]
    NoTrustedKeys {
        /// The key id of the signer the bundle names.
        key_id: String,
    },
    /// Signed by a key that is not among the trusted ones.
    #[error("the bundle is signed by key {key_id}, which is not trusted: add that public key to the trusted keys if you trust its owner, or use a bundle signed by a trusted key")]
    UntrustedKey {
        /// The signer's key id.
        key_id: String,
    },
    /// The signature does not match the signed bytes.
    #[error("the bundle's signature by trusted key {key_id} does not match its contents: it was altered after signing; do not use it")]
    BadSignature {
        /// The signer's key id.
        key_id: String,
        /// What ed25519 found.
        #[source]
        source: ed25519_dalek::SignatureError,
    },
}

/// A bundle whose layout, caps, digests and manifest are good, and whose
/// signature has not been checked yet. It hands out nothing to act on: only
/// its [`inspection`](Unverified::inspection) (for display, marked as not
/// verified), a re-signed copy, and [`verify`](Unverified::verify).
#[derive(Clone)]
pub struct Unverified<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) manifest: Manifest,
    pub(crate) manifest_len: usize,
    pub(crate) manifest_sha256: [u8; SHA256_LEN],
    /// End of the signed bytes (the manifest's end), where the signature is.
    pub(crate) signed_len: usize,
    pub(crate) signer: [u8; PUBLIC_KEY_LEN],
    pub(crate) signature: [u8; SIGNATURE_LEN],
    pub(crate) parts: Vec<Part<'a>>,
}

/// A bundle signed by a trusted key: the only way to the manifest and the
/// module for use.
#[derive(Clone)]
pub struct Verified<'a> {
    pub(crate) bundle: Unverified<'a>,
}

/// One payload part, digest checked.
#[derive(Clone)]
pub(crate) struct Part<'a> {
    pub(crate) kind: PartKind,
    pub(crate) bytes: &'a [u8],
    pub(crate) sha256: [u8; SHA256_LEN],
}

// Debug without the bytes: a bundle can be 80 MiB, and a `{:?}` in a log
// line must not print it.
impl std::fmt::Debug for Unverified<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unverified")
            .field("size", &self.bytes.len())
            .field("id", &self.manifest.id)
            .field("signer_key_id", &self.signer_key_id())
            .field("parts", &self.parts)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Verified<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verified")
            .field("size", &self.bundle.bytes.len())
            .field("id", &self.bundle.manifest.id)
            .field("signer_key_id", &self.bundle.signer_key_id())
            .field("parts", &self.bundle.parts)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Part<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({} bytes)", self.kind, self.bytes.len())
    }
}

/// Checks `bytes` as a bundle: size caps, magic, version, the part table,
/// the exact total length (no truncation, no trailing data), the sha256 of
/// the manifest and of every part, and the manifest's fields. The signature
/// is checked by [`Unverified::verify`].
pub fn parse(bytes: &[u8]) -> Result<Unverified<'_>, ParseError> {
    let header = read_header(bytes)?;
    let table = read_part_table(bytes, &header)?;
    check_total_length(bytes, table.end)?;

    let manifest_bytes = slice(bytes, table.manifest_start, header.manifest_len)
        .ok_or_else(|| truncated(bytes, table.signed_len))?;
    check_digest("manifest", manifest_bytes, &header.manifest_sha256)?;
    let parts = checked_parts(bytes, &table)?;
    let signature = read_array(bytes, table.signed_len)
        .ok_or_else(|| truncated(bytes, table.signed_len.saturating_add(SIGNATURE_LEN)))?;
    let manifest = decode_manifest(manifest_bytes)?;

    Ok(Unverified {
        bytes,
        manifest,
        manifest_len: header.manifest_len,
        manifest_sha256: header.manifest_sha256,
        signed_len: table.signed_len,
        signer: header.signer,
        signature,
        parts,
    })
}

/// The fixed header's fields, each checked against its cap.
struct Header {
    manifest_len: usize,
    part_count: usize,
    signer: [u8; PUBLIC_KEY_LEN],
    manifest_sha256: [u8; SHA256_LEN],
}

/// Where everything after the header is, from the part table.
struct PartTable {
    /// Where the manifest starts (the part table's end).
    manifest_start: usize,
    /// End of the signed bytes (the manifest's end).
    signed_len: usize,
    /// The parts in table order, not yet digest-checked.
    entries: Vec<PartEntry>,
    /// The bundle's total length as the table declares it.
    end: usize,
}

/// One entry of the part table.
struct PartEntry {
    kind: PartKind,
    offset: usize,
    len: usize,
    sha256: [u8; SHA256_LEN],
}

/// The error for `bytes` being shorter than the `expected` length.
fn truncated(bytes: &[u8], expected: usize) -> ParseError {
    ParseError::Truncated {
        size: bytes.len(),
        expected,
    }
}

/// The size cap, the magic and the header's fields.
fn read_header(bytes: &[u8]) -> Result<Header, ParseError> {
    if bytes.len() > MAX_BUNDLE_SIZE {
        return Err(ParseError::TooLarge {
            size: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
        });
    }
    if slice(bytes, OFF_MAGIC, MAGIC.len()) != Some(&MAGIC[..]) {
        return Err(if bytes.len() < MAGIC.len() && MAGIC.starts_with(bytes) {
            truncated(bytes, HEADER_LEN)
        } else {
            ParseError::BadMagic
        });
    }
    let header = slice(bytes, 0, HEADER_LEN).ok_or_else(|| truncated(bytes, HEADER_LEN))?;
    let field = |offset| read_u32(header, offset).ok_or_else(|| truncated(bytes, HEADER_LEN));
    let version = field(OFF_VERSION)?;
    if version != FORMAT_VERSION {
        return Err(ParseError::UnsupportedVersion { version });
    }
    let flags = field(OFF_FLAGS)?;
    if flags != 0 {
        return Err(ParseError::UnknownFlags { flags });
    }
    let manifest_size = field(OFF_MANIFEST_LEN)?;
    let manifest_len = usize::try_from(manifest_size)
        .ok()
        .filter(|len| (1..=MAX_MANIFEST_SIZE).contains(len))
        .ok_or(ParseError::ManifestSize {
            size: manifest_size,
        })?;
    let count = field(OFF_PART_COUNT)?;
    let part_count = usize::try_from(count)
        .ok()
        .filter(|n| (1..=MAX_PARTS).contains(n))
        .ok_or(ParseError::PartCount { count })?;
    let signer = read_array(header, OFF_SIGNER).ok_or_else(|| truncated(bytes, HEADER_LEN))?;
    let manifest_sha256 =
        read_array(header, OFF_MANIFEST_SHA256).ok_or_else(|| truncated(bytes, HEADER_LEN))?;
    Ok(Header {
        manifest_len,
        part_count,
        signer,
        manifest_sha256,
    })
}

/// The part table: every entry's kind and size checked, each kind present
/// once, and the offsets of the manifest, the signature and every part.
fn read_part_table(bytes: &[u8], header: &Header) -> Result<PartTable, ParseError> {
    // The caps bound every sum below far inside usize; checked arithmetic
    // all the same, so no future cap can make it wrap.
    let overflow = || truncated(bytes, usize::MAX);
    let table_len = header
        .part_count
        .checked_mul(PART_ENTRY_LEN)
        .ok_or_else(overflow)?;
    let table_end = HEADER_LEN.checked_add(table_len).ok_or_else(overflow)?;
    let table = slice(bytes, HEADER_LEN, table_len).ok_or_else(|| truncated(bytes, table_end))?;
    let signed_len = table_end
        .checked_add(header.manifest_len)
        .ok_or_else(overflow)?;
    let mut next = signed_len.checked_add(SIGNATURE_LEN).ok_or_else(overflow)?;

    let mut entries: Vec<PartEntry> = Vec::with_capacity(header.part_count);
    for index in 0..header.part_count {
        let at = index.checked_mul(PART_ENTRY_LEN).ok_or_else(overflow)?;
        let entry = slice(table, at, PART_ENTRY_LEN).ok_or_else(|| truncated(bytes, table_end))?;
        let kind_field: [u8; 8] =
            read_array(entry, PART_OFF_KIND).ok_or_else(|| truncated(bytes, table_end))?;
        let kind = PartKind::from_field(&kind_field).ok_or_else(|| ParseError::UnknownPart {
            index,
            kind: crate::manifest::shown(&String::from_utf8_lossy(&kind_field)),
        })?;
        if entries.iter().any(|e| e.kind == kind) {
            return Err(ParseError::DuplicatePart { kind });
        }
        let size = read_u64(entry, PART_OFF_LEN).ok_or_else(|| truncated(bytes, table_end))?;
        let len = usize::try_from(size)
            .ok()
            .filter(|len| (1..=MAX_PART_SIZE).contains(len))
            .ok_or(ParseError::PartSize { kind, size })?;
        let sha256 =
            read_array(entry, PART_OFF_SHA256).ok_or_else(|| truncated(bytes, table_end))?;
        entries.push(PartEntry {
            kind,
            offset: next,
            len,
            sha256,
        });
        next = next.checked_add(len).ok_or_else(overflow)?;
    }
    for kind in PartKind::ALL {
        if !entries.iter().any(|e| e.kind == kind) {
            return Err(ParseError::MissingPart { kind });
        }
    }
    Ok(PartTable {
        manifest_start: table_end,
        signed_len,
        entries,
        end: next,
    })
}

/// `bytes` must be exactly the `end` the part table declares: no
/// truncation, no trailing data.
fn check_total_length(bytes: &[u8], end: usize) -> Result<(), ParseError> {
    match bytes.len().cmp(&end) {
        std::cmp::Ordering::Less => Err(truncated(bytes, end)),
        std::cmp::Ordering::Greater => Err(ParseError::TrailingData {
            size: bytes.len(),
            expected: end,
        }),
        std::cmp::Ordering::Equal => Ok(()),
    }
}

/// Every part's bytes, checked against its digest.
fn checked_parts<'a>(bytes: &'a [u8], table: &PartTable) -> Result<Vec<Part<'a>>, ParseError> {
    let mut parts = Vec::with_capacity(table.entries.len());
    for entry in &table.entries {
        let part =
            slice(bytes, entry.offset, entry.len).ok_or_else(|| truncated(bytes, table.end))?;
        check_digest(entry.kind.as_str(), part, &entry.sha256)?;
        parts.push(Part {
            kind: entry.kind,
            bytes: part,
            sha256: entry.sha256,
        });
    }
    Ok(parts)
}

/// The manifest: JSON of the right shape, valid fields, and byte-for-byte
/// what this crate would write.
fn decode_manifest(manifest_bytes: &[u8]) -> Result<Manifest, ParseError> {
    let manifest: Manifest = serde_json::from_slice(manifest_bytes)
        .map_err(|source| ParseError::ManifestSyntax { source })?;
    manifest
        .validate()
        .map_err(|source| ParseError::Manifest { source })?;
    match serde_json::to_vec(&manifest) {
        Ok(canonical) if canonical == manifest_bytes => Ok(manifest),
        _ => Err(ParseError::ManifestNotCanonical),
    }
}

fn check_digest(
    part: &'static str,
    bytes: &[u8],
    expected: &[u8; SHA256_LEN],
) -> Result<(), ParseError> {
    let actual: [u8; SHA256_LEN] = Sha256::digest(bytes).into();
    if actual == *expected {
        Ok(())
    } else {
        Err(ParseError::DigestMismatch {
            part,
            expected: hex::encode(expected),
            actual: hex::encode(&actual),
        })
    }
}

impl<'a> Unverified<'a> {
    /// Checks the signature: the signer named in the bundle must be one of
    /// `trusted`, and its signature must match the signed bytes (header,
    /// part table with every digest, manifest; see docs/bundle-format.md).
    pub fn verify(&self, trusted: &[VerifyingKey]) -> Result<Verified<'a>, VerifyError> {
        let key_id = self.signer_key_id();
        if trusted.is_empty() {
            return Err(VerifyError::NoTrustedKeys { key_id });
        }
        let Some(key) = trusted.iter().find(|k| k.as_bytes() == &self.signer) else {
            return Err(VerifyError::UntrustedKey { key_id });
        };
        let signature = Signature::from_bytes(&self.signature);
        let signed = slice(self.bytes, 0, self.signed_len).unwrap_or_default();
        key.verify_strict(signed, &signature)
            .map_err(|source| VerifyError::BadSignature { key_id, source })?;
        Ok(Verified {
            bundle: self.clone(),
        })
    }

    /// The key id of the signer the bundle names (not checked yet).
    pub fn signer_key_id(&self) -> String {
        crate::keys::key_id_of_bytes(&self.signer)
    }

    /// The whole bundle's bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

impl<'a> Verified<'a> {
    /// The manifest, signed by a trusted key.
    pub fn manifest(&self) -> &Manifest {
        &self.bundle.manifest
    }

    /// The patch module (`.ko`) bytes, signed by a trusted key.
    pub fn module(&self) -> &'a [u8] {
        self.part(PartKind::Module)
    }

    /// Where the patch module is in [`Self::bytes`]: a holder of the whole
    /// bundle keeps one copy and takes the module from it.
    pub fn module_range(&self) -> std::ops::Range<usize> {
        let module = self.module();
        // Both slices are of the one buffer `parse` was given.
        let start = (module.as_ptr() as usize).saturating_sub(self.bundle.bytes.as_ptr() as usize);
        start..start.saturating_add(module.len())
    }

    /// The bytes of a part (every kind is present: [`parse`] checks it).
    pub fn part(&self, kind: PartKind) -> &'a [u8] {
        self.bundle
            .parts
            .iter()
            .find(|p| p.kind == kind)
            .map_or(&[][..], |p| p.bytes)
    }

    /// The key id of the trusted key that signed the bundle.
    pub fn signer_key_id(&self) -> String {
        self.bundle.signer_key_id()
    }

    /// The sha256 of the whole bundle file, hex: the bundle's identity in
    /// logs and audit records.
    pub fn sha256(&self) -> String {
        hex::encode(&Sha256::digest(self.bundle.bytes))
    }

    /// The whole bundle's bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bundle.bytes
    }
}
