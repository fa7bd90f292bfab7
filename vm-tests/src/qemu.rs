//! Boots a target kernel under QEMU TCG with an initramfs of guest checks.
//!
//! The guest's `/init` (vm-tests/guest/init) runs every check script in order,
//! framing each one's output with markers, then prints its taint flags and
//! dmesg and powers off. The host enforces an overall timeout and keeps the
//! serial log in the run's directory (`target/vm-tests/<name>/` for
//! [`run_guest`], the caller's for [`run_guest_in`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::initramfs::Initramfs;
use crate::report::GuestRun;
use crate::{
    io_err, run_command, work_dir, workspace_root, BuiltModules, HarnessError, Result, Target,
};

/// What to run in one guest boot.
#[derive(Debug, Clone)]
pub struct GuestSpec {
    /// Names the run (and its directory under `target/vm-tests/` for
    /// [`run_guest`]).
    pub name: String,
    /// Check scripts from `check_dir`, run in this order; a check is
    /// named after its file without `.sh`.
    pub checks: Vec<String>,
    /// Where `checks` are: `vm-tests/guest/` of the checkout for
    /// [`GuestSpec::new`], none for [`GuestSpec::generated`].
    pub check_dir: Option<PathBuf>,
    /// Overall limit for the boot, all checks and the power-off.
    pub timeout: Duration,
    /// Limit for one check inside the guest.
    pub check_timeout: Duration,
    /// Taint flags that are not a failure (e.g. "OE": out-of-tree, unsigned).
    pub allowed_taint: String,
    /// Number of virtual CPUs.
    pub cpus: u32,
    /// Checks written by the host for this run, run after `checks`, in
    /// order: (name, script text).
    pub generated_checks: Vec<(String, String)>,
    /// More files for the guest.
    pub files: Vec<GuestFile>,
    /// A raw disk image attached as a virtio disk (`/dev/vda` once the
    /// guest loaded `kernel_modules`).
    pub disk: Option<PathBuf>,
    /// Debian modules of the target the guest needs (e.g. `virtio_blk`,
    /// `ext4`): with their dependencies, in load order, as
    /// `/suture/kmods/NNNN-NAME.ko`; `load_kernel_modules` in lib.sh loads
    /// them.
    pub kernel_modules: Vec<String>,
}

/// A file the host writes into the guest's initramfs.
#[derive(Debug, Clone)]
pub struct GuestFile {
    /// Absolute path in the guest.
    pub path: String,
    /// Contents.
    pub data: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
}

impl GuestSpec {
    /// A spec with the defaults (2 vCPUs, taint O and E allowed) running
    /// `checks` of the checkout's `vm-tests/guest/`: the developers' side.
    pub fn new(name: &str, checks: &[&str]) -> Self {
        Self {
            checks: checks.iter().map(|c| (*c).to_string()).collect(),
            check_dir: Some(workspace_root().join("vm-tests/guest")),
            ..Self::generated(name)
        }
    }

    /// A spec with the defaults and no checks from files: only
    /// `generated_checks`, which needs no checkout.
    pub fn generated(name: &str) -> Self {
        Self {
            name: name.to_string(),
            checks: Vec::new(),
            check_dir: None,
            timeout: Duration::from_secs(600),
            check_timeout: Duration::from_secs(300),
            allowed_taint: "OE".to_string(),
            cpus: 2,
            generated_checks: Vec::new(),
            files: Vec::new(),
            disk: None,
            kernel_modules: Vec::new(),
        }
    }

    /// The text of every script the guest runs (the checks from
    /// `check_dir` and the generated ones), one after the other: what
    /// [`crate::FixSelection::NamedIn`] looks for fix names in.
    pub fn script_text(&self) -> Result<String> {
        let mut text = String::new();
        if let Some(dir) = &self.check_dir {
            for check in &self.checks {
                let script = dir.join(format!("{check}.sh"));
                text.push_str(
                    &std::fs::read_to_string(&script).map_err(io_err("cannot read", &script))?,
                );
            }
        }
        for (_, generated) in &self.generated_checks {
            text.push_str(generated);
        }
        Ok(text)
    }
}

/// Builds `patchd` for the guest with the release profile: what ships
/// (panic = abort, optimized), and a debug build parses `/proc/kallsyms`
/// several times slower under TCG.
pub fn build_patchd() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = workspace_root();
    run_command(
        Command::new(cargo)
            .arg("build")
            .arg("--quiet")
            .arg("--release")
            .arg("--manifest-path")
            .arg(root.join("Cargo.toml"))
            .arg("-p")
            .arg("patchd")
            .arg("--bin")
            .arg("patchd"),
    )?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target_dir.join("release/patchd"))
}

fn assemble(
    target: &Target,
    spec: &GuestSpec,
    modules: &BuiltModules,
    patchd: &Path,
    out: &Path,
) -> Result<PathBuf> {
    let mut fs = Initramfs::new();
    for (i, (name, path)) in
        crate::kernel_modules::kernel_module_closure(target, &spec.kernel_modules)?
            .iter()
            .enumerate()
    {
        fs.bytes(
            &format!("/suture/kmods/{:04}-{name}.ko", i + 1),
            0o644,
            crate::kernel_modules::module_bytes(path)?,
        );
    }
    for d in ["/dev", "/proc", "/sys", "/tmp", "/run", "/root"] {
        fs.dir(d);
    }
    fs.char_dev("/dev/console", 5, 1);
    fs.char_dev("/dev/null", 1, 3);
    fs.file("/bin/busybox", Path::new("/bin/busybox"), 0o755)?;
    fs.bytes("/init", 0o755, crate::embedded::GUEST_INIT.to_vec());
    fs.bytes("/suture/lib.sh", 0o644, crate::embedded::GUEST_LIB.to_vec());
    add_checks(&mut fs, spec)?;
    let first = spec.checks.len() + 1;
    for (i, (name, text)) in spec.generated_checks.iter().enumerate() {
        fs.bytes(
            &format!("/suture/checks/{:04}-{name}.sh", first + i),
            0o644,
            text.clone().into_bytes(),
        );
    }
    for f in &spec.files {
        fs.bytes(&f.path, f.mode, f.data.clone());
    }
    for (name, ko) in &modules.modules {
        fs.file(&format!("/suture/modules/{name}.ko"), ko, 0o644)?;
    }
    for (name, records) in &modules.records {
        fs.bytes(
            &format!("/suture/modules/{name}.records.json"),
            0o644,
            records.clone().into_bytes(),
        );
    }
    for (file, bundle) in &modules.bundles {
        fs.file(&format!("/suture/bundles/{file}"), bundle, 0o644)?;
    }
    // patchd's trust store: root-owned, mode 0644 in a 0755 directory (every
    // directory of the archive is root-owned 0755).
    if let Some(key) = &modules.trusted_key {
        fs.dir("/etc/suture/keys");
        fs.file("/etc/suture/keys/test.pub", key, 0o644)?;
    }
    fs.executable_with_libs("/suture/bin/patchd", patchd)?;
    fs.bytes(
        "/suture/config",
        0o644,
        format!("SUTURE_CHECK_TIMEOUT={}\n", spec.check_timeout.as_secs()).into_bytes(),
    );
    fs.write(out)
}

/// The check scripts of `spec` from its `check_dir`, first in the guest's
/// order.
fn add_checks(fs: &mut Initramfs, spec: &GuestSpec) -> Result<()> {
    let Some(dir) = &spec.check_dir else {
        if let Some(check) = spec.checks.first() {
            return Err(HarnessError::Io {
                what: "no check directory for the check",
                path: PathBuf::from(check),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        return Ok(());
    };
    for (i, check) in spec.checks.iter().enumerate() {
        let script = dir.join(format!("{check}.sh"));
        let name = Path::new(check)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(check);
        fs.file(
            &format!("/suture/checks/{:04}-{name}.sh", i + 1),
            &script,
            0o644,
        )?;
    }
    Ok(())
}

/// Boots `target` with the checks of `spec` in `target/vm-tests/NAME/`,
/// with `patchd` built from the checkout ([`build_patchd`]): the
/// developers' side, see [`run_guest_in`].
pub fn run_guest(target: &Target, modules: &BuiltModules, spec: &GuestSpec) -> Result<GuestRun> {
    let patchd = build_patchd()?;
    run_guest_in(target, modules, spec, &work_dir().join(&spec.name), &patchd)
}

/// Boots `target` with the checks of `spec` and the `patchd` executable
/// given, keeping the initramfs, serial log and dmesg in `dir` (created),
/// and returns what the guest reported.
///
/// An error means the guest could not be run or did not finish; failed
/// checks and kernel warnings are in the returned [`GuestRun`].
pub fn run_guest_in(
    target: &Target,
    modules: &BuiltModules,
    spec: &GuestSpec,
    dir: &Path,
    patchd: &Path,
) -> Result<GuestRun> {
    let dir = dir.to_path_buf();
    std::fs::create_dir_all(&dir).map_err(io_err("cannot create", &dir))?;
    let initrd = assemble(target, spec, modules, patchd, &dir.join("initramfs.cpio"))?;
    let log_path = dir.join("serial.log");
    let log = std::fs::File::create(&log_path).map_err(io_err("cannot create", &log_path))?;

    let started = Instant::now();
    let mut qemu = Command::new("qemu-system-x86_64");
    if let Some(disk) = &spec.disk {
        qemu.arg("-drive")
            .arg(format!("file={},if=virtio,format=raw", disk.display()));
    }
    let mut child = qemu
        .args(["-accel", "tcg", "-cpu", "max", "-m", "1536", "-smp"])
        .arg(spec.cpus.to_string())
        .args(["-nographic", "-no-reboot", "-kernel"])
        .arg(target.vmlinuz())
        .arg("-initrd")
        .arg(&initrd)
        .arg("-append")
        // A soft lockup panics the guest (with every CPU's backtrace in the
        // serial log) instead of hanging the boot until the host's timeout:
        // a lockup is a failure either way, and its traces are the evidence.
        .arg("console=ttyS0 panic=-1 loglevel=4 softlockup_panic=1 softlockup_all_cpu_backtrace=1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io_err("cannot open", &log_path))?)
        .stderr(log)
        .spawn()
        .map_err(io_err(
            "cannot start (install qemu-system-x86: scripts/setup)",
            "qemu-system-x86_64",
        ))?;

    loop {
        match child
            .try_wait()
            .map_err(io_err("cannot wait for", "qemu-system-x86_64"))?
        {
            Some(_) => break,
            None if started.elapsed() > spec.timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(HarnessError::Timeout {
                    name: spec.name.clone(),
                    seconds: spec.timeout.as_secs(),
                    log: log_path,
                });
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let elapsed = started.elapsed();
    let raw = std::fs::read(&log_path).map_err(io_err("cannot read", &log_path))?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let run = GuestRun::parse(&spec.name, &text, &spec.allowed_taint, elapsed, dir.clone());
    std::fs::write(dir.join("dmesg.log"), &run.dmesg)
        .map_err(io_err("cannot write", dir.join("dmesg.log")))?;
    Ok(run)
}
