//! `real-fixes`: the coverage table of the real-fix corpus
//! (tests/real-fixes/livepatch.txt). Builds every fix with `patchgen
//! build` for the pinned kernel, validates every built bundle with
//! patchtest in one guest boot (applied and reverted under load, its
//! `-LOADED.test` where the fix has a visible effect, a clean kernel log),
//! and prints the table. See docs/real-fixes.md.
//!
//! A developer tool, not installed: it reads the corpus, its fixtures and
//! programs from the checkout it was built in, builds `patchd` there with
//! cargo, and works under the checkout's `target/vm-tests/`.
//!
//! Exit codes: 0 every fix did what the list expects; 1 some did not; 3
//! the corpus could not run (no kernel cache, a bad list, QEMU missing).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::Context;
use patchgen::build::KernelTarget;
use patchtest::corpus::{self, Built, Fix};
use patchtest::validate::{
    self, BundleUnderTest, Expectations, Load, Plan, TestScript, ValidationReport,
};
use suture_bundle::SigningKey;
use vm_tests::modules::test_key;
use vm_tests::{work_dir, workspace_root, Target};

fn main() -> ExitCode {
    vm_tests::end_quietly_on_closed_pipe();
    let only: Vec<String> = std::env::args().skip(1).collect();
    if only.iter().any(|a| a.starts_with('-')) {
        eprintln!(
            "usage: real-fixes [PATCH...]  (default: every fix of tests/real-fixes/livepatch.txt, or of tests/real-fixes/LINE/livepatch.txt for a SUTURE_KERNEL of that line)"
        );
        return ExitCode::from(2);
    }
    match run(&only) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("real-fixes: error: {e:#}");
            ExitCode::from(3)
        }
    }
}

/// How long each bundle's load may run on for its new code to be reached:
/// `SUTURE_REACH_SECS`, default 5 (66 bundles: at most about 5 minutes
/// more in CI).
fn reach() -> Duration {
    let secs = std::env::var("SUTURE_REACH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    Duration::from_secs(secs)
}

/// Compiles the static test programs of patchtest/fixtures/programs for
/// the guest, which has no compiler.
fn programs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let src = workspace_root().join("patchtest/fixtures/programs");
    let mut out = Vec::new();
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&src)
        .with_context(|| format!("cannot read {}", src.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .collect();
    sources.sort();
    std::fs::create_dir_all(dir)?;
    for c in sources {
        let name = c.file_stem().context("a program without a name")?;
        let bin = dir.join(name);
        let status = Command::new("gcc-12")
            .args(["-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o"])
            .arg(&bin)
            .arg(&c)
            .status()
            .context("cannot run gcc-12 (scripts/setup installs it, with libc6-dev)")?;
        anyhow::ensure!(
            status.success(),
            "compiling {} failed (static glibc: libc6-dev)",
            c.display()
        );
        out.push(bin);
    }
    Ok(out)
}

fn run(only: &[String]) -> anyhow::Result<bool> {
    let started = Instant::now();
    let target = Target::from_env()?;
    let corpus = corpus::corpus_dir_for(&target.release);
    let list = corpus.join("livepatch.txt");
    let fixes = read_list(&list, only)?;
    let kernel = patchgen::build::KernelTarget::from_cache(&target.release)?;
    let root = work_dir().join("build").join(&target.release);
    let (key, public) = test_key(&root)?;
    let dir = root.join("real-fixes");
    std::fs::create_dir_all(&dir)?;

    let built = build_all(&kernel, &fixes, &key, &dir)?;
    let build_time = started.elapsed();
    let report = validate_built(&target, &kernel, &fixes, &built, &public, &dir, started)?;

    let rows = corpus::rows(&fixes, &built, report.as_ref());
    println!(
        "real-fix corpus: {} from Debian's stable updates on {} ({})",
        list.display(),
        target.release,
        kernel.package_version.as_deref().unwrap_or("?")
    );
    print!("{}", corpus::render(&rows));
    if let Some(r) = &report {
        for p in &r.guest_problems {
            println!("guest problem: {p}");
        }
        println!(
            "built in {:.0} s; guest ran {:.0} s; total {:.0} s; serial log {}",
            build_time.as_secs_f64(),
            r.guest_seconds,
            started.elapsed().as_secs_f64(),
            r.serial_log.display()
        );
    }
    let guest_ok = report.as_ref().is_none_or(|r| r.guest_problems.is_empty());
    Ok(guest_ok && rows.iter().all(|r| r.as_expected))
}

/// The fixes of the list, or only those named in `only`.
fn read_list(list: &Path, only: &[String]) -> anyhow::Result<Vec<Fix>> {
    let text =
        std::fs::read_to_string(list).with_context(|| format!("cannot read {}", list.display()))?;
    let mut fixes =
        corpus::parse_list(&text).map_err(|e| anyhow::anyhow!("{}: {e}", list.display()))?;
    if !only.is_empty() {
        fixes.retain(|f| only.contains(&f.patch));
        anyhow::ensure!(
            !fixes.is_empty(),
            "none of {only:?} is in {}",
            list.display()
        );
    }
    Ok(fixes)
}

/// Builds every fix with patchgen, one build per core (each compiles in
/// its own work directory); the results in the list's order.
fn build_all(
    kernel: &KernelTarget,
    fixes: &[Fix],
    key: &SigningKey,
    dir: &Path,
) -> anyhow::Result<Vec<Built>> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<anyhow::Result<Built>>>> =
        fixes.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(fix) = fixes.get(i) else { break };
                let t = Instant::now();
                let b = corpus::build_fix(kernel, fix, key, dir).map_err(anyhow::Error::from);
                eprintln!(
                    "real-fixes: [{}/{}] {}: {} ({:.1} s)",
                    i + 1,
                    fixes.len(),
                    fix.patch,
                    match &b {
                        Ok(Built::Bundle(_)) => "built".to_string(),
                        Ok(Built::Refused(c, _)) => format!("refused: {c}"),
                        Err(e) => format!("error: {e}"),
                    },
                    t.elapsed().as_secs_f64()
                );
                if let Ok(mut slot) = results[i].lock() {
                    *slot = Some(b);
                }
            });
        }
    });
    let mut built = Vec::new();
    for (slot, fix) in results.into_iter().zip(fixes) {
        let result = slot
            .into_inner()
            .ok()
            .flatten()
            .with_context(|| format!("{} was not built", fix.patch))?;
        built.push(result?);
    }
    Ok(built)
}

/// Validates every built bundle with patchtest in one guest boot, with
/// the fix's test where it has one; `None` when nothing was built.
fn validate_built(
    target: &Target,
    kernel: &KernelTarget,
    fixes: &[Fix],
    built: &[Built],
    public: &Path,
    dir: &Path,
    started: Instant,
) -> anyhow::Result<Option<ValidationReport>> {
    let verifying = suture_bundle::read_verifying_key(public)?;
    let mut bundles = Vec::new();
    for (fix, b) in fixes.iter().zip(built) {
        if let Built::Bundle(path) = b {
            let test = match &fix.test {
                Some(t) => Some(
                    TestScript::new(
                        corpus::corpus_dir_for(&target.release)
                            .join("tests")
                            .join(t),
                        Some(Expectations::LOADED),
                    )
                    .map_err(|e| anyhow::anyhow!(e))?,
                ),
                None => None,
            };
            bundles.push(
                BundleUnderTest::open(path, &verifying, kernel, test)
                    .map_err(|e| anyhow::anyhow!(e))?,
            );
        }
    }
    if bundles.is_empty() {
        return Ok(None);
    }
    let mut plan = Plan {
        target: target.clone(),
        key: public.to_path_buf(),
        run_name: format!("real-fixes-{}", target.release),
        bundles,
        load: Load::Default,
        cpus: 2,
        step_timeout: Duration::from_secs(120),
        reach: reach(),
        files: programs(&dir.join("programs"))?,
    };
    plan.dedupe_names();
    // A hung guest, not a slow one: 5 minutes plus one per bundle.
    let overall = Duration::from_secs(300)
        + Duration::from_secs(60)
            .saturating_mul(u32::try_from(plan.bundles.len()).unwrap_or(u32::MAX));
    // A developer tool: it works in the checkout's target/vm-tests and
    // builds patchd there, like the rig's VM tests.
    let places = patchtest::install::Places {
        build: work_dir().join("build").join(&target.release),
        run: work_dir().join(&plan.run_name),
        patchd: vm_tests::qemu::build_patchd()?,
    };
    let run = plan.boot(overall, &places)?;
    let report = validate::judge(&plan, &run, started.elapsed());
    validate::write_json(&report, &run.dir.join("report.json"))?;
    Ok(Some(report))
}
