//! User programs for the test guest: every `vm-tests/guest/programs/*.c`,
//! compiled statically with the compiler `scripts/setup` installs (the guest
//! has busybox and no C library), installed as `/suture/bin/NAME`.
//!
//! They are built on the host for every target: a static program runs on
//! any x86-64 kernel of our lines (only code that runs in the kernel must
//! come from the kernel's own compiler, in its build root).

use std::path::PathBuf;
use std::process::Command;

use crate::{io_err, run_command, work_dir, workspace_root, GuestFile, Result};

/// Compiles every guest program (`-static -O2 -Wall -Werror -pthread`)
/// under `target/vm-tests/build/programs/` and returns them as guest files.
pub fn build_programs() -> Result<Vec<GuestFile>> {
    let src = workspace_root().join("vm-tests/guest/programs");
    let out = work_dir().join("build").join("programs");
    std::fs::create_dir_all(&out).map_err(io_err("cannot create", &out))?;
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&src)
        .map_err(io_err("cannot read", &src))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .collect();
    sources.sort();
    let mut files = Vec::new();
    for source in sources {
        let name = source
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("program")
            .to_string();
        // Each build writes its own file, then renames: parallel test
        // binaries may compile the same program at once.
        let binary = out.join(&name);
        let tmp = out.join(format!(".{name}.{}", std::process::id()));
        run_command(
            Command::new("gcc-12")
                .args([
                    "-static", "-O2", "-Wall", "-Wextra", "-Werror", "-pthread", "-o",
                ])
                .arg(&tmp)
                .arg(&source),
        )?;
        std::fs::rename(&tmp, &binary).map_err(io_err("cannot rename", &tmp))?;
        files.push(GuestFile {
            path: format!("/suture/bin/{name}"),
            data: std::fs::read(&binary).map_err(io_err("cannot read", &binary))?,
            mode: 0o755,
        });
    }
    Ok(files)
}
