//! The steps of a build, in order: apply the fix and find the affected
//! objects, read the target's symbols and special-section layouts, compile
//! and diff each object, build the module, prove the link records'
//! positions. Each step's time is reported as it ends.

use crate::kernel_line::KernelLine;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::affected::affected_objects;
use super::{
    companion, compile, entry_sizes, module, source, BuildError, BuildOutput, BuildRequest,
    BuiltModule, ObjectPart,
};
use crate::diff::report::Outcome;
use crate::diff::EntrySizes;
use crate::target_symbols::sympos::Proof;
use crate::target_symbols::{
    assign_positions, KallsymsConfig, ObjectLocals, SymbolInputs, TargetSymbols,
};
use crate::{diff, DiffOptions, ObjectFile};

/// Runs a build; `progress` receives one line per step.
pub fn build(
    req: &BuildRequest,
    progress: &mut dyn FnMut(&str),
) -> Result<BuildOutput, BuildError> {
    let mut steps = Steps {
        timings: Vec::new(),
        progress,
    };
    std::fs::create_dir_all(&req.work).map_err(|source| BuildError::Io {
        what: "cannot create the work directory",
        path: req.work.clone(),
        source,
    })?;

    let line = req.target.line()?;
    let t = Instant::now();
    let fix = source::apply(&req.target, &req.patches, &req.work)?;
    let objects = affected_objects(req, &fix, steps.progress)?;
    steps.done("applied the fix", t);

    let symbols = read_symbols(req, line, &mut steps)?;

    let t = Instant::now();
    let entry_sizes = entry_sizes::from_headers(&req.target, line, &req.work)?;
    steps.done("read the special-section layouts of the target", t);

    let mut diffed = Diffed::default();
    for (obj, src) in &objects {
        diffed.diff_object(req, &fix, obj, src, &entry_sizes, &mut steps)?;
    }
    diffed.check(req)?;

    let t = Instant::now();
    let kmod = match &req.kmod {
        Some(dir) => dir.clone(),
        None => companion::write_sources(&req.work.join("companion"))?,
    };
    let mut module = module::build_module(&req.target, &kmod, &req.name, &diffed.parts, &req.work)?;
    steps.done("built the patch module", t);

    let proofs = prove_positions(&mut module, &diffed.locals, &symbols, &mut steps)?;
    Ok(BuildOutput {
        module,
        reports: diffed.reports,
        timings: steps.timings,
        proofs,
    })
}

/// The steps' progress lines and times.
struct Steps<'p> {
    /// Seconds spent per step.
    timings: Vec<(String, f64)>,
    /// Where progress lines go.
    progress: &'p mut dyn FnMut(&str),
}

impl Steps<'_> {
    /// Reports a line.
    fn say(&mut self, line: &str) {
        (self.progress)(line);
    }

    /// Reports that step `name`, begun at `start`, is done, and keeps its
    /// time.
    fn done(&mut self, name: &str, start: Instant) {
        let secs = start.elapsed().as_secs_f64();
        self.say(&format!("{name} ({secs:.1} s)"));
        self.timings.push((name.to_string(), secs));
    }
}

/// Reads the target's symbols, saying which sources were read and, when
/// there is no symbol table, what that costs.
fn read_symbols(
    req: &BuildRequest,
    line: &'static KernelLine,
    steps: &mut Steps<'_>,
) -> Result<TargetSymbols, BuildError> {
    let t = Instant::now();
    let symbols = load_symbols(req, line)?;
    for source in &symbols.sources {
        steps.say(&format!("read the {source}"));
    }
    if symbols.symtab.is_none() {
        steps.say(&format!(
            "no symbol table of {} (linux-image-{}-dbg, or --vmlinux): statics are told apart by name and type only",
            req.target.release, req.target.release
        ));
    }
    steps.done("read the target's symbols", t);
    Ok(symbols)
}

/// What the objects' diffs found, object by object.
#[derive(Default)]
struct Diffed {
    /// The changed objects' contributions to the module.
    parts: Vec<ObjectPart>,
    /// Every object's report.
    reports: Vec<(PathBuf, crate::Report)>,
    /// Every object's pristine locals, for the position proof.
    locals: Vec<ObjectLocals>,
}

impl Diffed {
    /// Compiles `obj` from the original and the fixed `src` with the
    /// target's command and diffs the two; a refusal ends the build.
    fn diff_object(
        &mut self,
        req: &BuildRequest,
        fix: &source::AppliedFix,
        obj: &Path,
        src: &Path,
        entry_sizes: &EntrySizes,
        steps: &mut Steps<'_>,
    ) -> Result<(), BuildError> {
        let t = Instant::now();
        let cmd = compile::object_command(&req.target, obj, src)?;
        let (orig_o, fixed_o) = compile::object_paths(&req.work, obj);
        let fixed_src = fix.copy_of(&req.target, src)?;
        compile::compile(
            &req.target,
            &cmd,
            &req.target.source.join(src),
            &orig_o,
            None,
            "original",
        )?;
        compile::compile(
            &req.target,
            &cmd,
            &fixed_src,
            &fixed_o,
            Some(&fix.root),
            "fixed",
        )?;
        steps.done(&format!("compiled {} twice", obj.display()), t);

        let t = Instant::now();
        let orig = ObjectFile::read(&orig_o)?;
        let fixed = ObjectFile::read(&fixed_o)?;
        self.locals
            .push(ObjectLocals::from_object(&obj.display().to_string(), &orig));
        let opts = DiffOptions {
            symbol_prefix: Some(format!("suture{}_", self.parts.len())),
            entry_sizes: entry_sizes.clone(),
            line_map: line_map(&req.patches, src),
            accept_layout: req.accept_layout.clone(),
            skip: req.skip.clone(),
        };
        let result = diff(&orig, &fixed, &opts);
        steps.done(&format!("diffed {}", obj.display()), t);
        match (result.report.result, result.object) {
            (Outcome::Refused, _) => {
                return Err(BuildError::Refused {
                    object: obj.to_path_buf(),
                    summary: result.report.summary(),
                    report: Box::new(result.report),
                })
            }
            (Outcome::Changed, Some(bytes)) => {
                self.reports
                    .push((obj.to_path_buf(), result.report.clone()));
                self.parts.push(ObjectPart {
                    object: obj.to_path_buf(),
                    kernel_object: cmd.module.clone().unwrap_or_else(|| "vmlinux".to_string()),
                    report: result.report,
                    bytes,
                });
            }
            _ => {
                steps.say(&format!("{}: nothing changed", obj.display()));
                self.reports.push((obj.to_path_buf(), result.report));
            }
        }
        Ok(())
    }

    /// Refuses a build that leaves out a function the fix does not change,
    /// or changes nothing.
    fn check(&self, req: &BuildRequest) -> Result<(), BuildError> {
        // Every function the author leaves out must be one the fix changes: a
        // typo must not ship a patch that is believed to leave something out.
        let unmatched: Vec<String> = req
            .skip
            .iter()
            .filter(|s| {
                !self.reports.iter().any(|(_, r)| {
                    r.skipped
                        .iter()
                        .any(|c| c.name == **s || c.name.split('.').next() == Some(s.as_str()))
                })
            })
            .cloned()
            .collect();
        if !unmatched.is_empty() {
            return Err(BuildError::SkipUnmatched { names: unmatched });
        }
        if self.parts.is_empty() {
            return Err(BuildError::NothingChanged {
                release: req.target.release.clone(),
            });
        }
        Ok(())
    }
}

/// Proves the kallsyms position of every vmlinux record of the module,
/// saying how; records of modules are left to patchd.
fn prove_positions(
    module: &mut BuiltModule,
    locals: &[ObjectLocals],
    symbols: &TargetSymbols,
    steps: &mut Steps<'_>,
) -> Result<Vec<Proof>, BuildError> {
    let t = Instant::now();
    let proofs = assign_positions(&mut module.records, &module.replacements, locals, symbols)?;
    for proof in &proofs {
        steps.say(&format!(
            "{}: kallsyms position {} ({})",
            proof.symbol, proof.sympos, proof.by
        ));
    }
    let left = module.records.iter().filter(|r| r.sympos.is_none()).count();
    if left > 0 {
        steps.say(&format!(
            "{left} symbol(s) of modules are left to patchd's resolution at load time"
        ));
    }
    steps.done("proved the link records' kallsyms positions", t);
    Ok(proofs)
}

/// The target's symbols: the image's kallsyms tables and, when there is
/// one, the `-dbg` vmlinux's symbol table.
fn load_symbols(
    req: &BuildRequest,
    line: &'static KernelLine,
) -> Result<TargetSymbols, BuildError> {
    let config_path = req.target.source.join(".config");
    let config = std::fs::read_to_string(&config_path).map_err(|source| BuildError::Io {
        what: "cannot read the target's configuration",
        path: config_path,
        source,
    })?;
    let vmlinux = req
        .vmlinux
        .clone()
        .or_else(|| req.target.debug_vmlinux.clone());
    Ok(TargetSymbols::load(&SymbolInputs {
        release: &req.target.release,
        line,
        build_id: &req.target.build_id,
        image: req.target.image.as_deref(),
        vmlinux: vmlinux.as_deref(),
        config: KallsymsConfig::from_config(&config),
    })?)
}

/// How the fix moves `src`'s lines, when exactly one of the fixes touches it
/// (chained line moves of several fixes are not followed: no allowance).
fn line_map(patches: &[PathBuf], src: &Path) -> crate::diff::lines::LineMap {
    let file = src.to_string_lossy();
    let maps: Vec<_> = patches
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|text| crate::diff::lines::LineMap::from_patch(&text, &file))
        .filter(|m| !m.is_empty())
        .collect();
    match maps.as_slice() {
        [one] => one.clone(),
        _ => crate::diff::lines::LineMap::default(),
    }
}
