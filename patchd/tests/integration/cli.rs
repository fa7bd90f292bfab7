//! The `patchd` binary: offline `link`, and the documented exit codes.
//! `load-module` is only run on inputs that fail before any syscall: these
//! tests may run as root on a developer's machine.

use std::process::{Command, Output};

use patchd::{link_module, Kallsyms, ModuleImage};

use crate::fixtures::{kallsyms_text, kallsyms_with_duplicate, patch_module, write};

fn patchd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_patchd"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run patchd")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn link_writes_the_linked_module_and_logs_each_symbol() {
    let dir = tempfile::tempdir().expect("temp dir");
    let module = write(dir.path(), "linktest.ko", patch_module());
    let kallsyms = write(dir.path(), "kallsyms", kallsyms_text().as_bytes());
    let out = dir.path().join("out.ko");
    let out_arg = out.to_str().expect("UTF-8");

    let output = patchd(&["link", &module, "--kallsyms", &kallsyms, "-o", out_arg]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let want = link_module(
        &ModuleImage::parse(patch_module()).expect("a module"),
        &Kallsyms::parse(&kallsyms_text()).expect("valid"),
        &[],
    )
    .expect("links");
    assert_eq!(std::fs::read(&out).expect("output written"), want.image);
    let log = stderr(&output);
    assert!(
        log.contains("hidden_func") && log.contains("hidden_counter"),
        "{log}"
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn ambiguity_fails_with_code_1_until_a_record_is_given() {
    let dir = tempfile::tempdir().expect("temp dir");
    let module = write(dir.path(), "linktest.ko", patch_module());
    let kallsyms = write(dir.path(), "kallsyms", kallsyms_with_duplicate().as_bytes());
    let out = dir.path().join("out.ko");
    let out_arg = out.to_str().expect("UTF-8");

    let output = patchd(&["link", &module, "--kallsyms", &kallsyms, "-o", out_arg]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("ambiguous") && message.contains("--symbol hidden_func="),
        "{message}"
    );
    assert!(!out.exists());

    let output = patchd(&[
        "link",
        &module,
        "--kallsyms",
        &kallsyms,
        "-o",
        out_arg,
        "--symbol",
        "hidden_func=other_mod,1",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(out.exists());
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    for args in [
        &[][..],
        &["frobnicate"],
        &["link", "x.ko"],
        &[
            "link",
            "x.ko",
            "--kallsyms",
            "k",
            "-o",
            "o",
            "--symbol",
            "nonsense",
        ],
        &["load-module", "x.ko", "--symbol", "foo=vmlinux,0"],
        &["release"],
        &["release", "fix_a", "--all"],
    ] {
        let output = patchd(args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    assert_eq!(patchd(&["--help"]).status.code(), Some(0));
    assert_eq!(patchd(&["load-module", "--help"]).status.code(), Some(0));
}

#[test]
fn unreadable_module_fails_before_touching_the_kernel() {
    let output = patchd(&["load-module", "/nonexistent/suture-test.ko"]);
    assert_eq!(output.status.code(), Some(1));
    // Without CAP_SYS_MODULE (not root) the privilege check comes first.
    let expected = if has_sys_module() {
        "/nonexistent/suture-test.ko"
    } else {
        "needs CAP_SYS_MODULE"
    };
    assert!(stderr(&output).contains(expected), "{}", stderr(&output));
}

/// Whether this test process has CAP_SYS_MODULE in its effective set.
pub(crate) fn has_sys_module() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let mask = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .expect("CapEff");
    mask & patchd::privileges::Capability::CAP_SYS_MODULE.bitmask() != 0
}

/// `patchd ARGS` without CAP_SYS_MODULE: as root, through `setpriv`
/// (util-linux), which takes it out of the bounding set so the exec does
/// not grant it; otherwise the process never had it.
fn patchd_without_sys_module(args: &[&str]) -> Output {
    let mut command = if has_sys_module() {
        let mut command = Command::new("setpriv");
        command
            .args(["--inh-caps=-sys_module", "--bounding-set=-sys_module", "--"])
            .arg(env!("CARGO_BIN_EXE_patchd"));
        command
    } else {
        Command::new(env!("CARGO_BIN_EXE_patchd"))
    };
    command
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run patchd")
}

#[test]
fn kernel_changes_are_refused_without_cap_sys_module() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state");
    let state = state.to_str().expect("UTF-8");
    for (args, command) in [
        (
            &["apply", "/nonexistent.bundle", "--state-dir", state][..],
            "patchd apply",
        ),
        (&["revert", "--all", "--state-dir", state], "patchd revert"),
        (
            &["release", "--all", "--state-dir", state],
            "patchd release",
        ),
        (
            &["load-module", "/nonexistent/suture-test.ko"],
            "patchd load-module",
        ),
        (
            &[
                "daemon",
                "--once",
                "--state-dir",
                state,
                "--watch-dir",
                state,
            ],
            "patchd daemon",
        ),
    ] {
        let output = patchd_without_sys_module(args);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{args:?}: {}",
            stderr(&output)
        );
        let text = stderr(&output);
        assert!(
            text.contains(&format!(
                "{command} changes the running kernel and needs CAP_SYS_MODULE"
            )) && text.contains("run it as root"),
            "{text}"
        );
        // Refused before anything: not even the state directory was made.
        assert!(!dir.path().join("state").exists(), "{args:?}");
    }
}

#[test]
fn shutdown_records_a_clean_shutdown_without_cap_sys_module() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state");
    let output =
        patchd_without_sys_module(&["shutdown", "--state-dir", state.to_str().expect("UTF-8")]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let audit = std::fs::read_to_string(state.join("audit.log")).expect("audit log");
    assert!(audit.contains("\"action\":\"shutdown\""), "{audit}");
    if std::fs::read_to_string("/proc/sys/kernel/random/boot_id").is_ok() {
        assert!(
            stdout.contains("recorded a clean shutdown of boot")
                && stdout.contains("applied: none"),
            "{stdout}"
        );
        let text = std::fs::read_to_string(state.join("state.json")).expect("state");
        assert!(text.contains("\"clean_shutdown\": true"), "{text}");
    } else {
        assert!(stdout.contains("no clean shutdown recorded"), "{stdout}");
    }
}
