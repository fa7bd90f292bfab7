//! What a state file may say, checked every time one is read: the ids
//! (the bundle crate's patch id rule, each recorded once), the names and
//! texts that `status` prints, the copies' paths and the times.
//!
//! `state.json` is root's and private, but it is still input: an id in it
//! becomes a module name that reconciling and reverting may unload, a path
//! a copy that may be removed, a time a date that is formatted. A file
//! edited by hand, damaged, or forged by someone who got to write it must
//! be refused with the field that is wrong, never acted on, and never
//! abort patchd at every start. This module only reads the state.

use suture_bundle::manifest::MAX_CREATED;
use suture_bundle::names::{
    is_build_id, is_cve_date, is_cve_id, is_description, is_kernel_release, is_patch_id,
    is_symbol_name,
};

use super::{BundleRecord, State, APPLIED_DIR};

/// Latest time accepted in the state (Unix seconds):
/// 9999-12-31T23:59:59Z, the last one RFC 3339 can write.
pub const MAX_STATE_TIME: u64 = MAX_CREATED;

/// A field of the state that does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidField {
    /// The field, e.g. `bundles[2].id`.
    pub field: String,
    /// Its value, quoted and escaped for display.
    pub value: String,
    /// What it must be.
    pub expected: &'static str,
}

const PATCH_ID: &str = "a patch id ([a-z0-9_], 1 to 48 bytes)";
const TIME: &str = "a Unix time before the year 10000";

/// Checks every field of `state` that patchd acts on or prints.
pub fn validate(state: &State) -> Result<(), InvalidField> {
    for (i, record) in state.bundles.iter().enumerate() {
        validate_record(i, record)?;
        if state.bundles[..i].iter().any(|other| other.id == record.id) {
            return Err(invalid(
                format!("bundles[{i}].id"),
                &record.id,
                "an id recorded once (it is recorded twice)",
            ));
        }
    }
    if let Some(open) = &state.open_transaction {
        time("open_transaction.started", open.started)?;
        for (list, ids) in [("reapplying", &open.reapplying), ("held", &open.held)] {
            for (i, id) in ids.iter().enumerate() {
                check(
                    format!("open_transaction.{list}[{i}]"),
                    id,
                    is_patch_id,
                    PATCH_ID,
                )?;
            }
        }
    }
    for id in state.highest_versions.keys() {
        check(
            format!("highest_versions.{}", shown(id)),
            id,
            is_patch_id,
            PATCH_ID,
        )?;
    }
    if let Some(boot) = &state.boot {
        let valid =
            |s: &str| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_graphic());
        check(
            "boot.id".to_owned(),
            &boot.id,
            valid,
            "a boot id (1 to 64 printable ASCII characters)",
        )?;
    }
    Ok(())
}

/// One bundle record.
fn validate_record(i: usize, record: &BundleRecord) -> Result<(), InvalidField> {
    let field = |name: &str| format!("bundles[{i}].{name}");
    check(field("id"), &record.id, is_patch_id, PATCH_ID)?;
    check(
        field("sha256"),
        &record.sha256,
        |s| s.len() == 64 && is_lower_hex(s),
        "a sha256 (64 lowercase hex digits)",
    )?;
    check(
        field("signer_key_id"),
        &record.signer_key_id,
        |s| (1..=64).contains(&s.len()) && is_lower_hex(s),
        "a key id (lowercase hex)",
    )?;
    if let Some(at) = record.applied_at {
        time(&field("applied_at"), at)?;
    }
    time(&field("updated_at"), record.updated_at)?;
    let copy = format!("{APPLIED_DIR}/{}.bundle", record.id);
    if record.bundle_file != copy {
        return Err(invalid(
            field("bundle_file"),
            &record.bundle_file,
            "the copy patchd writes for this id (applied/ID.bundle)",
        ));
    }
    validate_summary(&field("manifest"), record)
}

/// The manifest summary of a record: what `status` and the reports print.
fn validate_summary(prefix: &str, record: &BundleRecord) -> Result<(), InvalidField> {
    let summary = &record.manifest;
    let field = |name: &str| format!("{prefix}.{name}");
    check(
        field("description"),
        &summary.description,
        is_description,
        "printable text of at most 4096 bytes (newlines and tabs allowed)",
    )?;
    for (i, cve) in summary.cves.iter().enumerate() {
        check(field(&format!("cves[{i}]")), cve, is_cve_id, "a CVE id")?;
    }
    for (cve, date) in &summary.cve_published {
        check(
            field("cve_published"),
            cve,
            |cve| summary.cves.iter().any(|c| c == cve),
            "one of the bundle's CVE ids (cves)",
        )?;
        // `cve` is one of the checked CVE ids: safe to show as is.
        check(
            field(&format!("cve_published[{cve}]")),
            date,
            is_cve_date,
            "a calendar date YYYY-MM-DD of a year 1999 to 9999",
        )?;
    }
    check(
        field("target.kernel_release"),
        &summary.target.kernel_release,
        is_kernel_release,
        "a kernel release",
    )?;
    check(
        field("target.build_id"),
        &summary.target.build_id,
        is_build_id,
        "a GNU build-id",
    )?;
    for (list, names) in [
        ("functions", &summary.functions),
        ("skipped", &summary.skipped),
    ] {
        for (i, name) in names.iter().enumerate() {
            check(
                field(&format!("{list}[{i}]")),
                name,
                is_symbol_name,
                "a kernel symbol name",
            )?;
        }
    }
    for (i, dependency) in summary.dependencies.iter().enumerate() {
        check(
            field(&format!("dependencies[{i}]")),
            dependency,
            is_patch_id,
            PATCH_ID,
        )?;
    }
    time(&field("created"), summary.created)?;
    if let Some(fixes) = &summary.fixes_up_to {
        if fixes.validate(None).is_err() {
            return Err(invalid(
                field("fixes_up_to.version"),
                &fixes.version,
                "a Debian package version and kernel release",
            ));
        }
    }
    Ok(())
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn time(field: &str, secs: u64) -> Result<(), InvalidField> {
    if secs > MAX_STATE_TIME {
        return Err(invalid(field.to_owned(), &secs.to_string(), TIME));
    }
    Ok(())
}

fn check(
    field: String,
    value: &str,
    valid: impl Fn(&str) -> bool,
    expected: &'static str,
) -> Result<(), InvalidField> {
    if valid(value) {
        Ok(())
    } else {
        Err(invalid(field, value, expected))
    }
}

fn invalid(field: String, value: &str, expected: &'static str) -> InvalidField {
    InvalidField {
        field,
        value: shown(value),
        expected,
    }
}

/// A value for a message: quoted, escaped (no terminal control sequences
/// from an edited file), at most about 80 characters.
fn shown(value: &str) -> String {
    const MAX_CHARS: usize = 80;
    let mut out = String::from("`");
    for (i, c) in value.chars().enumerate() {
        if i == MAX_CHARS {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out.push('`');
    out
}
