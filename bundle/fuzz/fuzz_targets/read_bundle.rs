//! Fuzzes the bundle reader on arbitrary bytes: `parse` must return an
//! error or a bundle, never panic; a parsed bundle's text dump must
//! render; `verify` with the fixed test key must answer. And a property:
//! a parsed bundle re-signed by the trusted key (the same manifest and
//! parts) must parse and verify, giving back the same manifest and module.
//! Run: `cd bundle/fuzz && ./seed-corpus && cargo fuzz run read_bundle`
//! (see docs/testing.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use suture_bundle::SigningKey;

/// The key of the bundle crate's tests (the golden bundle's signer).
const TEST_KEY: [u8; 32] = [7; 32];

fuzz_target!(|data: &[u8]| {
    let Ok(unverified) = suture_bundle::parse(data) else {
        return;
    };
    let inspection = unverified.inspection();
    let _ = inspection.to_string();
    let key = SigningKey::from_bytes(&TEST_KEY);
    let trusted = [key.verifying_key()];
    if let Ok(verified) = unverified.verify(&trusted) {
        let _ = verified.inspection().to_string();
    }
    let resigned = unverified.resign(&key);
    let again = suture_bundle::parse(&resigned).expect("a re-signed bundle parses");
    let verified = again
        .verify(&trusted)
        .expect("a re-signed bundle verifies with its new key");
    assert_eq!(verified.manifest(), &inspection.manifest);
    assert_eq!(
        verified.module().len() as u64,
        inspection.parts[0].size,
        "the module part is unchanged"
    );
    assert_eq!(verified.sha256().len(), 64);
});
