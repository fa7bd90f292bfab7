//! What patchd shows of what it did, read-only: [`status`] (what is applied
//! now), [`report`] (compliance figures from the state and the verified
//! audit log: vulnerability gap per CVE, reboots avoided, failures) and
//! [`metrics`] (the same for Prometheus).

pub mod metrics;
pub mod report;
pub mod status;

#[cfg(test)]
mod read_only_tests;
