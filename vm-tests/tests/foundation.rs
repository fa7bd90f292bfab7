//! The companion module in a real Debian kernel under QEMU: one guest boot
//! runs every check below in order, and each test asserts its own check.
//! Booting once keeps CI lean; a failed check does not stop the next one.
//!
//! These tests need the kernel cache (`scripts/setup`). Without it they fail
//! with the command to run: a VM test is never skipped.

use std::sync::OnceLock;

use vm_tests::programs::build_programs;
use vm_tests::{build_modules, run_guest, GuestFile, GuestRun, GuestSpec, Target};

const CHECKS: &[&str] = &[
    "checks/load",
    "checks/redirect",
    "checks/direct_coexist",
    "checks/stacking",
    "checks/busy",
    "checks/park",
    "checks/bad_input",
    "checks/stress",
    "checks/patchgen_cmdline",
    "checks/patchd_apply",
    "checks/patchd_packaged",
    "checks/real_fix_workqueue",
    "checks/patchd_busy",
    "checks/sleepers",
    "checks/patchd_crash",
    "checks/patchd_daemon",
    // Last: lockdown cannot be lowered again in this boot.
    "checks/lockdown",
];

fn session() -> &'static GuestRun {
    static SESSION: OnceLock<Result<GuestRun, String>> = OnceLock::new();
    let run = SESSION.get_or_init(|| {
        let target = Target::from_env().map_err(|e| e.to_string())?;
        let modules = build_modules(&target).map_err(|e| format!("building the modules: {e}"))?;
        let mut spec = GuestSpec::new("foundation", CHECKS);
        // checks/direct_coexist loads the kernel's livepatch, which taints K.
        spec.allowed_taint = "OEK".to_string();
        spec.files = build_programs().map_err(|e| format!("building the guest programs: {e}"))?;
        spec.files.push(dkms_companion(&target, &modules)?);
        let run =
            run_guest(&target, &modules, &spec).map_err(|e| format!("running the guest: {e}"))?;
        run.print_summary("guest");
        Ok(run)
    });
    match run {
        Ok(run) => run,
        Err(e) => panic!("the VM test guest could not run: {e}"),
    }
}

/// The companion module where the `suture-dkms` package has DKMS install it
/// for the guest's kernel, compressed with xz as DKMS does for kernels whose
/// modules are compressed (Debian 13's): `checks/patchd_packaged` runs
/// patchd with its defaults, which must find, decompress and load it.
fn dkms_companion(target: &Target, modules: &vm_tests::BuiltModules) -> Result<GuestFile, String> {
    let ko = modules
        .modules
        .get("suture")
        .ok_or("the companion module was not built")?;
    let xz = std::process::Command::new("xz")
        .args(["--check=crc32", "--stdout"])
        .arg(ko)
        .output()
        .map_err(|e| format!("running xz (scripts/setup installs xz-utils): {e}"))?;
    if !xz.status.success() {
        return Err(format!(
            "xz {} failed: {}",
            ko.display(),
            String::from_utf8_lossy(&xz.stderr)
        ));
    }
    Ok(GuestFile {
        path: format!("/lib/modules/{}/updates/dkms/suture.ko.xz", target.release),
        data: xz.stdout,
        mode: 0o644,
    })
}

fn assert_check(name: &str) {
    let run = session();
    let passed = run.check(name).is_some_and(|c| c.passed());
    assert!(passed, "{}", run.describe(name));
    // The load check's output is the proof that loading went through patchd.
    eprintln!("{}", run.describe(name));
}

#[test]
fn vm_companion_and_targets_load_through_the_link_step() {
    assert_check("load");
}

#[test]
fn vm_redirects_two_kernel_functions_and_restores_them() {
    assert_check("redirect");
}

#[test]
fn vm_direct_call_redirect_beside_tracer_kprobe_bpf_and_livepatch() {
    assert_check("direct_coexist");
}

#[test]
fn vm_stacked_patches_newest_wins_and_falls_back() {
    assert_check("stacking");
}

#[test]
fn vm_busy_function_refused_with_ebusy_then_succeeds() {
    assert_check("busy");
}

#[test]
fn vm_user_tasks_sleeping_in_a_switched_function_are_moved_out_and_restart() {
    assert_check("park");
}

#[test]
fn vm_bad_registrations_refused_with_nothing_patched() {
    assert_check("bad_input");
}

#[test]
fn vm_stress_200_cycles_under_load_only_old_or_new_output() {
    assert_check("stress");
}

#[test]
fn vm_patchgen_built_cmdline_fix_links_loads_and_switches() {
    assert_check("patchgen_cmdline");
}

#[test]
fn vm_patchd_applies_and_reverts_a_signed_bundle_and_refuses_bad_ones() {
    assert_check("patchd_apply");
}

#[test]
fn vm_patchd_with_the_packages_defaults_loads_the_dkms_companion_applies_reports_reverts() {
    assert_check("patchd_packaged");
}

#[test]
fn vm_real_debian_fix_with_warn_on_in_a_static_function_applies_and_reverts() {
    assert_check("real_fix_workqueue");
}

#[test]
fn vm_sleepers_in_do_wait_pipe_read_futex_wait_are_moved_out_and_their_calls_restart() {
    assert_check("sleepers");
}

#[test]
fn vm_patchd_busy_function_bounded_retries_then_exit_3_nothing_changed() {
    assert_check("patchd_busy");
}

#[test]
fn vm_patchd_killed_at_each_step_of_an_apply_restarts_consistent() {
    assert_check("patchd_crash");
}

#[test]
fn vm_daemon_applies_watched_and_repository_bundles_and_refuses_bad_ones() {
    assert_check("patchd_daemon");
}

#[test]
fn vm_lockdown_refusals_are_reported_before_and_by_the_kernel() {
    assert_check("lockdown");
}

#[test]
fn vm_guest_log_has_no_warning_oops_or_unexpected_taint() {
    let run = session();
    assert!(
        run.problems.is_empty(),
        "guest kernel problems (serial log {}):\n{}",
        run.dir.join("serial.log").display(),
        run.problems.join("\n")
    );
}
