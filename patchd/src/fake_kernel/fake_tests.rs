//! The fake kernel's own behaviour: recording, and the companion-module
//! simulation the apply/revert tests rely on.

use super::*;
use crate::kernel::running_identity;
use crate::testkit::{companion_image, module_image, patch_image};

#[test]
fn records_every_call_in_order() {
    let kernel = FakeKernel::new("ffffffff81000000 T _text\n")
        .with_lockdown(Some("none"))
        .with_loaded_modules(["suture"]);
    assert_eq!(
        kernel.lockdown().expect("lockdown").as_deref(),
        Some("none")
    );
    assert!(kernel.kallsyms().expect("kallsyms").contains("_text"));
    assert_eq!(kernel.loaded_modules().expect("modules"), ["suture"]);
    kernel.load_module(b"\x7fELF", "a=1").expect("load");
    assert_eq!(
        kernel.calls(),
        [
            KernelCall::Lockdown,
            KernelCall::Kallsyms,
            KernelCall::LoadedModules,
            KernelCall::LoadModule {
                image: b"\x7fELF".to_vec(),
                params: "a=1".to_owned(),
            },
        ]
    );
    assert_eq!(kernel.loaded_images(), [b"\x7fELF".to_vec()]);
}

#[test]
fn failing_load_maps_the_errno_and_still_records() {
    let kernel = FakeKernel::new("").failing_load_with(Errno::EKEYREJECTED);
    assert!(matches!(
        kernel.load_module(b"x", ""),
        Err(KernelError::SignatureRejected)
    ));
    assert_eq!(kernel.loaded_images().len(), 1);
}

#[test]
fn identity_defaults_to_the_fake_release_and_build_id() {
    let kernel = FakeKernel::new("");
    let identity = running_identity(&kernel).expect("identity");
    assert_eq!(identity.release, FAKE_RELEASE);
    assert_eq!(identity.build_id, FAKE_BUILD_ID);
    let other = FakeKernel::new("").with_identity("6.1.0-54-amd64", "abcdef01");
    let identity = running_identity(&other).expect("identity");
    assert_eq!(
        (identity.release.as_str(), identity.build_id.as_str()),
        ("6.1.0-54-amd64", "abcdef01")
    );
    let no_id = FakeKernel::new("").with_notes(Vec::new());
    assert!(matches!(
        running_identity(&no_id),
        Err(KernelError::NoBuildId { .. })
    ));
}

#[test]
fn a_patch_module_needs_the_companion_and_then_registers() {
    let kernel = FakeKernel::new("");
    assert!(matches!(
        kernel.load_module(&patch_image("fix_a"), ""),
        Err(KernelError::UnknownSymbol)
    ));
    assert_eq!(kernel.suture_patches().expect("read"), None);
    assert!(!kernel
        .kallsyms()
        .expect("read")
        .contains("suture_register_patch"));

    kernel
        .load_module(&companion_image(), "")
        .expect("companion");
    assert_eq!(kernel.suture_patches().expect("read"), Some(vec![]));
    assert!(kernel
        .kallsyms()
        .expect("read")
        .contains("__ksymtab_suture_register_patch"));
    kernel
        .load_module(&patch_image("fix_a"), "")
        .expect("patch");
    assert_eq!(kernel.modules_now(), ["suture", "fix_a"]);
    assert_eq!(kernel.patch_enabled("fix_a"), Some(false));
    assert!(matches!(
        kernel.load_module(&patch_image("fix_a"), ""),
        Err(KernelError::ModuleExists)
    ));
    let enabled = kernel
        .read_patch_attribute("fix_a", PatchAttribute::Enabled)
        .expect("read");
    assert_eq!(enabled.as_deref(), Some("0"));
}

#[test]
fn enabled_patches_and_a_busy_companion_cannot_be_unloaded() {
    let kernel = FakeKernel::new("")
        .with_loaded_modules(["suture"])
        .with_patch("fix_a", true);
    assert!(matches!(
        kernel.delete_module("fix_a"),
        Err(KernelError::ModuleInUse { .. })
    ));
    assert!(matches!(
        kernel.delete_module("suture"),
        Err(KernelError::ModuleInUse { .. })
    ));
    kernel.write_patch_enabled("fix_a", false).expect("disable");
    kernel.delete_module("fix_a").expect("unload");
    assert_eq!(kernel.patch_enabled("fix_a"), None);
    assert!(matches!(
        kernel.delete_module("fix_a"),
        Err(KernelError::ModuleNotLoaded { .. })
    ));
    kernel.delete_module("suture").expect("companion unloads");
    assert_eq!(kernel.suture_patches().expect("read"), None);
}

#[test]
fn busy_refusals_are_counted_named_and_then_stop() {
    let kernel = FakeKernel::new("")
        .with_loaded_modules(["suture"])
        .with_patch("fix_a", false)
        .busy_on_enable("fix_a", 2);
    for refusal in 1..=2u64 {
        assert!(matches!(
            kernel.write_patch_enabled("fix_a", true),
            Err(KernelError::Busy { enabled: true, .. })
        ));
        let count = kernel
            .read_patch_attribute("fix_a", PatchAttribute::BusyRefusals)
            .expect("read");
        assert_eq!(count, Some(refusal.to_string()));
        assert_eq!(kernel.patch_enabled("fix_a"), Some(false));
    }
    let last = kernel
        .read_patch_attribute("fix_a", PatchAttribute::LastBusy)
        .expect("read");
    assert_eq!(last.as_deref(), Some(FAKE_LAST_BUSY));
    kernel
        .write_patch_enabled("fix_a", true)
        .expect("third try");
    assert_eq!(kernel.patch_enabled("fix_a"), Some(true));
    // Writing the current state is a no-op and never refused.
    kernel.write_patch_enabled("fix_a", true).expect("no-op");
}

#[test]
fn injected_failures_and_unregistered_modules() {
    let kernel = FakeKernel::new("")
        .with_loaded_modules(["suture"])
        .failing_load_of("fix_b", Errno::ENOEXEC)
        .failing_switch_of("fix_c", true, Errno::EEXIST)
        .without_registration("plain");
    assert!(matches!(
        kernel.load_module(&patch_image("fix_b"), ""),
        Err(KernelError::NotAModule)
    ));
    kernel
        .load_module(&patch_image("fix_c"), "")
        .expect("loads");
    assert!(matches!(
        kernel.write_patch_enabled("fix_c", true),
        Err(KernelError::Switch {
            errno: Errno::EEXIST,
            ..
        })
    ));
    kernel
        .load_module(&module_image("plain", &[]), "")
        .expect("loads");
    assert_eq!(
        kernel.suture_patches().expect("read"),
        Some(vec!["fix_c".to_owned()])
    );
    assert!(matches!(
        kernel.write_patch_enabled("plain", true),
        Err(KernelError::PatchNotRegistered { .. })
    ));
    assert_eq!(
        kernel
            .changes()
            .iter()
            .filter(|c| matches!(c, KernelCall::LoadModule { .. }))
            .count(),
        3,
        "failed loads are recorded too"
    );
}

#[test]
fn a_reboot_empties_the_kernel_and_brings_a_new_boot_id() {
    let kernel = FakeKernel::new("")
        .with_loaded_modules(["suture"])
        .with_patch("fix_a", true);
    assert_eq!(kernel.boot_id().expect("boot id"), FAKE_BOOT_ID);
    kernel.reboot();
    assert!(kernel.modules_now().is_empty());
    assert_eq!(kernel.patch_enabled("fix_a"), None);
    assert_eq!(kernel.suture_patches().expect("sysfs"), None);
    assert_eq!(
        kernel.boot_id().expect("boot id"),
        "00000000-0000-0000-0000-000000000002"
    );
    kernel.set_boot_id(None);
    assert!(matches!(kernel.boot_id(), Err(KernelError::Read { .. })));
    let other = FakeKernel::new("").with_boot_id("b");
    assert_eq!(other.boot_id().expect("boot id"), "b");
    other.reboot();
    assert_eq!(other.boot_id().expect("boot id"), "00000000000c");
    assert!(FakeKernel::new("").without_boot_id().boot_id().is_err());
}

#[test]
fn a_patch_functions_file_follows_its_state() {
    let kernel = FakeKernel::new("")
        .with_loaded_modules(["suture"])
        .with_patch("fix_a", false)
        .with_patch("bare", true)
        .with_functions("fix_a", &["cmdline_proc_show", "proc_cmdline_init"])
        .with_ftrace_handler("fix_a", "proc_cmdline_init");
    let read = |patch| {
        kernel
            .read_patch_attribute(patch, PatchAttribute::Functions)
            .expect("read")
    };
    let paths = |patch| {
        read(patch)
            .unwrap_or_default()
            .lines()
            .map(|line| {
                let columns: Vec<&str> = line.split_whitespace().collect();
                assert_eq!(columns.len(), 9, "{line}");
                format!("{} {} {}", columns[0], columns[6], columns[8])
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        paths("fix_a"),
        ["cmdline_proc_show 0 -", "proc_cmdline_init 0 -"]
    );
    kernel.write_patch_enabled("fix_a", true).expect("enables");
    assert_eq!(
        paths("fix_a"),
        ["cmdline_proc_show 1 direct", "proc_cmdline_init 1 ftrace"]
    );
    assert_eq!(read("bare").as_deref(), Some(""), "no functions set");
    assert_eq!(read("absent"), None);
}
