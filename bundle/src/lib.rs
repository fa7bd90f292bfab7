//! suture's bundle format: the one crate that reads, writes and verifies
//! bundles. Nothing else parses them.
//!
//! A bundle carries one live patch for one kernel build: a JSON
//! [`Manifest`] (what the patch replaces, which kernel it is for, what
//! patchd must resolve in `/proc/kallsyms`) and the patch module, with the
//! sha256 of every part and an ed25519 signature over the header, the part
//! table (every digest) and the manifest. The byte layout is in
//! `docs/bundle-format.md`.
//!
//! Reading is two steps, and only the second hands out what to act on:
//!
//! - [`parse`] checks the size caps, the layout, the exact length, every
//!   digest and the manifest's fields, giving an [`Unverified`] bundle
//!   (enough for `inspect`, and for [`Unverified::resign`]);
//! - [`Unverified::verify`] checks that a trusted key signed it, giving a
//!   [`Verified`] bundle with [`Verified::manifest`] and [`Verified::module`].
//!
//! ```
//! use suture_bundle::{build, parse, Manifest, SigningKey};
//!
//! let key = SigningKey::from_bytes(&[7; 32]);
//! let bytes = build(&Manifest::example(), b"\x7fELF...", &key)?;
//! let verified = parse(&bytes)?.verify(&[key.verifying_key()])?;
//! assert_eq!(verified.module(), b"\x7fELF...");
//! assert_eq!(verified.manifest().id, "cmdline_fix");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Writing is deterministic: the same manifest (its `created` field taken
//! from `SOURCE_DATE_EPOCH` by [`creation_time`]), module and key give the
//! same bytes. Keys live in small text files ([`write_keypair`],
//! [`read_signing_key`], [`read_verifying_key`]) and are named by
//! [`key_id`].
//!
//! The crate has no unsafe code and never panics on its input: every size
//! is capped ([`MAX_BUNDLE_SIZE`], [`MAX_MANIFEST_SIZE`], [`MAX_PART_SIZE`])
//! and checked before anything is allocated for it, and every offset is
//! computed with checked arithmetic.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod debian_version;
mod dump;
mod example;
mod file;
mod hex;
mod keys;
mod layout;
pub mod link_record;
pub mod manifest;
pub mod names;
mod read;
pub mod repository_index;
mod write;

pub use dump::{Inspection, PartSummary};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use file::{read_file, write_file, FileError};
pub use keys::{
    generate_signing_key, key_id, read_signing_key, read_verifying_key, write_keypair, KeyError,
    KeyPairFiles, PUBLIC_KEY_HEADER, SECRET_KEY_HEADER,
};
pub use layout::{
    PartKind, FORMAT_VERSION, MAGIC, MAX_BUNDLE_SIZE, MAX_MANIFEST_SIZE, MAX_PARTS, MAX_PART_SIZE,
};
pub use link_record::{kallsyms_letter_fits, LinkRecord, SIZE_ALLOWANCE};
pub use manifest::{
    FixesUpTo, Manifest, ManifestError, NewFunction, ReplacedFunction, SkippedFunction,
    SymbolBinding, SymbolKind, Target,
};
pub use read::{parse, ParseError, Unverified, Verified, VerifyError};
pub use write::{build, creation_time, BuildError};
