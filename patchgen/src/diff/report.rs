//! The differ's report: what changed, what is new, what was ignored and why,
//! and, for a refusal, the offending section or symbol with what the patch
//! author can do. Serialized as the JSON of `patchgen diff --report`.

use std::path::Path;

use serde::Serialize;

use crate::elf::ObjectFile;

/// The overall result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Something must be replaced: an object was written.
    Changed,
    /// The two objects mean the same: nothing to patch.
    NothingChanged,
    /// The change cannot be live-patched safely.
    Refused,
}

/// A changed function.
#[derive(Debug, Clone, Serialize)]
pub struct ChangedFunction {
    /// Symbol name in the fixed object.
    pub name: String,
    /// Its section.
    pub section: String,
    /// The first difference found.
    pub reason: String,
    /// Whether calls to the original are redirected to the new version
    /// (false for `.cold` parts and carried notrace statics).
    pub redirect: bool,
    /// Whether the original is local to its object (`static`).
    pub local: bool,
    /// The replacement's symbol in the output object.
    pub new_symbol: Option<String>,
    /// ELF size of the original function.
    pub old_size: Option<u64>,
    /// The original function's name in the running kernel (a clone's
    /// number may differ from the fixed build's: `foo.isra.0` there,
    /// `foo.isra.1` here).
    pub old_name: Option<String>,
}

/// Something that differs but needs no patching.
#[derive(Debug, Clone, Serialize)]
pub struct Ignored {
    /// The symbol or section.
    pub symbol: String,
    /// Why it needs no patching.
    pub reason: String,
}

/// A reason the change cannot be live-patched.
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    /// The offending section, if any.
    pub section: Option<String>,
    /// The offending symbol, if any.
    pub symbol: Option<String>,
    /// Why it cannot be live-patched.
    pub reason: String,
    /// What the patch author can do.
    pub hint: String,
    /// What kind of refusal it is, for tools (a corpus runner, a CI):
    /// stable names, never the message.
    pub category: RefusalCategory,
}

/// The kinds of refusal (`category` in the JSON report).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefusalCategory {
    /// Existing data changed.
    ExistingData,
    /// Init code changed or added.
    InitCode,
    /// A changed function cannot be redirected (no ftrace site).
    NotTraceable,
    /// A changed notrace static is reached through a stored pointer.
    AddressTaken,
    /// A changed notrace static is called only from init or exit code.
    OnlyInitCallers,
    /// A shipped function uses a static that cannot be matched.
    AmbiguousStatic,
    /// The layout of a type the shipped code reaches changed.
    LayoutChanged,
    /// The layouts could not be checked (no DWARF).
    LayoutUnchecked,
    /// The object was not built with ftrace.
    NoFtrace,
    /// The objects were not built the way the differ needs (section
    /// groups, shared sections, anonymous data, an unknown table).
    BuildFlags,
    /// The differ could not write its output (a patchgen bug).
    Internal,
    /// The author asked to leave out a function that cannot be left out.
    CannotSkip,
    /// Shipped code uses a runtime constant that cannot be turned into a
    /// load of its variable.
    RuntimeConstant,
}

impl Refusal {
    fn new(
        category: RefusalCategory,
        symbol: Option<&str>,
        section: Option<&str>,
        reason: String,
        hint: &str,
    ) -> Self {
        Self {
            section: section.map(str::to_string),
            symbol: symbol.map(str::to_string),
            reason,
            hint: hint.to_string(),
            category,
        }
    }

    /// An existing data object's contents changed.
    pub fn data_changed(symbol: &str, section: &str, why: &str) -> Self {
        Self::new(
            RefusalCategory::ExistingData,
            Some(symbol),
            Some(section),
            format!("the data object {symbol} in {section} changed ({why}); a live patch replaces code, the running kernel keeps its data"),
            "leave existing data as it is: move new constants into new objects or into the code, or keep new state in a new variable",
        )
    }

    /// Init code changed.
    pub fn init_changed(symbol: &str, section: &str, why: &str) -> Self {
        Self::new(
            RefusalCategory::InitCode,
            Some(symbol),
            Some(section),
            format!("{symbol} in {section} changed ({why}); init code has already run and been freed in the running kernel"),
            "if the fix must take effect at run time, make it in code that runs after boot; a fix to init code needs a reboot",
        )
    }

    /// A changed function has no ftrace call site.
    pub fn no_ftrace_site(symbol: &str, section: &str) -> Self {
        Self::new(
            RefusalCategory::NotTraceable,
            Some(symbol),
            Some(section),
            format!("{symbol} changed but has no ftrace call site (notrace, noinstr or not instrumented), so calls to it cannot be redirected"),
            "a static one is carried with its callers automatically; this one is global or its address is stored in data: move the fix into a traceable function",
        )
    }

    /// The fix changes the layout of a type the shipped code reaches.
    pub fn layout_changed(c: &super::layout::LayoutChange) -> Self {
        let scope = c
            .scope
            .as_ref()
            .map(|f| format!(" (declared in {f})"))
            .unwrap_or_default();
        let at = c
            .declared_at
            .as_ref()
            .map(|d| format!(" at {d}"))
            .unwrap_or_default();
        Self::new(
            RefusalCategory::LayoutChanged,
            Some(&c.type_name),
            None,
            format!(
                "the fix changes the layout of {}{scope}{at}: {}; {} would read objects the running kernel laid out the old way",
                c.type_name,
                c.changes.join(", "),
                c.used_by.join(", "),
            ),
            &format!(
                "keep the layout (put new state in a new object, or in padding only the new code writes and old objects cannot hold), or, only if no object of the old layout can ever reach the new code, accept it with --accept-layout-change '{}'",
                c.type_name
            ),
        )
    }

    /// The layouts could not be checked.
    pub fn layout_unchecked(why: &str) -> Self {
        Self::new(
            RefusalCategory::LayoutUnchecked,
            None,
            Some(".debug_info"),
            format!("the struct layouts the changed code uses cannot be checked: {why}"),
            "build both objects with the kernel's own command (CONFIG_DEBUG_INFO gives -g)",
        )
    }

    /// A changed function without an ftrace site is reached other than by
    /// direct calls (its address is taken or stored).
    pub fn address_taken(symbol: &str, why: &str) -> Self {
        Self::new(
            RefusalCategory::AddressTaken,
            Some(symbol),
            None,
            format!("{symbol} changed and has no ftrace site (notrace), and in the running kernel {why}: a pointer to the old code may be stored and called, so a new copy would not take effect there"),
            "move the fix into a traceable function (one without `inline`/notrace), or make this function traceable in the fix",
        )
    }

    /// A changed function without an ftrace site is called only from init
    /// code, which has run.
    pub fn only_init_callers(symbol: &str, section: &str) -> Self {
        Self::new(
            RefusalCategory::OnlyInitCallers,
            Some(symbol),
            Some(section),
            format!("{symbol} changed and has no ftrace site, and its only callers are init or exit code, which already ran (or never runs again): nothing at run time can reach the new copy"),
            "a fix that only takes effect at boot needs a reboot; if run-time code should reach it, that code is in another file: include it in the fix",
        )
    }

    /// A shipped function uses a function-scope static that cannot be
    /// matched with the running kernel's.
    pub fn ambiguous_static(function: &str, name: &str, candidates: &str) -> Self {
        Self::new(
            RefusalCategory::AmbiguousStatic,
            Some(function),
            None,
            format!("{function} uses a static `{name}` that cannot be matched with the running kernel's (its statics of that name: {candidates}): a fresh copy would lose the running state, a wrong match would share another's"),
            "give the static in the fix a name of its own, or keep the function's statics as they were",
        )
    }

    /// The object has no `__mcount_loc` at all.
    pub fn no_mcount(path: &Path) -> Self {
        Self::new(
            RefusalCategory::NoFtrace,
            None,
            Some("__mcount_loc"),
            format!("{} has no __mcount_loc section: it was not built with ftrace (-pg -mrecord-mcount), so no function in it can be redirected", path.display()),
            "build the objects with the kernel's own build and a config with CONFIG_FTRACE_MCOUNT_RECORD",
        )
    }

    /// A section group (COMDAT) changed.
    pub fn group_changed(section: &str) -> Self {
        Self::new(
            RefusalCategory::BuildFlags,
            None,
            Some(section),
            format!("the section group {section} changed"),
            "section groups are not expected in kernel objects: check the build flags",
        )
    }

    /// An included function lives in a section shared with other functions.
    pub fn not_function_sections(symbol: &str, section: &str) -> Self {
        Self::new(
            RefusalCategory::BuildFlags,
            Some(symbol),
            Some(section),
            format!("{symbol} shares section {section} with other code"),
            "build both objects with -ffunction-sections -fdata-sections (KCFLAGS)",
        )
    }

    /// A reference to something that cannot be named for the running kernel.
    pub fn anonymous_reference(from: &str, section: &str, offset: i64) -> Self {
        Self::new(
            RefusalCategory::BuildFlags,
            Some(from),
            Some(section),
            format!("{from} refers to {section}{offset:+}, which has no symbol the running kernel could be searched for"),
            "build with -fdata-sections so that every object has its own section and symbol",
        )
    }

    /// A section without symbols that has entries for the included code.
    pub fn unknown_table(section: &str) -> Self {
        Self::new(
            RefusalCategory::BuildFlags,
            None,
            Some(section),
            format!("{section} looks like a kernel table (no symbols) and has entries for the changed code, but patchgen does not know its entry size"),
            "give its entry size with --entry-size SECTION=BYTES (from the kernel's headers) so that the entries can be carried",
        )
    }

    /// Copied code has a runtime-constant site (`runtime_ptr_SYM`,
    /// `runtime_shift_SYM`) that the differ cannot rewrite.
    pub fn runtime_constant(section: &str, function: &str, why: &str) -> Self {
        Self::new(
            RefusalCategory::RuntimeConstant,
            Some(function),
            Some(section),
            format!("{function} uses the runtime constant of {section} ({why}): the kernel writes its value into vmlinux code at boot, never into a module"),
            "move the fix out of the code that uses the constant, or patch by a reboot",
        )
    }

    /// The author asked to leave out a function that is new in the fix.
    pub fn cannot_skip_new(symbol: &str) -> Self {
        Self::new(
            RefusalCategory::CannotSkip,
            Some(symbol),
            None,
            format!(
                "{symbol} is new in the fix: it cannot be left out (the changed code may call it)"
            ),
            "leave out the changed functions that call it instead, or drop it from the fix",
        )
    }

    /// Writing the output failed.
    pub fn emit_failed(why: &str) -> Self {
        Self::new(
            RefusalCategory::Internal,
            None,
            None,
            format!("cannot write the output object: {why}"),
            "report this as a patchgen bug with the two objects",
        )
    }
}

/// A symbol the output leaves undefined, with what identifies it in the
/// running kernel.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct UndefinedSymbol {
    /// The symbol's name in the output object (differs from `name` when a
    /// symbol prefix is used for the kernel's statics).
    pub symbol: String,
    /// Symbol name in the running kernel.
    pub name: String,
    /// Whether it is local to the object (`static`): then it must be found
    /// among the kernel's local symbols of this object file.
    pub local: bool,
    /// Whether it is a function, when the object defines it; `None` for
    /// an external, whose type the object does not know (an undefined ELF
    /// symbol has no type: `__SCT__*` static-call trampolines are
    /// functions defined in assembly, referenced like data).
    pub function: Option<bool>,
    /// The object file it is defined in (for locals) or `null` (globals,
    /// and externals of the object).
    pub object: Option<String>,
    /// Its ELF size in the original build (for locals), to tell same-named
    /// statics apart in kallsyms.
    pub size: Option<u64>,
}

/// New data the output defines.
#[derive(Debug, Clone, Serialize)]
pub struct NewData {
    /// Symbol or section name.
    pub name: String,
    /// Its section.
    pub section: String,
    /// Size in bytes.
    pub size: u64,
    /// Why it is a new copy.
    pub why: String,
}

/// Everything the differ found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The original object.
    pub orig: String,
    /// The fixed object.
    pub fixed: String,
    /// The overall result.
    pub result: Outcome,
    /// Existing functions whose code changed (redirected in the kernel).
    pub changed_functions: Vec<ChangedFunction>,
    /// Functions that exist only in the fixed object.
    pub new_functions: Vec<String>,
    /// `.cold`/`.part` parts carried along with an included function.
    pub children: Vec<String>,
    /// Changed static functions without an ftrace site, carried as new
    /// copies called by their (changed, redirected) callers.
    pub carried: Vec<String>,
    /// New data the output defines.
    pub new_data: Vec<NewData>,
    /// Differences that need no patching.
    pub ignored: Vec<Ignored>,
    /// Why the change cannot be live-patched (empty unless refused).
    pub refusals: Vec<Refusal>,
    /// What the output leaves undefined, to be resolved in the running kernel.
    pub undefined: Vec<UndefinedSymbol>,
    /// Changed functions the author left out (`skip`): NOT fixed by the
    /// patch.
    pub skipped: Vec<ChangedFunction>,
    /// Layout changes the author accepted (`accept_layout`): the patch
    /// ships code that reads these types with the new layout.
    pub accepted_layout_changes: Vec<super::layout::LayoutChange>,
}

impl Report {
    /// An empty report for two objects.
    pub fn new(orig: &ObjectFile, fixed: &ObjectFile) -> Self {
        Self::for_paths(
            &orig.path.display().to_string(),
            &fixed.path.display().to_string(),
        )
    }

    /// An empty report naming two objects by path.
    pub fn for_paths(orig: &str, fixed: &str) -> Self {
        Self {
            orig: orig.to_string(),
            fixed: fixed.to_string(),
            result: Outcome::NothingChanged,
            changed_functions: Vec::new(),
            new_functions: Vec::new(),
            children: Vec::new(),
            carried: Vec::new(),
            new_data: Vec::new(),
            ignored: Vec::new(),
            refusals: Vec::new(),
            undefined: Vec::new(),
            skipped: Vec::new(),
            accepted_layout_changes: Vec::new(),
        }
    }

    /// Records a changed function.
    pub fn note_change(&mut self, name: &str, section: &str, why: &str) {
        self.changed_functions.push(ChangedFunction {
            name: name.to_string(),
            section: section.to_string(),
            reason: why.to_string(),
            redirect: false,
            local: false,
            new_symbol: None,
            old_size: None,
            old_name: None,
        });
        self.changed_functions.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// Records a changed function the author left out.
    pub fn skip(&mut self, name: &str, section: &str, why: &str) {
        self.skipped.push(ChangedFunction {
            name: name.to_string(),
            section: section.to_string(),
            reason: why.to_string(),
            redirect: false,
            local: false,
            new_symbol: None,
            old_size: None,
            old_name: None,
        });
    }

    /// Records an ignored difference.
    pub fn ignore(&mut self, symbol: &str, reason: &str) {
        self.ignored.push(Ignored {
            symbol: symbol.to_string(),
            reason: reason.to_string(),
        });
    }

    /// Records a refusal.
    pub fn refuse(&mut self, refusal: Refusal) {
        self.refusals.push(refusal);
    }

    /// A short human summary (stderr of the CLI).
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let names = |v: &mut dyn Iterator<Item = &str>| v.collect::<Vec<_>>().join(", ");
        match self.result {
            Outcome::NothingChanged => {
                out.push_str("nothing changed: the two objects mean the same\n")
            }
            Outcome::Refused => {
                out.push_str("refused: this change cannot be live-patched safely\n");
                for r in &self.refusals {
                    out.push_str(&format!("  - {}\n    what to do: {}\n", r.reason, r.hint));
                }
            }
            Outcome::Changed => {
                out.push_str(&format!(
                    "changed: {}\n",
                    names(&mut self.changed_functions.iter().map(|c| c.name.as_str()))
                ));
                if !self.new_functions.is_empty() {
                    out.push_str(&format!("new: {}\n", self.new_functions.join(", ")));
                }
                if !self.new_data.is_empty() {
                    out.push_str(&format!(
                        "new data: {}\n",
                        names(&mut self.new_data.iter().map(|d| d.name.as_str()))
                    ));
                }
            }
        }
        for c in &self.skipped {
            out.push_str(&format!(
                "skipped {} (left out by the author: NOT fixed by this patch; it changed: {})\n",
                c.name, c.reason
            ));
        }
        for c in &self.accepted_layout_changes {
            out.push_str(&format!(
                "accepted layout change of {} (--accept-layout-change): {}\n",
                c.type_name,
                c.changes.join(", ")
            ));
        }
        for i in &self.ignored {
            out.push_str(&format!("ignored {}: {}\n", i.symbol, i.reason));
        }
        out
    }
}
