//! The target's symbols from the real kernel: the kallsyms tables decoded
//! from the cached image (scripts/setup), checked against the `-dbg`
//! vmlinux's symbol table put through kallsyms' filter and order, and every
//! duplicated static of vmlinux placed from its own object's evidence.
//!
//! The image tests need the kernel cache and fail with the command to run.
//! The `-dbg` tests need /usr/lib/debug/boot/vmlinux-RELEASE or the cache's
//! copy from `scripts/setup --with-dbg` (scripts/test fetches it); without
//! it they fail with the command to run, never skip.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use patchgen::build::BuildRecord;
use patchgen::target_symbols::vmlinux::{SymbolBinding, SymbolType};
use patchgen::target_symbols::{
    assign_positions, find_debug_vmlinux, image, tables, KallsymsConfig, KallsymsList,
    ObjectLocals, Symtab, TargetSymbols,
};

fn release() -> String {
    if let Ok(release) = std::env::var("SUTURE_KERNEL") {
        return release;
    }
    let env = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernels/default.env");
    let text = std::fs::read_to_string(env).expect("kernels/default.env");
    text.lines()
        .find_map(|l| l.strip_prefix("SUTURE_DEFAULT_KERNEL="))
        .expect("SUTURE_DEFAULT_KERNEL")
        .trim()
        .to_string()
}

fn cache_entry() -> PathBuf {
    let release = release();
    let dir = patchgen::build::target::cache_dir()
        .join("kernels")
        .join(&release);
    assert!(
        dir.join(".done").is_file(),
        "no kernel cache for {release}: run scripts/setup --kernel {release}"
    );
    dir
}

fn build_id(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("identity"))
        .expect("identity")
        .lines()
        .find_map(|l| l.strip_prefix("build_id=").map(str::to_string))
        .expect("build_id")
}

fn decoded(dir: &Path) -> (KallsymsList, String) {
    let path = dir.join("vmlinuz");
    let start = Instant::now();
    let bytes = std::fs::read(&path).expect("read vmlinuz");
    let kernel = image::decompress_bzimage(&path, &bytes).expect("decompress");
    let decompressed = start.elapsed();
    let config = std::fs::read_to_string(dir.join("config")).expect("config");
    let start = Instant::now();
    let (list, id) = tables::read_kallsyms(&path, &kernel, KallsymsConfig::from_config(&config))
        .expect("kallsyms tables");
    eprintln!(
        "decompressed {} ({} bytes) in {decompressed:?}; decoded {} kallsyms lines in {:?}",
        path.display(),
        kernel.len(),
        list.len(),
        start.elapsed()
    );
    let id: String = id
        .expect("build-id")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (list, id)
}

fn debug_symtab(dir: &Path) -> Symtab {
    let release = release();
    let Some(path) = find_debug_vmlinux(dir, &release) else {
        panic!(
            "no -dbg vmlinux for {release}: run scripts/setup --kernel {release} --with-dbg (or apt-get install linux-image-{release}-dbg)"
        );
    };
    let start = Instant::now();
    let symtab = Symtab::read(&path).expect("read the -dbg symbol table");
    eprintln!(
        "read {} symbols of {} in {:?}",
        symtab.symbols.len(),
        path.display(),
        start.elapsed()
    );
    symtab
}

#[test]
fn the_images_kallsyms_decode_and_belong_to_the_target() {
    let dir = cache_entry();
    let (list, id) = decoded(&dir);
    assert_eq!(id, build_id(&dir));
    assert!(list.len() > 50_000, "{} lines", list.len());
    assert!(list
        .entries()
        .windows(2)
        .all(|w| w[0].address <= w[1].address));
    let show = list.same_named("cmdline_proc_show");
    assert_eq!(show.len(), 1);
    assert_eq!(list.get(show[0]).map(|e| e.letter), Some('t'));
    // Per-CPU variables are absolute, at the start.
    assert_eq!(list.get(0).map(|e| e.letter), Some('A'));
}

#[test]
fn the_debug_symbol_table_gives_the_same_kallsyms_as_the_image() {
    let dir = cache_entry();
    let symtab = debug_symtab(&dir);
    let id: String = symtab
        .build_id
        .as_deref()
        .expect("build-id")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(id, build_id(&dir), "the -dbg vmlinux is of another build");
    let start = Instant::now();
    let emulated = KallsymsList::from_symtab(&symtab, patchgen::kernel_line::DEFAULT);
    eprintln!(
        "applied kallsyms' filter and order in {:?}",
        start.elapsed()
    );
    let (image, _) = decoded(&dir);
    assert_eq!(emulated.len(), image.len());
    for (i, (e, d)) in emulated.entries().iter().zip(image.entries()).enumerate() {
        assert_eq!(e, d, "line {i}");
    }
}

/// Every static of vmlinux whose name kallsyms lists more than once, placed
/// from what its own object would show patchgen (its file symbol and
/// statics): with the symbol table every one is placed at its own line;
/// without it, those a type letter tells apart are placed, never another.
#[test]
fn every_duplicated_static_is_placed_from_its_objects_evidence() {
    let dir = cache_entry();
    let symtab = debug_symtab(&dir);
    let (kallsyms, _) = decoded(&dir);
    let mut objects: Vec<ObjectLocals> = symtab
        .files
        .iter()
        .enumerate()
        .map(|(i, name)| ObjectLocals {
            object: format!("group{i}.o"),
            file_symbol: Some(name.clone()),
            locals: BTreeSet::new(),
        })
        .collect();
    for s in &symtab.symbols {
        if let (Some(file), SymbolBinding::Local) = (s.file, s.binding) {
            let function = match s.kind {
                SymbolType::Func => true,
                SymbolType::Object => false,
                SymbolType::Other => continue,
            };
            objects[file].locals.insert((s.name.clone(), function));
        }
    }
    let mut records = Vec::new();
    let mut addresses = Vec::new();
    for s in &symtab.symbols {
        let (Some(file), SymbolBinding::Local, Some(_)) = (s.file, s.binding, s.letter) else {
            continue;
        };
        let function = match s.kind {
            SymbolType::Func => true,
            SymbolType::Object => false,
            SymbolType::Other => continue,
        };
        if kallsyms.same_named(&s.name).len() < 2 {
            continue;
        }
        let mut record = BuildRecord::new(
            &format!("suture{}_old__{}", records.len(), s.name),
            &s.name,
            true,
            Some(function),
        );
        record.object = Some("vmlinux".into());
        record.object_file = Some(objects[file].object.clone());
        record.size = Some(s.size);
        record.from_object = Some("vmlinux".into());
        records.push(record);
        addresses.push(s.address);
    }
    let line_of = |record: &BuildRecord| {
        let pos = record.sympos.expect("sympos") as usize;
        let line = kallsyms.same_named(&record.name)[pos - 1];
        kallsyms.get(line).map(|e| e.address)
    };

    let with = TargetSymbols {
        kallsyms: kallsyms.clone(),
        symtab: Some(symtab.clone()),
        sources: vec![],
        release: release(),
        line: patchgen::kernel_line::DEFAULT,
        text: patchgen::target_symbols::KernelText::default(),
    };
    let start = Instant::now();
    let mut placed = records.clone();
    assign_positions(&mut placed, &[], &objects, &with)
        .unwrap_or_else(|e| panic!("with the symbol table: {e}"));
    for (record, address) in placed.iter().zip(&addresses) {
        assert_eq!(
            line_of(record),
            Some(*address),
            "`{}` of {:?}",
            record.name,
            record.object_file
        );
    }
    eprintln!(
        "placed all {} duplicated statics with the symbol table in {:?}",
        placed.len(),
        start.elapsed()
    );

    let without = TargetSymbols {
        symtab: None,
        ..with
    };
    let start = Instant::now();
    let mut by_letter = 0;
    for (record, address) in records.iter().zip(&addresses) {
        let mut one = [record.clone()];
        if assign_positions(&mut one, &[], &objects, &without).is_ok() {
            assert_eq!(
                line_of(&one[0]),
                Some(*address),
                "`{}` by letter",
                record.name
            );
            by_letter += 1;
        }
    }
    eprintln!(
        "without it: {by_letter} placed by type letter, {} refused, in {:?}",
        records.len() - by_letter,
        start.elapsed()
    );
}
