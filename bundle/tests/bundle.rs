//! Writing and reading whole bundles: round trip, reproducibility, the
//! golden bundle and its text dump, trust, re-signing.
//!
//! `tests/golden/example.bundle` and `example.txt` are the example manifest
//! and module (tests/common) signed with the fixed test key. When the format
//! or the dump changes on purpose, regenerate them with
//! `SUTURE_BLESS=1 cargo test -p suture-bundle --test bundle` and review the
//! diff: a changed golden bundle means old bundles no longer read.

mod common;

use std::path::PathBuf;

use common::{example_bundle, key, module, other_key};
use suture_bundle::{build, parse, Manifest, ParseError, VerifyError};

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn bless() -> bool {
    std::env::var_os("SUTURE_BLESS").is_some()
}

#[test]
fn round_trip() {
    let bytes = example_bundle();
    let unverified = parse(&bytes).expect("parse");
    assert_eq!(unverified.inspection().manifest, Manifest::example());
    let verified = unverified
        .verify(&[other_key().verifying_key(), key().verifying_key()])
        .expect("verify");
    assert_eq!(verified.manifest(), &Manifest::example());
    assert_eq!(verified.module(), &module()[..]);
    assert_eq!(
        verified.signer_key_id(),
        suture_bundle::key_id(&key().verifying_key())
    );
    assert_eq!(verified.bytes(), &bytes[..]);
    assert_eq!(verified.sha256().len(), 64);
}

#[test]
fn reproducible() {
    assert_eq!(example_bundle(), example_bundle());
    let mut later = Manifest::example();
    later.created += 1;
    let other = build(&later, &module(), &key()).expect("build");
    assert_ne!(
        other,
        example_bundle(),
        "the creation time is in the bundle"
    );
}

#[test]
fn golden_bundle_is_byte_identical() {
    let bytes = example_bundle();
    let path = golden("example.bundle");
    if bless() {
        std::fs::write(&path, &bytes).expect("bless");
    }
    let stored = std::fs::read(&path).expect("tests/golden/example.bundle");
    assert!(
        stored == bytes,
        "the writer's output changed; if the format changed on purpose, bump the version and bless"
    );
    parse(&stored)
        .expect("parse stored")
        .verify(&[key().verifying_key()])
        .expect("verify stored");
}

#[test]
fn golden_text_dump() {
    let bytes = example_bundle();
    let unverified = parse(&bytes).expect("parse");
    let verified = unverified.verify(&[key().verifying_key()]).expect("verify");
    let text = format!(
        "{}\n--- verified\n{}",
        unverified.inspection(),
        verified.inspection()
    );
    let path = golden("example.txt");
    if bless() {
        std::fs::write(&path, &text).expect("bless");
    }
    let stored = std::fs::read_to_string(&path).expect("tests/golden/example.txt");
    assert_eq!(text, stored, "the text dump changed; bless if on purpose");
}

#[test]
fn json_inspection_has_the_manifest_and_the_trust_state() {
    let bytes = example_bundle();
    let unverified = parse(&bytes).expect("parse");
    let json = serde_json::to_value(unverified.inspection()).expect("json");
    assert_eq!(json["signature_verified"], false);
    assert_eq!(json["manifest"]["id"], "cmdline_fix");
    assert_eq!(json["parts"][0]["kind"], "module");
    assert_eq!(json["parts"][0]["size"], module().len());
    let verified = unverified.verify(&[key().verifying_key()]).expect("verify");
    let json = serde_json::to_value(verified.inspection()).expect("json");
    assert_eq!(json["signature_verified"], true);
}

#[test]
fn unknown_key_is_named() {
    let bytes = example_bundle();
    let err = parse(&bytes)
        .expect("parse")
        .verify(&[other_key().verifying_key()])
        .expect_err("untrusted key accepted");
    let id = suture_bundle::key_id(&key().verifying_key());
    assert!(
        matches!(&err, VerifyError::UntrustedKey { key_id } if *key_id == id),
        "{err:?}"
    );
    assert!(err.to_string().contains(&id), "{err}");
    assert!(err.to_string().contains("not trusted"), "{err}");
}

#[test]
fn no_trusted_keys() {
    let bytes = example_bundle();
    let err = parse(&bytes)
        .expect("parse")
        .verify(&[])
        .expect_err("verified without keys");
    assert!(matches!(err, VerifyError::NoTrustedKeys { .. }), "{err:?}");
}

#[test]
fn resign_changes_only_the_signer_and_signature() {
    let bytes = example_bundle();
    let resigned = parse(&bytes).expect("parse").resign(&other_key());
    assert_eq!(resigned.len(), bytes.len());
    let differing: Vec<usize> = (0..bytes.len())
        .filter(|&i| bytes[i] != resigned[i])
        .collect();
    // The signer field (24..56) and the 64-byte signature after the manifest.
    let manifest_len = serde_json::to_vec(&Manifest::example())
        .expect("json")
        .len();
    let signature_at = 88 + 48 + manifest_len;
    assert!(
        differing
            .iter()
            .all(|&i| (24..56).contains(&i) || (signature_at..signature_at + 64).contains(&i)),
        "{differing:?}"
    );
    let verified = parse(&resigned)
        .expect("parse resigned")
        .verify(&[other_key().verifying_key()])
        .expect("verify resigned");
    assert_eq!(verified.module(), &module()[..]);
    assert!(parse(&resigned)
        .expect("parse")
        .verify(&[key().verifying_key()])
        .is_err());
    // Re-signing with the same key is the identity.
    assert_eq!(parse(&bytes).expect("parse").resign(&key()), bytes);
}

#[test]
fn build_refuses_bad_inputs() {
    let err = build(&Manifest::example(), b"", &key()).expect_err("empty module");
    assert!(err.to_string().contains("patch module is 0 bytes"), "{err}");
    let mut bad = Manifest::example();
    bad.id = "Bad Id".to_owned();
    let err = build(&bad, &module(), &key()).expect_err("bad manifest");
    let cause = std::error::Error::source(&err).map(ToString::to_string);
    assert!(cause.is_some_and(|c| c.contains("field id")), "{err:?}");
}

#[test]
fn parse_rejects_an_invalid_manifest_with_good_digests() {
    let mut raw = common::Raw::example();
    let mut m = Manifest::example();
    m.cves = vec!["CVE-1-2".to_owned()];
    raw.manifest = serde_json::to_vec(&m).expect("json");
    let bytes = raw.write(&key());
    let err = parse(&bytes).expect_err("invalid manifest accepted");
    assert!(matches!(err, ParseError::Manifest { .. }), "{err:?}");
}

#[test]
fn creation_time_follows_source_date_epoch() {
    // The only test in this binary that touches the variable.
    std::env::set_var("SOURCE_DATE_EPOCH", "1700000000");
    assert_eq!(
        suture_bundle::creation_time().expect("epoch"),
        1_700_000_000
    );
    std::env::set_var("SOURCE_DATE_EPOCH", "yesterday");
    let err = suture_bundle::creation_time().expect_err("not a number");
    assert!(err.to_string().contains("SOURCE_DATE_EPOCH"), "{err}");
    std::env::remove_var("SOURCE_DATE_EPOCH");
    assert!(suture_bundle::creation_time().expect("now") > 1_700_000_000);
}

#[test]
fn files_round_trip_and_oversize_files_are_refused_unread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fix.bundle");
    let bytes = example_bundle();
    suture_bundle::write_file(&path, &bytes).expect("write");
    assert_eq!(suture_bundle::read_file(&path).expect("read"), bytes);
    // Rewriting replaces the file; no temporary file is left behind.
    suture_bundle::write_file(&path, &bytes).expect("rewrite");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["fix.bundle"]);

    // Sparse: refusing it must not read (or allocate) 80 MiB.
    let huge = dir.path().join("huge.bundle");
    let file = std::fs::File::create(&huge).expect("create");
    file.set_len(u64::try_from(suture_bundle::MAX_BUNDLE_SIZE).expect("fits") + 1)
        .expect("set_len");
    let err = suture_bundle::read_file(&huge).expect_err("huge accepted");
    assert!(
        matches!(err, suture_bundle::FileError::TooLarge { .. }),
        "{err:?}"
    );
    let err = suture_bundle::read_file(dir.path()).expect_err("directory accepted");
    assert!(
        matches!(err, suture_bundle::FileError::NotAFile { .. }),
        "{err:?}"
    );
}

#[test]
fn debug_output_does_not_dump_the_bytes() {
    let bytes = example_bundle();
    let unverified = parse(&bytes).expect("parse");
    let text = format!("{unverified:?}");
    assert!(
        text.contains("cmdline_fix") && text.contains("module (64 bytes)"),
        "{text}"
    );
    assert!(text.len() < 200, "{text}");
}
