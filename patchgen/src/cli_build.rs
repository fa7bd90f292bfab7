//! `patchgen build`: the command-line side of the build pipeline (progress,
//! output files); the pipeline itself is `patchgen::build`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use patchgen::build::package::{self, PatchInfo};
use patchgen::build::{self, BuildRequest, KernelTarget};

/// Arguments of `patchgen build`.
#[derive(clap::Args)]
pub struct BuildArgs {
    /// Target kernel release: an entry of the kernel cache (scripts/setup).
    #[arg(long, value_name = "RELEASE")]
    pub kernel: String,
    /// The fix(es), unified diffs applied in order (-p1).
    #[arg(required = true, value_name = "FIX.patch")]
    pub patches: Vec<PathBuf>,
    /// Name of the patch (module name): [a-z0-9_]{1,48}; default from -o.
    #[arg(long)]
    pub name: Option<String>,
    /// The signed bundle to write (NAME.bundle).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Secret key to sign the bundle with (make one with `patchgen keygen`).
    #[arg(long, value_name = "NAME.key")]
    pub key: PathBuf,
    /// What the fix does (for operators and the audit trail).
    #[arg(long, default_value = "")]
    pub description: String,
    /// A CVE the fix closes (repeatable).
    #[arg(long = "cve", value_name = "CVE-YYYY-NNNN")]
    pub cves: Vec<String>,
    /// When a CVE given with --cve was published, signed in the manifest
    /// for `patchd report`'s exposure figures (repeatable, at most one date
    /// per CVE; CVEs without one are allowed).
    #[arg(long = "cve-published", value_name = "CVE=YYYY-MM-DD", value_parser = parse_cve_published)]
    pub cve_published: Vec<(String, String)>,
    /// The bundle's version among the bundles of this name, signed in its
    /// manifest: patchd never applies a lower version of a name than the
    /// highest it has applied, so give each new build of a fix a higher
    /// one (a release number, a date as YYYYMMDDNN). Default 0, left out
    /// of the manifest.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub bundle_version: u64,
    /// Id of a bundle that must be applied before this one (repeatable).
    #[arg(long = "depends", value_name = "ID")]
    pub dependencies: Vec<String>,
    /// The distribution kernel version whose fixes this bundle brings to
    /// the target, e.g. 6.1.187-1 when it carries every security fix of
    /// Debian's 6.1.187-1: `patchd uname` then reports that version to
    /// vulnerability scanners. Not older than the target's own.
    #[arg(long, value_name = "VERSION")]
    pub fixes_up_to: Option<String>,
    /// That version's kernel release (`uname -r`, e.g. 6.1.0-53-amd64),
    /// for `patchd uname -r`.
    #[arg(long, value_name = "RELEASE", requires = "fixes_up_to")]
    pub fixes_up_to_release: Option<String>,
    /// Also write the patch module and its link records next to the bundle
    /// (NAME.ko, NAME.records.json), for inspection.
    #[arg(long)]
    pub emit_module: bool,
    /// The target's vmlinux with its symbol table (Debian:
    /// /usr/lib/debug/boot/vmlinux-RELEASE from linux-image-RELEASE-dbg),
    /// to prove which of same-named statics the patch means. Default: the
    /// kernel cache's copy (scripts/setup --with-dbg), else Debian's path.
    #[arg(long, value_name = "PATH")]
    pub vmlinux: Option<PathBuf>,
    /// Accept a layout change of TYPE (`struct foo`, `union bar`, a typedef
    /// name) that the changed code reaches; refused otherwise. Only safe
    /// when no object of the old layout can reach the new code: objects
    /// allocated before the patch keep the old layout (repeatable).
    #[arg(long = "accept-layout-change", value_name = "TYPE")]
    pub accept_layout: Vec<String>,
    /// Leave the changed function NAME out of the patch (e.g. the __init
    /// part of a fix whose run-time part must ship): it is not fixed, and
    /// the manifest, `patchgen inspect` and `patchd status` say so
    /// (repeatable; `foo` also leaves out `foo.isra.0`, `foo.cold`).
    #[arg(long = "skip-function", value_name = "NAME")]
    pub skip: Vec<String>,

    /// Most objects one changed header may bring into the build (each is
    /// compiled twice) [default: 200]
    #[arg(long, value_name = "N")]
    pub max_objects: Option<usize>,
    /// The companion module's source (default: the one built into patchgen).
    #[arg(long, value_name = "DIR")]
    pub kmod: Option<PathBuf>,
    /// Keep the work directory (for debugging) instead of removing it.
    #[arg(long)]
    pub keep_work: bool,
    /// Print every step's detail.
    #[arg(short, long)]
    pub verbose: bool,
    /// Also write a JSON report here, whatever the outcome: the result
    /// (built, nothing-to-patch, refused, error), the exit status, each
    /// object's changed and new functions, and refusals with a stable
    /// category, so tools never parse messages.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

/// A `--cve-published` value: a CVE id, `=`, and a calendar date.
fn parse_cve_published(text: &str) -> Result<(String, String), String> {
    let Some((cve, date)) = text.split_once('=') else {
        return Err("expected CVE=YYYY-MM-DD, e.g. CVE-2024-1086=2024-01-31".to_owned());
    };
    if !suture_bundle::names::is_cve_id(cve) {
        return Err(format!(
            "{cve:?} is not a CVE id (CVE-YYYY-NNNN, 4 to 19 digits after the year)"
        ));
    }
    if !suture_bundle::names::is_cve_date(date) {
        return Err(format!(
            "the publication date of {cve}, {date:?}, is not a calendar date YYYY-MM-DD of a year 1999 to 9999"
        ));
    }
    Ok((cve.to_owned(), date.to_owned()))
}

/// A `--cve-published` that does not fit the other arguments.
#[derive(Debug, thiserror::Error)]
pub enum CvePublishedError {
    /// The CVE is not one the bundle fixes.
    #[error("--cve-published {cve}={date}: {cve} is not given with --cve; a publication date is declared only for a CVE the bundle fixes (add --cve {cve})")]
    NotACve {
        /// The CVE id.
        cve: String,
        /// Its date.
        date: String,
    },
    /// Two dates for one CVE.
    #[error("--cve-published gives {cve} twice ({first} and {second}): give one date per CVE")]
    Twice {
        /// The CVE id.
        cve: String,
        /// The first date given.
        first: String,
        /// The other.
        second: String,
    },
}

impl BuildArgs {
    /// The publication dates by CVE, each of a CVE given with --cve and
    /// given once. A usage error otherwise: checked before anything is
    /// built.
    pub fn cve_published(&self) -> Result<BTreeMap<String, String>, CvePublishedError> {
        let mut dates = BTreeMap::new();
        for (cve, date) in &self.cve_published {
            if !self.cves.contains(cve) {
                return Err(CvePublishedError::NotACve {
                    cve: cve.clone(),
                    date: date.clone(),
                });
            }
            if let Some(first) = dates.insert(cve.clone(), date.clone()) {
                return Err(CvePublishedError::Twice {
                    cve: cve.clone(),
                    first,
                    second: date.clone(),
                });
            }
        }
        Ok(dates)
    }
}

/// The JSON of `--report`.
#[derive(Debug, serde::Serialize)]
struct BuildReport<'a> {
    /// built, nothing-to-patch, refused or error.
    result: &'a str,
    /// The exit status patchgen ends with.
    exit_code: u8,
    kernel: &'a str,
    patches: &'a [PathBuf],
    /// The bundle written (when built).
    bundle: Option<&'a PathBuf>,
    /// The differ's report of each object diffed (on a refusal: the refused
    /// object's, with each refusal's category).
    objects: Vec<ObjectReport<'a>>,
    /// The error's message (when not built).
    error: Option<String>,
}

#[derive(Debug, serde::Serialize)]
struct ObjectReport<'a> {
    object: String,
    report: &'a patchgen::Report,
}

/// Runs the build; with `--report`, writes what happened whatever it was.
pub fn run_and_report(args: &BuildArgs) -> anyhow::Result<build::BuildOutput> {
    let result = run(args);
    let Some(path) = &args.report else {
        return result;
    };
    let build_error = result
        .as_ref()
        .err()
        .and_then(|e| e.downcast_ref::<build::BuildError>());
    let (outcome, exit_code) = match (&result, build_error) {
        (Ok(_), _) => ("built", build::EXIT_BUILT),
        (Err(_), Some(e)) => (e.outcome(), e.exit_code()),
        (Err(_), None) => ("error", build::EXIT_ERROR),
    };
    let objects = match (&result, build_error) {
        (Ok(out), _) => out
            .reports
            .iter()
            .map(|(o, r)| ObjectReport {
                object: o.display().to_string(),
                report: r,
            })
            .collect(),
        (Err(_), Some(build::BuildError::Refused { object, report, .. })) => vec![ObjectReport {
            object: object.display().to_string(),
            report,
        }],
        _ => Vec::new(),
    };
    let report = BuildReport {
        result: outcome,
        exit_code,
        kernel: &args.kernel,
        patches: &args.patches,
        bundle: result.is_ok().then_some(&args.output),
        objects,
        error: result.as_ref().err().map(|e| format!("{e:#}")),
    };
    let json = serde_json::to_string_pretty(&report)? + "\n";
    std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?;
    result
}

fn patch_name(args: &BuildArgs) -> anyhow::Result<String> {
    let raw = match &args.name {
        Some(n) => n.clone(),
        None => args
            .output
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("patch")
            .to_string(),
    };
    let name: String = raw.replace('-', "_");
    let valid = !name.is_empty()
        && name.len() <= 48
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    anyhow::ensure!(
        valid,
        "patch name '{raw}' must be 1-48 characters of a-z, 0-9 and _ (give --name)"
    );
    Ok(name)
}

/// Runs the build and writes the signed bundle (and, if asked, the module).
pub fn run(args: &BuildArgs) -> anyhow::Result<build::BuildOutput> {
    let name = patch_name(args)?;
    let cve_published = args.cve_published()?;
    // A bad key should fail before minutes of work, not after.
    let key = suture_bundle::read_signing_key(&args.key).with_context(|| {
        format!(
            "a bundle must be signed: give a secret key with --key (make one with `patchgen keygen -o NAME`); {} is not usable",
            args.key.display()
        )
    })?;
    let target = KernelTarget::from_cache(&args.kernel)?;
    // So is a bad --fixes-up-to.
    let fixes_up_to = args
        .fixes_up_to
        .as_ref()
        .map(|version| suture_bundle::FixesUpTo {
            version: version.clone(),
            release: args.fixes_up_to_release.clone(),
        });
    if let Some(fixes) = &fixes_up_to {
        fixes
            .validate(target.package_version.as_deref())
            .context("--fixes-up-to")?;
    }
    let work = tempfile::Builder::new()
        .prefix("patchgen-build-")
        .tempdir()
        .context("cannot create a work directory")?;
    // Kept from the start when asked: a failed build is when it is needed.
    let (work_path, _work_guard) = if args.keep_work {
        (work.keep(), None)
    } else {
        (work.path().to_path_buf(), Some(work))
    };
    let req = BuildRequest {
        target: target.clone(),
        patches: args.patches.clone(),
        name,
        kmod: args.kmod.clone(),
        work: work_path.clone(),
        vmlinux: args.vmlinux.clone(),
        accept_layout: args.accept_layout.clone(),
        skip: args.skip.clone(),
        max_objects: args.max_objects,
    };
    let tty = std::io::stderr().is_terminal();
    let mut progress = |line: &str| {
        if tty {
            eprintln!("\x1b[1mpatchgen:\x1b[0m {line}");
        } else {
            eprintln!("patchgen: {line}");
        }
    };
    if args.keep_work {
        progress(&format!("work directory kept in {}", work_path.display()));
    }
    let out = build::build(&req, &mut progress)?;
    let info = PatchInfo {
        description: args.description.clone(),
        cves: args.cves.clone(),
        dependencies: args.dependencies.clone(),
        bundle_version: args.bundle_version,
        fixes_up_to,
        cve_published,
    };
    let bundle = package::package(&out, &target, &info, &key)?;
    suture_bundle::write_file(&args.output, &bundle)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    for r in &out.module.replacements {
        progress(&format!("replaces {} ({})", r.old_name, r.object_file));
    }
    progress(&format!(
        "wrote {} ({} bytes)",
        args.output.display(),
        bundle.len()
    ));
    if args.emit_module {
        let ko = args.output.with_extension("ko");
        std::fs::copy(&out.module.ko, &ko)
            .with_context(|| format!("cannot write {}", ko.display()))?;
        let records = args.output.with_extension("records.json");
        let json =
            serde_json::to_string_pretty(&package::manifest_records(&out.module.records))? + "\n";
        std::fs::write(&records, json)
            .with_context(|| format!("cannot write {}", records.display()))?;
        progress(&format!("wrote {} and {}", ko.display(), records.display()));
    }
    Ok(out)
}
