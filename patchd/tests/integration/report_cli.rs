//! `patchd report` and `patchd metrics` as the binary runs them, from a
//! state directory written through the library: formats, and the refusal
//! of a tampered audit log with exit code 6.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use patchd::transaction::audit::{AuditAction, AuditEntry, AuditLog, AuditResult};

fn patchd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_patchd"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run patchd")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A private state directory whose log has one apply of `fix_a` (made at
/// 1_700_000_000, applied 600 s later; its CVE published on 2023-11-12)
/// and one failed apply of `fix_b`.
/// A made-up sha256 of bundle `id`: its bytes in hex, padded with zeros.
fn fake_sha256(id: &str) -> String {
    let hex: String = id.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{hex:0<64}")
}

fn state_dir(dir: &Path) -> PathBuf {
    let state = dir.join("state");
    std::fs::create_dir(&state).expect("mkdir");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let log = AuditLog::new(&state);
    let lines = [
        (
            "fix_a",
            "CVE-2024-0005",
            1_700_000_600,
            AuditResult::Ok,
            None,
        ),
        (
            "fix_b",
            "CVE-2024-0006",
            1_700_000_700,
            AuditResult::Failed,
            Some("cannot enable bundle fix_b"),
        ),
    ];
    for (id, cve, at, result, error) in lines {
        let entry = AuditEntry {
            bundle_id: Some(id.to_owned()),
            bundle_sha256: Some(fake_sha256(id)),
            cves: vec![cve.to_owned()],
            bundle_created: Some(1_700_000_000),
            cve_published: if id == "fix_a" {
                [(cve.to_owned(), "2023-11-12".to_owned())].into()
            } else {
                Default::default()
            },
            error: error.map(str::to_owned),
            ..AuditEntry::default()
        };
        log.append(at, AuditAction::Apply, result, entry)
            .expect("append");
    }
    state
}

#[test]
fn report_prints_text_json_and_csv() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = state_dir(dir.path());
    let state = state.to_str().expect("UTF-8");

    let output = patchd(&["report", "--state-dir", state]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("reboots avoided: 1")
            && stdout.contains("CVE-2024-0005: 10m (fix_a")
            && stdout.contains("CVE-2024-0006: not applied (fix_b)")
            && stdout.contains("CVE-2024-0005: 2 day(s) (published 2023-11-12, applied")
            && stdout.contains("  CVE-2024-0006: failed (fix_b)"),
        "{stdout}"
    );

    let output = patchd(&["report", "--json", "--state-dir", state]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(json["reboots_avoided"], 1);
    assert_eq!(json["cves"][0]["gap_seconds"], 600);
    // 2023-11-12T00:00:00Z is 252800 s before 1_700_000_000.
    assert_eq!(json["cves"][0]["exposure_seconds"], 253_400);
    assert_eq!(json["open_cves"][1]["reason"], "failed");
    assert_eq!(
        json["bundles"][1]["last_error"],
        "cannot enable bundle fix_b"
    );

    let output = patchd(&["report", "--csv", "--state-dir", state]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let csv = String::from_utf8_lossy(&output.stdout);
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(rows[0].starts_with("host,cve,bundle_id,"), "{csv}");
    assert!(rows[1].contains(",CVE-2024-0005,fix_a,"), "{csv}");
    assert!(
        rows[0].ends_with(",cve_published,exposure_seconds,fixed_now"),
        "{csv}"
    );
    assert!(rows[1].ends_with(",2023-11-12,253400,no"), "{csv}");

    let output = patchd(&["report", "--json", "--csv", "--state-dir", state]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
}

#[test]
fn report_has_an_auditors_header_and_a_window() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = state_dir(dir.path());
    let state = state.to_str().expect("UTF-8");
    let output = patchd(&["report", "--state-dir", state]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    for line in ["host: ", "kernel: ", "report made: ", "audit chain head: "] {
        assert!(stdout.contains(line), "{line}: {stdout}");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&patchd(&["report", "--json", "--state-dir", state]).stdout)
            .expect("JSON");
    assert!(json["header"]["audit_head"].is_string(), "{json}");
    // fix_a was applied at 22:23:20, fix_b failed at 22:25:00.
    let output = patchd(&[
        "report",
        "--json",
        "--since",
        "2023-11-14T22:24:00Z",
        "--state-dir",
        state,
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(json["reboots_avoided"], 0, "{json}");
    assert_eq!(json["failed_attempts"], 1, "{json}");
    assert_eq!(json["header"]["since"], "2023-11-14T22:24:00Z");
    let output = patchd(&["report", "--until", "2023-11-13", "--state-dir", state]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("reboots avoided: 0"));
    let output = patchd(&["report", "--since", "last week", "--state-dir", state]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("--since"), "{}", text(&output));
}

#[test]
fn report_refuses_a_tampered_log_with_exit_6() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = state_dir(dir.path());
    let log = AuditLog::new(&state).path();
    let edited = std::fs::read_to_string(&log).expect("read").replacen(
        "\"result\":\"failed\"",
        "\"result\":\"ok\"",
        1,
    );
    std::fs::write(&log, edited).expect("write");
    let output = patchd(&["report", "--state-dir", state.to_str().expect("UTF-8")]);
    assert_eq!(output.status.code(), Some(6), "{}", text(&output));
    assert!(output.stdout.is_empty(), "{}", text(&output));
    assert!(
        text(&output).contains("run `patchd audit verify`"),
        "{}",
        text(&output)
    );
}

/// A fake /proc and /sys with a release and a GNU build-id note.
fn kernel_root(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("proc/sys/kernel")).expect("mkdir");
    std::fs::create_dir_all(root.join("sys/kernel")).expect("mkdir");
    std::fs::write(root.join("proc/sys/kernel/osrelease"), "6.1.0-50-amd64\n").expect("write");
    // namesz 4, descsz 4, type 3 (NT_GNU_BUILD_ID), "GNU\0", the id.
    let mut note = Vec::new();
    for word in [4u32, 4, 3] {
        note.extend_from_slice(&word.to_ne_bytes());
    }
    note.extend_from_slice(b"GNU\0\xde\xad\xbe\xef");
    std::fs::write(root.join("sys/kernel/notes"), note).expect("write");
    root
}

#[test]
fn metrics_print_or_write_the_textfile_and_flag_a_tampered_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = state_dir(dir.path());
    let root = kernel_root(dir.path());
    let textfile = dir.path().join("textfile");
    std::fs::create_dir(&textfile).expect("mkdir");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut args = vec![
            "metrics".to_owned(),
            "--state-dir".to_owned(),
            state.display().to_string(),
            "--kernel-root".to_owned(),
            root.display().to_string(),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args
    };
    let run = |extra: &[&str]| {
        let args = args(extra);
        patchd(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };

    let output = run(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let build_info = format!(
        "suture_build_info{{version=\"{}\",kernel_release=\"6.1.0-50-amd64\",kernel_build_id=\"deadbeef\"}} 1\n",
        env!("CARGO_PKG_VERSION")
    );
    for line in [
        build_info.as_str(),
        "suture_audit_log_intact 1\n",
        "suture_patches_applied 0\n",
        "suture_patches_failed_total{result=\"failed\"} 1\n",
        "suture_vulnerability_gap_seconds{cve=\"CVE-2024-0005\"} 600\n",
    ] {
        assert!(stdout.contains(line), "{line} in {stdout}");
    }
    // A one-off run does not know what is pending, so it does not say.
    assert!(!stdout.contains("suture_patches_pending"), "{stdout}");

    let output = run(&["--textfile", textfile.to_str().expect("UTF-8")]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(output.stdout.is_empty());
    let written = std::fs::read_to_string(textfile.join("suture.prom")).expect("written");
    assert_eq!(written, stdout);

    let log = AuditLog::new(&state).path();
    let edited = std::fs::read_to_string(&log)
        .expect("read")
        .replacen("fix_a", "fix_z", 1);
    std::fs::write(&log, edited).expect("write");
    let output = run(&["--textfile", textfile.to_str().expect("UTF-8")]);
    assert_eq!(output.status.code(), Some(6), "{}", text(&output));
    assert!(
        text(&output).contains("patchd audit verify"),
        "{}",
        text(&output)
    );
    let written = std::fs::read_to_string(textfile.join("suture.prom")).expect("written");
    assert!(written.contains("suture_audit_log_intact 0\n"), "{written}");
    assert!(
        !written.contains("suture_vulnerability_gap_seconds"),
        "{written}"
    );
}

/// Output to a closed pipe (`patchd report | head -1` once head is gone)
/// ends the command by SIGPIPE, quietly: no panic, no abort and core dump.
#[test]
fn report_into_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;

    let dir = tempfile::tempdir().expect("temp dir");
    let state = state_dir(dir.path());
    let child = Command::new(env!("CARGO_BIN_EXE_patchd"))
        .args(["report", "--state-dir", state.to_str().expect("UTF-8")])
        .env_remove("RUST_LOG")
        .stdout(closed_pipe())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run patchd");
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.signal(),
        Some(nix::libc::SIGPIPE),
        "{:?}: {stderr}",
        output.status
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The write end of a pipe whose read end is closed already: the first
/// write to it fails with EPIPE (and raises SIGPIPE).
fn closed_pipe() -> std::process::Stdio {
    let (read, write) = nix::unistd::pipe().expect("pipe");
    drop(read);
    std::process::Stdio::from(write)
}

/// Regression (issue #16): deleting `audit.log` and `audit.head` verified
/// as "0 lines, intact" while the state recorded applied bundles.
#[test]
fn audit_verify_finds_a_deleted_log_through_the_state_and_restart_starts_anew() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = state_dir(dir.path());
    let record = serde_json::json!({
        "version": 1,
        "next_transaction": 2,
        "open_transaction": null,
        "bundles": [{
            "id": "fix_a",
            "sha256": fake_sha256("fix_a"),
            "signer_key_id": "fe812c12f3ab4ce6",
            "phase": "applied",
            "transaction": 1,
            "applied_at": 1_700_000_600u64,
            "updated_at": 1_700_000_600u64,
            "bundle_file": "applied/fix_a.bundle",
            "manifest": {
                "description": "",
                "cves": ["CVE-2024-0005"],
                "target": {
                    "kernel_release": "6.1.0-50-amd64",
                    "build_id": "ab".repeat(20),
                    "package_version": null
                },
                "functions": ["cmdline_proc_show"],
                "dependencies": [],
                "created": 1_700_000_000u64
            }
        }]
    });
    std::fs::write(
        state.join("state.json"),
        serde_json::to_vec(&record).expect("json"),
    )
    .expect("state");
    // No system log in tests: the heads go to a socket nobody listens on.
    let config = dir.path().join("patchd.toml");
    std::fs::write(
        &config,
        format!(
            "audit_syslog = \"{}\"\n",
            dir.path().join("no-log.sock").display()
        ),
    )
    .expect("config");
    let config = config.to_str().expect("UTF-8");
    let state_arg = state.to_str().expect("UTF-8");
    let verify = || {
        patchd(&[
            "--config",
            config,
            "audit",
            "verify",
            "--state-dir",
            state_arg,
        ])
    };

    let output = verify();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        text(&output).contains("accounts for the 1 bundle"),
        "{}",
        text(&output)
    );

    std::fs::remove_file(state.join("audit.log")).expect("rm");
    std::fs::remove_file(state.join("audit.head")).expect("rm");
    let output = verify();
    assert_eq!(output.status.code(), Some(6), "{}", text(&output));
    assert!(
        text(&output).contains("state.json records bundle fix_a"),
        "{}",
        text(&output)
    );

    let output = patchd(&[
        "--config",
        config,
        "audit",
        "restart",
        "--state-dir",
        state_arg,
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        text(&output).contains("taking over 1 bundle(s) from the state: fix_a"),
        "{}",
        text(&output)
    );
    assert!(
        text(&output).contains("cannot send the audit log's head to the system log"),
        "a missing system log is a warning: {}",
        text(&output)
    );
    let output = verify();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));

    // An intact log is not restarted.
    let output = patchd(&[
        "--config",
        config,
        "audit",
        "restart",
        "--state-dir",
        state_arg,
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("nothing to restart"),
        "{}",
        text(&output)
    );
}

/// Regression (issue #16): an absurd time in the state aborted patchd at
/// every start (a panic formatting it); every command that reads the
/// state now refuses it with exit 1, naming the field and what to do.
#[test]
fn an_absurd_time_in_the_state_is_an_error_naming_the_field_not_an_abort() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state");
    std::fs::create_dir(&state).expect("mkdir");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let record = serde_json::json!({
        "version": 1,
        "next_transaction": 2,
        "open_transaction": null,
        "bundles": [{
            "id": "fix_a",
            "sha256": fake_sha256("fix_a"),
            "signer_key_id": "fe812c12f3ab4ce6",
            "phase": "applied",
            "transaction": 1,
            "applied_at": u64::MAX,
            "updated_at": 1_700_000_600u64,
            "bundle_file": "applied/fix_a.bundle",
            "manifest": {
                "description": "",
                "cves": [],
                "target": {
                    "kernel_release": "6.1.0-50-amd64",
                    "build_id": "ab".repeat(20),
                    "package_version": null
                },
                "functions": ["cmdline_proc_show"],
                "dependencies": [],
                "created": 1_700_000_000u64
            }
        }]
    });
    std::fs::write(
        state.join("state.json"),
        serde_json::to_vec(&record).expect("json"),
    )
    .expect("state");
    let state_arg = state.to_str().expect("UTF-8");
    for command in [
        &["status", "--state-dir", state_arg][..],
        &["report", "--state-dir", state_arg],
        &["audit", "verify", "--state-dir", state_arg],
    ] {
        let output = patchd(command);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{command:?}: {}",
            text(&output)
        );
        assert!(
            text(&output).contains("bundles[0].applied_at")
                && text(&output).contains("restore the file from a backup"),
            "{command:?}: {}",
            text(&output)
        );
    }
}
