//! patchtest: validates signed bundles in a QEMU guest of their target
//! kernel before they ship (docs/patchtest.md), and the real-fix corpus
//! that runs it on fixes from Debian's stable updates (docs/real-fixes.md).
//!
//! - [`validate`]: the plan of a validation (bundles checked on the host,
//!   test scripts and their expectations, the load), its guest side
//!   (`patchtest/guest/`) and the judging of each step into a report;
//! - [`install`]: where patchtest finds `patchd` and its work directory;
//! - [`corpus`]: the corpus list, building each fix with patchgen, and the
//!   coverage table.
//!
//! The guest is booted by the QEMU rig, the `vm-tests` crate. `patchtest`
//! needs no checkout: its guest scripts and load programs' sources, the
//! rig's `/init` and library and the companion module's sources are built
//! in (the programs are compiled on the host at run time,
//! [`validate::programs`]), and `patchd` is found by
//! [`install::find_patchd`]. The corpus and `real-fixes` are developer
//! tools: they read the corpus, fixtures and fixes from the checkout they
//! were built in ([`vm_tests::workspace_root`]) and build `patchd` there.

pub mod corpus;
pub mod install;
pub mod validate;
