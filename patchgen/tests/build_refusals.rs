//! `patchgen build` on bad inputs, against the pinned target kernel's
//! cache: every one gets an error that names the cause and what to do,
//! and leaves the cached tree as it was.

mod common;

use common::{build_err, make_patch, request, target};
use patchgen::build::{self, BuildError, KernelTarget};

#[test]
fn fix_that_does_not_apply_names_the_patch() {
    let t = target();
    let tmp = tempfile::tempdir().expect("tmp");
    let patch = make_patch(&t, tmp.path(), "fs/proc/cmdline.c", |s| {
        s.replace("seq_putc", "seq_putc_x")
    });
    // Make the context lines wrong.
    let text = std::fs::read_to_string(&patch)
        .expect("read")
        .replace("saved_command_line", "other_line");
    std::fs::write(&patch, text).expect("write");
    let e = build_err(&t, &patch, tmp.path());
    assert!(matches!(e, BuildError::PatchDoesNotApply { .. }), "{e}");
    assert!(e.to_string().contains("does not apply"), "{e}");
}

#[test]
fn file_outside_the_build_is_named() {
    let t = target();
    let tmp = tempfile::tempdir().expect("tmp");
    let patch = make_patch(&t, tmp.path(), "arch/arm64/kernel/setup.c", |s| {
        s.replacen("{", "{ ", 1)
    });
    let e = build_err(&t, &patch, tmp.path());
    assert!(matches!(e, BuildError::OutsideBuild { .. }), "{e}");
    assert!(e.to_string().contains("arch/arm64/kernel/setup.c"), "{e}");
}

#[test]
fn build_configuration_changes_are_refused() {
    let t = target();
    let tmp = tempfile::tempdir().expect("tmp");
    let patch = make_patch(&t, tmp.path(), "fs/proc/Makefile", |s| {
        format!("{s}\n# touched\n")
    });
    let e = build_err(&t, &patch, tmp.path());
    assert!(matches!(e, BuildError::NotCode { .. }), "{e}");
}

#[test]
fn unpatchable_change_is_refused_with_the_differs_reason() {
    let t = target();
    let tmp = tempfile::tempdir().expect("tmp");
    // proc_cmdline_init is __init: it has run and been freed.
    let patch = make_patch(&t, tmp.path(), "fs/proc/cmdline.c", |s| {
        s.replace(
            "proc_create_single(\"cmdline\", 0,",
            "proc_create_single(\"cmdline\", 0444,",
        )
    });
    let e = build_err(&t, &patch, tmp.path());
    assert!(matches!(e, BuildError::Refused { .. }), "{e}");
    assert!(e.to_string().contains("init code"), "{e}");
}

#[test]
fn missing_kernel_cache_says_to_run_setup() {
    let e = KernelTarget::from_cache("6.1.0-999-amd64").expect_err("no such cache");
    assert!(
        e.to_string()
            .contains("scripts/setup --kernel 6.1.0-999-amd64"),
        "{e}"
    );
}

#[test]
fn compiler_mismatch_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    for d in ["src", "hdr"] {
        std::fs::create_dir_all(tmp.path().join(d)).expect("mkdir");
        std::fs::write(tmp.path().join(d).join("Makefile"), "").expect("write");
    }
    std::fs::write(
        tmp.path().join("src/.config"),
        "CONFIG_CC_VERSION_TEXT=\"gcc-12 (Debian 12.2.0-14) 12.1.0-not-this-one\"\n",
    )
    .expect("write");
    let e = KernelTarget::explicit(
        "6.1.0-50-amd64",
        None,
        "06f8bde30046985060c60820f7a11515a33afb06",
        &tmp.path().join("src"),
        &tmp.path().join("hdr"),
        None,
    )
    .expect_err("mismatch");
    assert!(matches!(e, BuildError::CompilerMismatch { .. }), "{e}");
    assert!(e.to_string().contains("12.1.0-not-this-one"), "{e}");
}

/// A fix that only adds a function nothing calls has nothing to redirect:
/// the error names the new function.
#[test]
fn only_new_functions_are_named_when_nothing_can_be_redirected() {
    let t = target();
    let tmp = tempfile::tempdir().expect("tmp");
    let patch = make_patch(&t, tmp.path(), "fs/proc/cmdline.c", |s| {
        format!("{s}\nint suture_test_unused(int x);\nint suture_test_unused(int x) {{ return x * 7; }}\n")
    });
    let err = build::build(&request(&t, &patch, &tmp.path().join("work")), &mut |_| {})
        .expect_err("nothing calls the new function");
    assert!(
        matches!(&err, BuildError::NothingToRedirect { new_functions } if new_functions.iter().any(|f| f.ends_with("suture_test_unused"))),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("fs/proc/cmdline.o: suture_test_unused"),
        "{err}"
    );
}

/// A fix whose source needs declarations from files it does not change
/// (a header): the error says so and names what the compiler missed.
#[test]
fn a_fix_missing_its_header_change_names_what_is_undeclared() {
    let t = target();
    let tmp = tempfile::tempdir().expect("tmp");
    let patch = make_patch(&t, tmp.path(), "fs/proc/cmdline.c", |s| {
        s.replace(
            "seq_putc(m, '\\n');",
            "seq_putc(m, SUTURE_TEST_NEWLINE + m->suture_test_member);",
        )
    });
    let err = build::build(&request(&t, &patch, &tmp.path().join("work")), &mut |_| {})
        .expect_err("the fix uses declarations it does not add");
    let BuildError::FixIncomplete { missing, .. } = &err else {
        panic!("expected FixIncomplete, got {err}");
    };
    assert!(
        missing.iter().any(|m| m == "SUTURE_TEST_NEWLINE"),
        "{missing:?}"
    );
    assert!(
        missing
            .iter()
            .any(|m| m == "member suture_test_member of struct seq_file"),
        "{missing:?}"
    );
    assert!(
        err.to_string().contains("lacks changes to other files"),
        "{err}"
    );
}
