//! Proving positions: synthetic symbol tables with same-named statics in
//! several files, same base names, filtered symbols, and refusals.

use super::*;
use crate::target_symbols::kallsyms::{KallsymsEntry, KallsymsList};
use crate::target_symbols::vmlinux::Symtab;

const TEXT: u64 = 0xffff_ffff_8100_0000;

fn sym(name: &str, address: u64, size: u64, letter: char, file: Option<usize>) -> SymtabSymbol {
    SymtabSymbol {
        name: name.to_string(),
        address,
        size,
        kind: match letter.to_ascii_lowercase() {
            't' | 'w' => SymbolType::Func,
            _ => SymbolType::Object,
        },
        binding: if letter.is_ascii_lowercase() {
            SymbolBinding::Local
        } else {
            SymbolBinding::Global
        },
        letter: Some(letter),
        file,
    }
}

/// vmlinux with three `helper` statics: in `a/core.c` (0x...300),
/// `b/core.c` (0x...100) and `util.c` (0x...200); the table's order is
/// link order, which is not address order, so positions must come from
/// kallsyms' order. `counter` is a static in one file only; `shared` is a
/// global and a static elsewhere; `.Lhidden` is not in kallsyms.
fn symtab() -> Symtab {
    let files = vec!["core.c".to_string(), "util.c".into(), "core.c".into()];
    let symbols = vec![
        // a/core.c: file 0
        sym("helper", TEXT + 0x300, 0x30, 't', Some(0)),
        sym("a_only", TEXT + 0x340, 0x20, 't', Some(0)),
        sym("counter", TEXT + 0x10_0000, 8, 'd', Some(0)),
        // util.c: file 1
        sym("helper", TEXT + 0x200, 0x40, 't', Some(1)),
        sym("shared", TEXT + 0x280, 0x10, 't', Some(1)),
        // b/core.c: file 2
        sym("helper", TEXT + 0x100, 0x2a, 't', Some(2)),
        sym("b_only", TEXT + 0x140, 0x20, 't', Some(2)),
        SymtabSymbol {
            kind: SymbolType::Other,
            ..sym(".Lhidden", TEXT + 0x160, 0, 't', Some(2))
        },
        // globals
        sym("shared", TEXT + 0x400, 0x38, 'T', None),
        sym("tail", TEXT + 0x500, 0x10, 'T', None),
    ];
    Symtab {
        symbols,
        files,
        build_id: None,
    }
}

fn target(with_symtab: bool) -> TargetSymbols {
    let symtab = symtab();
    TargetSymbols {
        kallsyms: KallsymsList::from_symtab(&symtab, crate::kernel_line::DEFAULT),
        symtab: with_symtab.then_some(symtab),
        sources: vec![],
        release: "6.1.0-50-amd64".to_string(),
        line: crate::kernel_line::DEFAULT,
        text: crate::target_symbols::KernelText::default(),
    }
}

fn object(path: &str, locals: &[(&str, bool)]) -> ObjectLocals {
    ObjectLocals {
        object: path.to_string(),
        file_symbol: Some(path.rsplit('/').next().unwrap_or(path).replace(".o", ".c")),
        locals: locals.iter().map(|(n, f)| ((*n).to_string(), *f)).collect(),
    }
}

fn objects() -> Vec<ObjectLocals> {
    vec![
        object(
            "a/core.o",
            &[("helper", true), ("a_only", true), ("counter", false)],
        ),
        object("b/core.o", &[("helper", true), ("b_only", true)]),
        object("util.o", &[("helper", true), ("shared", true)]),
    ]
}

fn local(name: &str, file: &str, size: Option<u64>, function: bool) -> BuildRecord {
    let mut r = BuildRecord::new(&format!("suture0_old__{name}"), name, true, Some(function));
    r.object = Some(VMLINUX.to_string());
    r.object_file = Some(file.to_string());
    r.size = size;
    r.from_object = Some(VMLINUX.to_string());
    r
}

fn global(name: &str) -> BuildRecord {
    let mut r = BuildRecord::new(name, name, false, Some(true));
    r.from_object = Some(VMLINUX.to_string());
    r
}

fn assign_one(record: BuildRecord, target: &TargetSymbols) -> Result<BuildRecord, SymposError> {
    let mut records = [record];
    assign_positions(&mut records, &[], &objects(), target)?;
    let [record] = records;
    Ok(record)
}

#[test]
fn statics_are_found_by_their_object_and_counted_in_kallsyms_order() {
    let target = target(true);
    // kallsyms order is address order: b/core.c (1), util.c (2), a/core.c (3).
    let cases = [
        ("b/core.o", 0x2a, 1),
        ("util.o", 0x40, 2),
        ("a/core.o", 0x30, 3),
    ];
    for (file, size, want) in cases {
        let record = assign_one(local("helper", file, Some(size), true), &target)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(record.sympos, Some(want), "{file}");
        assert_eq!(record.object.as_deref(), Some(VMLINUX));
    }
    let counter =
        assign_one(local("counter", "a/core.o", Some(8), false), &target).expect("unique");
    assert_eq!(counter.sympos, Some(1));
}

#[test]
fn globals_count_same_named_statics_too() {
    // kallsyms: `t shared` (util.c) at 0x280, then `T shared` at 0x400.
    for with_symtab in [true, false] {
        let record = assign_one(global("shared"), &target(with_symtab)).expect("global");
        assert_eq!(record.sympos, Some(2), "symtab: {with_symtab}");
        assert_eq!(record.object.as_deref(), Some(VMLINUX));
    }
}

#[test]
fn same_base_name_is_told_apart_by_the_objects_statics() {
    let target = target(true);
    let proofs = {
        let mut records = [local("helper", "a/core.o", Some(0x30), true)];
        let proofs = assign_positions(&mut records, &[], &objects(), &target).expect("told apart");
        assert_eq!(records[0].sympos, Some(3));
        proofs
    };
    assert!(proofs[0].by.contains("statics"), "{:?}", proofs[0]);

    // An object whose statics match both core.c groups cannot be placed.
    let mut both = objects();
    both[0].locals.insert(("b_only".to_string(), true));
    both[0].locals.insert(("b_only".to_string(), true));
    let mut records = [local("helper", "a/core.o", Some(0x30), true)];
    let loose = ObjectLocals {
        locals: [("helper", true)]
            .iter()
            .map(|(n, f)| ((*n).to_string(), *f))
            .collect(),
        ..both[0].clone()
    };
    let error = assign_positions(&mut records, &[], &[loose], &target).expect_err("ambiguous");
    let message = error.to_string();
    assert!(
        matches!(error, SymposError::Ambiguous { .. }) && message.contains("`helper`"),
        "{message}"
    );
    assert!(message.contains("core.c"), "{message}");
}

#[test]
fn without_a_symbol_table_duplicates_are_refused_with_the_remedy() {
    let target = target(false);
    let error = assign_one(local("helper", "util.o", Some(0x40), true), &target)
        .expect_err("needs the symbol table");
    let message = error.to_string();
    assert!(
        matches!(error, SymposError::NeedsSymbolTable { count: 3, .. }),
        "{message}"
    );
    assert!(
        message.contains("`helper`")
            && message.contains("linux-image-6.1.0-50-amd64-dbg")
            && message.contains("--vmlinux"),
        "{message}"
    );
    // A unique name needs nothing more.
    let counter =
        assign_one(local("counter", "a/core.o", Some(8), false), &target).expect("unique");
    assert_eq!(counter.sympos, Some(1));
}

#[test]
fn the_pristine_build_must_match_the_kernel() {
    // A function the patch replaces: its size is the code the fix was
    // made against.
    let record = local("helper", "util.o", Some(0x41), true);
    let replaced = Replacement {
        old_name: "helper".into(),
        old_size: 0x41,
        old_symbol: record.symbol.clone(),
        new_symbol: "suture0_new__helper".into(),
        object_file: "util.o".into(),
        local: true,
    };
    let mut records = [record];
    let error = assign_positions(&mut records, &[replaced], &objects(), &target(true))
        .expect_err("size differs");
    let message = error.to_string();
    assert!(matches!(error, SymposError::Differs { .. }), "{message}");
    assert!(
        message.contains("65 bytes") && message.contains("64 bytes"),
        "{message}"
    );
    // A function it only calls, of the same name and file: a
    // function-sections build may pad its loops differently; the link
    // record carries the kernel's size.
    let called = assign_one(local("helper", "util.o", Some(0x41), true), &target(true))
        .expect("only called");
    assert_eq!(called.size, Some(0x40));
    // Data must match.
    let error = assign_one(local("counter", "a/core.o", Some(9), false), &target(true))
        .expect_err("data size differs");
    assert!(matches!(error, SymposError::Differs { .. }), "{error}");
}

#[test]
fn symbols_kallsyms_does_not_list_are_refused() {
    let mut hidden = local(".Lhidden", "b/core.o", None, true);
    hidden.kind = None;
    let error = assign_one(hidden, &target(true)).expect_err("not listed");
    assert!(matches!(error, SymposError::NotListed { .. }), "{error}");
    let error =
        assign_one(local("nowhere", "b/core.o", None, true), &target(true)).expect_err("absent");
    assert!(matches!(error, SymposError::NotInVmlinux { .. }), "{error}");
    assert!(error.to_string().contains("`nowhere`"), "{error}");
}

#[test]
fn replaced_functions_must_pass_the_companion_modules_size_check() {
    let target = target(true);
    // util.c's helper: 0x40 bytes, next symbol 0x80 later.
    let record = local("helper", "util.o", Some(0x40), true);
    let replaced = Replacement {
        old_name: "helper".into(),
        old_size: 0x40,
        old_symbol: record.symbol.clone(),
        new_symbol: "suture0_new__helper".into(),
        object_file: "util.o".into(),
        local: true,
    };
    let mut records = [record];
    let error = assign_positions(
        &mut records,
        std::slice::from_ref(&replaced),
        &objects(),
        &target,
    )
    .expect_err("too much padding");
    assert!(error.to_string().contains("image is not there"), "{error}");
    // Referenced only, the same symbol is fine.
    let mut records = [local("helper", "util.o", Some(0x40), true)];
    assign_positions(&mut records, &[], &objects(), &target).expect("referenced only");

    // With the image's code: 0x40 bytes of padding after it are fine
    // (object boundaries, 6.12), code there is not.
    let start = target
        .kallsyms
        .same_named("helper")
        .iter()
        .find(|&&i| target.kallsyms.kallsyms_size(i) == Some(0x80))
        .and_then(|&i| target.kallsyms.get(i))
        .map(|e| e.address)
        .expect("util.c's helper");
    let mut code = vec![0x55; 0x40];
    for _ in 0..4 {
        code.extend_from_slice(&[0x66, 0x2e, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0]);
    }
    code.extend_from_slice(&[0x66, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0]);
    code.extend_from_slice(&[0x0f, 0x1f, 0x80, 0, 0, 0, 0]);
    code.extend_from_slice(&[0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0]);
    assert_eq!(code.len(), 0x80);
    let padded = TargetSymbols {
        text: crate::target_symbols::KernelText::new(vec![(start, code.clone())]),
        ..target
    };
    let mut records = [local("helper", "util.o", Some(0x40), true)];
    assign_positions(
        &mut records,
        std::slice::from_ref(&replaced),
        &objects(),
        &padded,
    )
    .expect("padding after it");
    code[0x4a] = 0xc3;
    let not_padded = TargetSymbols {
        text: crate::target_symbols::KernelText::new(vec![(start, code)]),
        ..padded
    };
    let mut records = [local("helper", "util.o", Some(0x40), true)];
    let error = assign_positions(&mut records, &[replaced], &objects(), &not_padded)
        .expect_err("code after it");
    assert!(error.to_string().contains("not padding"), "{error}");
}

#[test]
fn type_letters_must_fit() {
    // `counter` is data: a record for a function of that name cannot link.
    let mut list = target(false);
    list.kallsyms = KallsymsList::new(vec![KallsymsEntry {
        address: TEXT,
        letter: 'd',
        name: "counter".into(),
    }]);
    let error = assign_one(local("counter", "a/core.o", None, true), &list).expect_err("data");
    assert!(matches!(error, SymposError::NotInVmlinux { .. }), "{error}");
}

#[test]
fn module_records_are_left_to_patchd() {
    let mut record = local("helper", "fs/ext4/x.o", Some(0x40), true);
    record.object = Some("ext4".into());
    record.from_object = Some("ext4".into());
    let mut records = [record];
    let proofs = assign_positions(&mut records, &[], &objects(), &target(true)).expect("skipped");
    assert!(proofs.is_empty());
    assert_eq!(records[0].sympos, None);
}
