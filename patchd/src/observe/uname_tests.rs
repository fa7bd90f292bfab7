//! The effective kernel version from the bundles enabled now.

use super::*;
use crate::observe::status::{test_bundle, test_status, BundleStatus};
use suture_bundle::FixesUpTo;

const DEBIAN_V: &str = "#1 SMP PREEMPT_DYNAMIC Debian 6.1.176-1 (2025-06-13)";

fn bundle(id: &str, state: &'static str, fixes: Option<(&str, Option<&str>)>) -> BundleStatus {
    BundleStatus {
        fixes_up_to: fixes.map(|(version, release)| FixesUpTo {
            version: version.to_owned(),
            release: release.map(str::to_owned),
        }),
        ..test_bundle(id, "applied", state)
    }
}

fn status(bundles: Vec<BundleStatus>) -> Status {
    test_status(bundles)
}

fn running(version: &str) -> KernelVersion {
    KernelVersion {
        release: "6.1.0-50-amd64".to_owned(),
        version: version.to_owned(),
        package_version: None,
    }
}

#[test]
fn the_newest_enabled_bundle_sets_the_effective_version() {
    let s = status(vec![
        bundle("a", "enabled", Some(("6.1.187-1", Some("6.1.0-53-amd64")))),
        bundle("b", "enabled", Some(("6.1.190-1", None))),
        // Not in effect: the kernel does not run it.
        bundle("c", "disabled", Some(("6.1.192-2", Some("6.1.0-56-amd64")))),
        bundle("d", "enabled", None),
    ]);
    let u = effective(
        &s.bundles,
        running(DEBIAN_V),
        "server1".to_owned(),
        "x86_64",
    );
    assert_eq!(u.running.package_version.as_deref(), Some("6.1.176-1"));
    assert_eq!(u.effective.package_version.as_deref(), Some("6.1.190-1"));
    assert_eq!(
        u.effective.version,
        "#1 SMP PREEMPT_DYNAMIC Debian 6.1.190-1 (2025-06-13)"
    );
    // b names no release: a's stays.
    assert_eq!(u.effective.release, "6.1.0-53-amd64");
    assert_eq!(u.raised_by.as_deref(), Some("b"));
    assert_eq!(
        u.all(),
        "Linux server1 6.1.0-53-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.190-1 (2025-06-13) x86_64 GNU/Linux"
    );
}

#[test]
fn without_a_newer_declared_version_the_running_kernel_stands() {
    for bundles in [
        vec![],
        vec![bundle("a", "enabled", None)],
        vec![bundle("a", "not loaded", Some(("6.1.190-1", None)))],
        // Older than the running kernel's own version.
        vec![bundle("a", "enabled", Some(("6.1.170-1", None)))],
    ] {
        let u = effective(
            &status(bundles).bundles,
            running(DEBIAN_V),
            "h".to_owned(),
            "x86_64",
        );
        assert_eq!(u.effective, u.running);
        assert_eq!(u.raised_by, None);
    }
}

#[test]
fn a_kernel_that_does_not_name_its_package_takes_the_declared_one() {
    let s = status(vec![bundle("a", "enabled", Some(("6.1.190-1", None)))]);
    let u = effective(
        &s.bundles,
        running("#1 SMP Tue Jan 1"),
        "h".to_owned(),
        "x86_64",
    );
    assert_eq!(u.running.package_version, None);
    assert_eq!(u.effective.package_version.as_deref(), Some("6.1.190-1"));
    assert_eq!(u.effective.version, "#1 SMP Tue Jan 1");
}
