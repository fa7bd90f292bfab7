//! Key files: generation, refusal to overwrite, permissions, wrong kinds and
//! damaged files.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use suture_bundle::{
    key_id, read_signing_key, read_verifying_key, write_keypair, KeyError, PUBLIC_KEY_HEADER,
    SECRET_KEY_HEADER,
};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

#[test]
fn keypair_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = write_keypair(&dir.path().join("release")).expect("keygen");
    assert_eq!(files.secret, dir.path().join("release.key"));
    assert_eq!(files.public, dir.path().join("release.pub"));
    assert_eq!(mode(&files.secret), 0o600);
    let secret = read_signing_key(&files.secret).expect("read secret");
    let public = read_verifying_key(&files.public).expect("read public");
    assert_eq!(secret.verifying_key(), public);
    assert_eq!(files.key_id, key_id(&public));
    assert_eq!(files.key_id.len(), 16);
    assert!(files.key_id.bytes().all(|b| b.is_ascii_hexdigit()));
    let text = std::fs::read_to_string(&files.public).expect("read");
    assert!(text.starts_with(PUBLIC_KEY_HEADER), "{text}");
    assert_eq!(text.lines().count(), 2);

    // Two key pairs differ.
    let second = write_keypair(&dir.path().join("second")).expect("keygen");
    assert_ne!(second.key_id, files.key_id);
}

#[test]
fn key_id_is_sha256_prefix_of_the_public_key() {
    let key = suture_bundle::SigningKey::from_bytes(&[7; 32]).verifying_key();
    // sha256 of the 32 public key bytes, first 8 bytes in hex.
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.as_bytes());
    let expected: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(key_id(&key), expected);
}

#[test]
fn never_overwrites() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prefix = dir.path().join("k");
    std::fs::write(dir.path().join("k.pub"), "keep me").expect("write");
    let err = write_keypair(&prefix).expect_err("overwrote");
    assert!(matches!(err, KeyError::Exists { .. }), "{err:?}");
    assert!(err.to_string().contains("refusing to overwrite"), "{err}");
    assert!(!dir.path().join("k.key").exists(), "a half pair was left");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("k.pub")).expect("read"),
        "keep me"
    );

    let files = write_keypair(&dir.path().join("j")).expect("keygen");
    let before = std::fs::read(&files.secret).expect("read");
    assert!(matches!(
        write_keypair(&dir.path().join("j")),
        Err(KeyError::Exists { .. })
    ));
    assert_eq!(std::fs::read(&files.secret).expect("read"), before);
}

#[test]
fn exposed_secret_key_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = write_keypair(&dir.path().join("k")).expect("keygen");
    for exposed in [0o644, 0o640, 0o604, 0o620] {
        std::fs::set_permissions(&files.secret, std::fs::Permissions::from_mode(exposed))
            .expect("chmod");
        let err = read_signing_key(&files.secret).expect_err("exposed key accepted");
        assert!(matches!(err, KeyError::Exposed { .. }), "{err:?}");
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
    std::fs::set_permissions(&files.secret, std::fs::Permissions::from_mode(0o400)).expect("chmod");
    read_signing_key(&files.secret).expect("0400 is fine");
}

#[test]
fn wrong_kinds_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = write_keypair(&dir.path().join("k")).expect("keygen");
    let err = read_signing_key(&files.public).expect_err("public as secret");
    assert!(
        matches!(
            err,
            KeyError::WrongKind {
                found: "public",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("sign with NAME.key"), "{err}");
    let err = read_verifying_key(&files.secret).expect_err("secret as public");
    assert!(
        matches!(
            err,
            KeyError::WrongKind {
                found: "secret",
                ..
            }
        ),
        "{err:?}"
    );
    // The secret key's bytes never appear in the message.
    let secret_hex = std::fs::read_to_string(&files.secret).expect("read");
    let secret_line = secret_hex.lines().nth(1).expect("key line");
    assert!(!err.to_string().contains(secret_line));
}

#[test]
fn damaged_key_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hex64 = "ab".repeat(32);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "first line"),
        ("bundle", b"\x89SUTURE\n\x01\0\0\0".to_vec(), "not text"),
        ("ssh", b"ssh-ed25519 AAAA".to_vec(), "first line"),
        (
            "short",
            format!("{PUBLIC_KEY_HEADER}\nabcd\n").into_bytes(),
            "64 hex digits",
        ),
        (
            "long",
            format!("{PUBLIC_KEY_HEADER}\n{hex64}00\n").into_bytes(),
            "64 hex digits",
        ),
        (
            "not hex",
            format!("{PUBLIC_KEY_HEADER}\n{}\n", "zz".repeat(32)).into_bytes(),
            "64 hex digits",
        ),
        (
            "no key line",
            format!("{PUBLIC_KEY_HEADER}\n").into_bytes(),
            "missing",
        ),
        (
            "extra lines",
            format!("{PUBLIC_KEY_HEADER}\n{hex64}\nmore\n").into_bytes(),
            "lines after",
        ),
        (
            "small order point",
            format!("{PUBLIC_KEY_HEADER}\n{}\n", "00".repeat(32)).into_bytes(),
            "weak",
        ),
    ];
    for (name, contents, want) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).expect("write");
        let err = read_verifying_key(&path).expect_err(name);
        assert!(matches!(err, KeyError::Format { .. }), "{name}: {err:?}");
        assert!(err.to_string().contains(want), "{name}: {err}");
    }

    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'a'; 5000]).expect("write");
    assert!(matches!(
        read_verifying_key(&big),
        Err(KeyError::NotAKeyFile { .. })
    ));
    assert!(matches!(
        read_verifying_key(dir.path()),
        Err(KeyError::NotAKeyFile { .. })
    ));
    assert!(matches!(
        read_verifying_key(&dir.path().join("missing.pub")),
        Err(KeyError::Read { .. })
    ));

    // A secret key file in the right format with the right mode reads.
    let secret = dir.path().join("handmade.key");
    std::fs::write(&secret, format!("{SECRET_KEY_HEADER}\n{hex64}\n")).expect("write");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    read_signing_key(&secret).expect("handmade key");
}
