//! Helpers shared by the integration tests: fixed keys, the example
//! bundle, and a raw writer that lays out bundles from the byte table in
//! docs/bundle-format.md, independently of the crate's writer, so tests can
//! build bundles the crate's writer never would (wrong lengths, other
//! kinds, non-canonical manifests) with correct digests and signatures.

#![allow(dead_code)]

use sha2::{Digest, Sha256};
use suture_bundle::{Manifest, SigningKey};

pub fn key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

pub fn other_key() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

/// A small stand-in for a patch module.
pub fn module() -> Vec<u8> {
    let mut module = b"\x7fELF\x02\x01\x01".to_vec();
    module.extend((0u8..57).map(|i| i.wrapping_mul(37)));
    module
}

pub fn example_bundle() -> Vec<u8> {
    suture_bundle::build(&Manifest::example(), &module(), &key()).expect("build example")
}

/// A bundle laid out by hand.
pub struct Raw {
    pub magic: [u8; 8],
    pub version: u32,
    pub flags: u32,
    /// `None`: the real length of `manifest`.
    pub manifest_len: Option<u32>,
    /// `None`: the number of `parts`.
    pub part_count: Option<u32>,
    pub manifest: Vec<u8>,
    /// kind field, declared length (`None`: real), bytes
    pub parts: Vec<([u8; 8], Option<u64>, Vec<u8>)>,
}

impl Raw {
    pub fn example() -> Raw {
        Raw {
            magic: *b"\x89SUTURE\n",
            version: 1,
            flags: 0,
            manifest_len: None,
            part_count: None,
            manifest: serde_json::to_vec(&Manifest::example()).expect("json"),
            parts: vec![(*b"module\0\0", None, module())],
        }
    }

    /// The bundle, signed by `key`, with correct digests.
    pub fn write(&self, key: &SigningKey) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.magic);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.flags.to_le_bytes());
        let manifest_len = self
            .manifest_len
            .unwrap_or(u32::try_from(self.manifest.len()).expect("small"));
        out.extend_from_slice(&manifest_len.to_le_bytes());
        let count = self
            .part_count
            .unwrap_or(u32::try_from(self.parts.len()).expect("small"));
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(key.verifying_key().as_bytes());
        out.extend_from_slice(&Sha256::digest(&self.manifest));
        for (kind, len, bytes) in &self.parts {
            out.extend_from_slice(kind);
            let len = len.unwrap_or(u64::try_from(bytes.len()).expect("small"));
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&Sha256::digest(bytes));
        }
        out.extend_from_slice(&self.manifest);
        use ed25519_dalek::Signer;
        out.extend_from_slice(&key.sign(&out).to_bytes());
        for (_, _, bytes) in &self.parts {
            out.extend_from_slice(bytes);
        }
        out
    }
}
