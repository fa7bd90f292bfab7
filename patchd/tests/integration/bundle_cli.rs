//! The `patchd` binary on bundles and the audit log: `verify` against a
//! fake kernel tree (the hidden `--kernel-root`) and `audit verify`, with
//! the documented exit codes. Nothing here loads a module or needs root.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use patchd::transaction::audit::{AuditAction, AuditEntry, AuditLog, AuditResult};
use suture_bundle::manifest::Manifest;
use suture_bundle::{SigningKey, PUBLIC_KEY_HEADER};

use crate::fixtures::patch_module;

const RELEASE: &str = "6.1.0-50-amd64";
const BUILD_ID: &str = "06f8bde30046985060c60820f7a11515a33afb06";

fn patchd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_patchd"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run patchd")
}

pub(crate) fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// One ELF note, 4-byte aligned as the kernel lays them out.
fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for word in [name.len(), desc.len()] {
        out.extend_from_slice(&u32::try_from(word).expect("small").to_ne_bytes());
    }
    out.extend_from_slice(&kind.to_ne_bytes());
    for part in [name, desc] {
        out.extend_from_slice(part);
        while out.len() % 4 != 0 {
            out.push(0);
        }
    }
    out
}

/// A host: a fake /proc and /sys for RELEASE/BUILD_ID, a trust store with
/// `key`'s public key, and a directory for bundles (the daemon's tests use
/// it too).
pub(crate) struct Host {
    pub(crate) dir: tempfile::TempDir,
}

impl Host {
    pub(crate) fn new(key: &SigningKey) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("proc/sys/kernel")).expect("mkdir");
        std::fs::create_dir_all(root.join("sys/kernel")).expect("mkdir");
        std::fs::write(
            root.join("proc/sys/kernel/osrelease"),
            format!("{RELEASE}\n"),
        )
        .expect("write");
        let build_id: Vec<u8> = (0..BUILD_ID.len() / 2)
            .map(|i| u8::from_str_radix(&BUILD_ID[2 * i..2 * i + 2], 16).expect("hex"))
            .collect();
        let mut notes = note(b"Linux\0", 0x100, b"6.1.0\0");
        notes.extend(note(b"GNU\0", 3, &build_id));
        std::fs::write(root.join("sys/kernel/notes"), notes).expect("write");
        let keys = dir.path().join("keys");
        std::fs::create_dir(&keys).expect("mkdir");
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let hex: String = key
            .verifying_key()
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        std::fs::write(
            keys.join("release.pub"),
            format!("{PUBLIC_KEY_HEADER}\n{hex}\n"),
        )
        .expect("write key");
        Self { dir }
    }

    pub(crate) fn keys(&self) -> PathBuf {
        self.dir.path().join("keys")
    }

    /// Writes a bundle of the `linktest` fixture module for `manifest`.
    pub(crate) fn bundle(&self, name: &str, manifest: &Manifest, key: &SigningKey) -> PathBuf {
        let bytes = suture_bundle::build(manifest, patch_module(), key).expect("bundle");
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).expect("write bundle");
        path
    }

    fn verify(&self, bundle: &Path) -> Output {
        let root = self.dir.path().join("root");
        patchd(&[
            "verify",
            bundle.to_str().expect("UTF-8"),
            "--keys",
            self.keys().to_str().expect("UTF-8"),
            "--kernel-root",
            root.to_str().expect("UTF-8"),
        ])
    }
}

/// A manifest that describes the `linktest` fixture module: its record is
/// for an undefined symbol of it, its replacement a function it defines.
pub(crate) fn manifest() -> Manifest {
    let mut manifest = Manifest::example();
    manifest.id = "linktest".to_owned();
    manifest.target.kernel_release = RELEASE.to_owned();
    manifest.target.build_id = BUILD_ID.to_owned();
    "hidden_func".clone_into(&mut manifest.symbols[0].symbol);
    "hidden_func".clone_into(&mut manifest.symbols[0].name);
    "linktest_entry".clone_into(&mut manifest.replaced_functions[0].new_name);
    manifest
}

#[test]
fn verify_accepts_a_bundle_for_the_running_kernel() {
    let key = SigningKey::from_bytes(&[7; 32]);
    let host = Host::new(&key);
    let bundle = host.bundle("good.bundle", &manifest(), &key);
    let output = host.verify(&bundle);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("ok: linktest for 6.1.0-50-amd64")
            && stdout.contains(&suture_bundle::key_id(&key.verifying_key()))
            && stdout.contains("fixes CVE-2024-0001"),
        "{stdout}"
    );
}

#[test]
fn verify_exit_codes_name_the_refusal() {
    let key = SigningKey::from_bytes(&[7; 32]);
    let host = Host::new(&key);
    let good = std::fs::read(host.bundle("good.bundle", &manifest(), &key)).expect("read");

    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x40;
    let path = host.dir.path().join("flipped.bundle");
    std::fs::write(&path, &flipped).expect("write");
    let output = host.verify(&path);
    assert_eq!(output.status.code(), Some(5), "{}", text(&output));
    assert!(text(&output).contains("sha256"), "{}", text(&output));

    let path = host.dir.path().join("truncated.bundle");
    std::fs::write(&path, &good[..good.len() / 2]).expect("write");
    let output = host.verify(&path);
    assert_eq!(output.status.code(), Some(5), "{}", text(&output));
    assert!(text(&output).contains("truncated"), "{}", text(&output));

    let stranger = SigningKey::from_bytes(&[9; 32]);
    let path = host.bundle("stranger.bundle", &manifest(), &stranger);
    let output = host.verify(&path);
    assert_eq!(output.status.code(), Some(5), "{}", text(&output));
    assert!(text(&output).contains("not trusted"), "{}", text(&output));

    let mut other = manifest();
    other.target.build_id = "0123456789abcdef0123456789abcdef01234567".to_owned();
    let path = host.bundle("other.bundle", &other, &key);
    let output = host.verify(&path);
    assert_eq!(output.status.code(), Some(4), "{}", text(&output));
    assert!(
        text(&output).contains("0123456789abcdef0123456789abcdef01234567")
            && text(&output).contains(BUILD_ID),
        "{}",
        text(&output)
    );
}

/// Regression (issue #16): a signed bundle whose module is not ELF exited
/// 1, a file over the size cap 1, and a manifest naming symbols its module
/// does not have passed `verify`; each is a rejected bundle, exit 5.
#[test]
fn verify_exits_5_for_a_module_that_is_not_elf_an_oversized_file_and_a_mismatched_manifest() {
    let key = SigningKey::from_bytes(&[7; 32]);
    let host = Host::new(&key);

    let bytes = suture_bundle::build(&manifest(), b"not an ELF module", &key).expect("bundle");
    let path = host.dir.path().join("not-elf.bundle");
    std::fs::write(&path, bytes).expect("write");
    let output = host.verify(&path);
    assert_eq!(output.status.code(), Some(5), "{}", text(&output));
    assert!(text(&output).contains("not an ELF"), "{}", text(&output));

    let path = host.dir.path().join("huge.bundle");
    let file = std::fs::File::create(&path).expect("create");
    file.set_len(suture_bundle::MAX_BUNDLE_SIZE as u64 + 1)
        .expect("sparse file");
    let output = host.verify(&path);
    assert_eq!(output.status.code(), Some(5), "{}", text(&output));
    assert!(
        text(&output).contains("more than the limit"),
        "{}",
        text(&output)
    );

    let mut mismatched = manifest();
    "suture_new_missing".clone_into(&mut mismatched.replaced_functions[0].new_name);
    let path = host.bundle("mismatched.bundle", &mismatched, &key);
    let output = host.verify(&path);
    assert_eq!(output.status.code(), Some(5), "{}", text(&output));
    assert!(
        text(&output).contains("suture_new_missing") && text(&output).contains("does not define"),
        "{}",
        text(&output)
    );
}

#[test]
fn verify_refuses_a_writable_trust_store() {
    let key = SigningKey::from_bytes(&[7; 32]);
    let host = Host::new(&key);
    let bundle = host.bundle("good.bundle", &manifest(), &key);
    std::fs::set_permissions(host.keys(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let output = host.verify(&bundle);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("chmod go-w"), "{}", text(&output));
}

#[test]
fn audit_verify_exits_6_at_the_first_edited_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state");
    std::fs::create_dir(&state).expect("mkdir");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let log = AuditLog::new(&state);
    for id in ["fix_a", "fix_b", "fix_c"] {
        let entry = AuditEntry {
            bundle_id: Some(id.to_owned()),
            ..AuditEntry::default()
        };
        log.append(1_700_000_000, AuditAction::Apply, AuditResult::Ok, entry)
            .expect("append");
    }
    let state_arg = state.to_str().expect("UTF-8");
    let output = patchd(&["audit", "verify", "--state-dir", state_arg]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(text(&output).contains("3 line(s)"), "{}", text(&output));

    let edited = std::fs::read_to_string(log.path())
        .expect("read")
        .replacen("fix_b", "fix_x", 1);
    std::fs::write(log.path(), edited).expect("write");
    let output = patchd(&["audit", "verify", "--state-dir", state_arg]);
    assert_eq!(output.status.code(), Some(6), "{}", text(&output));
    assert!(
        text(&output).contains("line 2: the line was edited"),
        "{}",
        text(&output)
    );
}

#[test]
fn revert_needs_ids_or_all_but_not_both() {
    for args in [&["revert"][..], &["revert", "--all", "fix_a"]] {
        let output = patchd(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output));
    }
    for args in [
        &["apply", "--help"][..],
        &["status", "--help"],
        &["audit", "verify", "--help"],
    ] {
        assert_eq!(patchd(args).status.code(), Some(0), "{args:?}");
    }
}

#[test]
fn verify_takes_the_trust_store_from_the_config_file_and_flags_win() {
    let key = SigningKey::from_bytes(&[7; 32]);
    let host = Host::new(&key);
    let bundle = host.bundle("good.bundle", &manifest(), &key);
    let root = host.dir.path().join("root");
    let config = host.dir.path().join("patchd.toml");
    let write_config = |text: String| {
        std::fs::write(&config, text).expect("write config");
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    };
    let verify = |extra: &[&str]| {
        let mut args = vec![
            "--config",
            config.to_str().expect("UTF-8"),
            "verify",
            bundle.to_str().expect("UTF-8"),
            "--kernel-root",
            root.to_str().expect("UTF-8"),
        ];
        args.extend_from_slice(extra);
        patchd(&args)
    };
    write_config(format!(
        "keys_dir = {:?}\n",
        host.keys().display().to_string()
    ));
    let output = verify(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));

    // A trust store without the signer's key, named by the flag, wins.
    let empty = host.dir.path().join("other-keys");
    std::fs::create_dir(&empty).expect("mkdir");
    std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let stranger = SigningKey::from_bytes(&[9; 32]);
    let hex: String = stranger
        .verifying_key()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(
        empty.join("other.pub"),
        format!("{PUBLIC_KEY_HEADER}\n{hex}\n"),
    )
    .expect("key");
    let output = verify(&["--keys", empty.to_str().expect("UTF-8")]);
    assert_eq!(output.status.code(), Some(5), "{}", text(&output));

    write_config("keys = \"/etc/suture/keys\"\n".to_owned());
    let output = verify(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let message = text(&output);
    assert!(
        message.contains(config.to_str().expect("UTF-8"))
            && message.contains("unknown field `keys`"),
        "{message}"
    );

    std::fs::remove_file(&config).expect("rm");
    let output = verify(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("does not exist"),
        "{}",
        text(&output)
    );
}
