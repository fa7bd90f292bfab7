//! `patchgen diff`: the differ on two builds of one object, its options
//! from the command line, its output and report written to files.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use patchgen::diff::report::Outcome;
use patchgen::{DiffOptions, ObjectFile};

/// Exit status: nothing changed (no output written).
const EXIT_NOTHING_CHANGED: u8 = 3;
/// Exit status: refused (the change cannot be live-patched).
const EXIT_REFUSED: u8 = 4;

/// Arguments of `patchgen diff`.
#[derive(clap::Args)]
pub struct DiffArgs {
    /// The original object (built with -ffunction-sections -fdata-sections).
    pub orig: PathBuf,
    /// The fixed object, built the same way.
    pub fixed: PathBuf,
    /// Where to write the object with the changed and new functions.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Also write the report as JSON here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// The source fix the two objects differ by (-p1 unified diff): line
    /// numbers it moves are not changes where code holds them as
    /// immediates (`__LINE__`). Names the object's source with --source.
    #[arg(long, value_name = "FIX.patch", requires = "source")]
    pub fix: Option<PathBuf>,
    /// The object's source file in the fix, e.g. fs/ext4/namei.c.
    #[arg(long, value_name = "PATH")]
    pub source: Option<String>,
    /// Take the special sections' entry sizes from this target
    /// kernel's headers (a kernel cache entry) instead of the Debian 6.1
    /// x86-64 defaults.
    #[arg(long, value_name = "RELEASE")]
    pub kernel: Option<String>,
    /// Entry size of a special section, e.g. __bug_table=12 (overrides
    /// the defaults and --kernel; repeatable).
    #[arg(long = "entry-size", value_name = "SECTION=BYTES")]
    pub entry_sizes: Vec<String>,
    /// Accept a layout change of TYPE (`struct foo`, `union bar`, a
    /// typedef name) that the changed code reaches. Only safe when no
    /// object of the old layout can reach the new code (repeatable).
    #[arg(long = "accept-layout-change", value_name = "TYPE")]
    pub accept_layout: Vec<String>,
    /// Leave the changed function NAME out (it is not fixed; the
    /// report lists it under `skipped`; repeatable).
    #[arg(long = "skip-function", value_name = "NAME")]
    pub skip: Vec<String>,
}

/// Runs `patchgen diff`: the exit status says changed (0), nothing
/// changed (3) or refused (4).
pub fn run(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let opts = options(&args)?;
    let o = ObjectFile::read(&args.orig)?;
    let f = ObjectFile::read(&args.fixed)?;
    let result = patchgen::diff(&o, &f, &opts);
    let unmatched: Vec<&String> = opts
        .skip
        .iter()
        .filter(|s| {
            !result
                .report
                .skipped
                .iter()
                .any(|c| c.name == **s || c.name.split('.').next() == Some(s.as_str()))
        })
        .collect();
    if !unmatched.is_empty() && result.report.refusals.is_empty() {
        bail!(
            "--skip-function {}: no function of that name changes; give the name as the report shows it",
            unmatched.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    if let Some(path) = &args.report {
        let json = serde_json::to_string_pretty(&result.report)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    eprint!("{}", result.report.summary());
    // The process ends next: the objects' tens of thousands of
    // allocations are left to the exit rather than freed one by one
    // (a tenth of a small diff's time).
    std::mem::forget(o);
    std::mem::forget(f);
    match (result.report.result, result.object) {
        (Outcome::Changed, Some(bytes)) => {
            std::fs::write(&args.output, bytes)
                .with_context(|| format!("cannot write {}", args.output.display()))?;
            Ok(ExitCode::SUCCESS)
        }
        (Outcome::NothingChanged, _) => Ok(ExitCode::from(EXIT_NOTHING_CHANGED)),
        _ => Ok(ExitCode::from(EXIT_REFUSED)),
    }
}

/// The differ's options from the arguments: the fix's line moves, the
/// target's (or the given) entry sizes, the accepted layouts and skipped
/// functions.
fn options(args: &DiffArgs) -> anyhow::Result<DiffOptions> {
    let mut opts = DiffOptions {
        accept_layout: args.accept_layout.clone(),
        skip: args.skip.clone(),
        ..DiffOptions::default()
    };
    if let (Some(fix), Some(source)) = (&args.fix, &args.source) {
        let text = patchgen::input::read_text(fix)
            .with_context(|| format!("cannot read {}", fix.display()))?;
        opts.line_map = patchgen::diff::lines::LineMap::from_patch(&text, source);
        if opts.line_map.is_empty() {
            bail!("{} has no hunks for {source}: give the source path as the fix names it (+++ b/PATH)", fix.display());
        }
    }
    if let Some(release) = &args.kernel {
        let target = patchgen::build::KernelTarget::from_cache(release)?;
        let work = tempfile::tempdir().context("cannot create a work directory")?;
        let line = target.line()?;
        opts.entry_sizes = patchgen::build::entry_sizes::from_headers(&target, line, work.path())?;
    }
    for spec in &args.entry_sizes {
        let Some((name, size)) = spec.split_once('=') else {
            bail!("--entry-size takes SECTION=BYTES, not '{spec}'");
        };
        let size: u64 = size
            .parse()
            .with_context(|| format!("--entry-size {spec}: BYTES is not a number"))?;
        if size == 0 {
            bail!("--entry-size {spec}: an entry cannot be 0 bytes");
        }
        opts.entry_sizes.set(name, size);
    }
    Ok(opts)
}
