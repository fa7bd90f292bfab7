//! Unit tables for the validation plan and its judging.

use std::fmt::Write as _;

use super::judge::step_reason;
use super::*;
use vm_tests::report::{CheckResult, GuestRun};

#[test]
fn expectations_parse_and_loaded_naming() {
    assert_eq!(
        Expectations::parse("fail,pass,fail"),
        Ok(Expectations::LOADED)
    );
    assert!(Expectations::parse("fail,pass").is_err());
    assert!(Expectations::parse("fail,maybe,fail").is_err());
    let t = TestScript::new(PathBuf::from("x/cmdline-LOADED.test"), None);
    assert_eq!(t.map(|t| t.expect), Ok(Expectations::LOADED));
    let plain = TestScript::new(PathBuf::from("x/check.sh"), None);
    assert!(plain.is_err_and(|e| e.contains("--expect")));
    let given = Expectations::parse("pass,pass,pass").unwrap_or(Expectations::LOADED);
    let t = TestScript::new(PathBuf::from("x/a-LOADED.test"), Some(given));
    assert_eq!(t.map(|t| t.expect.before), Ok(Expect::Pass));
}

#[test]
fn kernel_modules_come_from_the_manifest() {
    let mut plan = plan_with_test();
    assert!(plan.kernel_modules().is_empty(), "vmlinux only");
    let manifest = &mut plan.bundles[0].manifest;
    manifest.target_modules = vec!["ext4".to_string(), "jbd2".to_string()];
    manifest.symbols[0].object = Some("mbcache".to_string());
    assert_eq!(plan.kernel_modules(), ["ext4", "jbd2", "mbcache"]);
}

#[test]
fn load_classes_follow_the_subsystem() {
    assert_eq!(load_classes("fs/proc/cmdline.o"), &["proc"]);
    assert_eq!(load_classes("fs/ext4/inode.o"), &["disk", "fs"]);
    assert_eq!(load_classes("fs/namei.o"), &["fs", "proc"]);
    assert_eq!(load_classes("net/ipv4/tcp.o"), &["net"]);
    assert_eq!(load_classes("drivers/net/tun.o"), &["net"]);
    assert_eq!(load_classes("lib/string.o"), BROAD_CLASSES);
    assert_eq!(load_classes("drivers/char/tpm/tpm-dev.o"), BROAD_CLASSES);
}

/// The classes of the corpus's subsystems: the exerciser that reaches
/// each kind of code is chosen by its directory alone.
#[test]
fn load_classes_pick_the_exercisers_of_each_subsystem() {
    let has = |object: &str, class: &str| load_classes(object).contains(&class);
    for (object, class) in [
        ("fs/notify/inotify/inotify_user.o", "fs"),
        ("fs/super.o", "fs"),
        ("fs/hugetlbfs/inode.o", "fs"),
        ("fs/sysfs/file.o", "sysfs"),
        ("fs/userfaultfd.o", "mm"),
        ("fs/ext4/namei.o", "disk"),
        ("mm/process_vm_access.o", "mm"),
        ("mm/swapfile.o", "mm"),
        ("kernel/time/posix-cpu-timers.o", "kernel"),
        ("kernel/time/clockevents.o", "hotplug"),
        ("kernel/cpu.o", "hotplug"),
        ("kernel/cpu.o", "sysfs"),
        ("kernel/futex/core.o", "kernel"),
        ("kernel/entry/common.o", "kernel"),
        ("kernel/cgroup/cpuset.o", "cgroup"),
        ("kernel/bpf/ringbuf.o", "bpf"),
        ("kernel/auditsc.o", "audit"),
        ("security/keys/gc.o", "keys"),
        ("crypto/rsa-pkcs1pad.o", "keys"),
        ("crypto/af_alg.o", "crypto"),
        ("block/blk-iocost.o", "block"),
        ("drivers/tty/vt/vt_ioctl.o", "tty"),
        ("drivers/acpi/acpica/dsmethod.o", "sysfs"),
        ("net/ipv4/arp.o", "net"),
        ("net/wireless/core.o", "wireless"),
        ("net/tipc/bearer.o", "tipc"),
        ("fs/exfat/nls.o", "disk"),
        ("fs/crypto/policy.o", "disk"),
    ] {
        assert!(has(object, class), "{object}: {:?}", load_classes(object));
    }
    // Exercisers that change what the whole guest shares only where the
    // directory asks for them.
    for object in [
        "fs/super.o",
        "mm/vmalloc.o",
        "net/ipv4/tcp_input.o",
        "lib/string.o",
    ] {
        for global in ["hotplug", "audit", "cgroup", "block", "tipc", "wireless"] {
            assert!(!has(object, global), "{object}: {global}");
        }
    }
    // Every class is one of load.sh's, and load.sh has a function for each.
    let load_sh = String::from_utf8_lossy(LOAD_SH);
    for class in ALL_CLASSES {
        assert!(
            load_sh.contains(&format!("\nload_{class}() {{")),
            "load.sh has no load_{class}"
        );
    }
}

#[test]
fn a_bundles_classes_keep_load_sh_order_and_bring_their_modules() {
    let mut plan = plan_with_test();
    let b = &mut plan.bundles[0];
    let mut second = b.manifest.replaced_functions[0].clone();
    second.object_file = "kernel/cpu.o".to_string();
    b.manifest.replaced_functions[0].object_file = "crypto/af_alg.o".to_string();
    b.manifest.replaced_functions.push(second);
    let classes = b.classes();
    let order: Vec<usize> = classes
        .iter()
        .map(|c| {
            ALL_CLASSES
                .iter()
                .position(|a| a == c)
                .unwrap_or(usize::MAX)
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{classes:?}");
    assert!(classes.contains(&"crypto") && classes.contains(&"hotplug"));
    assert_eq!(b.load_modules(), ["md_mod", "algif_skcipher", "algif_hash"]);
    assert_eq!(class_modules(&["net", "proc"]), Vec::<&str>::new());
    assert_eq!(
        class_modules(&["block", "disk"]),
        [
            "loop",
            "ext4",
            "nls_utf8",
            "nls_cp437",
            "nls_ascii",
            "null_blk"
        ]
    );
}

fn check(name: &str, status: Option<i32>, output: &str) -> CheckResult {
    CheckResult {
        name: name.to_string(),
        status,
        output: output.to_string(),
        seconds: Some(0.5),
    }
}

fn plan_with_test() -> Plan {
    let manifest = Manifest::example();
    Plan {
        target: Target {
            release: manifest.target.kernel_release.clone(),
            dir: PathBuf::from("/nonexistent"),
        },
        key: PathBuf::from("k.pub"),
        bundles: vec![BundleUnderTest {
            path: PathBuf::from("fix.bundle"),
            name: manifest.id.clone(),
            manifest,
            sha256: "ab".repeat(32),
            test: Some(TestScript {
                path: PathBuf::from("fix-LOADED.test"),
                expect: Expectations::LOADED,
            }),
        }],
        load: Load::Default,
        cpus: 2,
        step_timeout: Duration::from_secs(60),
        reach: Duration::from_secs(30),
        run_name: "t".to_string(),
        files: Vec::new(),
    }
}

/// A serial log with the given exit status of each of the seven
/// steps and the log step's output.
fn serial(id: &str, statuses: [i32; 7], log_output: &str, taint: u64) -> String {
    let steps = [
        "prepare", "before", "apply", "applied", "revert", "reverted", "log",
    ];
    let mut text = String::new();
    for (step, status) in steps.iter().zip(statuses) {
        let _ = writeln!(text, "@@SUTURE-CHECK-BEGIN {id}.{step}");
        if *step == "revert" {
            text.push_str("patchtest-reach-waited 3\npatchtest-load-rounds 7\npatchtest-hits cmdline_proc_show 12\n");
        }
        if *step == "log" {
            text.push_str(log_output);
        }
        let _ = writeln!(text, "@@SUTURE-CHECK-END {id}.{step} {status} 0.10");
    }
    let _ = writeln!(text, "@@SUTURE-TAINT {taint}\n@@SUTURE-DONE");
    text
}

fn judged(log: &str) -> ValidationReport {
    let plan = plan_with_test();
    let run = GuestRun::parse("t", log, "OE", Duration::ZERO, PathBuf::new());
    judge(&plan, &run, Duration::from_secs(1))
}

#[test]
fn fail_pass_fail_with_a_clean_log_passes() {
    let id = Manifest::example().id;
    let report = judged(&serial(
        &id,
        [0, 1, 0, 0, 0, 1, 0],
        "patchtest-taint 0 12288\n",
        12288,
    ));
    assert!(report.passed(), "{report:?}");
    let b = &report.bundles[0];
    // The evidence an auditor keeps: which bundle, for which kernel, when.
    assert_eq!(b.sha256, "ab".repeat(32));
    assert_eq!(b.target_build_id, Manifest::example().target.build_id);
    assert_eq!(b.created, "2023-11-14T22:13:20Z");
    assert_eq!(report.kernel_build_id, b.target_build_id);
    assert!(report.started_at <= report.finished_at, "{report:?}");
    assert_eq!(b.load_rounds, Some(7));
    assert_eq!(b.new_code_ran, ["cmdline_proc_show"]);
    assert!(b.new_code_not_reached.is_empty());
    assert_eq!(b.reach_waited, Some(3));
    assert_eq!(
        b.calls_under_load,
        vec![("cmdline_proc_show".to_string(), 12)]
    );
    assert_eq!(b.steps.len(), 7);
    assert!(b.steps.iter().all(|s| s.ok && s.seconds == Some(0.1)));
}

#[test]
fn a_test_that_still_fails_after_apply_fails_the_bundle() {
    let id = Manifest::example().id;
    let report = judged(&serial(
        &id,
        [0, 1, 0, 1, 0, 1, 0],
        "patchtest-taint 0 12288\n",
        12288,
    ));
    assert!(!report.passed());
    let reasons = &report.bundles[0].reasons;
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].starts_with("applied: the test failed with the bundle applied"));
}

#[test]
fn a_warning_and_new_taint_fail_the_bundle_not_the_guest() {
    let id = Manifest::example().id;
    let log =
        "patchtest-taint 0 12800\n[ 3.1] WARNING: CPU: 1 PID: 9 at fs/proc/cmdline.c:11 f+0x4d\n";
    let report = judged(&serial(&id, [0, 1, 0, 0, 0, 1, 1], log, 12800));
    assert!(!report.passed());
    let b = &report.bundles[0];
    assert_eq!(b.taint_gained, 512);
    assert!(
        b.reasons.iter().any(|r| r.contains("gained taint W")),
        "{:?}",
        b.reasons
    );
    assert!(
        b.reasons.iter().any(|r| r.contains("WARNING: CPU: 1")),
        "{:?}",
        b.reasons
    );
    assert!(
        report.guest_problems.is_empty(),
        "{:?}",
        report.guest_problems
    );
}

#[test]
fn a_guest_that_died_mid_step_fails_with_never_finished() {
    let id = Manifest::example().id;
    let log = format!("@@SUTURE-CHECK-BEGIN {id}.prepare\n@@SUTURE-CHECK-END {id}.prepare 0 0.1\n@@SUTURE-CHECK-BEGIN {id}.before\n[ 9.5] Kernel panic - not syncing: x\n");
    let report = judged(&log);
    assert!(!report.passed());
    let b = &report.bundles[0];
    assert!(
        b.reasons
            .iter()
            .any(|r| r.starts_with("before: never finished")),
        "{:?}",
        b.reasons
    );
    assert!(b.kernel_problems.iter().any(|p| p.contains("Kernel panic")));
    assert!(report
        .guest_problems
        .iter()
        .any(|p| p.contains("did not reach the end")));
}

#[test]
fn reasons_name_the_failed_expectation() {
    let c = check("x.applied", Some(1), "patchtest-test-status 1\n");
    let r = step_reason(Step::Applied, Expect::Pass, &c, false);
    assert!(r.contains("failed with the bundle applied"), "{r}");
    assert!(r.contains("does not do what the test checks"), "{r}");
    let c = check(
        "x.apply",
        Some(5),
        "patchd: error: rejected: bad signature\n",
    );
    let r = step_reason(Step::Apply, Expect::Pass, &c, false);
    assert_eq!(r, "apply: exit 5: patchd: error: rejected: bad signature");
    let c = check("x.revert", None, "");
    assert!(step_reason(Step::Revert, Expect::Pass, &c, false).contains("never finished"));
}

#[test]
fn new_code_the_load_did_not_reach_is_reported_not_failed() {
    let id = Manifest::example().id;
    let log = serial(
        &id,
        [0, 1, 0, 0, 0, 1, 0],
        "patchtest-taint 0 12288\n",
        12288,
    )
    .replace(
        "patchtest-hits cmdline_proc_show 12",
        "patchtest-hits cmdline_proc_show 0",
    );
    let report = judged(&log);
    assert!(report.passed(), "{report:?}");
    let b = &report.bundles[0];
    assert!(b.new_code_ran.is_empty());
    assert_eq!(b.new_code_not_reached, ["cmdline_proc_show"]);
    assert!(
        render(&report).contains(
            "new code ran: 0 of 1 function(s); not reached by the load: cmdline_proc_show"
        ),
        "{}",
        render(&report)
    );
}
