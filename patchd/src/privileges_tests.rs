//! The refusal before kernel changes and the daemon's drop, against the
//! fake process (which refuses what the kernel refuses), and the real
//! process read without root.

use super::*;

fn set(capabilities: &[Capability]) -> CapsHashSet {
    capabilities.iter().copied().collect()
}

/// A process that has every capability but `CAP_SYS_MODULE`, as under
/// `setpriv --bounding-set -sys_module` or a unit without it.
fn without_sys_module() -> FakeCapabilities {
    let mut all = caps::all();
    all.remove(&Capability::CAP_SYS_MODULE);
    FakeCapabilities::with(FakeSets {
        effective: all.clone(),
        permitted: all.clone(),
        bounding: all,
        ..FakeSets::default()
    })
}

#[test]
fn kernel_changes_are_allowed_with_cap_sys_module() {
    require(&FakeCapabilities::root(), KERNEL_CHANGES, "patchd apply").expect("root may");
    let only = FakeCapabilities::with(FakeSets {
        effective: set(&[Capability::CAP_SYS_MODULE]),
        permitted: set(&[Capability::CAP_SYS_MODULE]),
        ..FakeSets::default()
    });
    require(&only, KERNEL_CHANGES, "patchd apply").expect("the one capability is enough");
}

#[test]
fn kernel_changes_are_refused_without_cap_sys_module_saying_what_to_do() {
    let error =
        require(&without_sys_module(), KERNEL_CHANGES, "patchd revert").expect_err("refused");
    assert!(matches!(&error, PrivilegeError::Missing { missing, .. }
        if missing.0 == [Capability::CAP_SYS_MODULE]));
    let text = error.to_string();
    assert!(
        text.starts_with("patchd revert changes the running kernel and needs CAP_SYS_MODULE")
            && text.contains("run it as root")
            && text.contains("AmbientCapabilities=CAP_SYS_MODULE"),
        "{text}"
    );
    // Permitted but not effective is not enough: the kernel checks effective.
    let latent = FakeCapabilities::with(FakeSets {
        permitted: set(&[Capability::CAP_SYS_MODULE]),
        ..FakeSets::default()
    });
    assert!(require(&latent, KERNEL_CHANGES, "patchd apply").is_err());
}

#[test]
fn the_daemon_keeps_exactly_what_it_needs() {
    let process = FakeCapabilities::root();
    drop_to(&process, DAEMON_CAPABILITIES).expect("drops");
    let keep = set(DAEMON_CAPABILITIES);
    let sets = process.sets();
    assert_eq!(sets.effective, keep);
    assert_eq!(sets.permitted, keep);
    assert_eq!(sets.bounding, keep);
    assert!(sets.inheritable.is_empty() && sets.ambient.is_empty());
    assert!(sets.no_new_privs);
    // What is gone cannot come back.
    assert!(process
        .set(CapSet::Effective, &set(&[Capability::CAP_DAC_OVERRIDE]))
        .is_err());
    require(&process, KERNEL_CHANGES, "patchd daemon").expect("still may change the kernel");
}

#[test]
fn ambient_and_inheritable_capabilities_are_cleared() {
    let all = caps::all();
    let process = FakeCapabilities::with(FakeSets {
        effective: all.clone(),
        permitted: all.clone(),
        bounding: all,
        inheritable: set(&[Capability::CAP_NET_ADMIN, Capability::CAP_SYS_MODULE]),
        ambient: set(&[Capability::CAP_NET_ADMIN]),
        no_new_privs: false,
    });
    drop_to(&process, KERNEL_CHANGES).expect("drops");
    let sets = process.sets();
    assert!(sets.inheritable.is_empty() && sets.ambient.is_empty());
    assert_eq!(sets.permitted, set(KERNEL_CHANGES));
}

#[test]
fn a_capability_it_does_not_have_cannot_be_kept_and_nothing_changes() {
    let process = without_sys_module();
    let before = process.sets();
    let error = drop_to(&process, DAEMON_CAPABILITIES).expect_err("cannot keep");
    assert!(
        error.to_string().starts_with("cannot keep CAP_SYS_MODULE"),
        "{error}"
    );
    assert_eq!(process.sets(), before);
}

#[test]
fn a_second_thread_stops_the_drop_before_anything_changes() {
    let process = FakeCapabilities::root().with_threads(2);
    let error = drop_to(&process, DAEMON_CAPABILITIES).expect_err("threads");
    assert!(
        matches!(error, PrivilegeError::Threads { threads: 2 }),
        "{error}"
    );
    assert_eq!(process.sets(), FakeCapabilities::root().sets());
}

#[test]
fn without_cap_setpcap_an_oversized_bounding_set_is_an_error() {
    let keep = set(DAEMON_CAPABILITIES);
    let process = FakeCapabilities::with(FakeSets {
        effective: keep.clone(),
        permitted: keep,
        bounding: caps::all(),
        ..FakeSets::default()
    });
    let error = drop_to(&process, DAEMON_CAPABILITIES).expect_err("no CAP_SETPCAP");
    let text = crate::error_text(&error);
    assert!(
        text.contains("from the bounding set (that needs CAP_SETPCAP)"),
        "{text}"
    );
}

#[test]
fn a_bounding_set_already_small_needs_no_cap_setpcap() {
    // As under a systemd unit with CapabilityBoundingSet=CAP_SYS_MODULE CAP_SYSLOG.
    let keep = set(DAEMON_CAPABILITIES);
    let process = FakeCapabilities::with(FakeSets {
        effective: keep.clone(),
        permitted: keep.clone(),
        bounding: keep.clone(),
        ..FakeSets::default()
    });
    drop_to(&process, DAEMON_CAPABILITIES).expect("drops");
    assert_eq!(process.sets().effective, keep);
}

#[test]
fn the_fake_refuses_what_the_kernel_refuses() {
    let process = FakeCapabilities::with(FakeSets {
        effective: set(&[Capability::CAP_SYSLOG]),
        permitted: set(&[Capability::CAP_SYSLOG, Capability::CAP_SYS_MODULE]),
        bounding: caps::all(),
        ..FakeSets::default()
    });
    let eperm = |result: io::Result<()>| {
        result.expect_err("refused").raw_os_error() == Some(nix::libc::EPERM)
    };
    // Effective beyond permitted; permitted growing or below effective.
    assert!(eperm(
        process.set(CapSet::Effective, &set(&[Capability::CAP_CHOWN]))
    ));
    assert!(eperm(process.set(CapSet::Permitted, &caps::all())));
    assert!(eperm(
        process.set(CapSet::Permitted, &set(&[Capability::CAP_SYS_MODULE]))
    ));
    // The bounding set without CAP_SETPCAP.
    assert!(eperm(process.drop_bounding(Capability::CAP_CHOWN)));
    // Narrowing in the right order works.
    process
        .set(CapSet::Effective, &CapsHashSet::new())
        .expect("lower effective");
    process
        .set(CapSet::Permitted, &CapsHashSet::new())
        .expect("then permitted");
}

#[test]
fn capability_lists_read_in_kernel_order() {
    let list = CapabilityList::of(&[Capability::CAP_SYSLOG, Capability::CAP_SYS_MODULE]);
    assert_eq!(list.to_string(), "CAP_SYS_MODULE, CAP_SYSLOG");
}

#[test]
fn the_real_process_reads_its_effective_set_as_proc_says() {
    // Read-only, so it runs as anyone: the answer must match CapEff.
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let cap_eff = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .expect("CapEff line");
    let mask = u64::from_str_radix(cap_eff.trim(), 16).expect("hex");
    let has = mask & Capability::CAP_SYS_MODULE.bitmask() != 0;
    let real = RealCapabilities;
    assert_eq!(require(&real, KERNEL_CHANGES, "patchd apply").is_ok(), has);
    assert!(real.threads().expect("threads") >= 1);
}
