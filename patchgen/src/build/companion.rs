//! The companion module's sources, built into patchgen.
//!
//! A patch module is linked against the companion's exports (its
//! `Module.symvers`) and includes its header, so a build needs the
//! companion's sources. They are part of the patchgen binary, written into
//! the build's work directory when used: an installed patchgen needs no
//! checkout, and always builds against the companion ABI it was released
//! with. `--kmod DIR` builds against other sources instead.

use std::path::{Path, PathBuf};

use super::BuildError;

/// Each source file of `kmod/`, by its path there.
pub const SOURCES: &[(&str, &[u8])] = &[
    ("Kbuild", include_bytes!("../../../kmod/Kbuild")),
    ("Makefile", include_bytes!("../../../kmod/Makefile")),
    (
        "include/suture.h",
        include_bytes!("../../../kmod/include/suture.h"),
    ),
    ("suture_abi.c", include_bytes!("../../../kmod/suture_abi.c")),
    (
        "suture_consistency.c",
        include_bytes!("../../../kmod/suture_consistency.c"),
    ),
    (
        "suture_core.c",
        include_bytes!("../../../kmod/suture_core.c"),
    ),
    (
        "suture_internal.h",
        include_bytes!("../../../kmod/suture_internal.h"),
    ),
    (
        "suture_redirect.c",
        include_bytes!("../../../kmod/suture_redirect.c"),
    ),
    (
        "suture_sysfs.c",
        include_bytes!("../../../kmod/suture_sysfs.c"),
    ),
];

/// Writes the built-in sources into `dir` (created) and returns it.
pub fn write_sources(dir: &Path) -> Result<PathBuf, BuildError> {
    for (name, bytes) in SOURCES {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| BuildError::Io {
                what: "cannot create",
                path: parent.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&path, bytes).map_err(|source| BuildError::Io {
            what: "cannot write the companion module's source",
            path: path.clone(),
            source,
        })?;
    }
    Ok(dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::SOURCES;
    use std::path::Path;

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
                    || name.ends_with(".c")
                    || name.ends_with(".h");
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
}
