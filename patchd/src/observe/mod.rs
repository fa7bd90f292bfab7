//! What patchd shows of what it did, read-only: [`status`] (what is applied
//! now, with [`redirect`]: how the companion module redirects each patch's
//! functions), [`report`] (compliance figures from the state and the
//! verified audit log: vulnerability gap and exposure per CVE, open CVEs,
//! reboots avoided, failures; its text and CSV in [`report_format`]) and
//! [`metrics`] (the same for Prometheus), [`uname`] (the kernel version
//! scanners should see) and [`vex`] (the CVEs fixed, as OpenVEX).

pub mod last_poll;
pub mod metrics;
pub mod redirect;
pub mod report;
pub mod report_format;
pub mod report_header;
pub mod status;
pub mod uname;
pub mod verdict;
pub mod vex;

#[cfg(test)]
mod read_only_tests;
