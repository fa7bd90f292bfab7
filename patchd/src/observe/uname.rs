//! `patchd uname`: the kernel version a vulnerability scanner should take
//! the running kernel for, as `uptrack-uname` and `kcarectl --uname` do for
//! Ksplice and KernelCare. Each bundle may declare the distribution kernel
//! whose fixes it brings (`fixes_up_to` in its manifest); the effective
//! version is the newest of those among the bundles enabled in the kernel
//! now, when it is newer than the running kernel's own package version.
//! Read-only: it reads the state and the kernel, and changes nothing.

use serde::Serialize;

use super::status::{status, BundleStatus, Status};
use crate::kernel::{Kernel, KernelError};
use crate::transaction::session::Session;
use suture_bundle::debian_version;

/// What `patchd uname` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Uname {
    /// The operating system (`uname -s`).
    pub sysname: String,
    /// The host (`uname -n`).
    pub nodename: String,
    /// The hardware (`uname -m`).
    pub machine: String,
    /// The running kernel as booted.
    pub running: KernelVersion,
    /// The running kernel with the enabled bundles' fixes.
    pub effective: KernelVersion,
    /// The bundle that raised the version, if one did.
    pub raised_by: Option<String>,
}

/// A kernel's release, version text and Debian package version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelVersion {
    /// `uname -r`, e.g. `6.1.0-50-amd64`.
    pub release: String,
    /// `uname -v`, e.g. `#1 SMP PREEMPT_DYNAMIC Debian 6.1.176-1 (2025-06-13)`.
    pub version: String,
    /// The Debian package version in the version text, e.g. `6.1.176-1`.
    pub package_version: Option<String>,
}

/// Reads the running kernel and computes the effective version.
pub fn uname(session: &Session<'_>) -> Result<Uname, KernelError> {
    let status = status(session)?;
    uname_of(session.kernel, Some(&status))
}

/// The same for `kernel`, with the bundles `status` shows (`None`: patchd
/// has applied nothing on this machine: there is no state).
pub fn uname_of(kernel: &dyn Kernel, status: Option<&Status>) -> Result<Uname, KernelError> {
    let running = KernelVersion {
        release: kernel.os_release()?,
        version: kernel.os_version()?,
        package_version: None,
    };
    let bundles = status.map_or(&[][..], |s| s.bundles.as_slice());
    Ok(effective(
        bundles,
        running,
        kernel.host_name()?,
        std::env::consts::ARCH,
    ))
}

/// The effective version from the `bundles` enabled in the kernel.
pub fn effective(
    bundles: &[BundleStatus],
    running: KernelVersion,
    host: String,
    machine: &str,
) -> Uname {
    let running = KernelVersion {
        package_version: debian_package_version(&running.version),
        ..running
    };
    let mut effective = running.clone();
    let mut raised_by = None;
    for bundle in bundles {
        let Some(fixes) = &bundle.fixes_up_to else {
            continue;
        };
        if bundle.kernel_state != "enabled" {
            continue;
        }
        let newer = effective
            .package_version
            .as_deref()
            .is_none_or(|v| debian_version::compare(&fixes.version, v).is_gt());
        if !newer {
            continue;
        }
        effective.version = match &running.package_version {
            Some(old) => running.version.replacen(
                &format!("Debian {old}"),
                &format!("Debian {}", fixes.version),
                1,
            ),
            None => running.version.clone(),
        };
        if let Some(release) = &fixes.release {
            effective.release.clone_from(release);
        }
        effective.package_version = Some(fixes.version.clone());
        raised_by = Some(bundle.id.clone());
    }
    Uname {
        sysname: "Linux".to_owned(),
        nodename: host,
        machine: machine.to_owned(),
        running,
        effective,
        raised_by,
    }
}

/// The package version in Debian's `uname -v` text: the word after
/// `Debian`.
fn debian_package_version(version: &str) -> Option<String> {
    let mut words = version.split_whitespace();
    words.find(|w| *w == "Debian")?;
    words.next().map(str::to_owned)
}

impl Uname {
    /// `uname -a` with the effective release and version.
    pub fn all(&self) -> String {
        format!(
            "{} {} {} {} {} GNU/Linux",
            self.sysname,
            self.nodename,
            self.effective.release,
            self.effective.version,
            self.machine
        )
    }
}

#[cfg(test)]
#[path = "uname_tests.rs"]
mod tests;
