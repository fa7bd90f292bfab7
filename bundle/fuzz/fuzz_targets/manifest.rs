//! Fuzzes the manifest's parser and rules on arbitrary bytes, as the bundle
//! reader applies them (`serde_json` into `Manifest`, then `validate`):
//! never a panic. And properties of a manifest that passes: it writes and
//! reads back as itself and stays valid, and a bundle built from it (with
//! the fixed test key) parses and verifies with the same manifest — what
//! is accepted is what the format can carry. Run:
//! `cd bundle/fuzz && ./seed-corpus && cargo fuzz run manifest`
//! (see docs/testing.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use suture_bundle::{Manifest, SigningKey};

/// The key of the bundle crate's tests.
const TEST_KEY: [u8; 32] = [7; 32];

fuzz_target!(|data: &[u8]| {
    let Ok(manifest) = serde_json::from_slice::<Manifest>(data) else {
        return;
    };
    if manifest.validate().is_err() {
        return;
    }
    let json = serde_json::to_vec(&manifest).expect("a valid manifest serializes");
    let back: Manifest = serde_json::from_slice(&json).expect("and reads back");
    assert_eq!(back, manifest);
    back.validate().expect("and is still valid");
    let key = SigningKey::from_bytes(&TEST_KEY);
    let bytes = suture_bundle::build(&manifest, b"\x7fELF", &key).expect("a valid manifest builds");
    let bundle = suture_bundle::parse(&bytes).expect("a built bundle parses");
    let verified = bundle
        .verify(&[key.verifying_key()])
        .expect("a built bundle verifies");
    assert_eq!(verified.manifest(), &manifest);
});
