//! The repository index the daemon reads: defined once in the bundle crate
//! (`suture_bundle::repository_index`), which `patchgen index` writes.

pub use suture_bundle::repository_index::*;
