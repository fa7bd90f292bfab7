//! Verification of a bundle before anything touches the kernel: size caps,
//! layout and digests (the format crate), the signature by a key of the
//! trust store, the target kernel identity against the running kernel, the
//! manifest against its patch module (every symbol record an undefined
//! symbol of it, every replacement function defined in it), and whether
//! kernel lockdown would refuse the patch module.
//!
//! The bytes checked are the bytes used: the file is read once into a
//! size-capped buffer, and the module handed on is a copy of those bytes.
//! This module never changes the kernel.

pub mod trust;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use suture_bundle::manifest::Manifest;
use suture_bundle::{FileError, ParseError, VerifyingKey};

use crate::kernel::{Kernel, KernelIdentity};
use crate::link::kallsyms::LinkRecord;
use crate::link::load::{check_lockdown, LoadError};
use crate::link::{LinkError, ModuleFacts, ModuleImage};

/// A bundle that passed every check, with what apply needs.
#[derive(Clone)]
pub struct VerifiedBundle {
    /// Where it was read from.
    path: PathBuf,
    /// The whole bundle, as read (for the copy in the state directory).
    bytes: Vec<u8>,
    /// Where the patch module is in `bytes`.
    module: std::ops::Range<usize>,
    /// What reading the patch module found, so that linking and loading
    /// do not read it again.
    module_facts: ModuleFacts,
    /// The signed manifest.
    manifest: Manifest,
    /// sha256 of the whole bundle, hex.
    sha256: String,
    /// The key id of the trusted signer.
    signer_key_id: String,
}

// Debug without the bytes: a bundle can be 80 MiB.
impl std::fmt::Debug for VerifiedBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedBundle")
            .field("path", &self.path)
            .field("id", &self.manifest.id)
            .field("sha256", &self.sha256)
            .field("signer_key_id", &self.signer_key_id)
            .finish_non_exhaustive()
    }
}

/// What verification found; only [`verify_bytes`] makes one, so holding a
/// `VerifiedBundle` means the bundle was verified.
impl VerifiedBundle {
    /// The patch's id (its module's name).
    pub fn id(&self) -> &str {
        &self.manifest.id
    }

    /// Where it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole bundle, as read.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The patch module, signed by a trusted key.
    pub fn module(&self) -> &[u8] {
        self.bytes.get(self.module.clone()).unwrap_or_default()
    }

    /// The patch module with what verification read from it.
    pub fn patch_module(&self) -> ModuleImage<'_> {
        ModuleImage::from_parsed(self.module(), &self.module_facts)
    }

    /// The signed manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// sha256 of the whole bundle, hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The key id of the trusted signer.
    pub fn signer_key_id(&self) -> &str {
        &self.signer_key_id
    }

    /// The manifest's link records.
    pub fn link_records(&self) -> Vec<LinkRecord> {
        self.manifest.symbols.to_vec()
    }
}

/// The kernel a bundle is for, and the one that runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetMismatch {
    /// The bundle.
    pub path: PathBuf,
    /// Its id.
    pub id: String,
    /// The kernel it is for.
    pub bundle: KernelIdentity,
    /// The running kernel.
    pub running: KernelIdentity,
}

/// Why a bundle is not applied.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The file could not be read, or is over the size cap.
    #[error(transparent)]
    Read(FileError),

    /// Layout, caps, digests or manifest are wrong.
    #[error("bundle {path} is rejected")]
    Malformed {
        /// The bundle.
        path: PathBuf,
        /// What the format crate found.
        #[source]
        source: ParseError,
    },

    /// Not signed by a trusted key, or the signature does not match.
    #[error("bundle {path} is rejected")]
    Untrusted {
        /// The bundle.
        path: PathBuf,
        /// What the signature check found.
        #[source]
        source: suture_bundle::VerifyError,
    },

    /// Built for another kernel.
    #[error("bundle {} ({}) is for kernel {} with build-id {}, but this machine runs {} with build-id {}: use a bundle built for the running kernel (patchgen build --kernel {})", .0.path.display(), .0.id, .0.bundle.release, .0.bundle.build_id, .0.running.release, .0.running.build_id, .0.running.release)]
    WrongKernel(Box<TargetMismatch>),

    /// Kernel lockdown would refuse the patch module.
    #[error("bundle {path} ({id}) cannot be loaded on this kernel")]
    Lockdown {
        /// The bundle.
        path: PathBuf,
        /// Its id.
        id: String,
        /// The lockdown refusal.
        #[source]
        source: Box<LoadError>,
    },

    /// The patch module is not an ELF module patchd can read.
    #[error(
        "bundle {path} ({id}) carries a patch module patchd cannot read; rebuild it with patchgen"
    )]
    Module {
        /// The bundle.
        path: PathBuf,
        /// Its id.
        id: String,
        /// What the ELF reader found.
        #[source]
        source: Box<LinkError>,
    },

    /// The manifest does not describe its module: a symbol record for a
    /// symbol the module does not leave undefined, or a replacement
    /// function the module does not define (apply would fail later).
    #[error("bundle {path} ({id}) is inconsistent: {}; rebuild it with patchgen", mismatch_text(.records, .replacements))]
    ManifestMismatch {
        /// The bundle.
        path: PathBuf,
        /// Its id.
        id: String,
        /// `symbols[].symbol` that are not undefined symbols of the module.
        records: Vec<String>,
        /// `replaced_functions[].new_name` the module does not define.
        replacements: Vec<String>,
    },

    /// The module's name is not the manifest's id.
    #[error("bundle {path} is inconsistent: its manifest id is {id} but its patch module is named {}; rebuild it with patchgen", .module.as_deref().unwrap_or("nothing (no name= in .modinfo)"))]
    ModuleName {
        /// The bundle.
        path: PathBuf,
        /// The manifest's id.
        id: String,
        /// The module's name.
        module: Option<String>,
    },
}

impl VerifyError {
    /// Whether the bundle itself is bad (malformed, damaged, untrusted),
    /// as opposed to unusable on this host.
    pub fn is_rejection(&self) -> bool {
        matches!(
            self,
            Self::Malformed { .. }
                | Self::Untrusted { .. }
                | Self::ModuleName { .. }
                | Self::Module { .. }
                | Self::ManifestMismatch { .. }
                | Self::Read(FileError::TooLarge { .. })
        )
    }
}

/// Most names one mismatch message lists.
const MAX_NAMES_SHOWN: usize = 8;

/// The names, comma-separated, at most [`MAX_NAMES_SHOWN`] of them.
fn names_text(names: &[String]) -> String {
    let mut text = names
        .iter()
        .take(MAX_NAMES_SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > MAX_NAMES_SHOWN {
        text.push_str(&format!(" and {} more", names.len() - MAX_NAMES_SHOWN));
    }
    text
}

/// What [`VerifyError::ManifestMismatch`] found, as a clause or two.
fn mismatch_text(records: &[String], replacements: &[String]) -> String {
    let mut parts = Vec::new();
    if !records.is_empty() {
        parts.push(format!(
            "its manifest has symbol records for {}, which its patch module does not leave undefined",
            names_text(records)
        ));
    }
    if !replacements.is_empty() {
        parts.push(format!(
            "its manifest names replacement functions {}, which its patch module does not define",
            names_text(replacements)
        ));
    }
    parts.join("; ")
}

/// The manifest must describe its module: every symbol record is for an
/// undefined symbol of the module, every replaced function's replacement
/// (`new_name`) is defined in it.
fn check_manifest_matches(
    path: &Path,
    manifest: &Manifest,
    module: &ModuleImage<'_>,
) -> Result<(), VerifyError> {
    let undefined: HashSet<&str> = module
        .undefined()
        .iter()
        .map(|symbol| symbol.name.as_str())
        .collect();
    let records: Vec<String> = manifest
        .symbols
        .iter()
        .filter(|record| !undefined.contains(record.symbol.as_str()))
        .map(|record| record.symbol.clone())
        .collect();
    let replacements: Vec<String> = manifest
        .replaced_functions
        .iter()
        .filter(|function| !module.defines(&function.new_name))
        .map(|function| function.new_name.clone())
        .collect();
    if records.is_empty() && replacements.is_empty() {
        return Ok(());
    }
    Err(VerifyError::ManifestMismatch {
        path: path.to_owned(),
        id: manifest.id.clone(),
        records,
        replacements,
    })
}

/// sha256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads and verifies the bundle at `path`; see [`verify_bytes`].
pub fn verify_bundle(
    kernel: &dyn Kernel,
    trusted: &[VerifyingKey],
    running: &KernelIdentity,
    path: &Path,
) -> Result<VerifiedBundle, VerifyError> {
    let bytes = suture_bundle::read_file(path).map_err(VerifyError::Read)?;
    verify_bytes(kernel, trusted, running, path, bytes)
}

/// Verifies a bundle's bytes: format and digests, a signature by one of
/// `trusted`, the target identity equal to `running`, a module named like
/// the manifest's id, and no lockdown that would refuse the module.
pub fn verify_bytes(
    kernel: &dyn Kernel,
    trusted: &[VerifyingKey],
    running: &KernelIdentity,
    path: &Path,
    bytes: Vec<u8>,
) -> Result<VerifiedBundle, VerifyError> {
    let checked = check(kernel, trusted, running, path, &bytes)?;
    Ok(checked.into_bundle(path, bytes))
}

/// As [`verify_bytes`], but a refusal also says what the bundle claims to
/// be (for the audit log), read only when it is refused.
pub fn verify_or_claim(
    kernel: &dyn Kernel,
    trusted: &[VerifyingKey],
    running: &KernelIdentity,
    path: &Path,
    bytes: Vec<u8>,
) -> Result<VerifiedBundle, Box<Refused>> {
    match check(kernel, trusted, running, path, &bytes) {
        Ok(checked) => Ok(checked.into_bundle(path, bytes)),
        Err(error) => Err(Box::new(Refused {
            error,
            claimed: Claimed::of(&bytes),
        })),
    }
}

/// A refused bundle: why, and what it claims to be.
#[derive(Debug)]
pub struct Refused {
    /// Why it was refused.
    pub error: VerifyError,
    /// What it claims to be (unauthenticated).
    pub claimed: Claimed,
}

/// What the checks of [`check`] found, to keep beside the bytes.
struct Checked {
    module: std::ops::Range<usize>,
    module_facts: ModuleFacts,
    manifest: Manifest,
    sha256: String,
    signer_key_id: String,
}

impl Checked {
    fn into_bundle(self, path: &Path, bytes: Vec<u8>) -> VerifiedBundle {
        VerifiedBundle {
            path: path.to_owned(),
            bytes,
            module: self.module,
            module_facts: self.module_facts,
            manifest: self.manifest,
            sha256: self.sha256,
            signer_key_id: self.signer_key_id,
        }
    }
}

/// Every check of [`verify_bytes`], reading the bundle and its module once.
fn check(
    kernel: &dyn Kernel,
    trusted: &[VerifyingKey],
    running: &KernelIdentity,
    path: &Path,
    bytes: &[u8],
) -> Result<Checked, VerifyError> {
    let unverified = suture_bundle::parse(bytes).map_err(|source| VerifyError::Malformed {
        path: path.to_owned(),
        source,
    })?;
    let verified = unverified
        .verify(trusted)
        .map_err(|source| VerifyError::Untrusted {
            path: path.to_owned(),
            source,
        })?;
    let manifest = verified.manifest().clone();
    check_target(path, &manifest, running)?;
    let id = manifest.id.clone();
    let patch_module =
        ModuleImage::parse(verified.module()).map_err(|source| VerifyError::Module {
            path: path.to_owned(),
            id: id.clone(),
            source: Box::new(source),
        })?;
    if patch_module.name() != Some(id.as_str()) {
        return Err(VerifyError::ModuleName {
            path: path.to_owned(),
            module: patch_module.name().map(str::to_owned),
            id,
        });
    }
    check_manifest_matches(path, &manifest, &patch_module)?;
    check_lockdown(kernel, &patch_module, &manifest.symbols).map_err(|source| {
        VerifyError::Lockdown {
            path: path.to_owned(),
            id,
            source: Box::new(source),
        }
    })?;
    Ok(Checked {
        module: verified.module_range(),
        module_facts: patch_module.into_facts(),
        manifest,
        sha256: verified.sha256(),
        signer_key_id: verified.signer_key_id(),
    })
}

/// The target kernel must be the running one: release and build-id.
pub fn check_target(
    path: &Path,
    manifest: &Manifest,
    running: &KernelIdentity,
) -> Result<(), VerifyError> {
    let target = &manifest.target;
    if target.kernel_release == running.release && target.build_id == running.build_id {
        return Ok(());
    }
    Err(VerifyError::WrongKernel(Box::new(TargetMismatch {
        path: path.to_owned(),
        id: manifest.id.clone(),
        bundle: KernelIdentity {
            release: target.kernel_release.clone(),
            build_id: target.build_id.clone(),
        },
        running: running.clone(),
    })))
}

/// What can be said about a bundle that failed verification, for the audit
/// log: its digest if it could be read, the id and signer it claims if it
/// parses (unauthenticated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claimed {
    /// sha256 of the file, hex.
    pub sha256: Option<String>,
    /// The manifest's id.
    pub id: Option<String>,
    /// The key id the bundle names.
    pub signer_key_id: Option<String>,
    /// The CVEs it claims.
    pub cves: Vec<String>,
}

impl Claimed {
    /// What `bytes` claim to be.
    pub fn of(bytes: &[u8]) -> Self {
        let mut claimed = Self {
            sha256: Some(sha256_hex(bytes)),
            ..Self::default()
        };
        if let Ok(unverified) = suture_bundle::parse(bytes) {
            let inspection = unverified.inspection();
            claimed.id = Some(inspection.manifest.id);
            claimed.signer_key_id = Some(inspection.signer_key_id);
            claimed.cves = inspection.manifest.cves;
        }
        claimed
    }
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
