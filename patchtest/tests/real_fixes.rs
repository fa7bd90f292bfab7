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

#[test]
fn vm_real_fix_corpus_builds_applies_and_reverts_as_listed() {
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
    assert!(stdout.contains("every fix did what tests/real-fixes/livepatch.txt expects"));
}
