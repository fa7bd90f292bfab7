//! A reboot with patchd's state on a disk image: the first boot applies a
//! bundle with the state directory on an ext4 virtio disk; the second boot
//! of the same kernel, with the same disk, runs what patchd-boot.service
//! runs (`patchd daemon --once --no-repository`) and the patch is back.
//!
//! Needs the kernel cache (`scripts/setup`) and mkfs.ext4 (e2fsprogs);
//! without them it fails, never skips.

use std::process::Command;

use vm_tests::{build_modules, run_guest, work_dir, GuestSpec, Target};

#[test]
fn vm_patches_come_back_at_boot_from_the_state_on_disk() {
    let target = Target::from_env().unwrap_or_else(|e| panic!("{e}"));
    let modules = build_modules(&target).unwrap_or_else(|e| panic!("building the modules: {e}"));
    let dir = work_dir().join("reboot");
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

    let boot = |name: &str, check: &str| {
        let mut spec = GuestSpec::new(name, &[check]);
        spec.disk = Some(disk.clone());
        spec.kernel_modules = ["virtio_pci", "virtio_blk", "crc32c_generic", "ext4"]
            .iter()
            .map(|m| (*m).to_string())
            .collect();
        let run = run_guest(&target, &modules, &spec)
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
    };
    boot("reboot-1", "checks/reboot_before");
    boot("reboot-2", "checks/reboot_after");
}
