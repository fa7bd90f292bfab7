//! Real kernel fixes, one corpus per supported kernel line: each file of a
//! corpus's `patches/` is the whole difference of one `.c` file between the
//! line's pinned kernel source and a later Debian stable update (6.1:
//! tests/real-fixes/, Debian 6.1.176-1 -> 6.1.190-1; 6.12:
//! tests/real-fixes/6.12/, 6.12.107-1 -> 6.12.115-2). Each is applied to the
//! pinned source, its object compiled twice by the kernel's own command (as
//! `patchgen build` does, in the target's build root when it has one), and
//! diffed; the result must be the one written down in the corpus's
//! `fixes.txt`. A missing kernel cache fails the test with the setup command.
//!
//! `fixes.txt` lines: `PATH-or-PATCH | changed=F,G | new=H | refuse=TEXT | why`
//! (a source path `a/b.c` names `patches/a_b.patch`),
//! where `changed` and `new` are exact sets of function symbols (clone
//! numbers dropped: `foo.isra`), `refuse` a text the refusal must contain
//! (empty: not refused). SUTURE_REAL_FIXES_SHOW=1 prints what each gives.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use patchgen::build::{compile, source, KernelTarget};
use patchgen::diff::correlate::normalize;
use patchgen::diff::report::Outcome;
use patchgen::{diff, DiffOptions, ObjectFile};

/// The kernel pinned by `kernels/ENV_FILE`'s `VARIABLE=`, from the cache.
fn target(env_file: &str, variable: &str) -> KernelTarget {
    let env = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../kernels")
        .join(env_file);
    let text = std::fs::read_to_string(&env)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", env.display()));
    let release = text
        .lines()
        .find_map(|l| l.strip_prefix(variable)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("{} sets no {variable}", env.display()))
        .trim()
        .to_string();
    KernelTarget::from_cache(&release).unwrap_or_else(|e| panic!("{e}"))
}

struct Expected {
    patch: String,
    changed: BTreeSet<String>,
    new: BTreeSet<String>,
    refuse: String,
}

fn set(s: &str) -> BTreeSet<String> {
    s.split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

fn expectations(dir: &Path) -> Vec<Expected> {
    let list = dir.join("fixes.txt");
    let text = std::fs::read_to_string(&list)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", list.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let fields: Vec<&str> = l.split('|').map(str::trim).collect();
            let get = |key: &str| {
                fields
                    .iter()
                    .find_map(|f| f.strip_prefix(key))
                    .unwrap_or("")
                    .to_string()
            };
            // A source path names the patch made from it (a/b.c -> a_b.patch).
            let patch = match fields[0].strip_suffix(".c") {
                Some(path) => format!("{}.patch", path.replace('/', "_")),
                None => fields[0].to_string(),
            };
            Expected {
                patch,
                changed: set(&get("changed=")),
                new: set(&get("new=")),
                refuse: get("refuse="),
            }
        })
        .collect()
}

/// Compiles the pristine and fixed objects of a one-file fix (cached by the
/// fix's contents) and diffs them.
fn run_fix(t: &KernelTarget, patch: &Path, work: &Path) -> Result<patchgen::Report, String> {
    // SUTURE_REAL_FIXES_KEEP=DIR keeps each fix's objects in DIR/RELEASE and
    // reuses them while the patch is unchanged (a developer's loop on the
    // differ).
    if let Some(keep) = std::env::var_os("SUTURE_REAL_FIXES_KEEP") {
        let name = patch.file_name().unwrap_or_default();
        let dir = Path::new(&keep).join(&t.release).join(name);
        let text = std::fs::read(patch).map_err(|e| e.to_string())?;
        let (o, f, src) = (dir.join("orig.o"), dir.join("fixed.o"), dir.join("src"));
        let fresh = std::fs::read(dir.join("patch")).is_ok_and(|p| p == text);
        if !fresh {
            let (orig_o, fixed_o, source) = build_fix(t, patch, work)?;
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            std::fs::copy(orig_o, &o).map_err(|e| e.to_string())?;
            std::fs::copy(fixed_o, &f).map_err(|e| e.to_string())?;
            std::fs::write(&src, source.to_string_lossy().as_bytes()).map_err(|e| e.to_string())?;
            std::fs::write(dir.join("patch"), &text).map_err(|e| e.to_string())?;
        }
        let source = std::fs::read_to_string(&src).map_err(|e| e.to_string())?;
        return diff_fix(t, patch, &o, &f, Path::new(&source), work);
    }
    let (orig_o, fixed_o, src) = build_fix(t, patch, work)?;
    diff_fix(t, patch, &orig_o, &fixed_o, &src, work)
}

/// Compiles the pristine and fixed objects of a one-file fix: (orig,
/// fixed, the source file relative to the tree).
fn build_fix(
    t: &KernelTarget,
    patch: &Path,
    work: &Path,
) -> Result<(PathBuf, PathBuf, PathBuf), String> {
    let _ = std::fs::remove_dir_all(work);
    let fix = source::apply(t, &[patch.to_path_buf()], work).map_err(|e| e.to_string())?;
    let src: PathBuf = fix
        .files
        .iter()
        .find(|f| f.extension().is_some_and(|e| e == "c"))
        .cloned()
        .ok_or("no .c file in the fix")?;
    let obj = src.with_extension("o");
    let cmd = compile::object_command(t, &obj, &src).map_err(|e| e.to_string())?;
    let (orig_o, fixed_o) = compile::object_paths(work, &obj);
    compile::compile(t, &cmd, &t.source.join(&src), &orig_o, None, "original")
        .map_err(|e| e.to_string())?;
    compile::compile(
        t,
        &cmd,
        &fix.root.join(&src),
        &fixed_o,
        Some(&fix.root),
        "fixed",
    )
    .map_err(|e| e.to_string())?;
    Ok((orig_o, fixed_o, src))
}

/// Diffs a fix's objects as `patchgen build` does.
fn diff_fix(
    t: &KernelTarget,
    patch: &Path,
    orig_o: &Path,
    fixed_o: &Path,
    src: &Path,
    work: &Path,
) -> Result<patchgen::Report, String> {
    let orig = ObjectFile::read(orig_o).map_err(|e| e.to_string())?;
    let fixed = ObjectFile::read(fixed_o).map_err(|e| e.to_string())?;
    let work_sizes = work.join("sizes");
    let entry_sizes = patchgen::build::entry_sizes::from_headers(
        t,
        t.line().map_err(|e| e.to_string())?,
        &work_sizes,
    )
    .map_err(|e| e.to_string())?;
    let text = std::fs::read_to_string(patch).map_err(|e| e.to_string())?;
    let opts = DiffOptions {
        entry_sizes,
        line_map: patchgen::diff::lines::LineMap::from_patch(&text, &src.to_string_lossy()),
        ..DiffOptions::default()
    };
    Ok(diff(&orig, &fixed, &opts).report)
}

#[test]
fn real_debian_fixes_give_the_expected_changed_functions() {
    let t = target("default.env", "SUTURE_DEFAULT_KERNEL");
    check_corpus(&t, "tests/real-fixes", 15);
}

#[test]
fn real_debian_6_12_fixes_give_the_expected_changed_functions() {
    let t = target("default.env", "SUTURE_KERNEL_6_12");
    check_corpus(&t, "tests/real-fixes/6.12", 10);
}

/// One corpus at a time: each compiles one object at a time, and the
/// machines running the tests have few cores.
static ONE_CORPUS_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs every fix of the corpus in `corpus` (relative to the checkout) on
/// `t` and fails with every fix whose result is not the expected one.
fn check_corpus(t: &KernelTarget, corpus: &str, at_least: usize) {
    // A corpus that failed (panicked holding the lock) does not stop the other.
    let _one = ONE_CORPUS_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(corpus);
    let show = std::env::var_os("SUTURE_REAL_FIXES_SHOW").is_some();
    let fixes = expectations(&dir);
    assert!(
        fixes.len() >= at_least,
        "{corpus} has {} fixes, at least {at_least} are expected",
        fixes.len()
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let mut failures = Vec::new();
    for (i, e) in fixes.iter().enumerate() {
        let report = match run_fix(
            t,
            &dir.join("patches").join(&e.patch),
            &tmp.path().join(i.to_string()),
        ) {
            Ok(r) => r,
            Err(err) => {
                failures.push(format!("{}: {err}", e.patch));
                continue;
            }
        };
        let changed: BTreeSet<String> = report
            .changed_functions
            .iter()
            .map(|c| normalize(&c.name))
            .collect();
        let new: BTreeSet<String> = report.new_functions.iter().map(|n| normalize(n)).collect();
        let refusal = report
            .refusals
            .iter()
            .map(|r| r.reason.clone())
            .collect::<Vec<_>>()
            .join("; ");
        if show {
            eprintln!(
                "{} | changed={} | new={} | result={:?} | {refusal}",
                e.patch,
                changed.iter().cloned().collect::<Vec<_>>().join(","),
                new.iter().cloned().collect::<Vec<_>>().join(","),
                report.result
            );
        }
        let refused = report.result == Outcome::Refused;
        let ok = changed == e.changed
            && new == e.new
            && refused != e.refuse.is_empty()
            && (e.refuse.is_empty() || refusal.contains(&e.refuse));
        if !ok {
            failures.push(format!(
                "{}: got changed={changed:?} new={new:?} {:?} {refusal}; expected changed={:?} new={:?} refuse='{}'",
                e.patch, report.result, e.changed, e.new, e.refuse
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
