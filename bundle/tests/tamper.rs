//! Damaged and hostile bundles: every byte flipped, every truncation,
//! trailing data, declared lengths past the caps, unknown versions, flags
//! and kinds, non-canonical manifests. Each is an error (from parse or
//! verify), never `Ok` and never a panic.

mod common;

use common::{example_bundle, key, Raw};
use suture_bundle::{parse, Manifest, ParseError, MAX_MANIFEST_SIZE, MAX_PART_SIZE};

/// Where the example bundle's regions are (docs/bundle-format.md).
struct Regions {
    signer: std::ops::Range<usize>,
    manifest: std::ops::Range<usize>,
    signature: std::ops::Range<usize>,
    module: std::ops::Range<usize>,
}

fn regions(bytes: &[u8]) -> Regions {
    let manifest_len = serde_json::to_vec(&Manifest::example())
        .expect("json")
        .len();
    let manifest = 136..136 + manifest_len;
    let signature = manifest.end..manifest.end + 64;
    let module = signature.end..bytes.len();
    Regions {
        signer: 24..56,
        manifest,
        signature,
        module,
    }
}

fn check(bytes: &[u8]) -> Result<(), String> {
    let unverified = parse(bytes).map_err(|e| format!("parse: {e:?}"))?;
    unverified
        .verify(&[key().verifying_key()])
        .map_err(|e| format!("verify: {e:?}"))?;
    Ok(())
}

#[test]
fn every_single_byte_flip_is_rejected() {
    let good = example_bundle();
    let r = regions(&good);
    check(&good).expect("the unflipped bundle is good");
    for at in 0..good.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut bad = good.clone();
            bad[at] ^= mask;
            let err = match check(&bad) {
                Ok(()) => panic!("flipping byte {at} with {mask:#04x} was not detected"),
                Err(e) => e,
            };
            let expected = if r.signer.contains(&at) {
                "verify: UntrustedKey"
            } else if r.signature.contains(&at) {
                "verify: BadSignature"
            } else if r.manifest.contains(&at) || r.module.contains(&at) {
                "parse: DigestMismatch"
            } else {
                "parse: "
            };
            assert!(
                err.starts_with(expected),
                "byte {at} ^ {mask:#04x}: {err}, expected {expected}"
            );
        }
    }
}

#[test]
fn every_truncation_is_rejected() {
    let good = example_bundle();
    for len in 0..good.len() {
        match parse(&good[..len]) {
            Ok(_) => panic!("truncated to {len} bytes and accepted"),
            Err(ParseError::Truncated { size, expected }) => {
                assert_eq!(size, len);
                assert!(expected > len, "{len}: expected {expected}");
            }
            Err(e) => panic!("truncated to {len}: {e:?}, expected Truncated"),
        }
    }
}

#[test]
fn trailing_data_is_rejected() {
    for extra in [&b"\0"[..], b"\n", &[0u8; 64], &example_bundle()] {
        let mut bad = example_bundle();
        bad.extend_from_slice(extra);
        let err = parse(&bad).expect_err("trailing data accepted");
        assert!(
            matches!(err, ParseError::TrailingData { .. }),
            "{}: {err:?}",
            extra.len()
        );
        assert!(err.to_string().contains("trailing data"), "{err}");
    }
}

#[test]
fn signature_over_another_bundle_is_rejected() {
    let a = example_bundle();
    let mut m = Manifest::example();
    m.id = "other".to_owned();
    let b = suture_bundle::build(&m, &common::module(), &key()).expect("build");
    // b's layout with a's signature: the signature covers the manifest.
    let r = regions(&a);
    let b_manifest_len = serde_json::to_vec(&m).expect("json").len();
    let b_sig_at = 136 + b_manifest_len;
    let mut spliced = b.clone();
    spliced[b_sig_at..b_sig_at + 64].copy_from_slice(&a[r.signature]);
    let err = check(&spliced).expect_err("spliced signature accepted");
    assert!(err.starts_with("verify: BadSignature"), "{err}");
}

fn parse_err(raw: &Raw) -> ParseError {
    let bytes = raw.write(&key());
    match parse(&bytes) {
        Ok(_) => panic!("accepted"),
        Err(e) => e,
    }
}

#[test]
fn declared_lengths_past_the_caps_are_rejected() {
    let mut raw = Raw::example();
    raw.manifest_len = Some(u32::MAX);
    assert!(matches!(
        parse_err(&raw),
        ParseError::ManifestSize { size: u32::MAX }
    ));
    raw.manifest_len = Some(u32::try_from(MAX_MANIFEST_SIZE + 1).expect("fits"));
    assert!(matches!(parse_err(&raw), ParseError::ManifestSize { .. }));
    raw.manifest_len = Some(0);
    assert!(matches!(
        parse_err(&raw),
        ParseError::ManifestSize { size: 0 }
    ));

    let mut raw = Raw::example();
    raw.parts[0].1 = Some(u64::MAX);
    assert!(matches!(parse_err(&raw), ParseError::PartSize { .. }));
    raw.parts[0].1 = Some(u64::try_from(MAX_PART_SIZE + 1).expect("fits"));
    assert!(matches!(parse_err(&raw), ParseError::PartSize { .. }));
    // At the cap the length is allowed but the bytes are not there.
    raw.parts[0].1 = Some(u64::try_from(MAX_PART_SIZE).expect("fits"));
    assert!(matches!(parse_err(&raw), ParseError::Truncated { .. }));

    let mut raw = Raw::example();
    raw.part_count = Some(u32::MAX);
    assert!(matches!(parse_err(&raw), ParseError::PartCount { .. }));
    raw.part_count = Some(0);
    assert!(matches!(
        parse_err(&raw),
        ParseError::PartCount { count: 0 }
    ));
    // Within the cap but more entries than there are: the manifest's
    // bytes are read as entries, and are no known kind.
    raw.part_count = Some(8);
    assert!(matches!(
        parse_err(&raw),
        ParseError::UnknownPart { index: 1, .. }
    ));
    // ... and a file that ends inside the table is truncated.
    let bytes = raw.write(&key());
    assert!(matches!(
        parse(&bytes[..88 + 48 * 3]),
        Err(ParseError::Truncated { .. })
    ));
}

#[test]
fn oversize_input_is_rejected_before_parsing() {
    let huge = vec![0u8; suture_bundle::MAX_BUNDLE_SIZE + 1];
    assert!(matches!(parse(&huge), Err(ParseError::TooLarge { .. })));
}

#[test]
fn magic_version_and_flags() {
    let mut raw = Raw::example();
    raw.magic = *b"\x89SUTURF\n";
    assert!(matches!(parse_err(&raw), ParseError::BadMagic));
    assert!(matches!(parse(b"hello"), Err(ParseError::BadMagic)));
    assert!(matches!(parse(b"\x7fELF"), Err(ParseError::BadMagic)));

    let mut raw = Raw::example();
    raw.version = 2;
    let err = parse_err(&raw);
    assert!(
        matches!(err, ParseError::UnsupportedVersion { version: 2 }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("version 2 is not supported"),
        "{err}"
    );

    let mut raw = Raw::example();
    raw.flags = 1;
    assert!(matches!(
        parse_err(&raw),
        ParseError::UnknownFlags { flags: 1 }
    ));
}

#[test]
fn part_kinds() {
    let mut raw = Raw::example();
    raw.parts[0].0 = *b"module\0x";
    let err = parse_err(&raw);
    assert!(
        matches!(err, ParseError::UnknownPart { index: 0, .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains('\0'), "{err}");

    let mut raw = Raw::example();
    raw.parts.push((*b"firmware", None, vec![1, 2, 3]));
    assert!(matches!(
        parse_err(&raw),
        ParseError::UnknownPart { index: 1, .. }
    ));

    let mut raw = Raw::example();
    let again = raw.parts[0].clone();
    raw.parts.push(again);
    assert!(matches!(parse_err(&raw), ParseError::DuplicatePart { .. }));

    let mut raw = Raw::example();
    raw.parts[0].2.clear();
    assert!(matches!(
        parse_err(&raw),
        ParseError::PartSize { size: 0, .. }
    ));
}

#[test]
fn non_canonical_manifests_are_rejected() {
    let canonical = serde_json::to_vec(&Manifest::example()).expect("json");
    let pretty = serde_json::to_vec_pretty(&Manifest::example()).expect("json");
    let mut trailing_space = canonical.clone();
    trailing_space.push(b' ');
    let escaped = String::from_utf8(canonical.clone())
        .expect("utf8")
        .replacen("cmdline_fix", "cmdline\\u005ffix", 1)
        .into_bytes();
    for manifest in [pretty, trailing_space, escaped] {
        let mut raw = Raw::example();
        raw.manifest = manifest;
        let err = parse_err(&raw);
        assert!(matches!(err, ParseError::ManifestNotCanonical), "{err:?}");
    }
}

#[test]
fn malformed_manifests_are_rejected() {
    let mut with_unknown = serde_json::to_value(Manifest::example()).expect("json");
    with_unknown["signed_off_by"] = "someone".into();
    let cases: Vec<Vec<u8>> = vec![
        b"not json".to_vec(),
        b"{}".to_vec(),
        b"[]".to_vec(),
        vec![0xff, 0xfe],
        serde_json::to_vec(&with_unknown).expect("json"),
        // Nesting deep enough to exhaust a naive recursive parser.
        "[".repeat(100_000).into_bytes(),
    ];
    for manifest in cases {
        let mut raw = Raw::example();
        raw.manifest = manifest;
        let err = parse_err(&raw);
        assert!(matches!(err, ParseError::ManifestSyntax { .. }), "{err:?}");
    }
    // Duplicate keys are refused too, although they would parse.
    let json = String::from_utf8(serde_json::to_vec(&Manifest::example()).expect("json"))
        .expect("utf8")
        .replacen(
            "{\"id\":\"cmdline_fix\",",
            "{\"id\":\"x\",\"id\":\"cmdline_fix\",",
            1,
        );
    let mut raw = Raw::example();
    raw.manifest = json.into_bytes();
    assert!(matches!(
        parse_err(&raw),
        ParseError::ManifestSyntax { .. } | ParseError::ManifestNotCanonical
    ));
}

#[test]
fn publication_dates_have_one_encoding() {
    // Sorted by CVE id, each once, and no empty object: anything else is
    // another encoding of the same manifest (or none), refused.
    let mut dated = Manifest::example();
    dated.cves.push("CVE-2024-0002".to_owned());
    let canonical = String::from_utf8(serde_json::to_vec(&dated).expect("json")).expect("utf8");
    let cases = [
        r#","cve_published":{}}"#,
        r#","cve_published":{"CVE-2024-0002":"2024-01-02","CVE-2024-0001":"2024-01-01"}}"#,
        r#","cve_published":{"CVE-2024-0001":"2024-01-01","CVE-2024-0001":"2024-01-01"}}"#,
    ];
    for tail in cases {
        let json = format!("{}{tail}", canonical.strip_suffix('}').expect("object"));
        let mut raw = Raw::example();
        raw.manifest = json.into_bytes();
        let err = parse_err(&raw);
        assert!(
            matches!(
                err,
                ParseError::ManifestSyntax { .. } | ParseError::ManifestNotCanonical
            ),
            "{tail}: {err:?}"
        );
    }
    // The canonical one parses.
    let json = format!(
        "{},\"cve_published\":{{\"CVE-2024-0001\":\"2024-01-01\",\"CVE-2024-0002\":\"2024-01-02\"}}}}",
        canonical.strip_suffix('}').expect("object")
    );
    let mut raw = Raw::example();
    raw.manifest = json.into_bytes();
    let bytes = raw.write(&key());
    let parsed = parse(&bytes).expect("canonical dates parse");
    assert_eq!(parsed.inspection().manifest.cve_published.len(), 2);
}

#[test]
fn a_trusted_key_signing_a_tampered_bundle_is_still_rejected() {
    // A bundle re-signed after its module was swapped still fails: parse
    // checks digests before any signature is looked at.
    let mut bytes = example_bundle();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    assert!(matches!(
        parse(&bytes),
        Err(ParseError::DigestMismatch { part: "module", .. })
    ));
    let err = check(&bytes).expect_err("tampered");
    assert!(err.contains("DigestMismatch"), "{err}");
}
