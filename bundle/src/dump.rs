//! What a bundle holds, for people and scripts: [`Inspection`] serializes as
//! JSON (`patchgen inspect --json`) and renders as a stable text dump
//! (`patchgen inspect`, golden tests). The text's line formats are part of
//! the interface: change them only with the golden files.
//!
//! Every string in a manifest is validated to a safe character set except
//! the description, whose control characters are refused; nothing printed
//! here can carry a terminal escape sequence.

use std::fmt::{self, Write as _};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::hex;
use crate::layout::FORMAT_VERSION;
use crate::manifest::{LinkRecord, Manifest};
use crate::read::{Unverified, Verified};

/// A bundle's layout, digests, signer and manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inspection {
    /// The bundle format version.
    pub format_version: u32,
    /// The bundle's size in bytes.
    pub size: u64,
    /// The sha256 of the whole bundle, hex.
    pub sha256: String,
    /// The key id of the signer the bundle names.
    pub signer_key_id: String,
    /// Whether the signature was checked against a trusted key. When false
    /// nothing here is authenticated: only the digests are checked.
    pub signature_verified: bool,
    /// The manifest's size in bytes.
    pub manifest_size: u64,
    /// The manifest's sha256, hex.
    pub manifest_sha256: String,
    /// The payload parts in table order.
    pub parts: Vec<PartSummary>,
    /// The manifest.
    pub manifest: Manifest,
}

/// One payload part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartSummary {
    /// The part's kind (`module`).
    pub kind: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its sha256, hex.
    pub sha256: String,
}

impl Unverified<'_> {
    /// The inspection of this bundle, marked as not verified.
    pub fn inspection(&self) -> Inspection {
        Inspection {
            format_version: FORMAT_VERSION,
            size: as_u64(self.bytes.len()),
            sha256: hex::encode(&Sha256::digest(self.bytes)),
            signer_key_id: self.signer_key_id(),
            signature_verified: false,
            manifest_size: as_u64(self.manifest_len),
            manifest_sha256: hex::encode(&self.manifest_sha256),
            parts: self
                .parts
                .iter()
                .map(|p| PartSummary {
                    kind: p.kind.as_str().to_owned(),
                    size: as_u64(p.bytes.len()),
                    sha256: hex::encode(&p.sha256),
                })
                .collect(),
            manifest: self.manifest.clone(),
        }
    }
}

impl Verified<'_> {
    /// The inspection of this bundle, marked as verified.
    pub fn inspection(&self) -> Inspection {
        Inspection {
            signature_verified: true,
            ..self.bundle.inspection()
        }
    }
}

fn as_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl fmt::Display for Inspection {
    /// The stable text dump.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_layout(f)?;
        writeln!(f)?;
        write_identity(f, &self.manifest)?;
        write_functions(f, &self.manifest)?;
        writeln!(f, "symbols: {}", self.manifest.symbols.len())?;
        for s in &self.manifest.symbols {
            writeln!(f, "{}", symbol_line(s))?;
        }
        Ok(())
    }
}

impl Inspection {
    /// The dump's first block: format, size, signature, manifest and parts.
    fn write_layout(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "suture bundle, format version {}", self.format_version)?;
        writeln!(f, "size: {} bytes, sha256 {}", self.size, self.sha256)?;
        if self.signature_verified {
            writeln!(
                f,
                "signature: verified, by trusted key {}",
                self.signer_key_id
            )?;
        } else {
            writeln!(
                f,
                "signature: NOT VERIFIED (names key {}; no trusted key was given)",
                self.signer_key_id
            )?;
        }
        writeln!(
            f,
            "manifest: {} bytes, sha256 {}",
            self.manifest_size, self.manifest_sha256
        )?;
        for part in &self.parts {
            writeln!(
                f,
                "part {}: {} bytes, sha256 {}",
                part.kind, part.size, part.sha256
            )?;
        }
        Ok(())
    }
}

/// What the patch is, which kernel it is for and who built it.
fn write_identity(f: &mut fmt::Formatter<'_>, m: &Manifest) -> fmt::Result {
    writeln!(f, "id: {}", m.id)?;
    if m.description.is_empty() {
        writeln!(f, "description: none")?;
    } else {
        writeln!(f, "description:")?;
        for line in m.description.lines() {
            writeln!(f, "  {line}")?;
        }
    }
    writeln!(f, "cves: {}", list_or_none(&m.cves))?;
    if !m.cve_published.is_empty() {
        // In the order of `cves`; every date is of one of them.
        let dates: Vec<String> = m
            .cves
            .iter()
            .filter_map(|cve| Some(format!("{cve} {}", m.cve_published.get(cve)?)))
            .collect();
        writeln!(f, "cves published: {}", dates.join(", "))?;
    }
    if let Some(fixes) = &m.fixes_up_to {
        match &fixes.release {
            Some(release) => writeln!(
                f,
                "fixes up to: kernel {} ({release}), for scanners",
                fixes.version
            )?,
            None => writeln!(f, "fixes up to: kernel {}, for scanners", fixes.version)?,
        }
    }
    writeln!(f, "target kernel: {}", m.target.kernel_release)?;
    writeln!(f, "target build-id: {}", m.target.build_id)?;
    writeln!(
        f,
        "target package: {}",
        m.target.package_version.as_deref().unwrap_or("none")
    )?;
    if !m.target_modules.is_empty() {
        writeln!(f, "target modules: {}", m.target_modules.join(" "))?;
    }
    if m.bundle_version != 0 {
        writeln!(f, "bundle version: {}", m.bundle_version)?;
    }
    writeln!(f, "created: {} ({})", m.created, utc_timestamp(m.created))?;
    writeln!(f, "patchgen version: {}", m.patchgen_version)?;
    writeln!(f, "kmod interface: {}", m.kmod_interface)?;
    writeln!(f, "dependencies: {}", list_or_none(&m.dependencies))
}

/// The replaced, new and skipped functions.
fn write_functions(f: &mut fmt::Formatter<'_>, m: &Manifest) -> fmt::Result {
    writeln!(f, "replaced functions: {}", m.replaced_functions.len())?;
    for r in &m.replaced_functions {
        writeln!(
            f,
            "  {} ({} bytes, {}) -> {}",
            r.old_name, r.old_size, r.object_file, r.new_name
        )?;
    }
    writeln!(f, "new functions: {}", m.new_functions.len())?;
    for n in &m.new_functions {
        writeln!(f, "  {} ({})", n.name, n.object_file)?;
    }
    if !m.skipped_functions.is_empty() {
        writeln!(
            f,
            "skipped functions (changed by the fix, left out by its author: NOT fixed by this bundle): {}",
            m.skipped_functions.len()
        )?;
        for n in &m.skipped_functions {
            writeln!(f, "  {} ({})", n.name, n.object_file)?;
        }
    }
    Ok(())
}

/// One symbol record's line: the symbol, what it resolves to and where.
fn symbol_line(s: &LinkRecord) -> String {
    let mut line = format!("  {}", s.symbol);
    if s.name != s.symbol {
        let _ = write!(line, " = {}", s.name);
    }
    let kind = s.kind.map_or("unknown kind", |k| k.as_str());
    let _ = write!(
        line,
        ": {kind} {}, in {}",
        s.binding.as_str(),
        s.object.as_deref().unwrap_or("any object")
    );
    if let Some(object_file) = &s.object_file {
        let _ = write!(line, " ({object_file})");
    }
    match s.sympos {
        Some(pos) => {
            let _ = write!(line, ", sympos {pos}");
        }
        None => line.push_str(", unique"),
    }
    if let Some(size) = s.size {
        let _ = write!(line, ", {size} bytes");
    }
    line
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(" ")
    }
}

/// `secs` since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian;
/// Howard Hinnant's days-to-civil). `secs` is at most
/// [`crate::manifest::MAX_CREATED`] in a valid manifest; larger values print
/// as a number only.
pub(crate) fn utc_timestamp(secs: u64) -> String {
    if secs > crate::manifest::MAX_CREATED {
        return "out of range".to_owned();
    }
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::utc_timestamp;
    use crate::{build, parse, Manifest, SigningKey};

    fn dump(manifest: &Manifest) -> String {
        let key = SigningKey::from_bytes(&[7; 32]);
        let bytes = build(manifest, b"\x7fELF", &key).expect("valid bundle");
        parse(&bytes).expect("parses").inspection().to_string()
    }

    #[test]
    fn target_modules_are_printed_only_when_there_are_some() {
        let mut manifest = Manifest::example();
        assert!(!dump(&manifest).contains("target modules"));
        manifest.target_modules = vec!["ext4".to_owned(), "jbd2".to_owned()];
        assert!(
            dump(&manifest).contains("\ntarget package: 6.1.176-1\ntarget modules: ext4 jbd2\n"),
            "{}",
            dump(&manifest)
        );
    }

    #[test]
    fn cve_publication_dates_are_printed_in_the_order_of_cves() {
        let mut manifest = Manifest::example();
        assert!(!dump(&manifest).contains("published"));
        // Not the map's (text) order: CVE-2024-10000 sorts first there.
        manifest.cves = vec!["CVE-2024-9999".to_owned(), "CVE-2024-10000".to_owned()];
        manifest.cve_published = [
            ("CVE-2024-9999", "2024-03-01"),
            ("CVE-2024-10000", "2024-02-29"),
        ]
        .map(|(c, d)| (c.to_owned(), d.to_owned()))
        .into();
        assert!(
            dump(&manifest).contains(
                "\ncves: CVE-2024-9999 CVE-2024-10000\n\
                 cves published: CVE-2024-9999 2024-03-01, CVE-2024-10000 2024-02-29\n\
                 target kernel:"
            ),
            "{}",
            dump(&manifest)
        );
    }

    #[test]
    fn utc_timestamps() {
        for (secs, text) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_700_000_000, "2023-11-14T22:13:20Z"),
            (1_709_251_199, "2024-02-29T23:59:59Z"),
            (4_107_542_400, "2100-03-01T00:00:00Z"),
            (253_402_300_799, "9999-12-31T23:59:59Z"),
        ] {
            assert_eq!(utc_timestamp(secs), text, "{secs}");
        }
        assert_eq!(utc_timestamp(253_402_300_800), "out of range");
    }
}
