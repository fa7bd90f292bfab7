//! The data files built into the rig are the checkout's.

use std::path::Path;

use vm_tests::embedded::FILES;

/// Each embedded file equals the file it was built from.
#[test]
fn the_embedded_files_are_the_checkouts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (path, bytes) in FILES {
        let disk = std::fs::read(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(
            disk == *bytes,
            "the embedded {path} differs from the checkout's"
        );
    }
}
