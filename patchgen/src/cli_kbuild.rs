//! `patchgen kbuild`: records what kbuild builds for a target (and which
//! files each object reads), and prints the objects built from, or
//! reading, given files.

use std::path::PathBuf;
use std::process::ExitCode;

use patchgen::build::kbuild::{self, Built, Record};
use patchgen::build::KernelTarget;

/// Arguments of `patchgen kbuild`.
#[derive(clap::Args)]
pub struct KbuildArgs {
    /// The target kernel (a kernel cache entry).
    #[arg(long, value_name = "RELEASE")]
    pub kernel: String,
    /// Also find every object's dependencies (minutes, once).
    #[arg(long)]
    pub deps: bool,
    /// Print the objects built from, or reading, these files (implies
    /// --deps).
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Runs `patchgen kbuild`: one line per (file, object) on stdout; a closed
/// pipe ends the listing quietly.
pub fn run(args: KbuildArgs) -> anyhow::Result<ExitCode> {
    let KbuildArgs {
        kernel,
        deps,
        files,
    } = args;
    let target = KernelTarget::from_cache(&kernel)?;
    let mut progress = |line: &str| eprintln!("patchgen: {line}");
    let record = Record::load(&target, &mut progress)?;
    eprintln!(
        "patchgen: {} objects ({} in modules)",
        record.objects.len(),
        record.objects.iter().filter(|b| b.module).count()
    );
    let mut found = None;
    if deps {
        found = Some(record.deps(&target, &mut progress)?);
    }
    let mut out = std::io::stdout().lock();
    for file in &files {
        // Compiled from FILE, or reading it (a header, an
        // #included C file).
        let mut objects: Vec<&Built> = record.compiled_from(file);
        let d = match &mut found {
            Some(d) => d,
            None => found.insert(record.deps(&target, &mut progress)?),
        };
        for b in d
            .objects_reading(file)
            .into_iter()
            .filter_map(|i| record.objects.get(i))
        {
            if !objects.iter().any(|o| o.object == b.object) {
                objects.push(b);
            }
        }
        for b in objects {
            let line = format!(
                "{}\t{}\t{}\n",
                file.display(),
                kbuild::normalize(&b.object).display(),
                if b.module { "module" } else { "vmlinux" }
            );
            if let Err(e) = std::io::Write::write_all(&mut out, line.as_bytes()) {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(ExitCode::SUCCESS);
                }
                return Err(e.into());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
