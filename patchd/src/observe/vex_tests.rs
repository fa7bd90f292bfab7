//! The OpenVEX export.

use super::*;
use crate::observe::uname::KernelVersion;

fn uname() -> Uname {
    let running = KernelVersion {
        release: "6.1.0-50-amd64".to_owned(),
        version: "#1 SMP PREEMPT_DYNAMIC Debian 6.1.176-1 (2025-06-13)".to_owned(),
        package_version: Some("6.1.176-1".to_owned()),
    };
    Uname {
        sysname: "Linux".to_owned(),
        nodename: "server1".to_owned(),
        machine: "x86_64".to_owned(),
        effective: running.clone(),
        running,
        raised_by: None,
    }
}

fn fixed(cve: &str) -> FixedCve {
    FixedCve {
        cve: cve.to_owned(),
        bundle: "af_unix_fix".to_owned(),
        sha256: "ab".repeat(32),
        signer_key_id: "0123456789abcdef".to_owned(),
        applied_at: Some("2026-12-05T06:00:00Z".to_owned()),
    }
}

#[test]
fn the_running_kernel_is_its_image_package() {
    assert_eq!(
        kernel_purl(&uname()),
        "pkg:deb/debian/linux-image-6.1.0-50-amd64@6.1.176-1?arch=amd64"
    );
    let mut trixie = uname();
    trixie.running.release = "6.12.107+deb13-amd64".to_owned();
    trixie.running.package_version = Some("6.12.107-1".to_owned());
    assert_eq!(
        kernel_purl(&trixie),
        "pkg:deb/debian/linux-image-6.12.107%2Bdeb13-amd64@6.12.107-1?arch=amd64"
    );
}

#[test]
fn each_fixed_cve_is_a_fixed_statement_with_its_evidence() {
    let doc = openvex(
        &[fixed("CVE-2026-23394"), fixed("CVE-2026-0001")],
        &uname(),
        1_796_450_400,
        "suture patchd 0.1.0",
    );
    assert_eq!(doc["@context"], OPENVEX_CONTEXT);
    assert_eq!(doc["version"], 1);
    assert!(doc["@id"]
        .as_str()
        .is_some_and(|id| id.starts_with("urn:suture:vex:")));
    assert_eq!(doc["timestamp"], "2026-12-05T06:00:00Z");
    let statements = doc["statements"].as_array().expect("statements");
    assert_eq!(statements.len(), 2);
    let s = &statements[0];
    assert_eq!(s["vulnerability"]["name"], "CVE-2026-23394");
    assert_eq!(s["status"], "fixed");
    assert_eq!(
        s["products"][0]["@id"],
        "pkg:deb/debian/linux-image-6.1.0-50-amd64@6.1.176-1?arch=amd64"
    );
    let notes = s["status_notes"].as_str().expect("notes");
    assert!(
        notes.contains("af_unix_fix") && notes.contains(&"ab".repeat(32)),
        "{notes}"
    );
    // The same content, the same id; other content, another.
    let again = openvex(
        &[fixed("CVE-2026-23394"), fixed("CVE-2026-0001")],
        &uname(),
        5,
        "t",
    );
    assert_eq!(again["@id"], doc["@id"]);
    let other = openvex(&[fixed("CVE-2026-0001")], &uname(), 5, "t");
    assert_ne!(other["@id"], doc["@id"]);
}

#[test]
fn nothing_fixed_is_a_document_without_statements() {
    let doc = openvex(&[], &uname(), 0, "t");
    assert_eq!(doc["statements"].as_array().map(Vec::len), Some(0));
}
