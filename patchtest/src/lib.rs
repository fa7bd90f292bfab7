//! patchtest: validates signed bundles in a QEMU guest of their target
//! kernel before they ship (docs/patchtest.md), and the real-fix corpus
//! that runs it on fixes from Debian's stable updates (docs/real-fixes.md).
//!
//! - [`validate`]: the plan of a validation (bundles checked on the host,
//!   test scripts and their expectations, the load), its guest side
//!   (`patchtest/guest/`) and the judging of each step into a report;
//! - [`corpus`]: the corpus list, building each fix with patchgen, and the
//!   coverage table.
//!
//! The guest is booted by the QEMU rig, the `vm-tests` crate, which finds
//! the companion module's sources, the guest scripts and the kernel cache
//! through [`vm_tests::workspace_root`].

pub mod corpus;
pub mod validate;
