//! The guest scripts built into patchtest are the checkout's.

use std::path::Path;

use patchtest::validate::GUEST_FILES;

/// Each built-in guest script equals its file, and every script of
/// patchtest/guest/ is built in: a script added there must be added to
/// `GUEST_FILES`.
#[test]
fn the_built_in_guest_scripts_are_the_checkouts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (path, bytes) in GUEST_FILES {
        let disk = std::fs::read(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(
            disk == *bytes,
            "the built-in {path} differs from the checkout's"
        );
    }
    let guest = root.join("patchtest/guest");
    let mut on_disk: Vec<String> = std::fs::read_dir(&guest)
        .unwrap_or_else(|e| panic!("{}: {e}", guest.display()))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .map(|name| format!("patchtest/guest/{name}"))
        .collect();
    on_disk.sort();
    let mut built_in: Vec<&str> = GUEST_FILES.iter().map(|(p, _)| *p).collect();
    built_in.sort();
    assert_eq!(built_in, on_disk);
}
