//! The files the Debian packages installed, in a guest of the pinned
//! kernel: `suture-vm-packaged ROOT`, where ROOT holds what
//! `scripts/test-packages` copied out of its clean Debian 12 root after
//! `apt-get install` of the three packages (`/usr/sbin/patchd`,
//! `/etc/suture/patchd.toml`, and the companion module DKMS built there,
//! under `/lib/modules/RELEASE/updates/dkms/`). The guest gets them at the
//! same paths; `/usr/sbin/patchd` is also the guest's only patchd, so every
//! patchd run of the check (`vm-tests/guest/checks/packaged_install.sh`)
//! is the packaged binary: it loads the DKMS-built companion and applies,
//! reports and reverts the demo fix's signed bundle.
//!
//! scripts/test-packages runs this; exit status 0 only when the check passed
//! and the guest log is clean.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use vm_tests::{build_modules_for, run_guest_in, FixSelection, GuestFile, GuestSpec, Target};

fn main() -> ExitCode {
    vm_tests::end_quietly_on_closed_pipe();
    let mut args = std::env::args_os().skip(1);
    let (Some(root), None) = (args.next(), args.next()) else {
        eprintln!("usage: suture-vm-packaged ROOT (the files scripts/test-packages installed)");
        return ExitCode::from(2);
    };
    match run(Path::new(&root)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("suture-vm-packaged: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Every regular file under `dir`, as guest files at their path below `root`.
fn guest_files(root: &Path, dir: &Path, out: &mut Vec<GuestFile>) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.is_dir() {
            guest_files(root, &path, out)?;
        } else if meta.is_file() {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            out.push(GuestFile {
                path: format!("/{}", rel.display()),
                data: std::fs::read(&path)
                    .with_context(|| format!("reading {}", path.display()))?,
                mode: meta.permissions().mode() & 0o7777,
            });
        }
    }
    Ok(())
}

fn run(root: &Path) -> anyhow::Result<()> {
    let patchd = root.join("usr/sbin/patchd");
    if !patchd.is_file() {
        bail!(
            "{} is missing: ROOT must be the files scripts/test-packages installed",
            patchd.display()
        );
    }
    let target = Target::from_env()?;
    let mut spec = GuestSpec::new("packaged", &["checks/packaged_install"]);
    guest_files(root, root, &mut spec.files)?;
    let fixes = FixSelection::NamedIn(spec.script_text()?);
    let modules = build_modules_for(&target, &fixes).context("building the demo fix's bundle")?;
    let dir: PathBuf = vm_tests::work_dir().join("packaged");
    let run = run_guest_in(&target, &modules, &spec, &dir, &patchd).context("running the guest")?;
    println!("{}", run.describe("packaged_install"));
    if !run.check("packaged_install").is_some_and(|c| c.passed()) {
        bail!(
            "the packaged patchd check failed (above; logs in {})",
            dir.display()
        );
    }
    if !run.problems.is_empty() {
        bail!("guest kernel problems:\n{}", run.problems.join("\n"));
    }
    Ok(())
}
