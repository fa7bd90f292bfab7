//! The layout check on small C files, compiled at test time with the
//! kernel's x86-64 code-generation flags and `-g`.

use std::path::Path;
use std::process::Command;

use super::{check, LayoutChange, LayoutError};
use crate::elf::ObjectFile;

/// The kernel's code generation, as in tests/golden.rs, plus `-g`.
const CFLAGS: &[&str] = &[
    "-O2",
    "-ffunction-sections",
    "-fdata-sections",
    "-pg",
    "-mfentry",
    "-mrecord-mcount",
    "-mcmodel=kernel",
    "-fno-pic",
    "-mno-red-zone",
    "-fno-asynchronous-unwind-tables",
    "-nostdinc",
    "-c",
];

fn compiler() -> &'static str {
    if Command::new("gcc-12").arg("--version").output().is_ok() {
        "gcc-12"
    } else {
        "cc"
    }
}

/// Compiles `source` with `debug` (e.g. "-g", "-gdwarf-4", or "" for none).
fn object(dir: &Path, name: &str, source: &str, debug: &str) -> ObjectFile {
    let src = dir.join(format!("{name}.c"));
    let out = dir.join(format!("{name}.o"));
    std::fs::write(&src, source).expect("write the C file");
    let mut cc = Command::new(compiler());
    cc.args(CFLAGS);
    if !debug.is_empty() {
        cc.arg(debug);
    }
    let status = cc
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .status()
        .expect("run the C compiler");
    assert!(status.success(), "compiling {name}.c failed");
    ObjectFile::read(&out).expect("read the object")
}

fn check_compiled(debug: &str, orig: &str, fixed: &str, shipped: &[&str]) -> Vec<LayoutChange> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let orig = object(dir.path(), "orig", orig, debug);
    let fixed = object(dir.path(), "fixed", fixed, debug);
    let shipped: Vec<String> = shipped.iter().map(|s| (*s).to_string()).collect();
    check(&orig, &fixed, &shipped).expect("layouts checked")
}

fn changes(orig: &str, fixed: &str, shipped: &[&str]) -> Vec<LayoutChange> {
    check_compiled("-g", orig, fixed, shipped)
}

/// The single change, which must be of `type_name`.
fn only<'c>(found: &'c [LayoutChange], type_name: &str) -> &'c LayoutChange {
    assert_eq!(
        found.len(),
        1,
        "expected one change of {type_name}: {found:#?}"
    );
    assert_eq!(found[0].type_name, type_name, "{found:#?}");
    &found[0]
}

fn has(change: &LayoutChange, text: &str) -> bool {
    change.changes.iter().any(|c| c == text)
}

const GET_B: &str = "int get_b(struct foo *f) { return f->b; }\n";

#[test]
fn member_inserted() {
    let orig = format!("struct foo {{ int a; int b; }};\n{GET_B}");
    let fixed = format!("struct foo {{ int a; int x; int b; }};\n{GET_B}");
    let found = changes(&orig, &fixed, &["get_b"]);
    let c = only(&found, "struct foo");
    assert!(has(c, "member `x` added at offset 4 (4 bytes)"), "{c:#?}");
    assert!(has(c, "member `b` moved from offset 4 to 8"), "{c:#?}");
    assert!(has(c, "size 8 -> 12 bytes"), "{c:#?}");
    assert_eq!(c.members, ["b", "x"]);
    assert_eq!(c.used_by, ["get_b"]);
    assert_eq!(c.scope, None);
    let at = c.declared_at.as_deref().unwrap_or_default();
    assert!(at.ends_with("fixed.c:1"), "declared at {at}");
}

#[test]
fn two_types_changed_in_one_diff() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let orig = object(dir.path(), "orig", "struct foo { int a; int b; };\nstruct bar { int c; };\nint get_b(struct foo *f, struct bar *b) { return f->b + b->c; }\n", "-g");
    let fixed = object(dir.path(), "fixed", "struct foo { int a; int x; int b; };\nstruct bar { long c; };\nint get_b(struct foo *f, struct bar *b) { return f->b + b->c; }\n", "-g");
    let shipped = ["get_b".to_string()];
    let found = check(&orig, &fixed, &shipped).expect("checked");
    let names: Vec<&str> = found.iter().map(|c| c.type_name.as_str()).collect();
    assert_eq!(names, ["struct bar", "struct foo"], "{found:#?}");
    assert_eq!(
        found,
        check(&orig, &fixed, &shipped).expect("checked again")
    );
}

#[test]
fn member_inserted_dwarf4() {
    let orig = format!("struct foo {{ int a; int b; }};\n{GET_B}");
    let fixed = format!("struct foo {{ int a; int x; int b; }};\n{GET_B}");
    let found = check_compiled("-gdwarf-4", &orig, &fixed, &["get_b"]);
    let c = only(&found, "struct foo");
    assert_eq!(c.members, ["b", "x"]);
    assert!(c
        .declared_at
        .as_deref()
        .unwrap_or_default()
        .ends_with("fixed.c:1"));
}

#[test]
fn member_appended() {
    let orig = format!("struct foo {{ int a; int b; }};\n{GET_B}");
    let fixed = format!("struct foo {{ int a; int b; int c; }};\n{GET_B}");
    let found = changes(&orig, &fixed, &["get_b"]);
    let c = only(&found, "struct foo");
    assert_eq!(
        c.changes,
        [
            "member `c` added at offset 8 (4 bytes)",
            "size 8 -> 12 bytes"
        ]
    );
    assert_eq!(c.members, ["c"]);
}

#[test]
fn member_added_into_padding() {
    let orig = format!("struct foo {{ char a; int b; }};\n{GET_B}");
    let fixed = format!("struct foo {{ char a; char x; int b; }};\n{GET_B}");
    let found = changes(&orig, &fixed, &["get_b"]);
    let c = only(&found, "struct foo");
    assert_eq!(c.changes, ["member `x` added at offset 1 (1 byte)"]);
    assert_eq!(c.members, ["x"]);
}

#[test]
fn member_removed_and_resized() {
    let orig = format!("struct foo {{ int a; int b; int d; }};\n{GET_B}");
    let fixed = format!("struct foo {{ long a; int b; }};\n{GET_B}");
    let found = changes(&orig, &fixed, &["get_b"]);
    let c = only(&found, "struct foo");
    assert!(has(c, "member `a` resized from 4 to 8 bytes"), "{c:#?}");
    assert!(
        has(c, "member `d` removed from offset 8 (4 bytes)"),
        "{c:#?}"
    );
    assert!(has(c, "size 12 -> 16 bytes"), "{c:#?}");
    assert_eq!(c.members, ["a", "b", "d"]);
}

#[test]
fn member_only_renamed_is_not_a_change() {
    let orig = format!("struct foo {{ int a; int b; }};\n{GET_B}");
    let fixed =
        "struct foo { int first; int b; };\nint get_b(struct foo *f) { return f->b + f->first; }\n";
    assert_eq!(changes(&orig, fixed, &["get_b"]), []);
}

#[test]
fn member_type_changed_same_size_is_not_a_change() {
    let orig = format!("struct foo {{ int a; int b; }};\n{GET_B}");
    let fixed = format!("struct foo {{ unsigned int a; int b; }};\n{GET_B}");
    assert_eq!(changes(&orig, &fixed, &["get_b"]), []);
}

#[test]
fn members_swapped_is_a_change() {
    let orig = format!("struct foo {{ int a; int b; }};\n{GET_B}");
    let fixed = format!("struct foo {{ int b; int a; }};\n{GET_B}");
    let found = changes(&orig, &fixed, &["get_b"]);
    let c = only(&found, "struct foo");
    assert_eq!(c.members, ["a", "b"]);
    assert!(has(c, "member `b` moved from offset 4 to 0"), "{c:#?}");
}

#[test]
fn changed_struct_not_reachable_is_not_reported() {
    let orig = "struct foo { int a; int b; };\nstruct bar { int c; };\n\
                int get_b(struct foo *f) { return f->b; }\n\
                int get_c(struct bar *b) { return b->c; }\n";
    let fixed = "struct foo { int a; int x; int b; };\nstruct bar { int c; };\n\
                 int get_b(struct foo *f) { return f->b; }\n\
                 int get_c(struct bar *b) { return b->c + 1; }\n";
    assert_eq!(changes(orig, fixed, &["get_c"]), []);
    let found = changes(orig, fixed, &["get_c", "get_b"]);
    assert_eq!(only(&found, "struct foo").used_by, ["get_b"]);
}

#[test]
fn type_new_in_fixed_is_not_reported() {
    let orig = "int get(int *p) { return *p; }\n";
    let fixed = "struct fresh { int a; int b; };\n\
                 int get(int *p) { return ((struct fresh *)p)->b; }\n";
    assert_eq!(changes(orig, fixed, &["get"]), []);
}

#[test]
fn type_only_declared_in_orig_is_not_reported() {
    let orig = "struct foo;\nstruct foo *keep(struct foo *f) { return f; }\n";
    let fixed = format!(
        "struct foo {{ int a; int b; }};\n{GET_B}struct foo *keep(struct foo *f) {{ return f; }}\n"
    );
    assert_eq!(changes(orig, &fixed, &["keep", "get_b"]), []);
}

#[test]
fn anonymous_union_member_flattened() {
    let orig = "struct foo { int a; union { int b; int c; }; int e; };\n\
                int get_c(struct foo *f) { return f->c; }\n";
    let fixed = "struct foo { int a; union { int b; long c; }; int e; };\n\
                 int get_c(struct foo *f) { return f->c; }\n";
    let found = changes(orig, fixed, &["get_c"]);
    let c = only(&found, "struct foo");
    assert!(has(c, "member `c` moved from offset 4 to 8"), "{c:#?}");
    assert!(has(c, "member `c` resized from 4 to 8 bytes"), "{c:#?}");
    assert!(has(c, "member `e` moved from offset 8 to 16"), "{c:#?}");
    assert_eq!(c.members, ["b", "c", "e"]);
}

#[test]
fn named_member_of_anonymous_type_flattened() {
    // Same size, members swapped inside: only flattening sees it.
    let orig = "struct foo { struct { int x; int y; } in; };\n\
                int get(struct foo *f) { return f->in.y; }\n";
    let fixed = "struct foo { struct { int y; int x; } in; };\n\
                 int get(struct foo *f) { return f->in.y; }\n";
    let found = changes(orig, fixed, &["get"]);
    assert_eq!(only(&found, "struct foo").members, ["in.x", "in.y"]);
}

#[test]
fn typedef_of_anonymous_struct_named_by_the_typedef() {
    let orig = "typedef struct { int a; int b; } foo_t;\n\
                int get(foo_t *f) { return f->b; }\n";
    let fixed = "typedef struct { int a; short s; int b; } foo_t;\n\
                 int get(foo_t *f) { return f->b; }\n";
    let found = changes(orig, fixed, &["get"]);
    let c = only(&found, "foo_t");
    assert_eq!(c.members, ["b", "s"]);
}

#[test]
fn union_named_as_union() {
    let orig = "union bar { int a; short b; };\nint get(union bar *u) { return u->b; }\n";
    let fixed = "union bar { int a; long b; };\nint get(union bar *u) { return u->b; }\n";
    let found = changes(orig, fixed, &["get"]);
    let c = only(&found, "union bar");
    assert!(has(c, "member `b` resized from 2 to 8 bytes"), "{c:#?}");
    assert!(has(c, "size 4 -> 8 bytes"), "{c:#?}");
}

#[test]
fn struct_reached_only_through_a_global_variable() {
    let orig = "struct cfg { int a; int b; };\nstatic struct cfg config;\n\
                int get(void) { return config.b; }\n\
                void set(int v) { config.b = v; config.a = v; }\n";
    let fixed = "struct cfg { int a; int n; int b; };\nstatic struct cfg config;\n\
                 int get(void) { return config.b; }\n\
                 void set(int v) { config.b = v; config.a = v; }\n";
    let found = changes(orig, fixed, &["get"]);
    let c = only(&found, "struct cfg");
    assert_eq!(c.used_by, ["get"]);
    assert_eq!(c.members, ["b", "n"]);
}

#[test]
fn struct_reached_through_a_pointer_member_chain() {
    let orig = "struct inner { int x; int y; };\nstruct mid { struct inner *in; };\n\
                struct outer { struct mid *m; };\n\
                int live(struct outer *o) { return o->m != 0; }\n";
    let fixed = "struct inner { int x; int z; int y; };\nstruct mid { struct inner *in; };\n\
                 struct outer { struct mid *m; };\n\
                 int live(struct outer *o) { return o->m != 0; }\n";
    let found = changes(orig, fixed, &["live"]);
    let c = only(&found, "struct inner");
    assert_eq!(c.members, ["y", "z"]);
}

#[test]
fn struct_reached_through_an_inlined_callee() {
    let orig = "struct foo { int a; int b; };\n\
                static inline int peek(struct foo *p) { return p->b; }\n\
                int get(void *v) { return peek(v); }\n";
    let fixed = "struct foo { int a; int x; int b; };\n\
                 static inline int peek(struct foo *p) { return p->b; }\n\
                 int get(void *v) { return peek(v); }\n";
    let found = changes(orig, fixed, &["get"]);
    assert_eq!(only(&found, "struct foo").used_by, ["get"]);
}

#[test]
fn static_local_of_a_local_struct_type() {
    let orig = "int count(void) { static struct st { int a; int b; } s; s.b++; s.a += s.b; return s.b; }\n";
    let fixed = "int count(void) { static struct st { int a; int c; int b; } s; s.b++; s.a += s.b; return s.b; }\n";
    let found = changes(orig, fixed, &["count"]);
    let c = only(&found, "struct st");
    assert_eq!(c.scope.as_deref(), Some("count"));
    assert_eq!(c.members, ["b", "c"]);
}

#[test]
fn static_variable_of_an_anonymous_struct() {
    let orig = "static struct { int a; int b; } state;\n\
                int get(void) { return state.b; }\nvoid set(int v) { state.a = v; state.b = v; }\n";
    let fixed = "static struct { int b; int a; } state;\n\
                 int get(void) { return state.b; }\nvoid set(int v) { state.a = v; state.b = v; }\n";
    let found = changes(orig, fixed, &["get"]);
    assert_eq!(
        only(&found, "anonymous struct of `state`").members,
        ["a", "b"]
    );
}

#[test]
fn bit_fields_dwarf4_and_5() {
    let orig = "struct flags { unsigned a:1; unsigned b:2; };\n\
                int get(struct flags *f) { return f->b; }\n";
    let fixed = "struct flags { unsigned a:1; unsigned n:1; unsigned b:2; };\n\
                 int get(struct flags *f) { return f->b; }\n";
    for debug in ["-gdwarf-4", "-gdwarf-5"] {
        let found = check_compiled(debug, orig, fixed, &["get"]);
        let c = only(&found, "struct flags");
        assert_eq!(
            c.changes,
            [
                "member `b` moved from bit offset 1 to 2",
                "member `n` added at bit offset 1 (1 bit)"
            ],
            "{debug}"
        );
    }
}

#[test]
fn local_types_sharing_a_tag_are_told_apart_by_function() {
    let body = |a: &str, b: &str| {
        format!(
            "int one(void) {{ static struct st {{ {a} }} s; s.x++; return s.x; }}\n\
             int two(void) {{ static struct st {{ {b} }} s; s.x++; return s.x; }}\n"
        )
    };
    let orig = body("int x;", "int x;");
    let fixed = body("int x;", "int n; int x;");
    assert_eq!(changes(&orig, &fixed, &["one"]), []);
    let found = changes(&orig, &fixed, &["one", "two"]);
    let c = only(&found, "struct st");
    assert_eq!(c.scope.as_deref(), Some("two"));
    assert_eq!(c.used_by, ["two"]);
}

#[test]
fn shipped_function_without_dwarf_is_not_an_error() {
    let orig = format!("struct foo {{ int a; int b; }};\n{GET_B}");
    let fixed = format!("struct foo {{ int a; int x; int b; }};\n{GET_B}");
    assert_eq!(changes(&orig, &fixed, &["no_such_function"]), []);
}

#[test]
fn clone_suffix_names_the_function() {
    let orig = format!("struct foo {{ int a; int b; }};\n{GET_B}");
    let fixed = format!("struct foo {{ int a; int x; int b; }};\n{GET_B}");
    let found = changes(&orig, &fixed, &["get_b.isra.0"]);
    assert_eq!(only(&found, "struct foo").used_by, ["get_b.isra.0"]);
}

#[test]
fn no_debug_info() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let plain = object(dir.path(), "plain", GET_B_SOURCE, "");
    match check(&plain, &plain, &["get_b".to_string()]) {
        Err(LayoutError::NoDebugInfo { path }) => assert!(path.ends_with("plain.o")),
        other => panic!("expected NoDebugInfo, got {other:?}"),
    }
}

const GET_B_SOURCE: &str =
    "struct foo { int a; int b; };\nint get_b(struct foo *f) { return f->b; }\n";

#[test]
fn nothing_shipped_checks_only_for_debug_info() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let obj = object(dir.path(), "obj", GET_B_SOURCE, "-g");
    assert!(check(&obj, &obj, &[]).expect("checked").is_empty());
    let same = check(&obj, &obj, &["get_b".to_string()]).expect("checked");
    assert!(same.is_empty(), "{same:#?}");
}

/// CPU time (user and system) of this process so far.
fn cpu_time() -> std::time::Duration {
    // /proc/self/stat: fields 14 and 15 are utime and stime in clock ticks
    // (USER_HZ, 100 on Linux), after the parenthesized command name.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let ticks: u64 = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    std::time::Duration::from_millis(ticks * 10)
}

/// Timing on real kernel objects, the pairs `NAME.orig.o`/`NAME.fixed.o`
/// that scripts/bench-diff builds (SUTURE_LAYOUT_BENCH names another
/// directory; SUTURE_LAYOUT_BENCH_EXTRA adds STEM:FUNCTION pairs): the
/// check shipping the function bench-diff changes, then what `diff` ships,
/// then (with SUTURE_LAYOUT_BENCH_ALL set) every function. Prints the best
/// wall time of 15 runs and the mean CPU time. In one process, with the
/// objects' bytes and the allocator warm: a fresh `patchgen diff` pays
/// more (page faults, cold caches); scripts/bench-diff measures that.
///
///   cargo test --release -p patchgen --lib layout_timing -- --ignored --nocapture
#[test]
#[ignore = "needs kernel objects built by scripts/bench-diff"]
fn layout_timing_on_kernel_objects() {
    use std::time::{Duration, Instant};
    let dir = std::env::var_os("SUTURE_LAYOUT_BENCH").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-diff/6.1.0-50-amd64"),
        std::path::PathBuf::from,
    );
    let extra = std::env::var("SUTURE_LAYOUT_BENCH_EXTRA").unwrap_or_default();
    let probed = [
        ("kernel_sched_core", "sched_setattr"),
        ("kernel_fork", "__put_task_struct"),
        ("mm_memory", "vm_insert_page"),
        ("net_ipv4_tcp", "tcp_set_rcvlowat"),
    ]
    .into_iter()
    .chain(extra.split(',').filter_map(|p| p.split_once(':')));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let time = |f: &mut dyn FnMut()| {
        let best = (0..15)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .min()
            .unwrap_or(Duration::ZERO);
        let cpu = cpu_time();
        for _ in 0..30 {
            f();
        }
        (best, (cpu_time() - cpu) / 30)
    };
    for (stem, function) in probed {
        let orig_path = dir.join(format!("{stem}.orig.o"));
        let fixed_path = dir.join(format!("{stem}.fixed.o"));
        if !orig_path.exists() {
            continue;
        }
        let orig = ObjectFile::read(&orig_path).expect("orig");
        let fixed = ObjectFile::read(&fixed_path).expect("fixed");
        let opts = crate::diff::DiffOptions::default();
        let mut report = None;
        let (diff_wall, _) =
            time(&mut || report = Some(crate::diff::diff(&orig, &fixed, &opts).report));
        let report = report.expect("diffed");
        let from_diff: Vec<String> = report
            .changed_functions
            .iter()
            .map(|c| c.name.clone())
            .chain(report.new_functions.iter().cloned())
            .chain(report.children.iter().cloned())
            .collect();
        let all: Vec<String> = if std::env::var_os("SUTURE_LAYOUT_BENCH_ALL").is_some() {
            fixed
                .symbols
                .iter()
                .filter(|s| s.kind == crate::elf::SymbolKind::Func && s.section.is_some())
                .map(|s| s.name.clone())
                .collect()
        } else {
            Vec::new()
        };
        println!("{stem}: diff (in process) {:.2} ms", ms(diff_wall));
        for (what, shipped) in [
            ("the probed function", vec![function.to_string()]),
            ("what diff ships", from_diff),
            ("every function", all),
        ] {
            if shipped.is_empty() {
                continue;
            }
            let mut found = Vec::new();
            let (wall, cpu) =
                time(&mut || found = check(&orig, &fixed, &shipped).expect("checked"));
            println!(
                "  check {:.2} ms wall, {:.1} ms cpu, shipping {what} ({}): {} change(s)",
                ms(wall),
                ms(cpu),
                shipped.len(),
                found.len()
            );
            for c in &found {
                println!("    {c:?}");
            }
        }
    }
}
