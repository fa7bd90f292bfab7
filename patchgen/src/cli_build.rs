//! `patchgen build`: the command-line side of the build pipeline (progress,
//! output files); the pipeline itself is `patchgen::build`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use patchgen::build::{self, BuildRequest, KernelTarget};

/// Arguments of `patchgen build`.
#[derive(clap::Args)]
pub struct BuildArgs {
    /// Target kernel release: an entry of the kernel cache (scripts/setup).
    #[arg(long, value_name = "RELEASE")]
    pub kernel: String,
    /// The fix(es), unified diffs applied in order (-p1).
    #[arg(required = true, value_name = "FIX.patch")]
    pub patches: Vec<PathBuf>,
    /// Name of the patch (module name): [a-z0-9_]{1,48}; default from -o.
    #[arg(long)]
    pub name: Option<String>,
    /// Output file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// The companion module's source (default: the one shipped with patchgen).
    #[arg(long, value_name = "DIR")]
    pub kmod: Option<PathBuf>,
    /// Keep the work directory (for debugging) instead of removing it.
    #[arg(long)]
    pub keep_work: bool,
    /// Print every step's detail.
    #[arg(short, long)]
    pub verbose: bool,
}

fn patch_name(args: &BuildArgs) -> anyhow::Result<String> {
    let raw = match &args.name {
        Some(n) => n.clone(),
        None => args
            .output
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("patch")
            .to_string(),
    };
    let name: String = raw.replace('-', "_");
    let valid = !name.is_empty()
        && name.len() <= 48
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    anyhow::ensure!(
        valid,
        "patch name '{raw}' must be 1-48 characters of a-z, 0-9 and _ (give --name)"
    );
    Ok(name)
}

/// Runs the build and writes the module next to the output.
pub fn run(args: &BuildArgs) -> anyhow::Result<(build::BuildOutput, PathBuf)> {
    let name = patch_name(args)?;
    let target = KernelTarget::from_cache(&args.kernel)?;
    let work = tempfile::Builder::new()
        .prefix("patchgen-build-")
        .tempdir()
        .context("cannot create a work directory")?;
    let req = BuildRequest {
        target,
        patches: args.patches.clone(),
        name,
        kmod: args.kmod.clone().unwrap_or_else(build::default_kmod_dir),
        work: work.path().to_path_buf(),
    };
    let tty = std::io::stderr().is_terminal();
    let mut progress = |line: &str| {
        if tty {
            eprintln!("\x1b[1mpatchgen:\x1b[0m {line}");
        } else {
            eprintln!("patchgen: {line}");
        }
    };
    let out = build::build(&req, &mut progress)?;
    let ko = with_extension(&args.output, "ko");
    std::fs::copy(&out.module.ko, &ko).with_context(|| format!("cannot write {}", ko.display()))?;
    if args.keep_work {
        let kept = work.keep();
        eprintln!("patchgen: work directory kept in {}", kept.display());
    }
    Ok((out, ko))
}

fn with_extension(path: &Path, ext: &str) -> PathBuf {
    path.with_extension(ext)
}
