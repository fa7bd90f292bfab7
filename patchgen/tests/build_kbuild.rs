//! What `patchgen build` learns of the target from kbuild and its
//! headers, against the pinned target kernel's cache: the objects it
//! builds and what each reads, the special sections' entry sizes, and
//! parallel builds sharing the cached tree.

mod common;

use std::path::Path;

use common::{make_patch, request, target};
use patchgen::build;

/// What the target builds comes from kbuild's own dry run: the cases a
/// makefile reader got wrong are right.
#[test]
fn the_kbuild_record_says_what_the_target_builds() {
    use patchgen::build::kbuild::{normalize, Record};
    let t = target();
    let record = Record::load(&t, &mut |_| {}).unwrap_or_else(|e| panic!("{e}"));
    let built = |src: &str| -> Vec<(String, bool)> {
        record
            .compiled_from(Path::new(src))
            .iter()
            .map(|b| (normalize(&b.object).display().to_string(), b.module))
            .collect()
    };
    for (src, object, module) in [
        ("fs/proc/cmdline.c", "fs/proc/cmdline.o", false),
        ("kernel/fork.c", "kernel/fork.o", false),
        ("net/ipv4/tcp.c", "net/ipv4/tcp.o", false),
        // a composite object listed with its subdirectory in the parent
        (
            "security/selinux/ss/policydb.c",
            "security/selinux/ss/policydb.o",
            false,
        ),
        // obj-$(subst m,y,$(CONFIG_HYPERV)) in arch/x86/Kbuild
        (
            "arch/x86/hyperv/hv_init.c",
            "arch/x86/hyperv/hv_init.o",
            false,
        ),
        // obj-$(subst m,y,$(CONFIG_VLAN_8021Q))
        ("net/8021q/vlan_core.c", "net/8021q/vlan_core.o", false),
        // built from another directory's makefile, into a module
        ("virt/kvm/kvm_main.c", "virt/kvm/kvm_main.o", true),
        (
            "drivers/gpu/drm/nouveau/nouveau_drm.c",
            "drivers/gpu/drm/nouveau/nouveau_drm.o",
            true,
        ),
    ] {
        assert_eq!(built(src), [(object.to_string(), module)], "{src}");
    }
    // Not compiled on their own: another architecture's, and a file that
    // another one includes.
    assert!(built("arch/arm64/kernel/setup.c").is_empty());
    assert!(built("kernel/sched/rt.c").is_empty());
    // A C file compiled on its own and #included by another, found
    // without the dependency record.
    let includers: Vec<String> = record
        .includers_of(&t, Path::new("fs/binfmt_elf.c"))
        .into_iter()
        .filter_map(|i| record.objects.get(i))
        .map(|b| normalize(&b.object).display().to_string())
        .collect();
    assert!(
        includers.iter().any(|o| o == "fs/compat_binfmt_elf.o"),
        "{includers:?}"
    );
    let deps = record
        .deps(&t, &mut |_| {})
        .unwrap_or_else(|e| panic!("{e}"));
    let readers = |file: &str| -> Vec<String> {
        deps.objects_reading(Path::new(file))
            .into_iter()
            .filter_map(|i| record.objects.get(i))
            .map(|b| normalize(&b.object).display().to_string())
            .collect()
    };
    assert_eq!(
        readers("kernel/sched/rt.c"),
        ["kernel/sched/build_policy.o"]
    );
    assert_eq!(
        readers("kernel/sched/psi.c"),
        ["kernel/sched/build_utility.o"]
    );
    assert!(readers("arch/arm64/kernel/setup.c").is_empty());
    let seq_file = readers("include/linux/seq_file.h");
    assert!(
        seq_file.len() > 1000 && seq_file.iter().any(|o| o == "fs/proc/cmdline.o"),
        "{} readers of seq_file.h",
        seq_file.len()
    );
}

/// The special-section entry sizes come from the target's own headers; for
/// Debian 6.1 x86-64 they are the structures' known sizes.
#[test]
fn entry_sizes_are_measured_in_the_target_headers() {
    let t = target();
    let tmp = tempfile::tempdir().expect("tmp");
    let sizes = patchgen::build::entry_sizes::from_headers(
        &t,
        t.line().expect("a supported line"),
        tmp.path(),
    )
    .expect("measure");
    for (section, want) in [
        ("__bug_table", 12),
        ("__ex_table", 12),
        ("__jump_table", 16),
        (".altinstructions", 12),
        (".static_call_sites", 8),
        (".parainstructions", 16),
        (".orc_unwind", 6),
        ("__mcount_loc", 8),
        (".return_sites", 4),
    ] {
        assert_eq!(sizes.get(section), Some(want), "{section}");
    }
}

/// Two builds of a fix to an object the cache has never built, started at
/// the same moment: both record the object's command with kbuild in the
/// shared tree and need the record of what the target builds, and neither
/// may see the other's half-written files.
#[test]
fn parallel_builds_of_a_never_built_object_both_succeed() {
    let t = target();
    let rel = "fs/proc/version.c";
    // Forget the object, as a fresh cache has never built it, and the
    // record of what the target builds (both builds make it, one waits).
    for f in [
        "fs/proc/version.o",
        "fs/proc/.version.o.cmd",
        ".suture-kbuild/objects",
    ] {
        let _ = std::fs::remove_file(t.source.join(f));
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let start = std::sync::Arc::new(std::sync::Barrier::new(2));
    let builds: Vec<_> = (0..2)
        .map(|i| {
            let (t, start) = (t.clone(), start.clone());
            let dir = tmp.path().join(format!("build{i}"));
            std::thread::spawn(move || {
                std::fs::create_dir_all(&dir).expect("mkdir");
                let patch = make_patch(&t, &dir, rel, |s| {
                    s.replacen("return 0;", "seq_putc(m, ' ');\n\treturn 0;", 1)
                });
                let mut req = request(&t, &patch, &dir.join("work"));
                req.name = format!("test_parallel{i}");
                start.wait();
                build::build(&req, &mut |_| {}).map(|_| ())
            })
        })
        .collect();
    for (i, b) in builds.into_iter().enumerate() {
        let result = b.join().expect("the build thread panicked");
        assert!(
            result.is_ok(),
            "build {i} failed: {}",
            result.err().map(|e| e.to_string()).unwrap_or_default()
        );
    }
    assert!(t.source.join("fs/proc/.version.o.cmd").is_file());
}
