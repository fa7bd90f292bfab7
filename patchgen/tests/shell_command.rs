//! `patchgen shell`: a command run with the target's toolchain keeps the
//! working directory and returns the command's exit status; an unknown
//! target fails with the command that sets it up.

mod common;

use std::process::Command;

#[test]
fn shell_runs_the_command_in_the_working_directory_with_its_status() {
    let release = common::target().release;
    let tmp = tempfile::tempdir().expect("tmp");
    let out = Command::new(env!("CARGO_BIN_EXE_patchgen"))
        .args(["shell", "--kernel", &release, "--", "sh", "-c"])
        .arg("pwd; exit 3")
        .current_dir(tmp.path())
        .output()
        .expect("run patchgen");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let pwd = String::from_utf8_lossy(&out.stdout);
    let canonical = tmp.path().canonicalize().expect("canonical");
    assert_eq!(pwd.trim(), canonical.to_string_lossy(), "{out:?}");
}

#[test]
fn shell_for_a_kernel_not_in_the_cache_names_scripts_setup() {
    let out = Command::new(env!("CARGO_BIN_EXE_patchgen"))
        .args(["shell", "--kernel", "6.1.0-999-amd64", "--", "true"])
        .output()
        .expect("run patchgen");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("scripts/setup"), "{err}");
}
