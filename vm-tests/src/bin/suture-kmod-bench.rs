//! Benchmark of the companion module in one guest boot of the target kernel
//! (QEMU TCG, so compare ratios, not absolute figures):
//! - ns per call of a trivial function: unpatched, redirected by suture's
//!   direct call, by suture's ftrace handler (the fallback path) and by the
//!   kernel's own livepatch, in turns, with the ratios;
//! - the stop_machine pause of enabling and disabling a 1-function and a
//!   20-function patch with 200 extra sleeping tasks.
//!
//! Run: `cargo run --release -p vm-tests --bin suture-kmod-bench`
//! (SUTURE_KERNEL selects another cached target). Prints figures; it is not a
//! test and asserts no timing.

use std::process::ExitCode;

use anyhow::{bail, Context};
use vm_tests::{build_modules_for, run_guest, FixSelection, GuestSpec, Target};

fn values(figures: &[(String, String)], key: &str) -> Vec<f64> {
    figures
        .iter()
        .filter(|(k, _)| k == key)
        .filter_map(|(_, v)| {
            let mut it = v.split_whitespace().map(str::parse::<f64>);
            match (it.next(), it.next()) {
                // "CALLS NS": ns per call
                (Some(Ok(calls)), Some(Ok(ns))) if calls > 0.0 => Some(ns / calls),
                (Some(Ok(x)), None) => Some(x),
                _ => None,
            }
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

fn main() -> ExitCode {
    vm_tests::end_quietly_on_closed_pipe();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("suture-kmod-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let target = Target::from_env()?;
    let mut spec = GuestSpec::new("kmod-bench", &["checks/load", "bench/kmod"]);
    // The hand-written test modules only: no fix of vm-tests/fixes/ is named.
    let fixes = FixSelection::NamedIn(spec.script_text()?);
    let modules = build_modules_for(&target, &fixes).context("building the modules")?;
    // The kernel's livepatch taints K; that is expected here.
    spec.allowed_taint = "OEK".to_string();
    let run = run_guest(&target, &modules, &spec).context("running the guest")?;
    for name in ["load", "kmod"] {
        if !run.check(name).is_some_and(|c| c.passed()) {
            bail!("{}", run.describe(name));
        }
    }
    if !run.problems.is_empty() {
        bail!("guest kernel problems:\n{}", run.problems.join("\n"));
    }
    let f = &run.figures;
    let med = |key: &str| {
        median(values(f, key)).with_context(|| format!("no figure {key} in the guest output"))
    };

    let bare = med("call_unpatched")?;
    let far = med("call_far")?;
    let hop = med("call_hop")?;
    let ours = med("call_suture")?;
    let handler = med("call_suture_ftrace")?;
    let klp = med("call_livepatch")?;
    let disabled = med("call_suture_disabled")?;
    let handler_disabled = med("call_suture_ftrace_disabled")?;
    let before = med("call_before")?;
    let after = med("call_after_rmmod")?;
    println!(
        "suture companion module benchmark: kernel {}, QEMU TCG, 2 vCPUs",
        target.release
    );
    println!();
    println!(
        "ns per call of a trivial function (1,000,000 dependent calls; median of 7 rounds, \
         measured in turns):"
    );
    println!("  unpatched (fn2)                          {bare:8.1} ns");
    for (label, ns) in [
        ("control: the same, alone in another page", far),
        ("control: the shortest redirect into a page", hop),
        ("redirected by suture, direct call (fn0)", ours),
        ("redirected by suture, ftrace handler (fn3)", handler),
        ("redirected by livepatch (fn1)", klp),
    ] {
        println!("  {label:42} {ns:6.1} ns   {:.2}x unpatched", ns / bare);
    }
    println!(
        "  suture direct / livepatch {:.2}; suture ftrace handler / livepatch {:.2}",
        ours / klp,
        handler / klp
    );
    println!(
        "  patch loaded but disabled: fn0 (direct) {disabled:.1} ns, fn3 (handler) \
         {handler_disabled:.1} ns; fn0 before loading {before:.1} ns; after rmmod {after:.1} ns"
    );
    println!(
        "  livepatch enable transition    {:8.0} s",
        med("klp_enable_s")?
    );
    println!();
    println!(
        "stop_machine pause (median of 10 switches; {:.0} threads incl. 200 extra sleeping tasks):",
        med("threads")?
    );
    for (label, p) in [
        ("1-function patch ", "test_patch_bench1"),
        ("20-function patch", "test_patch_bench20"),
    ] {
        for (how, survey) in [
            ("every stack walked in the stop", "survey0"),
            ("survey, re-walk threads that ran", "survey1"),
        ] {
            let en = med(&format!("pause_enable_{p}_{survey}"))?;
            let dis = med(&format!("pause_disable_{p}_{survey}"))?;
            let walked = med(&format!("walked_enable_{p}_{survey}"))?;
            println!(
                "  {label} {how:34} enable {:7.1} us  disable {:7.1} us  ({walked:.0} stacks walked in the stop)",
                en / 1000.0,
                dis / 1000.0
            );
        }
        let base = med(&format!("pause_enable_{p}_survey0"))?;
        let surveyed = med(&format!("pause_enable_{p}_survey1"))?;
        println!("  {label} survey / baseline pause: {:.2}", surveyed / base);
    }
    println!();
    println!(
        "guest boot and benchmark took {:.1} s",
        run.elapsed.as_secs_f64()
    );
    Ok(())
}
