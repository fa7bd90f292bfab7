//! patchtest: validates signed bundles in a QEMU guest of their target
//! kernel before they ship.
//!
//! For each bundle, one guest boot runs these steps (vm-tests/guest/
//! validate/steps.sh), each a guest check with its own exit status, time
//! and output:
//!
//! | step | what | expected |
//! | --- | --- | --- |
//! | prepare | load the kernel modules the bundle patches, `patchd verify` | exit 0 |
//! | before | the test script, bundle not applied | its expectation (kpatch `-LOADED.test`: fail) |
//! | apply | start the load on every vCPU, `patchd apply` | exit 0 |
//! | applied | the test script with the bundle applied, under load | its expectation (pass) |
//! | revert | `patchd revert`, stop the load | exit 0, every loader still alive |
//! | reverted | the test script after revert | its expectation (fail) |
//! | log | the kernel log since prepare and new taint | no warning, oops, lockdep report or taint other than O and E |
//!
//! The host checks the bundle before booting (readable, signed by the
//! given key, for this kernel), decides the default load from the source
//! files of the replaced functions, and judges every step.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use suture_bundle::Manifest;

use crate::report::{taint_letters, CheckResult, GuestRun, TAINT_BITS};
use crate::{io_err, workspace_root, GuestFile, HarnessError, Result, Target};

/// Exit status of a step the guest skipped (an earlier step failed).
const SKIPPED: i32 = 125;

/// Taint every patch module brings: O (out-of-tree) and E (unsigned).
const ALLOWED_TAINT: &str = "OE";

/// What a test script is expected to do in one phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    /// Exit 0.
    Pass,
    /// Exit non-zero.
    Fail,
}

impl Expect {
    fn holds(self, status: i32) -> bool {
        match self {
            Self::Pass => status == 0,
            Self::Fail => status != 0,
        }
    }
}

impl std::str::FromStr for Expect {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "pass" => Ok(Self::Pass),
            "fail" => Ok(Self::Fail),
            other => Err(format!("expected 'pass' or 'fail', got '{other}'")),
        }
    }
}

/// A test script's expectations before apply, applied, and after revert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Expectations {
    /// Before the bundle is applied.
    pub before: Expect,
    /// With the bundle applied.
    pub applied: Expect,
    /// After the bundle is reverted.
    pub reverted: Expect,
}

impl Expectations {
    /// kpatch's `NAME-LOADED.test`: exits 0 only while the fix is loaded.
    pub const LOADED: Self = Self {
        before: Expect::Fail,
        applied: Expect::Pass,
        reverted: Expect::Fail,
    };

    /// Parses `BEFORE,APPLIED,REVERTED`, e.g. `fail,pass,fail`.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let parts: Vec<&str> = text.split(',').map(str::trim).collect();
        let [before, applied, reverted] = parts.as_slice() else {
            return Err(format!(
                "'{text}': give three comma-separated expectations, before,applied,reverted (e.g. fail,pass,fail)"
            ));
        };
        Ok(Self {
            before: before.parse()?,
            applied: applied.parse()?,
            reverted: reverted.parse()?,
        })
    }
}

/// A test script and what it should do.
#[derive(Debug, Clone)]
pub struct TestScript {
    /// The script on the host; it runs in the guest under busybox `sh`.
    pub path: PathBuf,
    /// Its expectations.
    pub expect: Expectations,
}

impl TestScript {
    /// A script, with expectations from `--expect` or else from its name
    /// (`NAME-LOADED.test`); a plain script without expectations is an
    /// error, since nothing says what it should do.
    pub fn new(path: PathBuf, expect: Option<Expectations>) -> std::result::Result<Self, String> {
        let loaded = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with("-LOADED.test"));
        let expect = match (expect, loaded) {
            (Some(e), _) => e,
            (None, true) => Expectations::LOADED,
            (None, false) => {
                return Err(format!(
                    "{}: say what the script should do with --expect BEFORE,APPLIED,REVERTED (e.g. fail,pass,fail), or name it NAME-LOADED.test (kpatch's convention: exits 0 only while the fix is loaded)",
                    path.display()
                ))
            }
        };
        Ok(Self { path, expect })
    }
}

/// The load that runs on every vCPU while a bundle is applied and reverted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Load {
    /// vm-tests/guest/validate/load.sh with exercisers chosen per bundle
    /// from the source files of its replaced functions.
    Default,
    /// The user's script, run as `sh SCRIPT CPU` once per vCPU.
    Script(PathBuf),
    /// No load.
    None,
}

/// Exercisers of the default load; see vm-tests/guest/validate/load.sh.
const ALL_CLASSES: &[&str] = &["proc", "fs", "kernel", "mm", "net"];

/// The exercisers likely to reach code in `object_file` (a path in the
/// kernel tree such as `fs/proc/cmdline.o`), by subsystem directory; all
/// of them where the directory says nothing (drivers, lib, arch, ...).
pub fn load_classes(object_file: &str) -> &'static [&'static str] {
    let table: &[(&str, &[&str])] = &[
        ("fs/proc/", &["proc"]),
        ("fs/", &["fs", "proc"]),
        ("mm/", &["mm", "fs"]),
        ("net/", &["net"]),
        ("kernel/", &["kernel", "proc", "fs"]),
        ("ipc/", &["kernel"]),
        ("security/", &["fs", "kernel"]),
    ];
    table
        .iter()
        .find(|(prefix, _)| object_file.starts_with(prefix))
        .map_or(ALL_CLASSES, |(_, classes)| classes)
}

/// One bundle to validate.
#[derive(Debug, Clone)]
pub struct BundleUnderTest {
    /// The bundle file.
    pub path: PathBuf,
    /// Its name in the run (unique; the bundle id unless two share it).
    pub name: String,
    /// Its manifest, checked on the host: signed by the key, for the target.
    pub manifest: Manifest,
    /// The test script, if any.
    pub test: Option<TestScript>,
    /// The `suture_target_module` entries of the patch module's modinfo.
    pub target_modules: Vec<String>,
}

/// The values of `key` in a module's `.modinfo` (`key=value` strings, NUL
/// separated); none when the module does not parse.
pub fn modinfo_values(module: &[u8], key: &str) -> Vec<String> {
    use object::{Object, ObjectSection};
    let Ok(file) = object::File::parse(module) else {
        return Vec::new();
    };
    let Some(data) = file.section_by_name(".modinfo").and_then(|s| s.data().ok()) else {
        return Vec::new();
    };
    let prefix = format!("{key}=");
    data.split(|b| *b == 0)
        .filter_map(|entry| std::str::from_utf8(entry).ok())
        .filter_map(|entry| entry.strip_prefix(&prefix))
        .map(str::to_string)
        .collect()
}

impl BundleUnderTest {
    /// Reads a bundle and checks it on the host: format, digests, a
    /// signature by `key`, and the target kernel's release and build-id.
    pub fn open(
        path: &Path,
        key: &suture_bundle::VerifyingKey,
        kernel: &patchgen::build::KernelTarget,
        test: Option<TestScript>,
    ) -> std::result::Result<Self, String> {
        let shown = path.display();
        let bytes = suture_bundle::read_file(path).map_err(|e| format!("{shown}: {e}"))?;
        let unverified =
            suture_bundle::parse(&bytes).map_err(|e| format!("{shown}: not a bundle: {e}"))?;
        let verified = unverified
            .verify(std::slice::from_ref(key))
            .map_err(|e| format!("{shown}: {e} (pass the public key that signed it with --key)"))?;
        let manifest = verified.manifest().clone();
        let target_modules = modinfo_values(verified.module(), "suture_target_module");
        let target = &manifest.target;
        if target.kernel_release != kernel.release || target.build_id != kernel.build_id {
            return Err(format!(
                "{shown} is for {} (build-id {}), not for {} (build-id {}): pass --kernel {}",
                target.kernel_release,
                target.build_id,
                kernel.release,
                kernel.build_id,
                target.kernel_release
            ));
        }
        Ok(Self {
            path: path.to_path_buf(),
            name: manifest.id.clone(),
            manifest,
            test,
            target_modules,
        })
    }

    /// The kernel modules whose code the bundle patches, which the guest
    /// loads first: the patch module's `suture_target_module` modinfo
    /// (patchgen writes one per module), and the modules its link
    /// records name.
    pub fn kernel_modules(&self) -> Vec<String> {
        let mut set: BTreeSet<String> = self.target_modules.iter().cloned().collect();
        for s in &self.manifest.symbols {
            if let Some(object) = s.object.as_deref().filter(|o| *o != "vmlinux") {
                set.insert(object.to_string());
            }
        }
        set.into_iter().collect()
    }

    /// The default load's exercisers for this bundle.
    pub fn classes(&self) -> Vec<&'static str> {
        let mut set = BTreeSet::new();
        for f in &self.manifest.replaced_functions {
            set.extend(load_classes(&f.object_file).iter().copied());
        }
        if set.is_empty() {
            set.extend(ALL_CLASSES.iter().copied());
        }
        // Keep load.sh's order, cheap exercisers first.
        ALL_CLASSES
            .iter()
            .copied()
            .filter(|c| set.contains(c))
            .collect()
    }

    fn steps(&self) -> Vec<Step> {
        let mut steps = vec![Step::Prepare];
        if self.test.is_some() {
            steps.push(Step::Before);
        }
        steps.push(Step::Apply);
        if self.test.is_some() {
            steps.push(Step::Applied);
        }
        steps.push(Step::Revert);
        if self.test.is_some() {
            steps.push(Step::Reverted);
        }
        steps.push(Step::Log);
        steps
    }
}

/// A step of a bundle's validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// Verify in the guest.
    Prepare,
    /// The test before apply.
    Before,
    /// Start the load, apply.
    Apply,
    /// The test with the bundle applied.
    Applied,
    /// Revert, stop the load.
    Revert,
    /// The test after revert.
    Reverted,
    /// The kernel log and taint.
    Log,
}

impl Step {
    fn as_str(self) -> &'static str {
        match self {
            Self::Prepare => "prepare",
            Self::Before => "before",
            Self::Apply => "apply",
            Self::Applied => "applied",
            Self::Revert => "revert",
            Self::Reverted => "reverted",
            Self::Log => "log",
        }
    }

    fn guest_call(self) -> String {
        match self {
            Self::Before | Self::Applied | Self::Reverted => {
                format!("step_test \"$1\" {}", self.as_str())
            }
            other => format!("step_{} \"$1\"", other.as_str()),
        }
    }
}

/// Everything a validation run needs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The target kernel.
    pub target: Target,
    /// The public key the bundles are signed with; the guest trusts it.
    pub key: PathBuf,
    /// The bundles, validated one after the other in one boot.
    pub bundles: Vec<BundleUnderTest>,
    /// The load.
    pub load: Load,
    /// Virtual CPUs (one loader each).
    pub cpus: u32,
    /// Limit for one step in the guest.
    pub step_timeout: Duration,
    /// Names the run directory under target/vm-tests/.
    pub run_name: String,
    /// Host files the tests need (programs, data), put in the guest's
    /// /suture/files/, which is on the tests' PATH.
    pub files: Vec<PathBuf>,
}

impl Plan {
    /// The target's modules the bundles patch, loaded at `prepare`.
    pub fn kernel_modules(&self) -> Vec<String> {
        let set: BTreeSet<String> = self
            .bundles
            .iter()
            .flat_map(BundleUnderTest::kernel_modules)
            .collect();
        set.into_iter().collect()
    }

    /// Gives bundles that share an id distinct names in the run.
    pub fn dedupe_names(&mut self) {
        let mut seen = BTreeSet::new();
        for b in &mut self.bundles {
            let mut name = b.name.clone();
            let mut n = 2;
            while !seen.insert(name.clone()) {
                name = format!("{}_{n}", b.name);
                n += 1;
            }
            b.name = name;
        }
    }

    /// The guest side of the run: generated step checks and the files
    /// under /suture/validate.
    pub fn guest(&self) -> Result<GuestSetup> {
        let read = |p: &Path| std::fs::read(p).map_err(io_err("cannot read", p));
        let guest_dir = workspace_root().join("vm-tests/guest/validate");
        let mut files = vec![GuestFile {
            path: "/suture/validate/steps.sh".to_string(),
            data: read(&guest_dir.join("steps.sh"))?,
            mode: 0o644,
        }];
        match &self.load {
            Load::Default => files.push(GuestFile {
                path: "/suture/validate/load.sh".to_string(),
                data: read(&guest_dir.join("load.sh"))?,
                mode: 0o644,
            }),
            Load::Script(path) => {
                files.push(GuestFile {
                    path: "/suture/validate/load.sh".to_string(),
                    data: read(path)?,
                    mode: 0o644,
                });
            }
            Load::None => files.push(GuestFile {
                path: "/suture/validate/no_load".to_string(),
                data: Vec::new(),
                mode: 0o644,
            }),
        }
        for path in &self.files {
            let name =
                path.file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(|| HarnessError::Io {
                        what: "no file name in",
                        path: path.clone(),
                        source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
                    })?;
            let mode = std::fs::metadata(path)
                .map_err(io_err("cannot stat", path))?
                .permissions();
            let executable = std::os::unix::fs::PermissionsExt::mode(&mode) & 0o111 != 0;
            files.push(GuestFile {
                path: format!("/suture/files/{name}"),
                data: read(path)?,
                mode: if executable { 0o755 } else { 0o644 },
            });
        }
        let mut checks = Vec::new();
        for b in &self.bundles {
            let dir = format!("/suture/validate/{}", b.name);
            files.push(GuestFile {
                path: format!("{dir}/bundle"),
                data: read(&b.path)?,
                mode: 0o644,
            });
            files.push(GuestFile {
                path: format!("{dir}/id"),
                data: b.manifest.id.clone().into_bytes(),
                mode: 0o644,
            });
            let functions: String = b
                .manifest
                .replaced_functions
                .iter()
                .map(|f| format!("{}\n", f.old_name))
                .collect();
            files.push(GuestFile {
                path: format!("{dir}/functions"),
                data: functions.into_bytes(),
                mode: 0o644,
            });
            let classes = match self.load {
                Load::Default => b.classes().join(" "),
                _ => String::new(),
            };
            files.push(GuestFile {
                path: format!("{dir}/load_classes"),
                data: classes.into_bytes(),
                mode: 0o644,
            });
            // The modules this bundle patches, dependencies first: the
            // guest loads only these for it.
            let kmods: String =
                crate::qemu::kernel_module_closure(&self.target, &b.kernel_modules())?
                    .into_iter()
                    .map(|(name, _)| name + "\n")
                    .collect();
            files.push(GuestFile {
                path: format!("{dir}/kmods"),
                data: kmods.into_bytes(),
                mode: 0o644,
            });
            if let Some(test) = &b.test {
                files.push(GuestFile {
                    path: format!("{dir}/test"),
                    data: read(&test.path)?,
                    mode: 0o755,
                });
                let shown = test.path.file_name().map_or_else(
                    || test.path.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                );
                files.push(GuestFile {
                    path: format!("{dir}/test_name"),
                    data: shown.into_bytes(),
                    mode: 0o644,
                });
            }
            for step in b.steps() {
                checks.push((
                    format!("{}.{}", b.name, step.as_str()),
                    format!(
                        "# patchtest: {} of {}\nset -- {}\n. /suture/validate/steps.sh\n{}\n",
                        step.as_str(),
                        b.name,
                        b.name,
                        step.guest_call()
                    ),
                ));
            }
        }
        Ok(GuestSetup { checks, files })
    }
}

/// What the host puts into the guest for a validation.
#[derive(Debug, Clone)]
pub struct GuestSetup {
    /// Generated step checks: (name, script), in order.
    pub checks: Vec<(String, String)>,
    /// Bundles, test and load scripts, and the plan's data.
    pub files: Vec<GuestFile>,
}

/// How a step went.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// The step.
    pub step: Step,
    /// What was expected of it.
    pub expected: Expect,
    /// Its exit status; `None` when it never finished.
    pub status: Option<i32>,
    /// Whether the guest skipped it.
    pub skipped: bool,
    /// Whether it did what was expected.
    pub ok: bool,
    /// Seconds it took in the guest.
    pub seconds: Option<f64>,
    /// What it printed.
    pub output: String,
}

/// How one bundle's validation went.
#[derive(Debug, Clone, Serialize)]
pub struct BundleReport {
    /// The bundle file.
    pub file: PathBuf,
    /// Its id.
    pub id: String,
    /// The functions it replaces.
    pub functions: Vec<String>,
    /// The load: the default's exercisers, "script" or "none".
    pub load: String,
    /// Rounds the loaders completed between apply and revert.
    pub load_rounds: Option<u64>,
    /// Calls of each replaced function the companion module sent to the
    /// new code while the bundle was applied.
    pub calls_under_load: Vec<(String, u64)>,
    /// The steps in order.
    pub steps: Vec<StepReport>,
    /// Kernel warnings, oopses, lockdep reports and taint attributed to
    /// this bundle.
    pub kernel_problems: Vec<String>,
    /// Taint bits the kernel gained while the bundle was tested, beyond
    /// O and E.
    pub taint_gained: u64,
    /// Why the bundle failed; empty when it passed.
    pub reasons: Vec<String>,
    /// "pass" or "fail".
    pub verdict: &'static str,
}

/// The report of a whole run.
#[derive(Debug, Clone, Serialize)]
pub struct ValidationReport {
    /// The tool and its version.
    pub tool: String,
    /// The target kernel release.
    pub kernel: String,
    /// Virtual CPUs.
    pub cpus: u32,
    /// One entry per bundle.
    pub bundles: Vec<BundleReport>,
    /// Problems of the guest not attributed to a bundle (it did not
    /// finish, a warning outside the steps, unexpected taint at the end).
    pub guest_problems: Vec<String>,
    /// Seconds the guest ran (boot to power-off).
    pub guest_seconds: f64,
    /// Seconds of the whole validation on the host (build, boot, steps).
    pub total_seconds: f64,
    /// The guest's serial log.
    pub serial_log: PathBuf,
    /// "pass" when every expectation held, else "fail".
    pub verdict: &'static str,
}

impl ValidationReport {
    /// True when every expectation held.
    pub fn passed(&self) -> bool {
        self.verdict == "pass"
    }
}

/// Judges a finished guest run against the plan.
pub fn judge(plan: &Plan, run: &GuestRun, total: Duration) -> ValidationReport {
    let mut attributed: BTreeSet<String> = BTreeSet::new();
    let mut bundles = Vec::new();
    for b in &plan.bundles {
        let report = judge_bundle(plan, b, run);
        for s in &report.steps {
            attributed.extend(s.output.lines().map(str::to_string));
        }
        bundles.push(report);
    }
    // Taint a bundle gained is that bundle's failure, not the guest's.
    let gained = bundles.iter().fold(0u64, |acc, b| acc | b.taint_gained);
    let mut guest_problems: Vec<String> = run
        .problems
        .iter()
        .filter(|p| !attributed.contains(*p) && !p.starts_with("kernel tainted"))
        .cloned()
        .collect();
    if let Some(taint) = run.taint {
        let unexpected: String = taint_letters(taint & !gained)
            .chars()
            .filter(|c| !ALLOWED_TAINT.contains(*c))
            .collect();
        if !unexpected.is_empty() {
            guest_problems.push(format!(
                "kernel tainted {unexpected} outside the bundles' steps (taint {taint})"
            ));
        }
    }
    let passed = guest_problems.is_empty() && bundles.iter().all(|b| b.verdict == "pass");
    ValidationReport {
        tool: format!("patchtest {}", env!("CARGO_PKG_VERSION")),
        kernel: plan.target.release.clone(),
        cpus: plan.cpus,
        bundles,
        guest_problems,
        guest_seconds: run.elapsed.as_secs_f64(),
        total_seconds: total.as_secs_f64(),
        serial_log: run.dir.join("serial.log"),
        verdict: if passed { "pass" } else { "fail" },
    }
}

/// Kernel-log lines (`[ seconds] text`: the log step's dmesg, or the
/// console in the middle of any step) that fail a bundle, by the guest
/// rig's list; a test script's own words are not kernel lines.
fn is_kernel_problem(line: &str) -> bool {
    let kernel_line = line
        .trim_start()
        .strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
        .is_some_and(|(stamp, _)| stamp.trim().parse::<f64>().is_ok());
    kernel_line
        && crate::report::PROBLEM_PATTERNS
            .iter()
            .any(|p| line.contains(p))
}

fn judge_bundle(plan: &Plan, b: &BundleUnderTest, run: &GuestRun) -> BundleReport {
    let mut steps = Vec::new();
    let mut reasons = Vec::new();
    let mut kernel_problems = Vec::new();
    let mut load_rounds = None;
    let mut calls_under_load = Vec::new();
    let mut taint_gained = 0u64;
    let mut log_reason = None;
    for step in b.steps() {
        let expected = match (step, &b.test) {
            (Step::Before, Some(t)) => t.expect.before,
            (Step::Applied, Some(t)) => t.expect.applied,
            (Step::Reverted, Some(t)) => t.expect.reverted,
            _ => Expect::Pass,
        };
        let name = format!("{}.{}", b.name, step.as_str());
        let check = run.check(&name).cloned().unwrap_or(CheckResult {
            name: name.clone(),
            status: None,
            output: String::new(),
            seconds: None,
        });
        let skipped = check.status == Some(SKIPPED);
        let ok = check.status.is_some_and(|s| !skipped && expected.holds(s));
        // A failed log step is explained by its taint and kernel lines,
        // below; only a log step that says nothing gets a reason here.
        if !ok {
            log_reason = Some(step_reason(step, expected, &check, skipped));
            if step != Step::Log {
                reasons.extend(log_reason.take());
            }
        }
        for line in check.output.lines() {
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("patchtest-load-rounds"), Some(n), None) => load_rounds = n.parse().ok(),
                (Some("patchtest-taint"), Some(before), Some(now)) => {
                    if let (Ok(before), Ok(now)) = (before.parse::<u64>(), now.parse::<u64>()) {
                        let allowed: u64 = ALLOWED_TAINT
                            .chars()
                            .filter_map(|c| TAINT_BITS.iter().position(|l| char::from(*l) == c))
                            .map(|bit| 1u64 << bit)
                            .sum();
                        taint_gained = now & !before & !allowed;
                    }
                }
                (Some("patchtest-hits"), Some(f), Some(n)) => {
                    if let Ok(n) = n.parse() {
                        calls_under_load.push((f.to_string(), n));
                    }
                }
                _ => {}
            }
            if is_kernel_problem(line) && !kernel_problems.iter().any(|p| p == line) {
                kernel_problems.push(line.to_string());
            }
        }
        steps.push(StepReport {
            step,
            expected,
            status: check.status,
            skipped,
            ok,
            seconds: check.seconds,
            output: check.output,
        });
    }
    if taint_gained != 0 {
        reasons.push(format!(
            "the kernel gained taint {} ({taint_gained}) while the bundle was tested",
            taint_letters(taint_gained)
        ));
    }
    if !kernel_problems.is_empty() {
        reasons.push(format!(
            "the kernel logged a problem while the bundle was tested: {}",
            kernel_problems[0].trim()
        ));
    }
    if taint_gained == 0 && kernel_problems.is_empty() {
        reasons.extend(log_reason);
    }
    BundleReport {
        file: b.path.clone(),
        id: b.manifest.id.clone(),
        functions: b
            .manifest
            .replaced_functions
            .iter()
            .map(|f| f.old_name.clone())
            .collect(),
        load: match &plan.load {
            Load::Default => b.classes().join(" "),
            Load::Script(p) => format!("script {}", p.display()),
            Load::None => "none".to_string(),
        },
        load_rounds,
        calls_under_load,
        steps,
        kernel_problems,
        taint_gained,
        verdict: if reasons.is_empty() { "pass" } else { "fail" },
        reasons,
    }
}

fn last_line(output: &str) -> &str {
    output
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("patchtest-"))
        .unwrap_or("")
}

fn step_reason(step: Step, expected: Expect, check: &CheckResult, skipped: bool) -> String {
    let Some(status) = check.status else {
        return format!(
            "{}: never finished (the guest died or hung; see the serial log)",
            step.as_str()
        );
    };
    if skipped {
        return format!("{}: skipped ({})", step.as_str(), last_line(&check.output));
    }
    let says = last_line(&check.output);
    match step {
        Step::Before | Step::Applied | Step::Reverted => {
            let phase = match step {
                Step::Before => "before apply",
                Step::Applied => "with the bundle applied",
                _ => "after revert",
            };
            let (did, hint) = match (expected, step) {
                (Expect::Fail, Step::Before) => (
                    "passed",
                    "is the bug present in this kernel, and does the test detect it?",
                ),
                (Expect::Pass, Step::Applied) => {
                    ("failed", "the bundle does not do what the test checks")
                }
                (Expect::Fail, Step::Reverted) => {
                    ("passed", "the revert did not restore the old code")
                }
                (Expect::Pass, _) => ("failed", "see its output"),
                (Expect::Fail, _) => ("passed", "see its output"),
            };
            format!(
                "{}: the test {did} {phase} (exit {status}), expected to {}: {hint}",
                step.as_str(),
                match expected {
                    Expect::Pass => "pass",
                    Expect::Fail => "fail",
                }
            )
        }
        Step::Log => format!("log: exit {status}: {says}"),
        _ => format!("{}: exit {status}: {says}", step.as_str()),
    }
}

/// The human report.
pub fn render(report: &ValidationReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "patchtest: {} on {} vCPU(s)",
        report.kernel, report.cpus
    );
    for b in &report.bundles {
        let _ = writeln!(
            out,
            "\nbundle {} ({}): replaces {}",
            b.id,
            b.file.display(),
            b.functions.join(", ")
        );
        for s in &b.steps {
            let result = match (s.status, s.skipped) {
                (_, true) => "skipped".to_string(),
                (None, _) => "did not finish".to_string(),
                (Some(0), _) => "exit 0".to_string(),
                (Some(n), _) => format!("exit {n}"),
            };
            let expected = match (s.step, s.expected) {
                (Step::Before | Step::Applied | Step::Reverted, Expect::Pass) => "expected pass",
                (Step::Before | Step::Applied | Step::Reverted, Expect::Fail) => "expected fail",
                _ => "",
            };
            let _ = writeln!(
                out,
                "  {:<9} {:<15} {:>7}  {:<14} {}",
                s.step.as_str(),
                result,
                s.seconds
                    .map_or_else(|| "-".to_string(), |t| format!("{t:.2} s")),
                expected,
                if s.ok { "ok" } else { "FAILED" }
            );
        }
        let _ = write!(
            out,
            "  load: {}",
            if b.load.is_empty() { "none" } else { &b.load }
        );
        if let Some(r) = b.load_rounds {
            let _ = write!(out, ", {r} round(s)");
        }
        let _ = writeln!(out);
        for (f, n) in &b.calls_under_load {
            let _ = writeln!(out, "  {f}: {n} call(s) of the new code while applied");
        }
        for p in &b.kernel_problems {
            let _ = writeln!(out, "  kernel: {}", p.trim());
        }
        for r in &b.reasons {
            let _ = writeln!(out, "  reason: {r}");
        }
        let _ = writeln!(
            out,
            "  verdict: {}",
            if b.verdict == "pass" { "PASS" } else { "FAIL" }
        );
    }
    for p in &report.guest_problems {
        let _ = writeln!(out, "guest problem: {p}");
    }
    let _ = writeln!(
        out,
        "\nguest ran {:.1} s; serial log: {}",
        report.guest_seconds,
        report.serial_log.display()
    );
    let _ = writeln!(
        out,
        "validated {} bundle(s) in {:.1} s: {}",
        report.bundles.len(),
        report.total_seconds,
        if report.passed() { "PASS" } else { "FAIL" }
    );
    out
}

/// Writes the JSON report.
pub fn write_json(report: &ValidationReport, path: &Path) -> Result<()> {
    let text = serde_json::to_string_pretty(report).map_err(|e| HarnessError::Io {
        what: "cannot serialize the report for",
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
    }
    std::fs::write(path, text + "\n").map_err(io_err("cannot write", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_parse_and_loaded_naming() {
        assert_eq!(
            Expectations::parse("fail,pass,fail"),
            Ok(Expectations::LOADED)
        );
        assert!(Expectations::parse("fail,pass").is_err());
        assert!(Expectations::parse("fail,maybe,fail").is_err());
        let t = TestScript::new(PathBuf::from("x/cmdline-LOADED.test"), None);
        assert_eq!(t.map(|t| t.expect), Ok(Expectations::LOADED));
        let plain = TestScript::new(PathBuf::from("x/check.sh"), None);
        assert!(plain.is_err_and(|e| e.contains("--expect")));
        let given = Expectations::parse("pass,pass,pass").unwrap_or(Expectations::LOADED);
        let t = TestScript::new(PathBuf::from("x/a-LOADED.test"), Some(given));
        assert_eq!(t.map(|t| t.expect.before), Ok(Expect::Pass));
    }

    /// A relocatable ELF object with `.modinfo` holding `entries`.
    fn module_with_modinfo(entries: &[&str]) -> Vec<u8> {
        use object::write::{Object, StandardSection};
        let mut obj = Object::new(
            object::BinaryFormat::Elf,
            object::Architecture::X86_64,
            object::Endianness::Little,
        );
        let section = obj.add_section(
            Vec::new(),
            b".modinfo".to_vec(),
            object::SectionKind::ReadOnlyData,
        );
        let mut data = Vec::new();
        for e in entries {
            data.extend_from_slice(e.as_bytes());
            data.push(0);
        }
        obj.append_section_data(section, &data, 1);
        let _ = obj.section_id(StandardSection::Text);
        obj.write().unwrap_or_default()
    }

    #[test]
    fn target_modules_come_from_the_patch_modules_modinfo() {
        let ko = module_with_modinfo(&[
            "license=GPL",
            "suture_patch=fs_ext4_namei",
            "suture_target_module=ext4",
            "suture_target_module=jbd2",
            "depends=suture",
        ]);
        assert_eq!(
            modinfo_values(&ko, "suture_target_module"),
            vec!["ext4".to_string(), "jbd2".to_string()]
        );
        assert_eq!(modinfo_values(&ko, "depends"), vec!["suture".to_string()]);
        assert!(modinfo_values(&ko, "nothing").is_empty());
        assert!(modinfo_values(b"not an ELF file", "suture_target_module").is_empty());
    }

    #[test]
    fn load_classes_follow_the_subsystem() {
        assert_eq!(load_classes("fs/proc/cmdline.o"), &["proc"]);
        assert_eq!(load_classes("fs/ext4/inode.o"), &["fs", "proc"]);
        assert_eq!(load_classes("net/ipv4/tcp.o"), &["net"]);
        assert_eq!(load_classes("drivers/net/tun.o"), ALL_CLASSES);
        assert_eq!(load_classes("lib/string.o"), ALL_CLASSES);
    }

    fn check(name: &str, status: Option<i32>, output: &str) -> CheckResult {
        CheckResult {
            name: name.to_string(),
            status,
            output: output.to_string(),
            seconds: Some(0.5),
        }
    }

    fn plan_with_test() -> Plan {
        let manifest = Manifest::example();
        Plan {
            target: Target {
                release: manifest.target.kernel_release.clone(),
                dir: PathBuf::from("/nonexistent"),
            },
            key: PathBuf::from("k.pub"),
            bundles: vec![BundleUnderTest {
                path: PathBuf::from("fix.bundle"),
                name: manifest.id.clone(),
                manifest,
                test: Some(TestScript {
                    path: PathBuf::from("fix-LOADED.test"),
                    expect: Expectations::LOADED,
                }),
                target_modules: Vec::new(),
            }],
            load: Load::Default,
            cpus: 2,
            step_timeout: Duration::from_secs(60),
            run_name: "t".to_string(),
            files: Vec::new(),
        }
    }

    /// A serial log with the given exit status of each of the seven
    /// steps and the log step's output.
    fn serial(id: &str, statuses: [i32; 7], log_output: &str, taint: u64) -> String {
        let steps = [
            "prepare", "before", "apply", "applied", "revert", "reverted", "log",
        ];
        let mut text = String::new();
        for (step, status) in steps.iter().zip(statuses) {
            let _ = writeln!(text, "@@SUTURE-CHECK-BEGIN {id}.{step}");
            if *step == "revert" {
                text.push_str("patchtest-load-rounds 7\npatchtest-hits cmdline_proc_show 12\n");
            }
            if *step == "log" {
                text.push_str(log_output);
            }
            let _ = writeln!(text, "@@SUTURE-CHECK-END {id}.{step} {status} 0.10");
        }
        let _ = writeln!(text, "@@SUTURE-TAINT {taint}\n@@SUTURE-DONE");
        text
    }

    fn judged(log: &str) -> ValidationReport {
        let plan = plan_with_test();
        let run = GuestRun::parse("t", log, "OE", Duration::ZERO, PathBuf::new());
        judge(&plan, &run, Duration::from_secs(1))
    }

    #[test]
    fn fail_pass_fail_with_a_clean_log_passes() {
        let id = Manifest::example().id;
        let report = judged(&serial(
            &id,
            [0, 1, 0, 0, 0, 1, 0],
            "patchtest-taint 0 12288\n",
            12288,
        ));
        assert!(report.passed(), "{report:?}");
        let b = &report.bundles[0];
        assert_eq!(b.load_rounds, Some(7));
        assert_eq!(
            b.calls_under_load,
            vec![("cmdline_proc_show".to_string(), 12)]
        );
        assert_eq!(b.steps.len(), 7);
        assert!(b.steps.iter().all(|s| s.ok && s.seconds == Some(0.1)));
    }

    #[test]
    fn a_test_that_still_fails_after_apply_fails_the_bundle() {
        let id = Manifest::example().id;
        let report = judged(&serial(
            &id,
            [0, 1, 0, 1, 0, 1, 0],
            "patchtest-taint 0 12288\n",
            12288,
        ));
        assert!(!report.passed());
        let reasons = &report.bundles[0].reasons;
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(reasons[0].starts_with("applied: the test failed with the bundle applied"));
    }

    #[test]
    fn a_warning_and_new_taint_fail_the_bundle_not_the_guest() {
        let id = Manifest::example().id;
        let log = "patchtest-taint 0 12800\n[ 3.1] WARNING: CPU: 1 PID: 9 at fs/proc/cmdline.c:11 f+0x4d\n";
        let report = judged(&serial(&id, [0, 1, 0, 0, 0, 1, 1], log, 12800));
        assert!(!report.passed());
        let b = &report.bundles[0];
        assert_eq!(b.taint_gained, 512);
        assert!(
            b.reasons.iter().any(|r| r.contains("gained taint W")),
            "{:?}",
            b.reasons
        );
        assert!(
            b.reasons.iter().any(|r| r.contains("WARNING: CPU: 1")),
            "{:?}",
            b.reasons
        );
        assert!(
            report.guest_problems.is_empty(),
            "{:?}",
            report.guest_problems
        );
    }

    #[test]
    fn a_guest_that_died_mid_step_fails_with_never_finished() {
        let id = Manifest::example().id;
        let log = format!("@@SUTURE-CHECK-BEGIN {id}.prepare\n@@SUTURE-CHECK-END {id}.prepare 0 0.1\n@@SUTURE-CHECK-BEGIN {id}.before\n[ 9.5] Kernel panic - not syncing: x\n");
        let report = judged(&log);
        assert!(!report.passed());
        let b = &report.bundles[0];
        assert!(
            b.reasons
                .iter()
                .any(|r| r.starts_with("before: never finished")),
            "{:?}",
            b.reasons
        );
        assert!(b.kernel_problems.iter().any(|p| p.contains("Kernel panic")));
        assert!(report
            .guest_problems
            .iter()
            .any(|p| p.contains("did not reach the end")));
    }

    #[test]
    fn reasons_name_the_failed_expectation() {
        let c = check("x.applied", Some(1), "patchtest-test-status 1\n");
        let r = step_reason(Step::Applied, Expect::Pass, &c, false);
        assert!(r.contains("failed with the bundle applied"), "{r}");
        assert!(r.contains("does not do what the test checks"), "{r}");
        let c = check(
            "x.apply",
            Some(5),
            "patchd: error: rejected: bad signature\n",
        );
        let r = step_reason(Step::Apply, Expect::Pass, &c, false);
        assert_eq!(r, "apply: exit 5: patchd: error: rejected: bad signature");
        let c = check("x.revert", None, "");
        assert!(step_reason(Step::Revert, Expect::Pass, &c, false).contains("never finished"));
    }
}
