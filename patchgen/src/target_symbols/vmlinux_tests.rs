//! `nm`'s type letters for ELF symbols.

use super::*;

fn section(name: &'static str, sh_type: u32, flags: u32) -> Placement<'static> {
    Placement::Section(SectionFacts {
        name: name.as_bytes(),
        sh_type,
        sh_flags: u64::from(flags),
    })
}

#[test]
fn letters_follow_binutils() {
    use elf::*;
    let text = section(".text", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR);
    let init_text = section(".init.text", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR);
    let data = section(".data", SHT_PROGBITS, SHF_ALLOC | SHF_WRITE);
    // vmlinux's .rodata is writable: nm (and so kallsyms) say `d`.
    let rodata_rw = section(".rodata", SHT_PROGBITS, SHF_ALLOC | SHF_WRITE);
    let rodata = section(".rodata", SHT_PROGBITS, SHF_ALLOC);
    let bss = section(".bss", SHT_NOBITS, SHF_ALLOC | SHF_WRITE);
    let percpu = section(".data..percpu", SHT_PROGBITS, SHF_ALLOC | SHF_WRITE);
    let debug = section(".debug_info", SHT_PROGBITS, 0);
    let comment = section(".comment", SHT_PROGBITS, SHF_MERGE | SHF_STRINGS);
    let pdata = section(".pdata", SHT_PROGBITS, SHF_ALLOC);
    let cases = [
        (STT_FUNC, STB_LOCAL, text, Some('t')),
        (STT_FUNC, STB_GLOBAL, text, Some('T')),
        (STT_FUNC, STB_GLOBAL, init_text, Some('T')),
        (STT_FUNC, STB_WEAK, text, Some('W')),
        (STT_OBJECT, STB_WEAK, data, Some('V')),
        (STT_OBJECT, STB_LOCAL, data, Some('d')),
        (STT_OBJECT, STB_LOCAL, rodata_rw, Some('d')),
        (STT_OBJECT, STB_GLOBAL, rodata, Some('R')),
        (STT_OBJECT, STB_LOCAL, bss, Some('b')),
        (STT_OBJECT, STB_GLOBAL, percpu, Some('D')),
        (STT_NOTYPE, STB_LOCAL, debug, Some('N')),
        (STT_NOTYPE, STB_LOCAL, comment, Some('n')),
        (STT_NOTYPE, STB_LOCAL, pdata, Some('p')),
        (STT_GNU_IFUNC, STB_GLOBAL, text, Some('i')),
        (STT_OBJECT, STB_GNU_UNIQUE, data, Some('u')),
        (STT_NOTYPE, STB_GLOBAL, Placement::Absolute, Some('A')),
        (STT_NOTYPE, STB_LOCAL, Placement::Absolute, Some('a')),
        (STT_NOTYPE, STB_GLOBAL, Placement::Undefined, Some('U')),
        (STT_NOTYPE, STB_WEAK, Placement::Undefined, Some('w')),
        (STT_OBJECT, STB_WEAK, Placement::Undefined, Some('v')),
        (STT_OBJECT, STB_GLOBAL, Placement::Common, Some('C')),
        (STT_FILE, STB_LOCAL, Placement::Absolute, None),
        (STT_SECTION, STB_LOCAL, text, None),
    ];
    for (st_type, st_bind, placement, expected) in cases {
        assert_eq!(
            nm_letter(st_type, st_bind, placement),
            expected,
            "type {st_type} bind {st_bind} {placement:?}"
        );
    }
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let error = Symtab::read(Path::new("/nonexistent/vmlinux")).expect_err("missing");
    assert!(
        error.to_string().contains("/nonexistent/vmlinux"),
        "{error}"
    );
}

#[test]
fn an_object_file_is_not_a_vmlinux() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("not-vmlinux");
    std::fs::write(&path, b"\x7fELF but not really").expect("write");
    let error = Symtab::read(&path).expect_err("not ELF");
    assert!(
        error.to_string().contains("not a usable vmlinux"),
        "{error}"
    );
}
