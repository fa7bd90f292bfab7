//! `patchgen build`: from a kernel source fix to a patch module for one
//! target kernel.
//!
//! apply the fix to private copies -> find the affected objects -> compile
//! each twice with the target's own commands -> diff -> build the module
//! with kbuild against the target's headers -> records for patchd's link
//! step. Nothing in the kernel cache is modified; all work happens in a
//! work directory that is removed unless kept.

mod affected;
pub mod build_root;
pub mod companion;
pub mod compile;
pub mod entry_sizes;
pub mod kbuild;
pub mod module;
pub mod package;
mod pipeline;
pub mod source;
pub mod target;

use std::path::PathBuf;

pub use module::{BuildRecord, BuiltModule, ObjectPart, Replacement};
pub use pipeline::build;
pub use target::KernelTarget;

/// Why a build failed. Each says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The kernel cache entry is missing.
    #[error("no kernel cache for {release} in {dir}: run scripts/setup --kernel {release}")]
    NoKernelCache {
        /// The release asked for.
        release: String,
        /// Where it was looked for.
        dir: PathBuf,
    },
    /// patchgen does not know the target's kernel line.
    #[error("kernel {release} is of a kernel line patchgen does not support (it supports {supported}): build for a kernel of a supported line")]
    UnsupportedLine {
        /// The target release.
        release: String,
        /// The supported lines.
        supported: String,
    },
    /// The target's identity is incomplete or wrong.
    #[error("the target kernel is not usable: {what}")]
    BadIdentity {
        /// What is wrong.
        what: String,
    },
    /// The compiler differs from the one the kernel was built with.
    #[error("the target kernel was built with \"{expected}\" but this machine has \"{found}\": install that compiler (scripts/setup installs gcc-12) so that the patch's code matches the kernel's")]
    CompilerMismatch {
        /// From the target's config.
        expected: String,
        /// On this machine.
        found: String,
    },
    /// A file could not be read or written.
    #[error("{what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The patch file is not a usable unified diff.
    #[error("{patch} is not a usable fix: {why}")]
    BadPatch {
        /// The patch file.
        patch: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The fix does not apply to the target's source.
    #[error("{patch} does not apply to the source of {release}; rebase the fix onto that kernel's source (patch(1) said:\n{output})")]
    PatchDoesNotApply {
        /// The patch file.
        patch: PathBuf,
        /// The target.
        release: String,
        /// patch(1)'s output.
        output: String,
    },
    /// The fix touches something that is not kernel code.
    #[error("the fix changes {file}, which is not C code (build configuration, scripts, ...): a live patch can only replace functions; leave it out of the fix")]
    NotCode {
        /// The file.
        file: PathBuf,
    },
    /// A source file the fix changes is not built for the target.
    #[error("{file} is not part of the {release} build (its object is not built with this configuration): nothing to patch")]
    OutsideBuild {
        /// The file.
        file: PathBuf,
        /// The target.
        release: String,
    },
    /// The record of what kbuild builds could not be made.
    #[error("kbuild's dry run in {tree} failed, so what the target builds is unknown: {output}")]
    KbuildDryRun {
        /// The tree.
        tree: PathBuf,
        /// What make said.
        output: String,
    },
    /// A cached kbuild record is damaged.
    #[error("the kbuild record {path} is damaged ({why}): remove it and build again")]
    BadKbuildRecord {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A changed header is read by more objects than the build compiles.
    #[error("{header} is read by {count} objects of the target (for example {examples}); compiling each twice is beyond --max-objects {limit}: raise it if that is meant")]
    TooManyObjects {
        /// The header.
        header: PathBuf,
        /// How many objects read it.
        count: usize,
        /// The limit.
        limit: usize,
        /// Some of them.
        examples: String,
    },
    /// kbuild's command for an object has an unexpected form.
    #[error("kbuild's command for {object} has an unexpected form: {command}")]
    UnexpectedCommand {
        /// The object.
        object: PathBuf,
        /// The command.
        command: String,
    },
    /// A compile failed.
    #[error("compiling the {which} {object} failed:\n{output}")]
    CompileFailed {
        /// The object.
        object: PathBuf,
        /// "original" or "fixed".
        which: &'static str,
        /// The compiler's own messages.
        output: String,
    },
    /// The fixed source does not compile while the original does, on the
    /// target's headers: the fix lacks changes to other files.
    #[error("the fixed {object} does not compile, the original does: the fix probably lacks changes to other files (headers) that declare {}; add them to the fix (a header change is built with the objects that include it).\nThe compiler said:\n{output}", missing.join(", "))]
    FixIncomplete {
        /// The object.
        object: PathBuf,
        /// What the compiler could not find (`'foo' undeclared`,
        /// `member 'bar' of struct baz`, ...).
        missing: Vec<String>,
        /// The compiler's own messages.
        output: String,
    },
    /// A function to leave out is not among the changed functions.
    #[error("--skip-function {}: no function of that name changes in the fix's objects; give the name as `patchgen diff` reports it", names.join(", "))]
    SkipUnmatched {
        /// The names that matched nothing.
        names: Vec<String>,
    },
    /// An object could not be read.
    #[error("cannot read a compiled object")]
    Read(#[from] crate::elf::ReadError),
    /// The differ refused a change.
    #[error("{object}: this change cannot be live-patched:\n{summary}")]
    Refused {
        /// The object.
        object: PathBuf,
        /// The differ's explanation.
        summary: String,
        /// The differ's report (refusals with their categories).
        report: Box<crate::Report>,
    },
    /// No object changed.
    #[error("the fix changes no function of the {release} build (only comments, or code not built with this configuration): nothing to patch")]
    NothingChanged {
        /// The target.
        release: String,
    },
    /// Every change was in code that is not redirected: only new
    /// functions, which nothing in the running kernel calls.
    #[error("the fix changes no function that can be redirected: it only adds {}, which nothing the fix changes calls (their callers are in files the fix does not touch, or the fix is incomplete); include the callers' files in the fix", list_or_none(new_functions))]
    NothingToRedirect {
        /// The new functions (object: function).
        new_functions: Vec<String>,
    },
    /// The target's symbols could not be read.
    #[error("cannot read the target kernel's symbols")]
    Symbols(#[from] crate::target_symbols::SymbolSourceError),
    /// A link record's position in kallsyms cannot be proven.
    #[error("the patch module refers to a kernel symbol patchd could not resolve exactly")]
    Sympos(#[from] crate::target_symbols::SymposError),
    /// kbuild failed to build the module.
    #[error("building the patch module in {dir} failed:\n{output}")]
    ModuleBuildFailed {
        /// The module directory.
        dir: PathBuf,
        /// kbuild's output.
        output: String,
    },
}

/// Inputs of a build.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// The target kernel.
    pub target: KernelTarget,
    /// The fixes, applied in order.
    pub patches: Vec<PathBuf>,
    /// The patch's name (module name and bundle id).
    pub name: String,
    /// The companion module's source (for its header and exports); `None`:
    /// the sources built into patchgen (see `companion`).
    pub kmod: Option<PathBuf>,
    /// The work directory (created; the caller removes it).
    pub work: PathBuf,
    /// The target's `vmlinux` with its symbol table (Debian's `-dbg`
    /// package); `None`: the one found for the target, if any.
    pub vmlinux: Option<PathBuf>,
    /// Types whose changed layout the author accepts (see
    /// `DiffOptions::accept_layout`).
    pub accept_layout: Vec<String>,
    /// Changed functions the author leaves out (see `DiffOptions::skip`).
    pub skip: Vec<String>,
    /// Most objects one changed header may bring into the build (each is
    /// compiled twice); `None`: [`DEFAULT_MAX_OBJECTS`].
    pub max_objects: Option<usize>,
}

/// Default of [`BuildRequest::max_objects`]: a header read by more objects
/// than this is most likely one of the kernel's widely used ones, whose
/// change a live patch rarely can carry; building them all takes hours.
pub const DEFAULT_MAX_OBJECTS: usize = 200;

/// `patchgen build`'s exit status for a build that succeeded.
pub const EXIT_BUILT: u8 = 0;
/// Exit status: an error (bad input, a tool failed, a file).
pub const EXIT_ERROR: u8 = 1;
/// Exit status: nothing to patch (no function of the target's build
/// changes, the file is not built for the target, or only new functions
/// nothing calls).
pub const EXIT_NOTHING_TO_PATCH: u8 = 3;
/// Exit status: refused, the change cannot be live-patched safely.
pub const EXIT_REFUSED: u8 = 4;

impl BuildError {
    /// The exit status `patchgen build` ends with for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Refused { .. } | Self::NotCode { .. } => EXIT_REFUSED,
            Self::NothingChanged { .. }
            | Self::NothingToRedirect { .. }
            | Self::OutsideBuild { .. } => EXIT_NOTHING_TO_PATCH,
            _ => EXIT_ERROR,
        }
    }

    /// A stable name of the outcome, for reports: `refused`,
    /// `nothing-to-patch` or `error`.
    pub fn outcome(&self) -> &'static str {
        match self.exit_code() {
            EXIT_REFUSED => "refused",
            EXIT_NOTHING_TO_PATCH => "nothing-to-patch",
            _ => "error",
        }
    }
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "no function".to_string()
    } else {
        names.join(", ")
    }
}

/// What a build produced.
#[derive(Debug)]
pub struct BuildOutput {
    /// The patch module.
    pub module: BuiltModule,
    /// Per object: what the differ found.
    pub reports: Vec<(PathBuf, crate::Report)>,
    /// Seconds spent per step, for progress and the benchmark.
    pub timings: Vec<(String, f64)>,
    /// How each link record's position was proven.
    pub proofs: Vec<crate::target_symbols::sympos::Proof>,
}
