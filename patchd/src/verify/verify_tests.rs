//! Verification against the fake kernel: every refusal names its cause,
//! and nothing reaches the kernel either way.

use super::*;
use crate::fake_kernel::{FakeKernel, FAKE_BUILD_ID, FAKE_RELEASE};
use crate::kernel::running_identity;
use crate::testkit::{
    bundle_bytes, manifest, module_image_defining, patch_image, signing_key, stranger_key,
    KALLSYMS, PATCH_REPLACEMENT,
};

fn kernel() -> FakeKernel {
    FakeKernel::new(KALLSYMS).with_lockdown(Some("none"))
}

fn check(kernel: &FakeKernel, bytes: Vec<u8>) -> Result<VerifiedBundle, VerifyError> {
    let running = running_identity(kernel).expect("identity");
    let keys = [signing_key().verifying_key()];
    verify_bytes(kernel, &keys, &running, Path::new("in/fix.bundle"), bytes)
}

#[test]
fn a_good_bundle_gives_its_manifest_module_digest_and_signer() {
    let kernel = kernel();
    let bytes = bundle_bytes(&manifest("fix_a"), &signing_key());
    let bundle = check(&kernel, bytes.clone()).expect("verifies");
    assert_eq!(bundle.id(), "fix_a");
    assert_eq!(bundle.module(), patch_image("fix_a"));
    assert_eq!(bundle.bytes(), bytes);
    assert_eq!(bundle.sha256(), sha256_hex(&bytes));
    assert_eq!(
        bundle.signer_key_id(),
        suture_bundle::key_id(&signing_key().verifying_key())
    );
    let records = bundle.link_records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].symbol, "suture0_old__cmdline_proc_show");
    assert_eq!(records[0].name, "cmdline_proc_show");
    assert_eq!(records[0].local(), Some(true));
    assert!(kernel.changes().is_empty());
}

#[test]
fn any_flipped_byte_is_rejected_and_nothing_is_loaded() {
    let kernel = kernel();
    let bytes = bundle_bytes(&manifest("fix_a"), &signing_key());
    // Header, part table, manifest, signature, module: a byte of each.
    let manifest_at = 88 + 48 + 10;
    let signature_at = bytes.len() - patch_image("fix_a").len() - 10;
    let module_at = bytes.len() - 5;
    for at in [9, 100, manifest_at, signature_at, module_at] {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x01;
        let error = check(&kernel, flipped).expect_err("flipped");
        assert!(error.is_rejection(), "byte {at}: {error}");
    }
    for len in [0, 10, 200, bytes.len() - 1] {
        let error = check(&kernel, bytes[..len].to_vec()).expect_err("truncated");
        assert!(error.is_rejection(), "length {len}: {error}");
    }
    assert!(kernel.changes().is_empty());
}

#[test]
fn an_unknown_signer_is_rejected_naming_its_key_id() {
    let kernel = kernel();
    let error =
        check(&kernel, bundle_bytes(&manifest("fix_a"), &stranger_key())).expect_err("untrusted");
    let text = crate::error_text(&error);
    let stranger = suture_bundle::key_id(&stranger_key().verifying_key());
    assert!(
        text.contains(&stranger) && text.contains("not trusted"),
        "{text}"
    );
}

#[test]
fn a_bundle_for_another_kernel_names_both_kernels() {
    let kernel = kernel();
    let mut other_build = manifest("fix_a");
    other_build.target.build_id = "0123456789abcdef0123456789abcdef01234567".to_owned();
    let error = check(&kernel, bundle_bytes(&other_build, &signing_key())).expect_err("build-id");
    let text = error.to_string();
    assert!(
        matches!(error, VerifyError::WrongKernel(_))
            && text.contains("0123456789abcdef0123456789abcdef01234567")
            && text.contains(FAKE_BUILD_ID)
            && text.contains(FAKE_RELEASE),
        "{text}"
    );
    let mut other_release = manifest("fix_a");
    other_release.target.kernel_release = "6.1.0-54-amd64".to_owned();
    let error = check(&kernel, bundle_bytes(&other_release, &signing_key())).expect_err("release");
    assert!(error.to_string().contains("6.1.0-54-amd64"), "{error}");
    assert!(kernel.changes().is_empty());
}

#[test]
fn lockdown_is_named_before_anything_is_loaded() {
    let kernel = FakeKernel::new(KALLSYMS).with_lockdown(Some("integrity"));
    let error =
        check(&kernel, bundle_bytes(&manifest("fix_a"), &signing_key())).expect_err("lockdown");
    let text = crate::error_text(&error);
    assert!(text.contains("lockdown is `integrity`"), "{text}");

    // A module with nothing to link is still unsigned.
    let mut plain = manifest("plain");
    plain.symbols.clear();
    let bytes = suture_bundle::build(
        &plain,
        &module_image_defining("plain", &[], &[PATCH_REPLACEMENT]),
        &signing_key(),
    )
    .expect("bundle");
    let error = check(&kernel, bytes).expect_err("unsigned");
    assert!(
        matches!(error, VerifyError::Lockdown { ref source, .. }
            if matches!(**source, LoadError::LockdownUnsigned { .. })),
        "{error}"
    );
    assert!(kernel.changes().is_empty());
}

#[test]
fn a_module_named_otherwise_than_the_manifest_is_refused() {
    let kernel = kernel();
    let bytes = suture_bundle::build(&manifest("fix_a"), &patch_image("fix_b"), &signing_key())
        .expect("bundle");
    let error = check(&kernel, bytes).expect_err("inconsistent");
    assert!(
        matches!(error, VerifyError::ModuleName { ref module, .. } if module.as_deref() == Some("fix_b")),
        "{error}"
    );
}

#[test]
fn files_over_the_cap_are_refused_before_reading() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("huge.bundle");
    let file = std::fs::File::create(&path).expect("create");
    file.set_len(81 << 20).expect("sparse file");
    let kernel = kernel();
    let running = running_identity(&kernel).expect("identity");
    let error = verify_bundle(&kernel, &[signing_key().verifying_key()], &running, &path)
        .expect_err("too large");
    assert!(
        matches!(error, VerifyError::Read(FileError::TooLarge { .. })),
        "{error}"
    );
    // Exit 5 ("rejected"), as the documented table says.
    assert!(error.is_rejection(), "{error}");
}

/// Regression (issue #16): `verify` passed a bundle whose manifest named
/// symbols its module does not have; `apply` failed later.
#[test]
fn a_manifest_that_does_not_describe_its_module_is_rejected_naming_the_symbols() {
    let kernel = kernel();
    let mut records = manifest("fix_a");
    records.symbols[0].symbol = "suture0_old__not_in_the_module".to_owned();
    let mut replacements = manifest("fix_a");
    replacements.replaced_functions[0].new_name = "suture_new_elsewhere".to_owned();
    let mut both = records.clone();
    both.replaced_functions = replacements.replaced_functions.clone();
    let cases = [
        (records, vec!["suture0_old__not_in_the_module"], vec![]),
        (replacements, vec![], vec!["suture_new_elsewhere"]),
        (
            both,
            vec!["suture0_old__not_in_the_module"],
            vec!["suture_new_elsewhere"],
        ),
    ];
    for (manifest, want_records, want_replacements) in cases {
        let error = check(&kernel, bundle_bytes(&manifest, &signing_key())).expect_err("mismatch");
        let VerifyError::ManifestMismatch {
            ref records,
            ref replacements,
            ..
        } = error
        else {
            panic!("{error}");
        };
        assert_eq!(records, &want_records);
        assert_eq!(replacements, &want_replacements);
        assert!(error.is_rejection());
        let text = error.to_string();
        for name in want_records.iter().chain(&want_replacements) {
            assert!(text.contains(name), "{text}");
        }
    }
    assert!(kernel.changes().is_empty());
}

#[test]
fn a_signed_module_that_is_not_elf_is_rejected() {
    let kernel = kernel();
    let bytes = suture_bundle::build(&manifest("fix_a"), b"not an ELF file", &signing_key())
        .expect("bundle");
    let error = check(&kernel, bytes).expect_err("not ELF");
    assert!(matches!(error, VerifyError::Module { .. }), "{error}");
    assert!(error.is_rejection(), "{error}");
}

#[test]
fn claimed_facts_of_refused_bytes() {
    let bytes = bundle_bytes(&manifest("fix_a"), &stranger_key());
    let claimed = Claimed::of(&bytes);
    assert_eq!(claimed.id.as_deref(), Some("fix_a"));
    assert_eq!(claimed.sha256, Some(sha256_hex(&bytes)));
    assert_eq!(claimed.cves, ["CVE-2024-0001"]);
    let garbage = Claimed::of(b"not a bundle");
    assert_eq!(garbage.id, None);
    assert!(garbage.sha256.is_some());
}
