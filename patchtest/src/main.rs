//! `patchtest`: validate signed bundles in a QEMU guest of their target
//! kernel before they ship. See docs/patchtest.md.
//!
//! Exit codes: 0 every expectation held; 1 validation failed (the report
//! says which step of which bundle and why); 2 usage error; 3 could not
//! validate (no kernel cache, QEMU missing, a bundle that is unreadable,
//! not signed by the key or for another kernel).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use patchtest::install::{self, SetupError};
use patchtest::validate::{self, BundleUnderTest, Expectations, Load, Plan, TestScript};
use vm_tests::{HarnessError, Target};

const EXIT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_CANNOT_RUN: u8 = 3;

/// Validate live-patch bundles in a QEMU guest of their target kernel:
/// each bundle is applied and reverted by patchd while a load runs on
/// every vCPU, its test script runs before apply, applied and after
/// revert, and the kernel log is checked for warnings, oopses, lockdep
/// reports and taint.
#[derive(Debug, Parser)]
#[command(
    name = "patchtest",
    version,
    after_help = "A test script runs in the guest under busybox sh. NAME-LOADED.test (kpatch's convention) is expected to fail before apply, pass applied, fail after revert; other scripts need --expect.\n\nExit codes: 0 every expectation held, 1 validation failed, 2 usage error, 3 could not validate (setup, unreadable or untrusted bundle, wrong kernel).\n\nEnvironment: SUTURE_PATCHD (patchd for the guest, when no --patchd), SUTURE_WORK_DIR (builds and runs; default ~/.cache/suture/patchtest), SUTURE_CACHE (the kernel cache).\n\nSee docs/patchtest.md."
)]
struct Cli {
    /// The bundles, validated one after the other in one guest boot.
    #[arg(required = true, value_name = "BUNDLE")]
    bundles: Vec<PathBuf>,
    /// Public key that signed the bundles (patchgen keygen's NAME.pub);
    /// the guest trusts only it.
    #[arg(long, value_name = "NAME.pub")]
    key: PathBuf,
    /// Target kernel: a kernel cache entry (scripts/setup --kernel REL);
    /// default: the bundles' target.
    #[arg(long, value_name = "RELEASE")]
    kernel: Option<String>,
    /// Test script for the bundle (repeat once per bundle, in order, when
    /// validating several).
    #[arg(long = "test", value_name = "SCRIPT")]
    tests: Vec<PathBuf>,
    /// What the test should do before apply, applied, after revert:
    /// pass or fail each (e.g. fail,pass,fail); needed for scripts not
    /// named NAME-LOADED.test.
    #[arg(long, value_name = "BEFORE,APPLIED,REVERTED", value_parser = Expectations::parse)]
    expect: Option<Expectations>,
    /// Load script run as `sh SCRIPT CPU` on every vCPU while bundles are
    /// applied and reverted (default: exercisers chosen from the source
    /// files of the replaced functions).
    #[arg(long, value_name = "SCRIPT", conflicts_with = "no_load")]
    load: Option<PathBuf>,
    /// Apply and revert without a load.
    #[arg(long)]
    no_load: bool,
    /// Virtual CPUs.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
    cpus: u32,
    /// Limit for each step in the guest, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    step_timeout: u64,
    /// Before reverting, run the load on for up to this many seconds until
    /// the new code of every replaced function has been called (evidence
    /// it ran, reported per function); 0: revert at once.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    reach_secs: u64,
    /// A host file the test scripts need (a static program, data): put
    /// in the guest's /suture/files/, which is on their PATH (repeatable).
    #[arg(long = "file", value_name = "PATH")]
    files: Vec<PathBuf>,
    /// Where to write the JSON report (default: report.json beside the
    /// serial log).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// The patchd executable to put into the guest (default:
    /// $SUTURE_PATCHD, else the patchd beside patchtest, else patchd on
    /// PATH).
    #[arg(long, value_name = "PATH")]
    patchd: Option<PathBuf>,
}

/// Why a validation could not run.
#[derive(Debug, thiserror::Error)]
enum CannotRun {
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Harness(#[from] HarnessError),
    #[error(transparent)]
    Setup(#[from] SetupError),
}

fn main() -> ExitCode {
    vm_tests::end_quietly_on_closed_pipe();
    // `--generate man|bash|zsh|fish DIR`: the Debian packages' man pages
    // and completions (suture-clidocs); not part of the parsed command line.
    if let Some(code) =
        suture_clidocs::generate_if_asked(<Cli as clap::CommandFactory>::command, "1")
    {
        return code;
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if cli.tests.len() > cli.bundles.len() {
        eprintln!("patchtest: error: more --test scripts than bundles");
        return ExitCode::from(EXIT_USAGE);
    }
    match run(&cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(EXIT_FAILED),
        Err(e) => {
            eprintln!("patchtest: error: {e}");
            ExitCode::from(EXIT_CANNOT_RUN)
        }
    }
}

fn plan(cli: &Cli) -> Result<Plan, CannotRun> {
    let key = suture_bundle::read_verifying_key(&cli.key)
        .map_err(|e| CannotRun::Input(format!("{}: {e}", cli.key.display())))?;
    let release = match &cli.kernel {
        Some(r) => r.clone(),
        None => {
            // The first bundle names the target; the others must share it.
            let first = &cli.bundles[0];
            let bytes = suture_bundle::read_file(first)
                .map_err(|e| CannotRun::Input(format!("{}: {e}", first.display())))?;
            let parsed = suture_bundle::parse(&bytes)
                .map_err(|e| CannotRun::Input(format!("{}: not a bundle: {e}", first.display())))?;
            let verified = parsed.verify(std::slice::from_ref(&key)).map_err(|e| {
                CannotRun::Input(format!(
                    "{}: {e} (pass the public key that signed it with --key)",
                    first.display()
                ))
            })?;
            verified.manifest().target.kernel_release.clone()
        }
    };
    let target = Target::open(&release)?;
    let kernel = patchgen::build::KernelTarget::from_cache(&release)
        .map_err(|e| CannotRun::Input(e.to_string()))?;
    let mut bundles = Vec::new();
    for (i, path) in cli.bundles.iter().enumerate() {
        let test = match cli.tests.get(i) {
            Some(t) => Some(TestScript::new(t.clone(), cli.expect).map_err(CannotRun::Input)?),
            None => None,
        };
        bundles.push(BundleUnderTest::open(path, &key, &kernel, test).map_err(CannotRun::Input)?);
    }
    let load = match (&cli.load, cli.no_load) {
        (Some(p), _) => Load::Script(p.clone()),
        (None, true) => Load::None,
        (None, false) => Load::Default,
    };
    let mut plan = Plan {
        target,
        key: cli.key.clone(),
        run_name: format!("patchtest-{}", bundles[0].name),
        bundles,
        load,
        cpus: cli.cpus,
        step_timeout: Duration::from_secs(cli.step_timeout),
        reach: Duration::from_secs(cli.reach_secs),
        files: cli.files.clone(),
    };
    plan.dedupe_names();
    Ok(plan)
}

fn run(cli: &Cli) -> Result<bool, CannotRun> {
    let started = Instant::now();
    let plan = plan(cli)?;
    let places = install::places(&plan.target.release, &plan.run_name, cli.patchd.as_deref())?;
    eprintln!(
        "patchtest: {} bundle(s); building the companion module and booting {} under QEMU TCG ({} vCPU(s))",
        plan.bundles.len(),
        plan.target.vmlinuz().display(),
        plan.cpus
    );
    // Boot, plus every step at its limit: a guest that outlives this hung.
    let steps: usize = plan.bundles.iter().map(BundleUnderTest::step_count).sum();
    let overall = Duration::from_secs(120)
        + plan
            .step_timeout
            .saturating_mul(u32::try_from(steps).unwrap_or(u32::MAX))
        + plan
            .reach
            .saturating_mul(u32::try_from(plan.bundles.len()).unwrap_or(u32::MAX));
    let run = match plan.boot(overall, &places) {
        Ok(run) => run,
        Err(HarnessError::Timeout { seconds, log, .. }) => {
            // A bundle that hangs the guest fails validation.
            println!(
                "patchtest: FAIL: the guest did not finish within {seconds} s (a step hung the kernel?); serial log: {}",
                log.display()
            );
            return Ok(false);
        }
        Err(e) => return Err(e.into()),
    };
    let report = validate::judge(&plan, &run, started.elapsed());
    print!("{}", validate::render(&report));
    let json = cli
        .report
        .clone()
        .unwrap_or_else(|| run.dir.join("report.json"));
    validate::write_json(&report, &json)?;
    println!("report: {}", json.display());
    Ok(report.passed())
}
