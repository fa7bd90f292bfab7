//! Boots the target kernel under QEMU with suture's modules and runs guest
//! scripts, printing each one's output: `suture-vm checks/load demo/cmdline`.
//! Scripts are paths under vm-tests/guest/ without `.sh`. With `--bundle`,
//! only the companion module is built and the given bundles, trusted key
//! and files go into the guest (`scripts/demo` uses this). Exit status 0
//! only when every script passed and the guest log is clean.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use vm_tests::{
    build_companion, build_modules_for, run_guest, BuiltModules, FixSelection, GuestFile,
    GuestSpec, Target,
};

/// Boot the target kernel (SUTURE_KERNEL, default the pinned one) under
/// QEMU TCG and run guest scripts.
#[derive(Debug, Parser)]
#[command(name = "suture-vm")]
struct Cli {
    /// Scripts under vm-tests/guest/ without .sh, e.g. checks/load demo/cmdline.
    #[arg(required = true, value_name = "SCRIPT")]
    scripts: Vec<String>,
    /// A bundle to put in the guest's /suture/bundles/ (repeatable); then
    /// only the companion module is built.
    #[arg(long = "bundle", value_name = "FILE", requires = "key")]
    bundles: Vec<PathBuf>,
    /// The public key the guest's patchd trusts (with --bundle).
    #[arg(long, value_name = "NAME.pub")]
    key: Option<PathBuf>,
    /// A host file for the guest's /suture/files/ (repeatable).
    #[arg(long = "file", value_name = "PATH")]
    files: Vec<PathBuf>,
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
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("suture-vm: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<bool> {
    let target = Target::from_env()?;
    let names: Vec<&str> = cli.scripts.iter().map(String::as_str).collect();
    let mut spec = GuestSpec::new("suture-vm", &names);
    let modules = if cli.bundles.is_empty() {
        eprintln!("suture-vm: building modules for {}", target.release);
        // Only the fixes of vm-tests/fixes/ that the scripts name.
        let fixes = FixSelection::NamedIn(spec.script_text()?);
        build_modules_for(&target, &fixes).context("building the modules")?
    } else {
        eprintln!(
            "suture-vm: building the companion module for {}",
            target.release
        );
        let mut modules = BuiltModules {
            modules: Default::default(),
            records: Default::default(),
            bundles: Default::default(),
            trusted_key: cli.key.clone(),
        };
        modules
            .modules
            .insert("suture".to_string(), build_companion(&target)?);
        for b in &cli.bundles {
            let name = b
                .file_name()
                .and_then(|n| n.to_str())
                .context("a bundle path without a file name")?;
            modules.bundles.insert(name.to_string(), b.clone());
        }
        modules
    };
    for f in &cli.files {
        let name = f
            .file_name()
            .and_then(|n| n.to_str())
            .context("a file path without a file name")?;
        let data = std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
        spec.files.push(GuestFile {
            path: format!("/suture/files/{name}"),
            data,
            mode: 0o755,
        });
    }
    eprintln!(
        "suture-vm: booting {} under QEMU TCG",
        target.vmlinuz().display()
    );
    let run = run_guest(&target, &modules, &spec).context("running the guest")?;
    let mut ok = true;
    for c in &run.checks {
        println!("=== {} ===", c.name);
        print!("{}", c.output);
        println!(
            "=== {}: {}",
            c.name,
            if c.passed() { "passed" } else { "FAILED" }
        );
        ok &= c.passed();
    }
    if run.checks.len() != cli.scripts.len() {
        println!(
            "only {} of {} scripts ran",
            run.checks.len(),
            cli.scripts.len()
        );
        ok = false;
    }
    for p in &run.problems {
        println!("guest problem: {p}");
        ok = false;
    }
    println!(
        "guest ran {:.1} s; serial log: {}",
        run.elapsed.as_secs_f64(),
        run.dir.join("serial.log").display()
    );
    Ok(ok)
}
