//! Golden cases of the differ: each directory of tests/golden/ holds a small
//! C file in two versions and the expected result. Both are compiled at test
//! time with the kernel's x86-64 code-generation flags (CFLAGS below), so
//! the objects look like kernel objects: function and data sections,
//! `call __fentry__` recorded in `__mcount_loc`, kernel code model.
//!
//! `expect` lines:
//!   result: changed | nothing-changed | refused
//!   changed: NAME...            exact set of changed functions
//!   changed-normalized: NAME... same, compared after dropping clone numbers
//!   new: NAME...                exact set of new functions
//!   carried: NAME...            changed statics without ftrace site, carried with callers
//!   refuse: TEXT                a refusal names TEXT (symbol or reason)
//!   undefined-local: NAME       the output refers to this static (normalized) as undefined local
//!   no-new-data: NAME           the output does not copy this (normalized) data
//!   section-entries: SECTION N  the output's SECTION holds N entries
//!   ignored: NAME               the report ignores NAME (with a reason)
//!   uses-running-static: F NAME the output's F refers, undefined, to the
//!                               original object's static NAME.N that the
//!                               original F uses (the running kernel's own)
//!   uses-new-static: F NAME     the output's F refers to a static NAME.N
//!                               the output defines (a fresh one)
//!   cflags: FLAG...             extra compiler flags (`-mno-record-mcount`)
//!   accept-layout: TYPE         diff with --accept-layout-change TYPE
//!   skip: NAME                  diff with --skip-function NAME
//!   skipped: NAME...            exact set of functions the report skips
//!   loads-variable: F SYM       the output's F reads SYM by a relocation
//!                               (undefined) where the fixed object had a
//!                               runtime constant, no placeholder is left
//!                               and no runtime_ptr_SYM table is copied
//!
//! The fix's line map comes from `diff -u orig.c fixed.c`, as `patchgen
//! build` gives it from the fix, so moved `__LINE__`s are not changes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use patchgen::diff::compare::symbol_at_reloc;
use patchgen::diff::correlate::normalize;
use patchgen::diff::lines::LineMap;
use patchgen::diff::report::Outcome;
use patchgen::diff::EntrySizes;
use patchgen::elf::SymbolKind;
use patchgen::{diff, DiffOptions, ObjectFile};

/// The kernel's x86-64 code generation (Debian 6.1 flags that shape objects).
const CFLAGS: &[&str] = &[
    "-O2",
    "-g",
    "-ffunction-sections",
    "-fdata-sections",
    "-pg",
    "-mfentry",
    "-mrecord-mcount",
    "-mcmodel=kernel",
    "-fno-pic",
    "-fno-PIE",
    "-mno-red-zone",
    "-mno-sse",
    "-fno-asynchronous-unwind-tables",
    "-fno-jump-tables",
    "-fno-stack-protector",
    "-fno-strict-aliasing",
    "-fno-common",
    "-mindirect-branch=thunk-extern",
    "-mindirect-branch-register",
    "-mfunction-return=thunk-extern",
    "-falign-jumps=1",
    "-falign-loops=1",
    "-fno-delete-null-pointer-checks",
    "-nostdinc",
];

fn compiler() -> &'static str {
    if Command::new("gcc-12").arg("--version").output().is_ok() {
        "gcc-12"
    } else {
        "cc"
    }
}

fn compile(src: &Path, out: &Path, extra: &[&str]) {
    let status = Command::new(compiler())
        .args(CFLAGS)
        .args(extra)
        .arg("-c")
        .arg(src)
        .arg("-o")
        .arg(out)
        .status()
        .expect("run the C compiler");
    assert!(status.success(), "compiling {} failed", src.display());
}

fn names(s: &str) -> BTreeSet<String> {
    s.split([' ', ','])
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

fn run_case(dir: &Path) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (o, f) = (tmp.path().join("orig.o"), tmp.path().join("fixed.o"));
    let expect = std::fs::read_to_string(dir.join("expect")).map_err(|e| e.to_string())?;
    let extra: Vec<&str> = expect
        .lines()
        .filter_map(|l| l.strip_prefix("cflags:"))
        .flat_map(str::split_whitespace)
        .collect();
    compile(&dir.join("orig.c"), &o, &extra);
    compile(&dir.join("fixed.c"), &f, &extra);
    let orig = ObjectFile::read(&o).map_err(|e| e.to_string())?;
    let fixed = ObjectFile::read(&f).map_err(|e| e.to_string())?;
    let patch = Command::new("diff")
        .args(["-u", "--label", "a/case.c", "--label", "b/case.c"])
        .arg(dir.join("orig.c"))
        .arg(dir.join("fixed.c"))
        .output()
        .map_err(|e| format!("run diff: {e}"))?;
    let opts = DiffOptions {
        line_map: LineMap::from_patch(&String::from_utf8_lossy(&patch.stdout), "case.c"),
        accept_layout: expect
            .lines()
            .filter_map(|l| l.strip_prefix("accept-layout:"))
            .map(|t| t.trim().to_string())
            .collect(),
        skip: expect
            .lines()
            .filter_map(|l| l.strip_prefix("skip:"))
            .map(|t| t.trim().to_string())
            .collect(),
        ..DiffOptions::default()
    };
    let result = diff(&orig, &fixed, &opts);
    let r = &result.report;
    let json = serde_json::to_string_pretty(r).unwrap_or_default();
    let out = match &result.object {
        Some(bytes) => Some(
            ObjectFile::parse(Path::new("out.o"), bytes)
                .map_err(|e| format!("output does not parse: {e}"))?,
        ),
        None => None,
    };
    let fail = |what: String| Err(format!("{what}\nreport: {json}"));

    for line in expect.lines().filter(|l| !l.trim().is_empty()) {
        let (key, value) = line
            .split_once(':')
            .ok_or(format!("bad expect line {line}"))?;
        let value = value.trim();
        match key {
            "result" => {
                let want = match value {
                    "changed" => Outcome::Changed,
                    "nothing-changed" => Outcome::NothingChanged,
                    "refused" => Outcome::Refused,
                    other => return Err(format!("bad result {other}")),
                };
                if r.result != want {
                    return fail(format!("result {:?}, expected {want:?}", r.result));
                }
            }
            "changed" => {
                let got: BTreeSet<String> =
                    r.changed_functions.iter().map(|c| c.name.clone()).collect();
                if got != names(value) {
                    return fail(format!("changed {got:?}, expected {:?}", names(value)));
                }
            }
            "changed-normalized" => {
                let got: BTreeSet<String> = r
                    .changed_functions
                    .iter()
                    .map(|c| normalize(&c.name))
                    .collect();
                if got != names(value) {
                    return fail(format!(
                        "changed (normalized) {got:?}, expected {:?}",
                        names(value)
                    ));
                }
            }
            "new" => {
                let got: BTreeSet<String> = r.new_functions.iter().cloned().collect();
                if got != names(value) {
                    return fail(format!("new {got:?}, expected {:?}", names(value)));
                }
            }
            "refuse" => {
                let hit = r
                    .refusals
                    .iter()
                    .any(|x| x.symbol.as_deref() == Some(value) || x.reason.contains(value));
                if !hit {
                    return fail(format!("no refusal names {value}"));
                }
            }
            "carried" => {
                let got: BTreeSet<String> = r.carried.iter().cloned().collect();
                if got != names(value) {
                    return fail(format!("carried {got:?}, expected {:?}", names(value)));
                }
            }
            "undefined-local" => {
                if !r
                    .undefined
                    .iter()
                    .any(|u| u.local && normalize(&u.name) == value)
                {
                    return fail(format!("{value} is not an undefined local reference"));
                }
            }
            "no-new-data" => {
                if r.new_data.iter().any(|d| normalize(&d.name) == value) {
                    return fail(format!("{value} was copied as new data"));
                }
            }
            "section-entries" => {
                let (sec, n) = value.split_once(' ').ok_or("section-entries SECTION N")?;
                let n: u64 = n.parse().map_err(|_| "bad count")?;
                let size = EntrySizes::default().get(sec).ok_or("unknown section")?;
                let got = out
                    .as_ref()
                    .and_then(|o| o.section_by_name(sec))
                    .map_or(0, |s| s.size / size);
                if got != n {
                    return fail(format!(
                        "{sec} has {got} entries in the output, expected {n}"
                    ));
                }
            }
            "ignored" => {
                if !r.ignored.iter().any(|i| i.symbol == value) {
                    return fail(format!("{value} is not ignored"));
                }
            }
            "uses-running-static" | "uses-new-static" => {
                let (func, name) = value.split_once(' ').ok_or("F NAME")?;
                let out = out.as_ref().ok_or("no output object")?;
                let targets = referenced(out, func);
                let hit = if key == "uses-running-static" {
                    let want = statics_used(&orig, func, name);
                    if want.len() != 1 {
                        return fail(format!("the original {func} uses {want:?}, not one {name}"));
                    }
                    targets
                        .iter()
                        .any(|(n, defined)| !defined && want.contains(n))
                } else {
                    targets
                        .iter()
                        .any(|(n, defined)| *defined && normalize(n) == name)
                };
                if !hit {
                    return fail(format!(
                        "{key} {value}: the output's {func} refers to {targets:?}"
                    ));
                }
            }
            "loads-variable" => {
                let (func, sym) = value.split_once(' ').ok_or("F SYM")?;
                let out = out.as_ref().ok_or("no output object")?;
                if !referenced(out, func).contains(&(sym.to_string(), false)) {
                    return fail(format!("the output's {func} does not refer to {sym}"));
                }
                let placeholder = 0x0123_4567_89ab_cdef_u64.to_le_bytes();
                let code = out
                    .symbols
                    .iter()
                    .find(|s| s.name == func && s.kind == SymbolKind::Func)
                    .and_then(|s| s.section)
                    .map(|sec| out.sections[sec].data.clone())
                    .unwrap_or_default();
                if code.windows(8).any(|w| w == placeholder) {
                    return fail(format!("the output's {func} keeps the placeholder"));
                }
                if out.section_by_name(&format!("runtime_ptr_{sym}")).is_some() {
                    return fail(format!("the output has a runtime_ptr_{sym} table"));
                }
            }
            "skipped" => {
                let got: BTreeSet<String> = r.skipped.iter().map(|c| c.name.clone()).collect();
                if got != names(value) {
                    return fail(format!("skipped {got:?}, expected {:?}", names(value)));
                }
            }
            "cflags" | "accept-layout" | "skip" => {}
            other => return Err(format!("unknown expect key {other}")),
        }
    }

    // Every changed output is a well-formed kernel object: each redirected
    // function defined, with an ftrace site recorded.
    if let Some(out) = &out {
        for c in &r.changed_functions {
            let defined = out
                .symbols
                .iter()
                .any(|s| s.name == c.name && s.kind == SymbolKind::Func && s.section.is_some());
            if !defined {
                return fail(format!("{} is not defined in the output", c.name));
            }
        }
        let redirected = r
            .changed_functions
            .iter()
            .filter(|c| !c.name.ends_with(".cold") && !r.carried.contains(&c.name))
            .count()
            + r.new_functions.len();
        let sites = out
            .section_by_name("__mcount_loc")
            .map_or(0, |s| s.size / 8);
        let recorded = fixed.section_by_name("__mcount_loc").is_some();
        if recorded && usize::try_from(sites).unwrap_or(0) != redirected {
            return fail(format!(
                "__mcount_loc has {sites} entries for {redirected} changed/new functions"
            ));
        }
    }
    Ok(())
}

/// The symbols function `func`'s section of `obj` refers to: (name,
/// defined in `obj`), section symbols resolved to the symbol at the offset.
fn referenced(obj: &ObjectFile, func: &str) -> Vec<(String, bool)> {
    let Some(sec) = obj
        .symbols
        .iter()
        .find(|s| s.name == func && s.kind == SymbolKind::Func)
        .and_then(|s| s.section)
    else {
        return Vec::new();
    };
    obj.sections[sec]
        .relocs
        .iter()
        .filter_map(|r| {
            let t = obj.symbols.get(r.symbol)?;
            let t = match (t.kind, t.section) {
                (SymbolKind::Section, Some(ts)) => symbol_at_reloc(obj, ts, r)?,
                _ => t,
            };
            Some((t.name.clone(), t.section.is_some()))
        })
        .collect()
}

/// The statics named `name.N` that function `func` of `obj` uses.
fn statics_used(obj: &ObjectFile, func: &str, name: &str) -> BTreeSet<String> {
    referenced(obj, func)
        .into_iter()
        .filter(|(n, defined)| *defined && normalize(n) == name && n.contains('.'))
        .map(|(n, _)| n)
        .collect()
}

/// Under a symbol prefix (as `patchgen build` diffs each object), a
/// changed function and a new static are renamed, but a new global function
/// keeps its name: another object of the same fix may call it by that name
/// (a real fix: af_unix.c calls garbage.c's new `unix_peek_fpl`).
#[test]
fn a_new_global_function_keeps_its_name_under_a_prefix() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (orig_c, fixed_c) = (tmp.path().join("orig.c"), tmp.path().join("fixed.c"));
    std::fs::write(&orig_c, "int calc(int x) { return x + 1; }\n").expect("write");
    std::fs::write(
        &fixed_c,
        "__attribute__((noinline)) int peek_new(int x) { return x * 2; }\n\
         static __attribute__((noinline)) int st(int x) { return x - 1; }\n\
         int calc(int x) { return st(peek_new(x)) + 1; }\n",
    )
    .expect("write");
    let (orig_o, fixed_o) = (tmp.path().join("orig.o"), tmp.path().join("fixed.o"));
    compile(&orig_c, &orig_o, &[]);
    compile(&fixed_c, &fixed_o, &[]);
    let read = |p: &Path| ObjectFile::parse(p, &std::fs::read(p).expect("read")).expect("parse");
    let (orig, fixed) = (read(&orig_o), read(&fixed_o));
    let opts = DiffOptions {
        symbol_prefix: Some("suture0_".to_string()),
        ..DiffOptions::default()
    };
    let result = diff::diff(&orig, &fixed, &opts);
    let bytes = result.object.expect("an output object");
    let out = ObjectFile::parse(Path::new("out.o"), &bytes).expect("parse");
    let defined: BTreeSet<&str> = out
        .symbols
        .iter()
        .filter(|s| s.section.is_some() && s.kind == SymbolKind::Func)
        .map(|s| s.name.as_str())
        .collect();
    assert!(defined.contains("peek_new"), "{defined:?}");
    assert!(defined.contains("suture0_new__calc"), "{defined:?}");
    assert!(defined.contains("suture0_new__st"), "{defined:?}");
    assert!(!defined.contains("suture0_new__peek_new"), "{defined:?}");
}

#[test]
fn golden_cases() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/golden")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 10, "golden cases missing");
    let mut failures = Vec::new();
    for dir in &dirs {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_string();
        match run_case(dir) {
            Ok(()) => eprintln!("golden {name}: ok"),
            Err(e) => failures.push(format!("golden {name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
