//! Reboots with patchd's state on a disk image (an ext4 virtio disk):
//! - a clean reboot: the first boot applies a bundle; the second boot of the
//!   same kernel, with the same disk, runs what patchd-boot.service runs
//!   (`patchd daemon --once --no-repository`) and the patch is back;
//! - a crash (the crash-loop guard): the first boot applies a bundle and
//!   crashes the kernel (`echo c > /proc/sysrq-trigger`); the second boot
//!   holds the bundle back and reports it, then shuts down cleanly
//!   (`patchd shutdown`, what patchd-boot.service runs at shutdown); the
//!   third boot re-applies it.
//!
//! Needs the kernel cache (`scripts/setup`) and mkfs.ext4 (e2fsprogs);
//! without them it fails, never skips.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use vm_tests::{build_modules, run_guest, work_dir, BuiltModules, GuestSpec, Target};

/// A fresh ext4 image for the state directory, under the rig's work dir.
fn fresh_disk(name: &str) -> PathBuf {
    let dir = work_dir().join(name);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let disk = dir.join("state.img");
    let _ = std::fs::remove_file(&disk);
    let status = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "suture-state"])
        .arg(&disk)
        .arg("32M")
        .status()
        .unwrap_or_else(|e| panic!("cannot run mkfs.ext4 (scripts/setup installs e2fsprogs): {e}"));
    assert!(status.success(), "mkfs.ext4 failed");
    disk
}

/// A guest with the state disk and the modules to mount it.
fn spec_with_disk(name: &str, check: &str, disk: &Path) -> GuestSpec {
    let mut spec = GuestSpec::new(name, &[check]);
    spec.disk = Some(disk.to_path_buf());
    spec.kernel_modules = ["virtio_pci", "virtio_blk", "crc32c_generic", "ext4"]
        .iter()
        .map(|m| (*m).to_string())
        .collect();
    spec
}

/// Boots `check` with `disk`; its check must pass and the kernel log be clean.
fn boot(target: &Target, modules: &BuiltModules, name: &str, check: &str, disk: &Path) {
    let run = run_guest(target, modules, &spec_with_disk(name, check, disk))
        .unwrap_or_else(|e| panic!("running the guest: {e}"));
    let short = check.trim_start_matches("checks/");
    eprintln!("{}", run.describe(short));
    assert!(
        run.check(short).is_some_and(|c| c.passed()),
        "{}",
        run.describe(short)
    );
    assert!(
        run.problems.is_empty(),
        "guest problems (serial log {}):\n{}",
        run.dir.join("serial.log").display(),
        run.problems.join("\n")
    );
}

/// The target and the modules, built once for both tests (they run at
/// the same time, and building writes one build directory).
fn built() -> &'static (Target, BuiltModules) {
    static BUILT: OnceLock<(Target, BuiltModules)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let target = Target::from_env().unwrap_or_else(|e| panic!("{e}"));
        let modules =
            build_modules(&target).unwrap_or_else(|e| panic!("building the modules: {e}"));
        (target, modules)
    })
}

#[test]
fn vm_patches_come_back_at_boot_from_the_state_on_disk() {
    let (target, modules) = built();
    let disk = fresh_disk("reboot");
    boot(target, modules, "reboot-1", "checks/reboot_before", &disk);
    boot(target, modules, "reboot-2", "checks/reboot_after", &disk);
}

#[test]
fn vm_a_bundle_applied_before_a_crash_is_held_back_then_comes_back_after_a_clean_boot() {
    let (target, modules) = built();
    let disk = fresh_disk("crash");

    // The first boot applies, then crashes the kernel: no check end, a
    // panic in the log, and nothing else.
    let run = run_guest(
        target,
        modules,
        &spec_with_disk("crash-1", "checks/crash_apply", &disk),
    )
    .unwrap_or_else(|e| panic!("running the guest: {e}"));
    let log = std::fs::read_to_string(run.dir.join("serial.log")).unwrap_or_default();
    assert!(
        log.contains("@@SUTURE-CRASHING"),
        "the first boot did not get to the crash: {}",
        run.describe("crash_apply")
    );
    assert!(
        log.contains("Kernel panic - not syncing: sysrq triggered crash"),
        "the first boot did not crash as asked (serial log {})",
        run.dir.join("serial.log").display()
    );
    assert!(
        run.problems
            .iter()
            .all(|p| p.contains("sysrq triggered crash")
                || p.contains("Call Trace:")
                || p == "the guest never reported its taint flags"
                || p == "the guest did not reach the end of its checks"),
        "guest problems besides the crash asked for:\n{}",
        run.problems.join("\n")
    );

    boot(target, modules, "crash-2", "checks/crash_held", &disk);
    boot(target, modules, "crash-3", "checks/crash_back", &disk);
}
