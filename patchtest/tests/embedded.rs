//! The guest scripts and load programs built into patchtest are the
//! checkout's.

use std::path::Path;

use patchtest::validate::{programs, GUEST_FILES};

/// The files of `dir` (relative to the checkout), as checkout paths.
fn files_in(root: &Path, dir: &str) -> Vec<String> {
    let path = root.join(dir);
    let mut names: Vec<String> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|e| e.expect("entry"))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| format!("{dir}/{}", e.file_name().to_string_lossy()))
        .collect();
    names.sort();
    names
}

/// Each built-in file equals its file in the checkout, and every file of
/// `dir` is built in: a file added there must be added to `built_in`.
fn check(root: &Path, dir: &str, built_in: &[(&str, &[u8])]) {
    for (path, bytes) in built_in {
        let disk = std::fs::read(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(
            disk == *bytes,
            "the built-in {path} differs from the checkout's"
        );
    }
    let mut names: Vec<&str> = built_in.iter().map(|(p, _)| *p).collect();
    names.sort_unstable();
    assert_eq!(names, files_in(root, dir));
}

#[test]
fn the_built_in_guest_scripts_are_the_checkouts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    check(&root, "patchtest/guest", GUEST_FILES);
}

#[test]
fn the_built_in_load_programs_are_the_checkouts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    check(&root, "patchtest/guest/programs", programs::SOURCES);
    assert_eq!(
        programs::names(),
        [
            "load-crypto",
            "load-fs",
            "load-kernel",
            "load-mm",
            "load-net",
            "load-tty"
        ]
    );
}
