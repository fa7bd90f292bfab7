//! The daemon prefers the newest build of a bundle id (issue #16): offered
//! several versions at once it applies the highest, and an older one that
//! arrives later is skipped, never applied and never a failure.

use super::tests::{daemon, settings};
use crate::fake_kernel::FakeKernel;
use crate::testkit::{bundle_bytes, manifest, signing_key, TestHost};

fn drop_version(host: &TestHost, name: &str, id: &str, version: u64) {
    let mut manifest = manifest(id);
    manifest.bundle_version = version;
    manifest.description = format!("build {version}");
    let dir = host.path().join("watch");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join(name), bundle_bytes(&manifest, &signing_key())).expect("write");
}

#[test]
fn of_several_versions_offered_the_newest_is_applied() {
    let host = TestHost::new();
    let kernel: FakeKernel = TestHost::kernel();
    // By name, the old one would come first.
    drop_version(&host, "a_fix_a_v1.bundle", "fix_a", 1);
    drop_version(&host, "b_fix_a_v3.bundle", "fix_a", 3);
    drop_version(&host, "c_fix_a_v2.bundle", "fix_a", 2);
    let mut daemon = daemon(&host, &kernel, settings(&host));
    let summary = daemon.run_once().expect("runs");
    assert_eq!(summary.applied, ["fix_a"]);
    assert!(
        summary.is_clean(),
        "older versions are skipped: {summary:?}"
    );
    let state = super::tests::state_of(&host);
    let record = state.get("fix_a").expect("applied");
    assert_eq!(record.manifest.bundle_version, 3);
    assert_eq!(state.highest_version("fix_a"), 3);
    assert!(
        super::tests::audit_lines(&host)
            .iter()
            .all(|line| line.result == crate::transaction::audit::AuditResult::Ok),
        "no refusal was audited"
    );
}
