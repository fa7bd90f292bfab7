//! `patchgen keygen`, `sign`, `inspect` and `verify` as a user runs them:
//! files, stdout, stderr and exit codes (0 done, 5 bundle rejected, 1
//! error, 2 usage).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use suture_bundle::Manifest;

fn patchgen(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_patchgen"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run patchgen")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exit code")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A key pair made by `patchgen keygen`; returns its key id.
fn keygen(dir: &Path, name: &str) -> String {
    let out = patchgen(dir, &["keygen", "-o", name]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    stdout(&out).trim().to_owned()
}

/// A bundle of the example manifest signed with `NAME.key`.
fn bundle(dir: &Path, key: &str, name: &str) -> PathBuf {
    let key = suture_bundle::read_signing_key(&dir.join(key)).expect("read key");
    let bytes = suture_bundle::build(&Manifest::example(), b"\x7fELF module", &key).expect("build");
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write bundle");
    path
}

#[test]
fn keygen_sign_inspect_verify() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let alice = keygen(dir, "alice");
    assert_eq!(alice.len(), 16, "{alice}");
    assert!(dir.join("alice.key").exists() && dir.join("alice.pub").exists());
    let bob = keygen(dir, "bob");
    bundle(dir, "alice.key", "fix.bundle");

    let out = patchgen(dir, &["verify", "fix.bundle", "--key", "alice.pub"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains(&alice), "{}", stdout(&out));
    assert!(stdout(&out).contains("cmdline_fix"), "{}", stdout(&out));

    let out = patchgen(
        dir,
        &[
            "verify",
            "fix.bundle",
            "--key",
            "bob.pub",
            "--key",
            "alice.pub",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("alice.pub"), "{}", stdout(&out));

    let out = patchgen(dir, &["inspect", "fix.bundle"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("signature: NOT VERIFIED"),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("NOT verified"), "{}", stderr(&out));

    let out = patchgen(
        dir,
        &["inspect", "fix.bundle", "--json", "--key", "alice.pub"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(json["signature_verified"], true);
    assert_eq!(json["signer_key_id"], alice.as_str());
    assert_eq!(
        json["manifest"]["target"]["kernel_release"],
        "6.1.0-50-amd64"
    );

    // Re-sign with bob's key into a new file; the original is untouched.
    let out = patchgen(
        dir,
        &["sign", "fix.bundle", "--key", "bob.key", "-o", "bob.bundle"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = patchgen(dir, &["verify", "bob.bundle", "--key", "bob.pub"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = patchgen(dir, &["verify", "fix.bundle", "--key", "alice.pub"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    // In place.
    let out = patchgen(dir, &["sign", "fix.bundle", "--key", "bob.key"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        std::fs::read(dir.join("fix.bundle")).expect("read"),
        std::fs::read(dir.join("bob.bundle")).expect("read"),
        "re-signing is deterministic"
    );
    let out = patchgen(dir, &["verify", "fix.bundle", "--key", "alice.pub"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(stderr(&out).contains(&bob), "{}", stderr(&out));
    assert!(stderr(&out).contains("not trusted"), "{}", stderr(&out));
}

#[test]
fn rejected_bundles_exit_5() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    keygen(dir, "k");
    let path = bundle(dir, "k.key", "fix.bundle");
    let good = std::fs::read(&path).expect("read");

    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x40;
    std::fs::write(dir.join("flipped.bundle"), &flipped).expect("write");
    let out = patchgen(dir, &["verify", "flipped.bundle", "--key", "k.pub"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(stderr(&out).contains("sha256"), "{}", stderr(&out));
    // inspect checks digests too.
    let out = patchgen(dir, &["inspect", "flipped.bundle"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    // and sign refuses to re-sign a damaged bundle.
    let out = patchgen(
        dir,
        &["sign", "flipped.bundle", "--key", "k.key", "-o", "x"],
    );
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(!dir.join("x").exists());

    std::fs::write(dir.join("short.bundle"), &good[..good.len() / 2]).expect("write");
    let out = patchgen(dir, &["verify", "short.bundle", "--key", "k.pub"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(stderr(&out).contains("truncated"), "{}", stderr(&out));

    std::fs::write(dir.join("text.bundle"), "hello\n").expect("write");
    let out = patchgen(dir, &["inspect", "text.bundle"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a suture bundle"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn key_and_file_errors_exit_1_and_usage_2() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    keygen(dir, "k");
    bundle(dir, "k.key", "fix.bundle");

    let out = patchgen(dir, &["keygen", "-o", "k"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("refusing to overwrite"),
        "{}",
        stderr(&out)
    );

    let out = patchgen(dir, &["verify", "missing.bundle", "--key", "k.pub"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let out = patchgen(dir, &["verify", "fix.bundle", "--key", "k.key"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("secret key file"), "{}", stderr(&out));
    let out = patchgen(dir, &["sign", "fix.bundle", "--key", "k.pub"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));

    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("k.key"), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    let out = patchgen(dir, &["sign", "fix.bundle", "--key", "k.key"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));

    let out = patchgen(dir, &["verify", "fix.bundle"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
}

/// Output to a closed pipe (`patchgen inspect B | head -1` once head is
/// gone) ends the command by SIGPIPE, quietly: no panic, no abort and core
/// dump (exit 134 before).
#[test]
fn inspect_into_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;

    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    keygen(dir, "alice");
    bundle(dir, "alice.key", "fix.bundle");
    let child = Command::new(env!("CARGO_BIN_EXE_patchgen"))
        .current_dir(dir)
        .args(["inspect", "fix.bundle"])
        .stdout(closed_pipe())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run patchgen");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.signal(),
        Some(nix::libc::SIGPIPE),
        "{:?}: {}",
        out.status,
        stderr(&out)
    );
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

/// The write end of a pipe whose read end is closed already: the first
/// write to it fails with EPIPE (and raises SIGPIPE).
fn closed_pipe() -> std::process::Stdio {
    let (read, write) = nix::unistd::pipe().expect("pipe");
    drop(read);
    std::process::Stdio::from(write)
}

#[test]
fn index_lists_the_signed_bundles_as_patchd_reads_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    keygen(dir, "alice");
    keygen(dir, "mallory");
    let repo = dir.join("repo");
    std::fs::create_dir(&repo).expect("mkdir");
    let a = bundle(dir, "alice.key", "repo/fix_a.bundle");
    std::fs::write(repo.join("README"), "not a bundle").expect("write");

    let out = patchgen(dir, &["index", "repo", "--key", "alice.pub"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = std::fs::read(repo.join("index.json")).expect("index written");
    let index = suture_bundle::repository_index::Index::parse(&text).expect("patchd reads it");
    assert_eq!(index.bundles.len(), 1);
    let entry = &index.bundles[0];
    assert_eq!(entry.name, "fix_a.bundle");
    let bytes = std::fs::read(&a).expect("read");
    assert_eq!(entry.size, bytes.len() as u64);
    assert_eq!(entry.target.kernel_release, "6.1.0-50-amd64");
    assert_eq!(entry.cves, ["CVE-2024-0001"]);

    // A bundle signed by another key is not published: an error, and the
    // index is left as it was.
    bundle(dir, "mallory.key", "repo/fix_m.bundle");
    let out = patchgen(dir, &["index", "repo", "--key", "alice.pub"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("fix_m.bundle"), "{}", stderr(&out));
    assert_eq!(std::fs::read(repo.join("index.json")).expect("read"), text);
    // Without a key: usage.
    assert_eq!(code(&patchgen(dir, &["index", "repo"])), 2);
}
