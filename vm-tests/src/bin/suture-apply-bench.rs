//! Benchmark of patchd in one guest boot of the target kernel (QEMU TCG, no
//! KVM: absolute times are inflated many times over; see docs/benchmarks.md):
//! - end-to-end `patchd apply` of a 1-function and a 20-function bundle
//!   (verify, link, load, enable), split into phases by the guest-clock
//!   stamps of patchd's log lines, and `patchd revert`;
//! - the stop_machine pause of each enable (the companion's `last_pause_ns`);
//! - the idle `patchd daemon`: resident memory and CPU time over a window.
//!
//! Both with the release patchd the rig puts in every guest and, unless
//! `--no-debug`, a debug build. The bundles are built by `patchgen
//! build` from `vm-tests/bench/*.patch` and signed with the rig's key.
//!
//! `--baseline PATCHD` measures another patchd binary (a release build of a
//! previous commit) in the same boot, for a side-by-side comparison.
//!
//! Run: `scripts/bench-apply [--rounds N] [--idle-secs S] [--no-debug] [--baseline PATCHD]`
//! (SUTURE_KERNEL selects another cached target). Prints figures; asserts
//! no timing. It fails if a bundle does not take effect, a step fails or the
//! guest kernel logs a problem. Exit codes: 0 figures printed, 1 failed,
//! 2 usage.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use clap::Parser;
use vm_tests::modules::{build_bundle, build_companion, test_key};
use vm_tests::{run_guest, work_dir, workspace_root, BuiltModules, GuestFile, GuestSpec, Target};

/// USER_HZ on x86: the unit of utime and stime in /proc/PID/stat.
const TICKS_PER_SEC: f64 = 100.0;

/// The benchmark's bundles: id, fix, functions patchgen must replace.
const BUNDLES: &[(&str, &str, usize)] = &[
    ("bench_one", "vm-tests/bench/one_function.patch", 1),
    ("bench_twenty", "vm-tests/bench/twenty_functions.patch", 20),
];

/// Where the guest finds the debug build of patchd (the rig puts the
/// release build at /suture/bin/patchd).
const DEBUG_PATCHD: &str = "/suture/bin-debug/patchd";

/// Where the guest finds the `--baseline` patchd.
const BASELINE_PATCHD: &str = "/suture/bin-baseline/patchd";

/// Time `patchd apply` and `patchd revert` of a 1-function and a
/// 20-function bundle, the stop_machine pause, and the idle daemon's
/// memory and CPU, in a QEMU guest of the target kernel.
#[derive(Debug, Parser)]
#[command(name = "suture-apply-bench")]
struct Cli {
    /// Apply/revert rounds of each bundle, for each patchd build.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=50))]
    rounds: u32,
    /// Seconds the idle daemon is watched.
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=600))]
    idle_secs: u32,
    /// Measure the release patchd only (do not build the debug one).
    #[arg(long)]
    no_debug: bool,
    /// Also measure this patchd binary (e.g. a release build of a previous
    /// commit) in the same guest boot, side by side.
    #[arg(long, value_name = "PATCHD")]
    baseline: Option<PathBuf>,
}

fn main() -> ExitCode {
    vm_tests::end_quietly_on_closed_pipe();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("suture-apply-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A patchd build measured in the guest.
struct Build {
    label: &'static str,
    guest_path: &'static str,
    host_path: PathBuf,
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let target = Target::from_env()?;
    // The rig's key: the one build_modules signs with, in the same place.
    let keys_root = work_dir().join("build").join(&target.release);
    let (key, public) = test_key(&keys_root)?;
    let dir = work_dir().join("apply-bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut modules = BuiltModules {
        modules: Default::default(),
        records: Default::default(),
        bundles: Default::default(),
        trusted_key: Some(public.clone()),
    };
    for (id, fix, functions) in BUNDLES {
        eprintln!("suture-apply-bench: patchgen build {fix}");
        let bundle = build_bundle(&target, &workspace_root().join(fix), id, &key, &dir)?;
        let found = replaced_functions(&bundle, &public)?;
        ensure!(
            found == *functions,
            "{fix}: patchgen replaces {found} function(s), the benchmark needs {functions}"
        );
        modules.bundles.insert(format!("{id}.bundle"), bundle);
    }
    modules
        .modules
        .insert("suture".to_string(), build_companion(&target)?);

    let guest_script = workspace_root().join("vm-tests/guest/bench/apply.sh");
    let mut files = vec![GuestFile {
        path: "/suture/bench/apply.sh".to_string(),
        data: std::fs::read(&guest_script)
            .with_context(|| format!("reading {}", guest_script.display()))?,
        mode: 0o644,
    }];
    let mut builds = vec![Build {
        label: "release",
        guest_path: "/suture/bin/patchd",
        host_path: target_dir().join("release/patchd"),
    }];
    if !cli.no_debug {
        eprintln!("suture-apply-bench: cargo build -p patchd (debug)");
        let host_path = build_debug_patchd()?;
        files.extend(with_libraries(DEBUG_PATCHD, &host_path)?);
        builds.push(Build {
            label: "debug",
            guest_path: DEBUG_PATCHD,
            host_path,
        });
    }

    if let Some(host_path) = &cli.baseline {
        files.extend(with_libraries(BASELINE_PATCHD, host_path)?);
        builds.push(Build {
            label: "baseline",
            guest_path: BASELINE_PATCHD,
            host_path: host_path.clone(),
        });
    }

    let mut spec = GuestSpec::new("apply-bench", &[]);
    spec.cpus = 2;
    spec.files = files;
    for b in &builds {
        let head = format!(
            "BIN={}\nLABEL={}\nROUNDS={}\nIDLE_SECS={}\n. /suture/bench/apply.sh\n",
            b.guest_path, b.label, cli.rounds, cli.idle_secs
        );
        spec.generated_checks.push((
            format!("apply-{}", b.label),
            format!("{head}bench_applies\n"),
        ));
        spec.generated_checks.push((
            format!("daemon-{}", b.label),
            format!("{head}bench_daemon\n"),
        ));
    }
    // Limits only: a TCG apply takes seconds, a hung one never ends.
    spec.check_timeout = Duration::from_secs(300 + 240 * u64::from(cli.rounds));
    let checks = u32::try_from(spec.generated_checks.len()).unwrap_or(u32::MAX);
    spec.timeout = Duration::from_secs(120) + spec.check_timeout.saturating_mul(checks);

    eprintln!(
        "suture-apply-bench: booting {} under QEMU TCG, 2 vCPUs",
        target.vmlinuz().display()
    );
    let run = run_guest(&target, &modules, &spec).context("running the guest")?;
    for (name, _) in &spec.generated_checks {
        if !run.check(name).is_some_and(|c| c.passed()) {
            bail!("{}", run.describe(name));
        }
    }
    if !run.problems.is_empty() {
        bail!("guest kernel problems:\n{}", run.problems.join("\n"));
    }
    print!(
        "{}",
        render(&target, cli, &builds, &run.figures, run.elapsed)?
    );
    Ok(())
}

/// How many functions a bundle replaces, read from its verified manifest.
fn replaced_functions(bundle: &Path, public: &Path) -> anyhow::Result<usize> {
    let key = suture_bundle::read_verifying_key(public)
        .with_context(|| format!("reading {}", public.display()))?;
    let bytes = suture_bundle::read_file(bundle)
        .with_context(|| format!("reading {}", bundle.display()))?;
    let parsed = suture_bundle::parse(&bytes)
        .with_context(|| format!("{} is not a bundle", bundle.display()))?;
    let verified = parsed
        .verify(std::slice::from_ref(&key))
        .with_context(|| format!("verifying {}", bundle.display()))?;
    Ok(verified.manifest().replaced_functions.len())
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

fn build_debug_patchd() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", "patchd", "--bin", "patchd"])
        .arg("--manifest-path")
        .arg(workspace_root().join("Cargo.toml"))
        .status()
        .context("running cargo")?;
    ensure!(status.success(), "cargo build -p patchd: {status}");
    Ok(target_dir().join("debug/patchd"))
}

/// A host executable at `guest`, and the shared libraries `ldd` lists for
/// it at their host paths (the release patchd brings the same ones; adding
/// them again keeps the debug build working if that ever changes).
fn with_libraries(guest: &str, host: &Path) -> anyhow::Result<Vec<GuestFile>> {
    let read =
        |path: &Path| std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    let mut files = vec![GuestFile {
        path: guest.to_string(),
        data: read(host)?,
        mode: 0o755,
    }];
    let out = Command::new("ldd")
        .arg(host)
        .output()
        .context("running ldd")?;
    ensure!(
        out.status.success(),
        "ldd {}: {}",
        host.display(),
        out.status
    );
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
        // "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let lib = line
            .split("=>")
            .last()
            .and_then(|rest| rest.split_whitespace().next())
            .filter(|p| p.starts_with('/'));
        if let Some(lib) = lib {
            files.push(GuestFile {
                path: lib.to_string(),
                data: read(Path::new(lib))?,
                mode: 0o755,
            });
        }
    }
    Ok(files)
}

/// Median (the upper one of an even count), minimum and maximum.
#[derive(Debug, Clone, Copy)]
struct Stats {
    median: f64,
    min: f64,
    max: f64,
}

fn values(figures: &[(String, String)], key: &str) -> Vec<f64> {
    figures
        .iter()
        .filter(|(k, _)| k == key)
        .filter_map(|(_, v)| v.trim().parse::<f64>().ok())
        .collect()
}

fn stats(figures: &[(String, String)], key: &str) -> anyhow::Result<Stats> {
    let mut v = values(figures, key);
    ensure!(!v.is_empty(), "no figure {key} in the guest output");
    v.sort_by(f64::total_cmp);
    Ok(Stats {
        median: v[v.len() / 2],
        min: v[0],
        max: v[v.len() - 1],
    })
}

/// The one value of a figure printed once.
fn single(figures: &[(String, String)], key: &str) -> anyhow::Result<f64> {
    Ok(stats(figures, key)?.median)
}

/// "median [min - max]" of microsecond figures, in `unit` (1000: ms).
fn range(figures: &[(String, String)], key: &str, unit: f64) -> anyhow::Result<String> {
    let s = stats(figures, key)?;
    Ok(format!(
        "{:.1} [{:.1} - {:.1}]",
        s.median / unit,
        s.min / unit,
        s.max / unit
    ))
}

/// The figures as a table, one column per patchd build, with a footer
/// naming the builds.
fn render(
    target: &Target,
    cli: &Cli,
    builds: &[Build],
    f: &[(String, String)],
    elapsed: Duration,
) -> anyhow::Result<String> {
    let mut table = Table {
        out: String::new(),
        builds,
        figures: f,
    };
    table.heading(target, cli);
    table.apply_rows()?;
    table.revert_rows()?;
    table.first_apply_rows()?;
    table.switch_rows()?;
    table.daemon_rows()?;
    table.footer(elapsed);
    Ok(table.out)
}

/// The text of one cell, from a build's label.
type Cell<'c> = &'c dyn Fn(&str) -> anyhow::Result<String>;

/// The benchmark's table as it is written: one column per patchd build.
struct Table<'a> {
    out: String,
    builds: &'a [Build],
    figures: &'a [(String, String)],
}

impl Table<'_> {
    /// One row: its label, and a cell per build.
    fn row(&mut self, label: &str, cell: Cell) -> anyhow::Result<()> {
        let _ = write!(self.out, "{label:44}");
        for b in self.builds {
            let text = cell(b.label)?;
            let _ = write!(self.out, "{text:>28}");
        }
        let _ = writeln!(self.out);
        Ok(())
    }

    /// What was measured where, and the builds' column headings.
    fn heading(&mut self, target: &Target, cli: &Cli) {
        let w = &mut self.out;
        let _ = writeln!(
            w,
            "patchd apply benchmark: kernel {}, QEMU TCG (no KVM), 2 vCPUs, {} rounds; guest clock",
            target.release, cli.rounds
        );
        let _ = writeln!(w, "median [min - max] of the rounds");
        let _ = writeln!(w);
        let _ = write!(w, "{:44}", "");
        for b in self.builds {
            let _ = write!(w, "{:>28}", format!("{} patchd", b.label));
        }
        let _ = writeln!(w);
    }

    /// `patchd apply` of each bundle, and its phases.
    fn apply_rows(&mut self) -> anyhow::Result<()> {
        let f = self.figures;
        for (what, kind) in [("1 function", "one"), ("20 functions", "twenty")] {
            self.row(&format!("apply, {what} (ms)"), &|l| {
                range(f, &format!("apply_{l}_{kind}"), 1000.0)
            })?;
            for (phase, key) in [
                ("start, verify", "verify"),
                ("plan, link", "link"),
                ("load (init_module)", "load"),
                ("enable (the switch)", "enable"),
                ("record, exit", "record"),
            ] {
                self.row(&format!("  {phase}"), &|l| {
                    range(f, &format!("apply_{key}_{l}_{kind}"), 1000.0)
                })?;
            }
        }
        Ok(())
    }

    /// `patchd revert` of each bundle, and its phases.
    fn revert_rows(&mut self) -> anyhow::Result<()> {
        let f = self.figures;
        for (what, kind) in [("1 function", "one"), ("20 functions", "twenty")] {
            self.row(&format!("revert, {what} (ms)"), &|l| {
                range(f, &format!("revert_{l}_{kind}"), 1000.0)
            })?;
            for (phase, key) in [
                ("start, disable (the switch)", "disable"),
                ("unload", "unload"),
                ("record, exit", "record"),
            ] {
                self.row(&format!("  {phase}"), &|l| {
                    range(f, &format!("revert_{key}_{l}_{kind}"), 1000.0)
                })?;
            }
        }
        Ok(())
    }

    /// Reading kallsyms, and the boot's first apply (which loads suture.ko
    /// too).
    fn first_apply_rows(&mut self) -> anyhow::Result<()> {
        let f = self.figures;
        self.row("cat /proc/kallsyms >/dev/null (ms)", &|l| {
            range(f, &format!("kallsyms_read_{l}"), 1000.0)
        })?;
        self.row("  its lines", &|l| {
            Ok(format!("{:.0}", single(f, &format!("kallsyms_lines_{l}"))?))
        })?;
        self.row("first apply of the boot, 1 function (ms)", &|l| {
            Ok(format!(
                "{:.1}",
                single(f, &format!("apply_{l}_first"))? / 1000.0
            ))
        })?;
        self.row("  link, load (suture.ko too)", &|l| {
            Ok(format!(
                "{:.1}",
                single(f, &format!("apply_linkload_{l}_first"))? / 1000.0
            ))
        })
    }

    /// The stop_machine pause of the switch, and switches retried.
    fn switch_rows(&mut self) -> anyhow::Result<()> {
        let f = self.figures;
        for (what, kind) in [("1 function", "one"), ("20 functions", "twenty")] {
            self.row(&format!("stop_machine pause, {what} (us)"), &|l| {
                range(f, &format!("pause_{l}_{kind}"), 1000.0)
            })?;
        }
        self.row("  threads; stacks walked in the stop", &|l| {
            Ok(format!(
                "{:.0}; {:.0} / {:.0}",
                single(f, &format!("threads_{l}"))?,
                single(f, &format!("walked_{l}_one"))?,
                single(f, &format!("walked_{l}_twenty"))?
            ))
        })?;
        self.row("switches refused EBUSY and retried", &|l| {
            let total: f64 = ["one", "twenty", "first"]
                .iter()
                .flat_map(|k| {
                    values(f, &format!("busy_{l}_{k}"))
                        .into_iter()
                        .chain(values(f, &format!("busy_revert_{l}_{k}")))
                })
                .sum();
            Ok(format!("{total:.0}"))
        })
    }

    /// The idle daemon's memory, CPU, threads and start-up.
    fn daemon_rows(&mut self) -> anyhow::Result<()> {
        let f = self.figures;
        self.row("idle daemon: RSS (KiB)", &|l| {
            Ok(format!("{:.0}", single(f, &format!("daemon_rss_kib_{l}"))?))
        })?;
        self.row("  peak RSS since start (KiB)", &|l| {
            Ok(format!("{:.0}", single(f, &format!("daemon_hwm_kib_{l}"))?))
        })?;
        self.row("idle daemon: CPU, % of one CPU", &|l| {
            let window = single(f, &format!("daemon_window_us_{l}"))? / 1e6;
            let ticks = single(f, &format!("daemon_ticks_{l}"))?;
            Ok(format!(
                "{:.2} ({ticks:.0} ticks/{window:.1} s)",
                100.0 * ticks / TICKS_PER_SEC / window
            ))
        })?;
        self.row("  on-CPU time, % of one CPU", &|l| {
            let window = single(f, &format!("daemon_window_us_{l}"))? / 1e6;
            match values(f, &format!("daemon_oncpu_ns_{l}")).first() {
                Some(ns) => Ok(format!(
                    "{:.4} ({:.2} ms)",
                    100.0 * ns / 1e9 / window,
                    ns / 1e6
                )),
                None => Ok("not measured".to_string()),
            }
        })?;
        self.row("  threads", &|l| {
            Ok(format!("{:.0}", single(f, &format!("daemon_threads_{l}"))?))
        })?;
        self.row("  context switches in the window", &|l| {
            Ok(format!(
                "{:.0}",
                single(f, &format!("daemon_switches_{l}"))?
            ))
        })?;
        self.row("  start-up: ready after (ms), CPU ticks", &|l| {
            Ok(format!(
                "{:.0}, {:.0}",
                single(f, &format!("daemon_ready_{l}"))? / 1000.0,
                single(f, &format!("daemon_start_ticks_{l}"))?
            ))
        })
    }

    /// The builds measured, how phases are timed, and the run's time.
    fn footer(&mut self, elapsed: Duration) {
        let w = &mut self.out;
        let _ = writeln!(w);
        for b in self.builds {
            let size = std::fs::metadata(&b.host_path).map_or(0, |m| m.len());
            let _ = writeln!(
                w,
                "{} patchd: {} ({:.1} MB), in the guest {}",
                b.label,
                b.host_path.display(),
                size as f64 / 1e6,
                b.guest_path
            );
        }
        let _ = writeln!(
            w,
            "phases from the stamps of patchd's log lines (verified, linked symbol, loaded, enabled; \
             disabled, unloaded); each row's median is taken on its own"
        );
        let _ = writeln!(
            w,
            "guest boot and benchmark took {:.1} s",
            elapsed.as_secs_f64()
        );
    }
}
