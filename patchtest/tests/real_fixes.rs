//! The real-fix corpus (tests/real-fixes/livepatch.txt) end to end: every
//! fix built by patchgen for the pinned kernel or refused for its listed
//! reason, every bundle validated by patchtest in one guest boot (applied
//! and reverted under load, its test where it has one, a clean kernel
//! log). Runs the `real-fixes` command, which prints the coverage table.
//!
//! Needs the kernel cache with the -dbg vmlinux (`scripts/setup
//! --with-dbg`, which scripts/test runs); without it this fails, never
//! skips.

use std::process::Command;
use std::sync::Mutex;

/// One corpus at a time: each boots a guest and builds its fixes, and two
/// at once on a 2-core machine only slow each other.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn vm_real_fix_corpus_builds_applies_and_reverts_as_listed() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = Command::new(env!("CARGO_BIN_EXE_real-fixes"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run real-fixes: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "the corpus did not do what livepatch.txt expects (exit {:?}):\n{stdout}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("every fix did what its livepatch.txt expects"));
}

/// The small 6.12 corpus (tests/real-fixes/6.12/livepatch.txt) on the
/// pinned 6.12 kernel, the same way.
#[test]
fn vm_real_fix_corpus_6_12_builds_applies_and_reverts_as_listed() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let env = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernels/default.env");
    let text = std::fs::read_to_string(&env).expect("kernels/default.env");
    let release = text
        .lines()
        .find_map(|l| l.strip_prefix("SUTURE_KERNEL_6_12="))
        .expect("SUTURE_KERNEL_6_12 in kernels/default.env")
        .trim()
        .to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_real-fixes"))
        .env("SUTURE_KERNEL", &release)
        .output()
        .unwrap_or_else(|e| panic!("cannot run real-fixes: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "the 6.12 corpus did not do what tests/real-fixes/6.12/livepatch.txt expects (exit {:?}):\n{stdout}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("tests/real-fixes/6.12/livepatch.txt"),
        "{stdout}"
    );
    assert!(stdout.contains("every fix did what its livepatch.txt expects"));
}
