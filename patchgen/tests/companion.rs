//! The companion module's sources built into patchgen are kmod/'s.

use std::path::Path;

use patchgen::build::companion::SOURCES;

/// Every source file of kmod/ is built in, as it is in the checkout: a
/// file added there must be added here.
#[test]
fn the_built_in_sources_are_kmods() {
    let kmod = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kmod");
    let mut on_disk = Vec::new();
    for dir in [kmod.clone(), kmod.join("include")] {
        for entry in std::fs::read_dir(&dir).expect("kmod/") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let source = name == "Kbuild"
                || name == "Makefile"
                || [".c", ".h", ".S"].iter().any(|e| name.ends_with(e));
            if path.is_file() && source {
                let rel = path.strip_prefix(&kmod).expect("inside kmod/");
                on_disk.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    on_disk.sort();
    let mut built_in: Vec<String> = SOURCES.iter().map(|(n, _)| (*n).to_string()).collect();
    built_in.sort();
    assert_eq!(built_in, on_disk);
    for (name, bytes) in SOURCES {
        let disk = std::fs::read(kmod.join(name)).expect("read");
        assert!(disk == *bytes, "{name} differs from kmod/{name}");
    }
}
