//! patchtest, the validation command, on real bundles in the pinned
//! kernel under QEMU: the /proc/cmdline demo fix with its kpatch-style
//! `-LOADED.test` passes (fail, pass, fail; exit 0), and a wrong fix and a
//! fix whose new code WARNs both fail with their reason (exit 1).
//!
//! The bundles are built from vm-tests/fixes and patchtest/fixtures by
//! `patchgen build` and signed with the rig's test key. These tests need
//! the kernel cache (`scripts/setup`); without it they fail, never skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use vm_tests::modules::{build_bundle, test_key};
use vm_tests::{work_dir, workspace_root, Target};

/// One test at a time: they share the rig's key and build directory, and
/// two TCG guests on two cores would only slow both.
static SERIAL: Mutex<()> = Mutex::new(());

struct Fixture {
    key: PathBuf,
    bundles: Vec<PathBuf>,
}

/// Builds the bundles of `fixes` (paths under the workspace).
fn bundles(fixes: &[(&str, &str)]) -> Fixture {
    let target = Target::from_env().unwrap_or_else(|e| panic!("{e}"));
    let root = work_dir().join("build").join(&target.release);
    let (key, public) = test_key(&root).unwrap_or_else(|e| panic!("{e}"));
    let dir = root.join("patchtest");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let bundles = fixes
        .iter()
        .map(|(fix, name)| {
            build_bundle(&target, &workspace_root().join(fix), name, &key, &dir)
                .unwrap_or_else(|e| panic!("building {fix}: {e}"))
        })
        .collect();
    Fixture {
        key: public,
        bundles,
    }
}

/// Runs patchtest; returns its exit code, stdout and the JSON report.
fn patchtest(fixture: &Fixture, test: &Path, report: &Path) -> (i32, String, serde_json::Value) {
    // patchtest as installed takes patchd from SUTURE_PATCHD (or beside
    // it, where cargo test puts only a debug build if any): the test
    // builds the release patchd from the checkout, and works in the
    // checkout's target/.
    let patchd = vm_tests::qemu::build_patchd().unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_patchtest"));
    cmd.env("SUTURE_PATCHD", patchd)
        .env("SUTURE_WORK_DIR", work_dir().join("patchtest"));
    cmd.args(&fixture.bundles).arg("--key").arg(&fixture.key);
    for _ in &fixture.bundles {
        cmd.arg("--test").arg(test);
    }
    cmd.arg("--report").arg(report);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run patchtest: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(report)
        .unwrap_or_else(|e| panic!("no JSON report {}: {e}", report.display()));
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON report: {e}"));
    (out.status.code().unwrap_or(-1), stdout, json)
}

fn loaded_test() -> PathBuf {
    workspace_root().join("patchtest/fixtures/cmdline_demo-LOADED.test")
}

#[test]
fn vm_patchtest_demo_fix_fails_passes_fails_and_exits_0() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let fixture = bundles(&[("vm-tests/fixes/cmdline_demo.patch", "cmdline_demo")]);
    let report = work_dir().join("patchtest-demo.json");
    let (code, stdout, json) = patchtest(&fixture, &loaded_test(), &report);
    assert_eq!(code, 0, "patchtest did not pass the demo fix:\n{stdout}");
    assert_eq!(json["verdict"], "pass");
    let steps = json["bundles"][0]["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps in {json}"));
    let statuses: Vec<(String, i64)> = steps
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap_or("").to_string(),
                s["status"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    let want = |step: &str| statuses.iter().find(|(s, _)| s == step).map(|(_, c)| *c);
    assert_ne!(want("before"), Some(0), "the test passed before apply");
    assert_eq!(
        want("applied"),
        Some(0),
        "the test failed with the fix applied"
    );
    assert_ne!(want("reverted"), Some(0), "the test passed after revert");
    assert!(steps
        .iter()
        .all(|s| s["ok"] == true && s["seconds"].is_f64()));
    // The load reached the replaced function while it was switched.
    let calls = &json["bundles"][0]["calls_under_load"][0];
    assert_eq!(calls[0], "cmdline_proc_show");
    assert!(calls[1].as_u64().is_some_and(|n| n > 0), "{calls}");
    assert!(stdout.contains("validated 1 bundle(s) in"));
}

#[test]
fn vm_patchtest_wrong_fix_and_warning_fix_fail_with_their_reasons() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let fixture = bundles(&[
        ("patchtest/fixtures/cmdline_wrong.patch", "cmdline_wrong"),
        ("patchtest/fixtures/cmdline_warn.patch", "cmdline_warn"),
    ]);
    let report = work_dir().join("patchtest-bad.json");
    let (code, stdout, json) = patchtest(&fixture, &loaded_test(), &report);
    assert_eq!(code, 1, "patchtest did not fail the bad bundles:\n{stdout}");
    assert_eq!(json["verdict"], "fail");
    let reasons = |i: usize| -> String {
        assert_eq!(
            json["bundles"][i]["verdict"], "fail",
            "{}",
            json["bundles"][i]
        );
        json["bundles"][i]["reasons"].to_string()
    };
    let wrong = reasons(0);
    assert!(
        wrong.contains("the test failed with the bundle applied"),
        "{wrong}"
    );
    let warn = reasons(1);
    assert!(warn.contains("gained taint W"), "{warn}");
    assert!(
        warn.contains("WARNING:") && warn.contains("cmdline.c"),
        "{warn}"
    );
    // The WARN bundle's test passed: only the kernel log failed it.
    let steps = json["bundles"][1]["steps"].to_string();
    assert!(steps.contains("\"step\":\"applied\""), "{steps}");
    assert!(json["bundles"][1]["steps"][3]["ok"] == true, "{steps}");
}
