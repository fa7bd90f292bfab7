//! The companion module and patchd on Debian 13's 6.12 line (the kernel
//! `kernels/default.env` pins as `SUTURE_KERNEL_6_12`, built with gcc-14 in
//! its build root): one guest boot runs the checks below in order, and each
//! test asserts its own check, as `foundation.rs` does for the default
//! kernel: the companion module's checks, and the demo fix built by
//! `patchgen build` for this kernel (in its gcc-14 build root) applied,
//! reverted and killed at each apply step by patchd. The checks of the 6.1
//! real fixes (their patches are 6.1 source) stay in `foundation.rs`.
//!
//! These tests need the 6.12 kernel cache (`scripts/test` sets it up).
//! Without it they fail with the command to run: a VM test is never skipped.

use std::sync::OnceLock;

use vm_tests::programs::build_programs;
use vm_tests::target::pinned_release;
use vm_tests::{build_modules_for, run_guest, FixSelection, GuestRun, GuestSpec, Target};

const CHECKS: &[&str] = &[
    "checks/load",
    "checks/kernel_modules",
    "checks/redirect",
    "checks/direct_coexist",
    "checks/stacking",
    "checks/busy",
    "checks/park",
    "checks/bad_input",
    "checks/stress",
    "checks/patchd_busy",
    "checks/patchgen_cmdline",
    "checks/patchd_apply",
    "checks/patchd_crash",
    // Last: lockdown cannot be lowered again in this boot.
    "checks/lockdown",
];

fn session() -> &'static GuestRun {
    static SESSION: OnceLock<Result<GuestRun, String>> = OnceLock::new();
    let run = SESSION.get_or_init(|| {
        let release = pinned_release("SUTURE_KERNEL_6_12").map_err(|e| e.to_string())?;
        let target = Target::open(&release).map_err(|e| e.to_string())?;
        let mut spec = GuestSpec::new("line_6_12", CHECKS);
        // checks/direct_coexist loads the kernel's livepatch (taint K) and
        // runs the guest program fentry.
        spec.allowed_taint = "OEK".to_string();
        spec.files = build_programs().map_err(|e| format!("building the guest programs: {e}"))?;
        // Debian 13's modules are .ko.xz, and virtio_pci is built in.
        spec.kernel_modules = ["virtio_pci", "virtio_blk", "ext4"]
            .iter()
            .map(|m| (*m).to_string())
            .collect();
        let fixes = FixSelection::NamedIn(spec.script_text().map_err(|e| e.to_string())?);
        let modules = build_modules_for(&target, &fixes)
            .map_err(|e| format!("building the modules for {release}: {e}"))?;
        let run =
            run_guest(&target, &modules, &spec).map_err(|e| format!("running the guest: {e}"))?;
        run.print_summary(&format!("guest ({release})"));
        Ok(run)
    });
    match run {
        Ok(run) => run,
        Err(e) => panic!("the 6.12 VM test guest could not run: {e}"),
    }
}

fn assert_check(name: &str) {
    let run = session();
    let passed = run.check(name).is_some_and(|c| c.passed());
    assert!(passed, "{}", run.describe(name));
    eprintln!("{}", run.describe(name));
}

#[test]
fn vm_6_12_companion_and_targets_load_through_the_link_step() {
    assert_check("load");
}

#[test]
fn vm_6_12_debian_modules_compressed_with_xz_load_in_the_guest() {
    assert_check("kernel_modules");
}

#[test]
fn vm_6_12_redirects_two_kernel_functions_and_restores_them() {
    assert_check("redirect");
}

#[test]
fn vm_6_12_direct_call_redirect_beside_tracer_kprobe_bpf_and_livepatch() {
    assert_check("direct_coexist");
}

#[test]
fn vm_6_12_stacked_patches_newest_wins_and_falls_back() {
    assert_check("stacking");
}

#[test]
fn vm_6_12_busy_function_refused_with_ebusy_then_succeeds() {
    assert_check("busy");
}

#[test]
fn vm_6_12_user_tasks_sleeping_in_a_switched_function_are_moved_out_and_restart() {
    assert_check("park");
}

#[test]
fn vm_6_12_bad_registrations_refused_with_nothing_patched() {
    assert_check("bad_input");
}

#[test]
fn vm_6_12_stress_200_cycles_under_load_only_old_or_new_output() {
    assert_check("stress");
}

#[test]
fn vm_6_12_patchd_busy_function_bounded_retries_then_exit_3_nothing_changed() {
    assert_check("patchd_busy");
}

#[test]
fn vm_6_12_patchgen_built_demo_fix_redirects_cmdline_proc_show() {
    assert_check("patchgen_cmdline");
}

#[test]
fn vm_6_12_patchd_applies_reports_and_reverts_a_signed_bundle() {
    assert_check("patchd_apply");
}

#[test]
fn vm_6_12_patchd_killed_at_each_apply_step_leaves_a_consistent_state() {
    assert_check("patchd_crash");
}

#[test]
fn vm_6_12_lockdown_refusals_are_reported_before_and_by_the_kernel() {
    assert_check("lockdown");
}

#[test]
fn vm_6_12_guest_log_has_no_warning_oops_or_unexpected_taint() {
    let run = session();
    assert!(
        run.problems.is_empty(),
        "guest kernel problems (serial log {}):\n{}",
        run.dir.join("serial.log").display(),
        run.problems.join("\n")
    );
}
