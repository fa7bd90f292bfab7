//! Loading through the recording fake kernel: what reaches `init_module`,
//! and that every refusal happens before it.

use nix::errno::Errno;
use patchd::{
    link_module, load_module, FakeKernel, Kallsyms, KernelCall, KernelError, LinkError, LinkRecord,
    LoadError, LoadReport, ModuleImage,
};

use crate::fixtures::{
    exported_only_module, kallsyms_text, kallsyms_with_duplicate, patch_module, sign,
};

/// Reads `image` once and loads it, as patchd does.
fn load(
    kernel: &FakeKernel,
    image: &[u8],
    params: &str,
    records: &[LinkRecord],
) -> Result<LoadReport, LoadError> {
    let module = ModuleImage::parse(image).map_err(LoadError::Link)?;
    load_module(kernel, &module, params, records)
}

fn no_load(kernel: &FakeKernel) {
    let calls = kernel.calls();
    assert!(
        !calls
            .iter()
            .any(|call| matches!(call, KernelCall::LoadModule { .. })),
        "the kernel was changed: {calls:?}"
    );
}

#[test]
fn loads_the_linked_image_with_its_params() {
    let kernel = FakeKernel::new(kallsyms_text()).with_lockdown(Some("none"));
    let image = sign(patch_module());
    let report = load(&kernel, &image, "debug=1 name=x", &[]).expect("loads");

    let kallsyms = Kallsyms::parse(&kallsyms_text()).expect("valid");
    let module = ModuleImage::parse(&image).expect("a module");
    let linked = link_module(&module, &kallsyms, &[]).expect("links");
    assert_eq!(
        kernel.calls(),
        [
            KernelCall::Kallsyms,
            KernelCall::Lockdown,
            KernelCall::LoadModule {
                image: linked.image,
                params: "debug=1 name=x".to_owned(),
            },
        ]
    );
    assert!(report.linked && report.signature_stripped);
    assert_eq!(report.module_name.as_deref(), Some("linktest"));
    assert_eq!(report.resolved, linked.resolved);
}

#[test]
fn missing_lockdown_file_is_no_lockdown() {
    let kernel = FakeKernel::new(kallsyms_text()).with_lockdown(None);
    let report = load(&kernel, patch_module(), "", &[]).expect("loads");
    assert_eq!(report.resolved.len(), 2);
    assert_eq!(kernel.loaded_images().len(), 1);
}

#[test]
fn lockdown_refuses_a_module_that_needs_linking_before_loading() {
    for mode in ["integrity", "confidentiality"] {
        let kernel = FakeKernel::new(kallsyms_text()).with_lockdown(Some(mode));
        let error = load(&kernel, &sign(patch_module()), "", &[]).expect_err("lockdown");
        let LoadError::Lockdown {
            mode: seen,
            symbols,
        } = &error
        else {
            panic!("unexpected error {error:?}");
        };
        assert_eq!(seen, mode);
        assert!(symbols.contains(&"hidden_func".to_owned()));
        let message = error.to_string();
        assert!(
            message.contains("boot without lockdown") && message.contains(mode),
            "{message}"
        );
        no_load(&kernel);
    }
}

#[test]
fn module_needing_no_link_loads_unchanged_even_under_lockdown() {
    let kernel = FakeKernel::new(kallsyms_text()).with_lockdown(Some("integrity"));
    let signed = sign(exported_only_module());
    let report = load(&kernel, &signed, "", &[]).expect("loads");
    assert!(!report.linked && !report.signature_stripped);
    assert!(report.resolved.is_empty());
    assert_eq!(kernel.loaded_images(), [signed]);
    assert!(!kernel.calls().contains(&KernelCall::Lockdown));
}

#[test]
fn link_errors_leave_the_kernel_untouched() {
    let kernel = FakeKernel::new(kallsyms_with_duplicate()).with_lockdown(Some("none"));
    let error = load(&kernel, patch_module(), "", &[]).expect_err("ambiguous");
    assert!(
        matches!(error, LoadError::Link(LinkError::Ambiguous { .. })),
        "{error:?}"
    );
    no_load(&kernel);

    let record = patchd::link::kallsyms::parse_symbol_arg("hidden_func=other_mod").expect("record");
    load(&kernel, patch_module(), "", &[record]).expect("record selects");
    assert_eq!(kernel.loaded_images().len(), 1);

    let kernel = FakeKernel::new(kallsyms_text());
    let typo = patchd::link::kallsyms::parse_symbol_arg("hiden_func=vmlinux").expect("record");
    let error = load(&kernel, exported_only_module(), "", &[typo]).expect_err("typo");
    assert!(
        matches!(error, LoadError::Link(LinkError::UnusedRecord { .. })),
        "{error:?}"
    );
    no_load(&kernel);

    let kernel = FakeKernel::new(kallsyms_text());
    let error = load(&kernel, b"not a module", "", &[]).expect_err("not ELF");
    assert!(
        matches!(error, LoadError::Link(LinkError::NotElf)),
        "{error:?}"
    );
    assert!(kernel.calls().is_empty());
}

#[test]
fn kernel_refusals_are_explained() {
    let cases = [
        (Errno::EEXIST, "already loaded"),
        (Errno::EPERM, "CAP_SYS_MODULE"),
        (Errno::EKEYREJECTED, "signature"),
        (Errno::ENOEXEC, "vermagic"),
        (Errno::ENOENT, "dmesg"),
        (Errno::EINVAL, "dmesg"),
    ];
    for (errno, hint) in cases {
        let kernel = FakeKernel::new(kallsyms_text()).failing_load_with(errno);
        let error = load(&kernel, patch_module(), "", &[]).expect_err("refused");
        let LoadError::Load(cause) = &error else {
            panic!("{errno}: unexpected error {error:?}");
        };
        assert!(cause.to_string().contains(hint), "{errno}: {cause}");
        if errno == Errno::EINVAL {
            assert!(matches!(
                cause,
                KernelError::Load {
                    errno: Errno::EINVAL
                }
            ));
        }
    }
}
