//! Boots the target kernel under QEMU with suture's modules and runs guest
//! scripts, printing each one's output: `suture-vm checks/load demo/cmdline`.
//! Scripts are paths under vm-tests/guest/ without `.sh`. Exit status 0 only
//! when every script passed and the guest log is clean.

use std::process::ExitCode;

use anyhow::Context;
use vm_tests::{build_modules, run_guest, GuestSpec, Target};

fn main() -> ExitCode {
    let scripts: Vec<String> = std::env::args().skip(1).collect();
    if scripts.is_empty() || scripts.iter().any(|s| s.starts_with('-')) {
        eprintln!("usage: suture-vm SCRIPT... (paths under vm-tests/guest/ without .sh, e.g. checks/load demo/cmdline)");
        return ExitCode::from(2);
    }
    match run(&scripts) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("suture-vm: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(scripts: &[String]) -> anyhow::Result<bool> {
    let target = Target::from_env()?;
    eprintln!("suture-vm: building modules for {}", target.release);
    let modules = build_modules(&target).context("building the modules")?;
    let names: Vec<&str> = scripts.iter().map(String::as_str).collect();
    eprintln!(
        "suture-vm: booting {} under QEMU TCG",
        target.vmlinuz().display()
    );
    let run = run_guest(&target, &modules, &GuestSpec::new("suture-vm", &names))
        .context("running the guest")?;
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
    if run.checks.len() != scripts.len() {
        println!("only {} of {} scripts ran", run.checks.len(), scripts.len());
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
