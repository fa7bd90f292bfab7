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
        "suture_park.c",
        include_bytes!("../../../kmod/suture_park.c"),
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
    (
        "suture_direct.c",
        include_bytes!("../../../kmod/suture_direct.c"),
    ),
    (
        "suture_tramp.S",
        include_bytes!("../../../kmod/suture_tramp.S"),
    ),
    (
        "suture_tramp.h",
        include_bytes!("../../../kmod/suture_tramp.h"),
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
