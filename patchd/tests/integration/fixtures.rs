//! Objects compiled from small C files at test time, a synthetic kallsyms
//! that matches them, and an independent `.symtab` reader for assertions.
//!
//! Every object is built with exactly
//! `cc -c -O2 -fno-pic -mcmodel=kernel -o OUT.o SRC.c`: non-PIC in the
//! kernel code model like a kbuild object, so references are plain
//! `R_X86_64_PLT32`/`R_X86_64_32S` relocations (a PIE default would add a
//! `_GLOBAL_OFFSET_TABLE_` reference no kernel module has).

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use object::elf::{FileHeader64, SHT_SYMTAB};
use object::read::elf::{FileHeader, SectionHeader, Sym};
use object::LittleEndian;

pub const HIDDEN_FUNC: u64 = 0xffff_ffff_8123_4560;
pub const HIDDEN_COUNTER: u64 = 0xffff_ffff_8234_5678;
pub const EXPORTED_FUNC: u64 = 0xffff_ffff_8111_1110;

/// A patch module in miniature: calls a non-exported function, reads a
/// non-exported variable, calls an exported function, and has a weak
/// reference nothing defines.
pub const PATCH_MODULE_C: &str = r#"
extern int hidden_func(int);
extern int hidden_counter;
extern int exported_func(int);
extern void weak_missing(void) __attribute__((weak));

static const char modinfo_name[] __attribute__((section(".modinfo"), used, aligned(1))) = "name=linktest";

int linktest_entry(int x)
{
	if (weak_missing)
		weak_missing();
	return hidden_func(x) + hidden_counter + exported_func(x);
}
"#;

/// A module that only uses an exported function: it needs no linking.
pub const EXPORTED_ONLY_C: &str = r#"
extern int exported_func(int);

int exportedonly_entry(int x)
{
	return exported_func(x) + 1;
}
"#;

/// kallsyms for the fixtures: `exported_func` has its export entries, the
/// hidden symbols are unique, and unrelated module symbols surround them.
pub fn kallsyms_text() -> String {
    format!(
        "ffffffff81000000 T _text\n\
         {HIDDEN_FUNC:016x} t hidden_func\n\
         {HIDDEN_COUNTER:016x} d hidden_counter\n\
         {EXPORTED_FUNC:016x} T exported_func\n\
         ffffffff82222220 r __ksymtab_exported_func\n\
         ffffffff82222230 r __kstrtab_exported_func\n\
         ffffffffc0001000 t ext4_thing\t[ext4]\n"
    )
}

/// kallsyms where `hidden_func` is also a static in a loaded module.
pub fn kallsyms_with_duplicate() -> String {
    format!(
        "{}ffffffffc0005000 t hidden_func\t[other_mod]\n",
        kallsyms_text()
    )
}

/// Compiles `source` to an object and returns its bytes.
pub fn compile(source: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path().join("module.c");
    let out = dir.path().join("module.o");
    std::fs::write(&src, source).expect("write C source");
    let status = Command::new("cc")
        .args(["-c", "-O2", "-fno-pic", "-mcmodel=kernel", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("run cc (gcc must be installed)");
    assert!(status.success(), "cc failed on {}", src.display());
    std::fs::read(&out).expect("read object")
}

/// The patch-module fixture, compiled once per test run.
pub fn patch_module() -> &'static [u8] {
    static IMAGE: OnceLock<Vec<u8>> = OnceLock::new();
    IMAGE.get_or_init(|| compile(PATCH_MODULE_C))
}

/// The exported-only fixture, compiled once per test run.
pub fn exported_only_module() -> &'static [u8] {
    static IMAGE: OnceLock<Vec<u8>> = OnceLock::new();
    IMAGE.get_or_init(|| compile(EXPORTED_ONLY_C))
}

/// Appends a PKCS#7-style signature trailer as `scripts/sign-file` does.
pub fn sign(module: &[u8]) -> Vec<u8> {
    let signature = [0x5a_u8; 420];
    let mut signed = module.to_vec();
    signed.extend_from_slice(&signature);
    signed.extend_from_slice(&[0, 0, 2, 0, 0, 0, 0, 0]);
    let sig_len = u32::try_from(signature.len()).expect("small");
    signed.extend_from_slice(&sig_len.to_be_bytes());
    signed.extend_from_slice(b"~Module signature appended~\n");
    signed
}

/// One `.symtab` entry as read back by `object`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SymtabEntry {
    pub shndx: u16,
    pub value: u64,
    /// File offset of the 24-byte entry.
    pub offset: usize,
}

/// Every named `.symtab` entry of an ELF64 little-endian object.
pub fn symtab(image: &[u8]) -> HashMap<String, SymtabEntry> {
    let endian = LittleEndian;
    let header = FileHeader64::<LittleEndian>::parse(image).expect("ELF header");
    let sections = header.sections(endian, image).expect("sections");
    let (_, section) = sections
        .enumerate()
        .find(|(_, s)| s.sh_type(endian) == SHT_SYMTAB)
        .expect("a symtab");
    let base = usize::try_from(section.sh_offset(endian)).expect("offset");
    let table = sections
        .symbols(endian, image, SHT_SYMTAB)
        .expect("symbols");
    table
        .enumerate()
        .filter_map(|(index, symbol)| {
            let name = table.symbol_name(endian, symbol).expect("name");
            (!name.is_empty()).then(|| {
                let entry = SymtabEntry {
                    shndx: symbol.st_shndx(endian),
                    value: symbol.st_value(endian),
                    offset: base + index.0 * 24,
                };
                (String::from_utf8_lossy(name).into_owned(), entry)
            })
        })
        .collect()
}

/// Writes `bytes` to `dir/name` and returns the path as a string.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write fixture");
    path.to_str().expect("UTF-8 temp path").to_owned()
}
