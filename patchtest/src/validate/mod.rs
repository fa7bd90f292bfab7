//! patchtest: validates signed bundles in a QEMU guest of their target
//! kernel before they ship.
//!
//! For each bundle, one guest boot runs these steps (patchtest/guest/
//! steps.sh), each a guest check with its own exit status, time
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
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use suture_bundle::Manifest;

use crate::install::Places;
use vm_tests::report::GuestRun;
use vm_tests::{io_err, GuestFile, HarnessError, Result, Target};

/// Exit status of a step the guest skipped (an earlier step failed).
const SKIPPED: i32 = 125;

/// `patchtest/guest/steps.sh`, built in: the guest's step functions.
pub const STEPS_SH: &[u8] = include_bytes!("../../guest/steps.sh");

/// `patchtest/guest/load.sh`, built in: the default load.
pub const LOAD_SH: &[u8] = include_bytes!("../../guest/load.sh");

/// The guest scripts built in, by their path in the checkout.
pub const GUEST_FILES: &[(&str, &[u8])] = &[
    ("patchtest/guest/steps.sh", STEPS_SH),
    ("patchtest/guest/load.sh", LOAD_SH),
];

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
    /// patchtest/guest/load.sh with exercisers chosen per bundle
    /// from the source files of its replaced functions.
    Default,
    /// The user's script, run as `sh SCRIPT CPU` once per vCPU.
    Script(PathBuf),
    /// No load.
    None,
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
    /// sha256 of the bundle file, lowercase hex.
    pub sha256: String,
    /// The test script, if any.
    pub test: Option<TestScript>,
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
        use sha2::Digest;
        let sha256 = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            name: manifest.id.clone(),
            manifest,
            sha256,
            test,
        })
    }

    /// The kernel modules whose code the bundle patches, which the guest
    /// loads first: the manifest's `target_modules` (patchgen lists every
    /// module whose functions the patch replaces), and the modules its link
    /// records name.
    pub fn kernel_modules(&self) -> Vec<String> {
        let mut set: BTreeSet<String> = self.manifest.target_modules.iter().cloned().collect();
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
            set.extend(BROAD_CLASSES.iter().copied());
        }
        // Keep load.sh's order, cheap exercisers first.
        ALL_CLASSES
            .iter()
            .copied()
            .filter(|c| set.contains(c))
            .collect()
    }

    /// The kernel modules the default load's exercisers need for this
    /// bundle ([`class_modules`]).
    pub fn load_modules(&self) -> Vec<&'static str> {
        class_modules(&self.classes())
    }

    /// How many steps the guest runs for this bundle.
    pub fn step_count(&self) -> usize {
        self.steps().len()
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
    /// How long the load may run on, before a bundle is reverted, for the
    /// new code of every replaced function to be called at least once
    /// (evidence that it ran); zero: revert right after the applied test.
    pub reach: Duration,
    /// Names the run (and its directory).
    pub run_name: String,
    /// Host files the tests need (programs, data), put in the guest's
    /// /suture/files/, which is on the tests' PATH.
    pub files: Vec<PathBuf>,
}

impl Plan {
    /// The target's modules the bundles patch, loaded at `prepare`, and
    /// those the default load's exercisers need, loaded when the load
    /// starts: all go into the guest.
    pub fn kernel_modules(&self) -> Vec<String> {
        let mut set: BTreeSet<String> = self
            .bundles
            .iter()
            .flat_map(BundleUnderTest::kernel_modules)
            .collect();
        for b in &self.bundles {
            set.extend(self.load_modules(b));
        }
        set.into_iter().collect()
    }

    /// The modules the default load needs for `b` that the target has as
    /// modules (built-in or missing ones are left out: an exerciser
    /// without its module does nothing).
    fn load_modules(&self, b: &BundleUnderTest) -> Vec<String> {
        if self.load != Load::Default {
            return Vec::new();
        }
        b.load_modules()
            .into_iter()
            .map(str::to_string)
            .filter(|m| {
                vm_tests::kernel_module_closure(&self.target, std::slice::from_ref(m)).is_ok()
            })
            .collect()
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
        let mut files = self.script_files()?;
        files.extend(self.user_files()?);
        let mut checks = Vec::new();
        for b in &self.bundles {
            files.extend(self.bundle_files(b)?);
            checks.extend(step_checks(b));
        }
        Ok(GuestSetup { checks, files })
    }

    /// The guest's step functions and the load (the default's, the user's
    /// script, or the mark that there is none).
    fn script_files(&self) -> Result<Vec<GuestFile>> {
        let mut files = vec![GuestFile {
            path: "/suture/validate/steps.sh".to_string(),
            data: STEPS_SH.to_vec(),
            mode: 0o644,
        }];
        match &self.load {
            Load::Default => files.push(GuestFile {
                path: "/suture/validate/load.sh".to_string(),
                data: LOAD_SH.to_vec(),
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
        files.push(GuestFile {
            path: "/suture/validate/reach_secs".to_string(),
            data: self.reach.as_secs().to_string().into_bytes(),
            mode: 0o644,
        });
        Ok(files)
    }

    /// The host files the tests need, in /suture/files/, executable when
    /// they are on the host.
    fn user_files(&self) -> Result<Vec<GuestFile>> {
        let mut files = Vec::new();
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
        Ok(files)
    }

    /// One bundle's directory in the guest: the bundle, its id, functions,
    /// load classes, the kernel modules it patches and those its load
    /// needs, and its test.
    fn bundle_files(&self, b: &BundleUnderTest) -> Result<Vec<GuestFile>> {
        let dir = format!("/suture/validate/{}", b.name);
        let file = |name: &str, data: Vec<u8>| GuestFile {
            path: format!("{dir}/{name}"),
            data,
            mode: 0o644,
        };
        let bundle = read(&b.path)?;
        let functions: String = b
            .manifest
            .replaced_functions
            .iter()
            .map(|f| format!("{}\n", f.old_name))
            .collect();
        let classes = match self.load {
            Load::Default => b.classes().join(" "),
            _ => String::new(),
        };
        // The modules this bundle patches, dependencies first: the guest
        // loads only these for it.
        let kmods: String = vm_tests::kernel_module_closure(&self.target, &b.kernel_modules())?
            .into_iter()
            .map(|(name, _)| name + "\n")
            .collect();
        // The modules the load needs, dependencies first: the loaders'
        // start loads them.
        let load_kmods: String =
            vm_tests::kernel_module_closure(&self.target, &self.load_modules(b))?
                .into_iter()
                .map(|(name, _)| name + "\n")
                .collect();
        let mut files = vec![
            file("bundle", bundle),
            file("id", b.manifest.id.clone().into_bytes()),
            file("functions", functions.into_bytes()),
            file("load_classes", classes.into_bytes()),
            file("kmods", kmods.into_bytes()),
            file("load_kmods", load_kmods.into_bytes()),
        ];
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
            files.push(file("test_name", shown.into_bytes()));
        }
        Ok(files)
    }
}

/// A host file's bytes.
fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(io_err("cannot read", path))
}

/// The generated guest check of each step of `b`: (name, script).
fn step_checks(b: &BundleUnderTest) -> Vec<(String, String)> {
    b.steps()
        .into_iter()
        .map(|step| {
            (
                format!("{}.{}", b.name, step.as_str()),
                format!(
                    "# patchtest: {} of {}\nset -- {}\n. /suture/validate/steps.sh\n{}\n",
                    step.as_str(),
                    b.name,
                    b.name,
                    step.guest_call()
                ),
            )
        })
        .collect()
}

impl Plan {
    /// Builds the companion module for the target in `places.build` (and
    /// the default load's programs, [`programs::build`]) and boots it once with every bundle's steps and `places.patchd`, in
    /// `places.run`. `overall` bounds the whole boot: a guest that
    /// outlives it hung (`HarnessError::Timeout`, serial log kept).
    pub fn boot(&self, overall: Duration, places: &Places) -> Result<GuestRun> {
        let mut modules = vm_tests::BuiltModules {
            modules: Default::default(),
            records: Default::default(),
            bundles: Default::default(),
            trusted_key: Some(self.key.clone()),
        };
        modules.modules.insert(
            "suture".to_string(),
            vm_tests::modules::build_companion_in(&self.target, &places.build)?,
        );
        let mut setup = self.guest()?;
        if self.load == Load::Default {
            setup.files.extend(programs::build(&places.build)?);
        }
        let mut spec = vm_tests::GuestSpec::generated(&self.run_name);
        spec.cpus = self.cpus;
        spec.check_timeout = self.step_timeout;
        spec.timeout = overall;
        spec.kernel_modules = self.kernel_modules();
        spec.generated_checks = setup.checks;
        spec.files = setup.files;
        vm_tests::run_guest_in(&self.target, &modules, &spec, &places.run, &places.patchd)
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

mod judge;
mod load;
pub mod programs;

pub use judge::{judge, render, write_json, BundleReport, StepReport, ValidationReport};
use load::BROAD_CLASSES;
pub use load::{class_modules, load_classes, ALL_CLASSES};

#[cfg(test)]
mod tests;
