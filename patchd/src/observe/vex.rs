//! `patchd cves`: the CVEs the running kernel is fixed for by live patches,
//! for vulnerability scanners and auditors.
//!
//! The export is an OpenVEX document (v0.2.0, <https://openvex.dev>): one
//! `fixed` statement per CVE of each bundle enabled in the kernel now, for
//! the product the scanners see, the running kernel's Debian image package
//! as a package URL (`pkg:deb/debian/linux-image-RELEASE@VERSION?arch=...`).
//! Grype (`grype --vex FILE`) and Trivy (`trivy ... --vex FILE`) read
//! OpenVEX and drop matches a `fixed` statement covers. The evidence of
//! each statement (bundle id, sha256, signer, when it was applied) is in
//! its `status_notes`. Only what the kernel runs counts: a bundle that is
//! recorded but not enabled fixes nothing.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::status::Status;
use super::uname::Uname;
use crate::clock::utc_rfc3339;

/// The OpenVEX context this document follows.
pub const OPENVEX_CONTEXT: &str = "https://openvex.dev/ns/v0.2.0";

/// One CVE fixed by a bundle enabled now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FixedCve {
    /// The CVE id.
    pub cve: String,
    /// The bundle that fixes it.
    pub bundle: String,
    /// sha256 of the bundle.
    pub sha256: String,
    /// Key id of its signer.
    pub signer_key_id: String,
    /// When it was applied (RFC 3339 UTC).
    pub applied_at: Option<String>,
}

/// Every CVE fixed by a bundle the kernel runs now, in the bundles' order.
pub fn fixed_cves(status: &Status) -> Vec<FixedCve> {
    status
        .bundles
        .iter()
        .filter(|b| b.kernel_state == "enabled")
        .flat_map(|b| {
            b.cves.iter().map(|cve| FixedCve {
                cve: cve.clone(),
                bundle: b.id.clone(),
                sha256: b.sha256.clone(),
                signer_key_id: b.signer_key_id.clone(),
                applied_at: b.applied_at_utc.clone(),
            })
        })
        .collect()
}

/// The package URL of the running kernel's image package.
pub fn kernel_purl(uname: &Uname) -> String {
    let arch = match uname.machine.as_str() {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let version = uname
        .running
        .package_version
        .as_deref()
        .map(|v| format!("@{}", v.replace(':', "%3A").replace('+', "%2B")))
        .unwrap_or_default();
    format!(
        "pkg:deb/debian/linux-image-{}{version}?arch={arch}",
        uname.running.release.replace('+', "%2B")
    )
}

/// The OpenVEX document for `cves` on the kernel `uname` describes, made
/// at `now` (Unix seconds) by `tooling`.
pub fn openvex(cves: &[FixedCve], uname: &Uname, now: u64, tooling: &str) -> serde_json::Value {
    let purl = kernel_purl(uname);
    let statements: Vec<serde_json::Value> = cves
        .iter()
        .map(|c| {
            serde_json::json!({
                "vulnerability": { "name": c.cve },
                "products": [ { "@id": purl, "identifiers": { "purl": purl } } ],
                "status": "fixed",
                "status_notes": format!(
                    "Fixed in the running kernel {} ({}) by the live patch {} (bundle sha256 {}, signed by key {}), applied {}; patchd saw it enabled in the kernel when this document was made.",
                    uname.running.release,
                    uname.nodename,
                    c.bundle,
                    c.sha256,
                    c.signer_key_id,
                    c.applied_at.as_deref().unwrap_or("at an unknown time"),
                ),
            })
        })
        .collect();
    // The document's id names its content, as OpenVEX's own tools do.
    let digest = Sha256::digest(serde_json::to_vec(&statements).unwrap_or_default());
    let id: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    serde_json::json!({
        "@context": OPENVEX_CONTEXT,
        "@id": format!("urn:suture:vex:{id}"),
        "author": format!("suture patchd on {}", uname.nodename),
        "timestamp": utc_rfc3339(now),
        "version": 1,
        "tooling": tooling,
        "statements": statements,
    })
}

#[cfg(test)]
#[path = "vex_tests.rs"]
mod tests;
