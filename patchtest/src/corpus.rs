//! The real-fix corpus: changes from Debian's 6.1 stable updates, each
//! built by `patchgen build` into a signed bundle for the pinned kernel or
//! refused with a reason, and every built bundle validated by patchtest in
//! one guest boot (applied and reverted under load, its test where the fix
//! has a visible effect, a clean kernel log).
//!
//! The list is `tests/real-fixes/livepatch.txt`, one fix a line:
//!
//! ```text
//! PATCH | expect | test | note
//! ```
//!
//! `PATCH` is a one-file patch in `tests/real-fixes/patches/`; `expect` is
//! `applies` or `refused=CATEGORY` (see [`category`]); `test` names a
//! kpatch-style `NAME-LOADED.test` in `tests/real-fixes/tests/` or is
//! empty. The table compares what happened with what the list expects.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use patchgen::build::{BuildError, KernelTarget};

use crate::validate::{BundleReport, ValidationReport};
use vm_tests::{io_err, workspace_root, HarnessError, Result};

/// What the list expects of a fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// Built, applied and reverted cleanly.
    Applies,
    /// Refused by patchgen with this category.
    Refused(String),
}

/// One line of the list.
#[derive(Debug, Clone)]
pub struct Fix {
    /// The patch file name in tests/real-fixes/patches/.
    pub patch: String,
    /// What should happen.
    pub expected: Expected,
    /// The test script name in tests/real-fixes/tests/, if any.
    pub test: Option<String>,
    /// Free text.
    pub note: String,
}

impl Fix {
    /// The patch module's name: the patch name as a C identifier, at most
    /// 48 characters (patchgen's limit).
    pub fn module_name(&self) -> String {
        let stem = self.patch.strip_suffix(".patch").unwrap_or(&self.patch);
        let mut name: String = stem
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        name.truncate(48);
        name
    }
}

/// The corpus directory, tests/real-fixes, for the default kernel line.
pub fn corpus_dir() -> PathBuf {
    workspace_root().join("tests/real-fixes")
}

/// The corpus directory of the target `release`'s kernel line:
/// tests/real-fixes/LINE when there is one (tests/real-fixes/6.12), else
/// tests/real-fixes.
pub fn corpus_dir_for(release: &str) -> PathBuf {
    let base = corpus_dir();
    patchgen::kernel_line::KernelLine::of_release(release)
        .map(|line| base.join(line.version))
        .filter(|dir| dir.join("livepatch.txt").is_file())
        .unwrap_or(base)
}

/// Parses the list; an error names the line.
pub fn parse_list(text: &str) -> std::result::Result<Vec<Fix>, String> {
    let mut fixes = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.splitn(4, '|').map(str::trim).collect();
        let [patch, expect, test, note] = fields.as_slice() else {
            return Err(format!(
                "line {}: expected 'PATCH | expect | test | note'",
                n + 1
            ));
        };
        let expected = match *expect {
            "applies" => Expected::Applies,
            other => match other.strip_prefix("refused=") {
                Some(category) if !category.is_empty() => Expected::Refused(category.to_string()),
                _ => {
                    return Err(format!(
                        "line {}: expect must be 'applies' or 'refused=CATEGORY', not '{other}'",
                        n + 1
                    ))
                }
            },
        };
        if !patch.ends_with(".patch") {
            return Err(format!("line {}: '{patch}' is not a .patch file", n + 1));
        }
        fixes.push(Fix {
            patch: (*patch).to_string(),
            expected,
            test: (!test.is_empty()).then(|| (*test).to_string()),
            note: (*note).to_string(),
        });
    }
    Ok(fixes)
}

/// A short, stable name for why `patchgen build` refused a fix, for the
/// coverage table.
pub fn category(error: &BuildError) -> String {
    match error {
        // The differ's category of its first refusal: never its message.
        BuildError::Refused { report, .. } => match report.refusals.first().map(|r| r.category) {
            Some(c) => refusal_name(c).to_string(),
            None => "refused".to_string(),
        },
        BuildError::NothingChanged { .. } => "no function changes".to_string(),
        BuildError::NothingToRedirect { .. } => "nothing to redirect".to_string(),
        BuildError::OutsideBuild { .. } => "not built into this kernel".to_string(),
        BuildError::CompileFailed { .. } | BuildError::FixIncomplete { .. } => {
            "does not compile on the base".to_string()
        }
        BuildError::PatchDoesNotApply { .. } => "patch does not apply".to_string(),
        BuildError::NotCode { .. } => "not C code".to_string(),
        BuildError::TooManyObjects { .. } => "header read too widely".to_string(),
        other => format!("error: {}", other.to_string().lines().next().unwrap_or("")),
    }
}

/// The table's name of a refusal category.
fn refusal_name(category: patchgen::diff::report::RefusalCategory) -> &'static str {
    use patchgen::diff::report::RefusalCategory as C;
    match category {
        C::InitCode => "changes __init code",
        C::ExistingData => "changes existing data",
        C::NotTraceable => "changed function not traceable",
        C::NoFtrace => "object built without ftrace",
        C::AddressTaken => "notrace static reached by pointer",
        C::OnlyInitCallers => "notrace static called only from init code",
        C::AmbiguousStatic => "static local cannot be matched",
        C::LayoutChanged => "changes a struct layout",
        C::LayoutUnchecked => "layouts not checkable",
        C::BuildFlags => "not built the way the differ needs",
        C::Internal => "patchgen bug",
        C::CannotSkip => "function cannot be skipped",
        C::RuntimeConstant => "uses a boot-time runtime constant",
    }
}

/// What became of one fix.
#[derive(Debug, Clone)]
pub enum Built {
    /// A bundle.
    Bundle(PathBuf),
    /// Refused: the category and patchgen's whole message.
    Refused(String, String),
}

/// Builds one fix into `dir/NAME.bundle`.
pub fn build_fix(
    kernel: &KernelTarget,
    fix: &Fix,
    key: &suture_bundle::SigningKey,
    dir: &Path,
) -> Result<Built> {
    use patchgen::build::package;
    let name = fix.module_name();
    let patch = corpus_dir_for(&kernel.release)
        .join("patches")
        .join(&fix.patch);
    let work = dir.join(format!("{name}.work"));
    let out = match vm_tests::modules::patchgen_build(kernel, &patch, &name, &work) {
        Ok(out) => out,
        Err(e) => return Ok(Built::Refused(category(&e), e.to_string())),
    };
    let info = package::PatchInfo {
        description: format!("real fix {} from Debian's 6.1 stable updates", fix.patch),
        cves: Vec::new(),
        dependencies: Vec::new(),
        bundle_version: 0,
        fixes_up_to: None,
        cve_published: Default::default(),
    };
    let bundle = package::package(&out, kernel, &info, key).map_err(|e| HarnessError::Command {
        command: format!("packaging {}", fix.patch),
        status: "failed".to_string(),
        output: e.to_string(),
    })?;
    let path = dir.join(format!("{name}.bundle"));
    std::fs::write(&path, bundle).map_err(io_err("cannot write", &path))?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(Built::Bundle(path))
}

/// One row of the coverage table.
#[derive(Debug, Clone)]
pub struct Row {
    /// The fix.
    pub fix: Fix,
    /// "applied cleanly", "failed", or the refusal category.
    pub outcome: Outcome,
    /// Whether the outcome is what the list expects.
    pub as_expected: bool,
    /// Functions replaced, calls under load, test verdict; or the refusal.
    pub detail: String,
    /// The new code of every replaced function ran under load (evidence
    /// the fix was exercised).
    pub new_code_ran: bool,
}

/// What happened to a fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Built, applied and reverted with every expectation held.
    AppliedCleanly,
    /// Built, but validation failed.
    Failed(String),
    /// Refused by patchgen.
    Refused(String),
}

/// Joins what was built and what the guest reported into the table.
pub fn rows(fixes: &[Fix], built: &[Built], report: Option<&ValidationReport>) -> Vec<Row> {
    let by_file: BTreeMap<&Path, &BundleReport> = report
        .map(|r| r.bundles.iter().map(|b| (b.file.as_path(), b)).collect())
        .unwrap_or_default();
    fixes
        .iter()
        .zip(built)
        .map(|(fix, built)| {
            let mut new_code_ran = false;
            let (outcome, detail) = match built {
                Built::Refused(category, message) => (
                    Outcome::Refused(category.clone()),
                    message
                        .lines()
                        .find(|l| l.trim_start().starts_with("- "))
                        .map_or_else(
                            || message.lines().next().unwrap_or("").to_string(),
                            |l| l.trim().to_string(),
                        ),
                ),
                Built::Bundle(path) => match by_file.get(path.as_path()) {
                    None => (
                        Outcome::Failed("not validated".to_string()),
                        "the guest never reported it".to_string(),
                    ),
                    Some(b) => {
                        new_code_ran =
                            !b.calls_under_load.is_empty() && b.new_code_not_reached.is_empty();
                        let calls: Vec<String> = b
                            .calls_under_load
                            .iter()
                            .map(|(f, n)| format!("{f} x{n}"))
                            .collect();
                        let mut detail = format!("replaces {}", b.functions.join(", "));
                        if !calls.is_empty() {
                            let _ = write!(detail, "; calls under load: {}", calls.join(", "));
                        }
                        if fix.test.is_some() {
                            detail.push_str("; test fail/pass/fail");
                        }
                        if b.verdict == "pass" {
                            (Outcome::AppliedCleanly, detail)
                        } else {
                            let why = b.reasons.first().cloned().unwrap_or_default();
                            (Outcome::Failed(why.clone()), why)
                        }
                    }
                },
            };
            let as_expected = match (&fix.expected, &outcome) {
                (Expected::Applies, Outcome::AppliedCleanly) => true,
                (Expected::Refused(want), Outcome::Refused(got)) => want == got,
                _ => false,
            };
            Row {
                fix: fix.clone(),
                outcome,
                as_expected,
                detail,
                new_code_ran,
            }
        })
        .collect()
}

/// The coverage table and its summary.
pub fn render(rows: &[Row]) -> String {
    let mut out = String::new();
    let width = rows
        .iter()
        .map(|r| r.fix.patch.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let _ = writeln!(out, "{:<width$}  {:<32}  detail", "fix", "outcome");
    for r in rows {
        let outcome = match &r.outcome {
            Outcome::AppliedCleanly => "applied cleanly".to_string(),
            Outcome::Failed(_) => "FAILED".to_string(),
            Outcome::Refused(c) => format!("refused: {c}"),
        };
        let mark = if r.as_expected {
            ""
        } else {
            "  << expected otherwise"
        };
        let _ = writeln!(
            out,
            "{:<width$}  {:<32}  {}{mark}",
            r.fix.patch, outcome, r.detail
        );
    }
    let built = rows
        .iter()
        .filter(|r| !matches!(r.outcome, Outcome::Refused(_)))
        .count();
    let clean = rows
        .iter()
        .filter(|r| r.outcome == Outcome::AppliedCleanly)
        .count();
    let tested = rows
        .iter()
        .filter(|r| r.fix.test.is_some() && r.outcome == Outcome::AppliedCleanly)
        .count();
    let mut refused: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rows {
        if let Outcome::Refused(c) = &r.outcome {
            *refused.entry(c.as_str()).or_default() += 1;
        }
    }
    let _ = writeln!(
        out,
        "\n{} fixes: {built} built ({clean} applied cleanly, {} failed; {tested} with a visible effect checked), {} refused",
        rows.len(),
        built - clean,
        rows.len() - built
    );
    for (category, n) in &refused {
        let _ = writeln!(out, "  refused, {category}: {n}");
    }
    let ran = rows.iter().filter(|r| r.new_code_ran).count();
    let _ = writeln!(
        out,
        "new code ran under load (every replaced function called while applied): {ran} of {clean} applied cleanly"
    );
    let unexpected = rows.iter().filter(|r| !r.as_expected).count();
    let _ = writeln!(
        out,
        "{}",
        if unexpected == 0 {
            "every fix did what its livepatch.txt expects".to_string()
        } else {
            format!("{unexpected} fix(es) did not do what its livepatch.txt expects")
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_list_and_refuses_bad_lines() {
        let fixes = parse_list(
            "# c\n\nkernel_sys.patch | applies | kernel_sys-LOADED.test | auxv\nblock_bdev.patch | refused=changes __init code | | init\n",
        )
        .unwrap_or_default();
        assert_eq!(fixes.len(), 2);
        assert_eq!(fixes[0].expected, Expected::Applies);
        assert_eq!(fixes[0].test.as_deref(), Some("kernel_sys-LOADED.test"));
        assert_eq!(
            fixes[1].expected,
            Expected::Refused("changes __init code".to_string())
        );
        assert_eq!(fixes[1].test, None);
        assert!(parse_list("x.patch | maybe | | n\n").is_err());
        assert!(parse_list("x.patch | applies\n").is_err());
        assert!(parse_list("x.c | applies | | n\n").is_err());
    }

    #[test]
    fn module_names_are_identifiers() {
        let fix = Fix {
            patch: "block_blk-iocost.patch".to_string(),
            expected: Expected::Applies,
            test: None,
            note: String::new(),
        };
        assert_eq!(fix.module_name(), "block_blk_iocost");
    }

    #[test]
    fn refusals_fall_into_categories() {
        use patchgen::diff::report::Refusal;
        // The category comes from the report, whatever the message says.
        let refused = |refusal: Option<Refusal>| {
            let mut report = patchgen::Report::for_paths("x.o", "x.o");
            if let Some(r) = refusal {
                report.refuse(r);
            }
            BuildError::Refused {
                report: Box::new(report),
                object: PathBuf::from("x.o"),
                summary: "refused: a message worded any way".to_string(),
            }
        };
        assert_eq!(
            category(&refused(Some(Refusal::init_changed(
                "bdev_cache_init",
                ".init.text",
                "code"
            )))),
            "changes __init code"
        );
        assert_eq!(
            category(&refused(Some(Refusal::no_mcount(std::path::Path::new(
                "x.o"
            ))))),
            "object built without ftrace"
        );
        assert_eq!(category(&refused(None)), "refused");
        assert_eq!(
            category(&BuildError::NothingToRedirect {
                new_functions: Vec::new()
            }),
            "nothing to redirect"
        );
    }
}
