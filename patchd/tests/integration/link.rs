//! Linking objects compiled from C against a synthetic kallsyms.

use object::elf::{SHN_ABS, SHN_UNDEF};
use patchd::link::module_name;
use patchd::{
    link_module, undefined_symbols, Kallsyms, LinkError, LinkRecord, LinkedModule, ModuleImage,
    Resolved,
};

use crate::fixtures::{
    exported_only_module, kallsyms_text, kallsyms_with_duplicate, patch_module, sign, symtab,
    HIDDEN_COUNTER, HIDDEN_FUNC,
};

/// Reads `image` once and links it, as patchd does.
fn link(
    image: &[u8],
    kallsyms: &Kallsyms,
    records: &[LinkRecord],
) -> Result<LinkedModule, LinkError> {
    link_module(&ModuleImage::parse(image)?, kallsyms, records)
}

/// The symbols of `image` that patchd must link.
fn to_resolve(image: &[u8], kallsyms: &Kallsyms) -> Result<Vec<String>, LinkError> {
    ModuleImage::parse(image)?.to_resolve(kallsyms)
}

fn kallsyms() -> Kallsyms {
    Kallsyms::parse(&kallsyms_text()).expect("fixture kallsyms")
}

fn record(text: &str) -> LinkRecord {
    patchd::link::kallsyms::parse_symbol_arg(text).expect("valid record")
}

#[test]
fn lists_undefined_symbols_and_those_to_resolve() {
    let image = patch_module();
    let mut undefined = undefined_symbols(image).expect("valid object");
    undefined.sort();
    assert_eq!(
        undefined,
        [
            "exported_func",
            "hidden_counter",
            "hidden_func",
            "weak_missing"
        ]
    );
    let mut to_resolve = to_resolve(image, &kallsyms()).expect("valid object");
    to_resolve.sort();
    assert_eq!(
        to_resolve,
        ["hidden_counter", "hidden_func", "weak_missing"]
    );
    assert_eq!(
        module_name(image).expect("valid").as_deref(),
        Some("linktest")
    );
    assert_eq!(module_name(exported_only_module()).expect("valid"), None);
}

#[test]
fn hidden_symbols_become_absolute_and_nothing_else_changes() {
    let image = patch_module();
    let linked = link(image, &kallsyms(), &[]).expect("links");
    assert!(!linked.signature_stripped);
    let mut resolved = linked.resolved.clone();
    resolved.sort_by(|a, b| a.name.cmp(&b.name));
    let vmlinux = |name: &str, address| Resolved {
        name: name.to_owned(),
        address,
        object: "vmlinux".to_owned(),
    };
    assert_eq!(
        resolved,
        [
            vmlinux("hidden_counter", HIDDEN_COUNTER),
            vmlinux("hidden_func", HIDDEN_FUNC)
        ]
    );

    let before = symtab(image);
    let after = symtab(&linked.image);
    assert_eq!(after["hidden_func"].shndx, SHN_ABS);
    assert_eq!(after["hidden_func"].value, HIDDEN_FUNC);
    assert_eq!(after["hidden_counter"].shndx, SHN_ABS);
    assert_eq!(after["hidden_counter"].value, HIDDEN_COUNTER);
    // Exported: left for the kernel's loader. Weak and nowhere: left as 0.
    assert_eq!(after["exported_func"], before["exported_func"]);
    assert_eq!(after["exported_func"].shndx, SHN_UNDEF);
    assert_eq!(after["weak_missing"].shndx, SHN_UNDEF);

    // Byte-identical except st_shndx and st_value of the two entries.
    assert_eq!(linked.image.len(), image.len());
    let patched: Vec<std::ops::Range<usize>> = ["hidden_func", "hidden_counter"]
        .iter()
        .map(|name| before[*name].offset + 6..before[*name].offset + 16)
        .collect();
    for (offset, (old, new)) in image.iter().zip(&linked.image).enumerate() {
        if !patched.iter().any(|range| range.contains(&offset)) {
            assert_eq!(old, new, "byte {offset:#x} changed");
        }
    }
}

#[test]
fn signed_module_is_unsigned_when_rewritten() {
    let image = patch_module();
    let unsigned = link(image, &kallsyms(), &[]).expect("links");
    let signed = link(&sign(image), &kallsyms(), &[]).expect("links");
    assert!(signed.signature_stripped);
    assert_eq!(signed.image, unsigned.image);
    assert_eq!(signed.resolved, unsigned.resolved);
}

#[test]
fn module_needing_no_rewrite_keeps_its_signature() {
    let signed = sign(exported_only_module());
    let linked = link(&signed, &kallsyms(), &[]).expect("links");
    assert_eq!(linked.image, signed);
    assert!(linked.resolved.is_empty());
    assert!(!linked.signature_stripped);
}

#[test]
fn ambiguous_symbol_is_refused_then_selected_by_record() {
    let kallsyms = Kallsyms::parse(&kallsyms_with_duplicate()).expect("valid");
    let error = link(patch_module(), &kallsyms, &[]).expect_err("ambiguous");
    let message = error.to_string();
    assert!(matches!(error, LinkError::Ambiguous { .. }), "{error:?}");
    assert!(
        message.contains("hidden_func") && message.contains("other_mod"),
        "{message}"
    );

    for (text, address, object) in [
        ("hidden_func=vmlinux", HIDDEN_FUNC, "vmlinux"),
        (
            "hidden_func=other_mod,1",
            0xffff_ffff_c000_5000,
            "other_mod",
        ),
    ] {
        let linked = link(patch_module(), &kallsyms, &[record(text)]).expect(text);
        let found = linked
            .resolved
            .iter()
            .find(|r| r.name == "hidden_func")
            .expect("resolved");
        assert_eq!((found.address, found.object.as_str()), (address, object));
        assert_eq!(symtab(&linked.image)["hidden_func"].value, address);
    }
}

#[test]
fn records_must_name_a_referenced_unexported_symbol_once() {
    let k = kallsyms();
    type IsExpected = fn(&LinkError) -> bool;
    let cases: [(&[&str], IsExpected); 3] = [
        (&["hiden_func=vmlinux"], |e| {
            matches!(e, LinkError::UnusedRecord { .. })
        }),
        (&["exported_func=vmlinux"], |e| {
            matches!(e, LinkError::RecordForExported { .. })
        }),
        (&["hidden_func=vmlinux", "hidden_func=vmlinux,1"], |e| {
            matches!(e, LinkError::DuplicateRecord { .. })
        }),
    ];
    for (texts, expected) in cases {
        let records: Vec<LinkRecord> = texts.iter().map(|t| record(t)).collect();
        let error = link(patch_module(), &k, &records).expect_err("bad records");
        assert!(expected(&error), "{texts:?}: {error:?}");
        assert!(error
            .to_string()
            .contains(texts[0].split('=').next().unwrap_or("")));
    }
}

#[test]
fn unresolvable_symbol_is_an_error_naming_it() {
    let text = kallsyms_text().replace(" d hidden_counter\n", " d other_counter\n");
    let kallsyms = Kallsyms::parse(&text).expect("valid");
    let error = link(patch_module(), &kallsyms, &[]).expect_err("missing");
    assert!(matches!(&error, LinkError::NotFound { name } if name == "hidden_counter"));
    assert!(error.to_string().contains("loaded module"), "{error}");

    let error =
        link(patch_module(), &kallsyms, &[record("hidden_counter=ext4")]).expect_err("not in ext4");
    assert!(matches!(error, LinkError::NotInObject { .. }), "{error:?}");
}

#[test]
fn hidden_addresses_are_reported_not_linked() {
    let text: String = kallsyms_text()
        .lines()
        .map(|line| format!("0000000000000000{}\n", &line[16..]))
        .collect();
    let kallsyms = Kallsyms::parse(&text).expect("valid");
    let error = link(patch_module(), &kallsyms, &[]).expect_err("hidden");
    assert!(matches!(error, LinkError::AddressesHidden), "{error:?}");
    // The export rule still holds without addresses.
    assert!(kallsyms.is_exported("exported_func"));
}

/// A kernel without CONFIG_KALLSYMS_ALL lists no `__ksymtab_` entries: every
/// symbol would look unexported and be linked, so patchd must refuse.
#[test]
fn kallsyms_without_export_entries_is_refused() {
    let text: String = kallsyms_text()
        .lines()
        .filter(|line| !line.contains("__ksymtab_"))
        .map(|line| format!("{line}\n"))
        .collect();
    let kallsyms = Kallsyms::parse(&text).expect("valid");
    assert!(!kallsyms.lists_exports());
    for result in [
        link(patch_module(), &kallsyms, &[]).map(|_| ()),
        to_resolve(exported_only_module(), &kallsyms).map(|_| ()),
    ] {
        let error = result.expect_err("no export information");
        assert!(matches!(error, LinkError::NoExportInformation), "{error:?}");
        assert!(error.to_string().contains("CONFIG_KALLSYMS_ALL"));
    }
}
