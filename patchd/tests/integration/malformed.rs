//! Malformed modules: truncated, corrupted header and section fields, wrong
//! kind of ELF, random damage. Each must give an error, never a panic.

use std::panic::{catch_unwind, AssertUnwindSafe};

use object::elf::{FileHeader64, SHT_STRTAB, SHT_SYMTAB};
use object::read::elf::{FileHeader, SectionHeader};
use object::LittleEndian;
use patchd::link::module_name;
use patchd::{link_module, undefined_symbols, Kallsyms, LinkError, LinkedModule, ModuleImage};

use crate::fixtures::{kallsyms_text, patch_module, sign};

/// Runs every entry point that reads a module over `image`, failing the test
/// with `what` if any of them panics; returns the link result.
fn link(image: &[u8], what: &str) -> Result<LinkedModule, LinkError> {
    let kallsyms = Kallsyms::parse(&kallsyms_text()).expect("fixture kallsyms");
    let result = catch_unwind(AssertUnwindSafe(|| {
        let _ = undefined_symbols(image);
        let _ = module_name(image);
        link_module(&ModuleImage::parse(image)?, &kallsyms, &[])
    }));
    result.unwrap_or_else(|_| panic!("panicked on {what}"))
}

fn assert_error(image: &[u8], what: &str) {
    if let Ok(linked) = link(image, what) {
        panic!("{what}: accepted, linked {:?}", linked.resolved);
    }
}

fn put(image: &mut [u8], offset: usize, bytes: &[u8]) {
    image[offset..offset + bytes.len()].copy_from_slice(bytes);
}

/// (file offset of the section header, sh_type) for every section.
fn section_headers(image: &[u8]) -> Vec<(usize, u32)> {
    let endian = LittleEndian;
    let header = FileHeader64::<LittleEndian>::parse(image).expect("header");
    let shoff = usize::try_from(header.e_shoff(endian)).expect("shoff");
    let sections = header.sections(endian, image).expect("sections");
    sections
        .enumerate()
        .map(|(index, section)| (shoff + index.0 * 64, section.sh_type(endian)))
        .collect()
}

#[test]
fn truncated_at_every_length() {
    let image = patch_module();
    for len in 0..image.len() {
        assert_error(&image[..len], &format!("truncation to {len} bytes"));
    }
    let signed = sign(image);
    for len in image.len()..signed.len() {
        // Cut inside the signature: either an error, or, when the cut leaves
        // no trailer marker, a module with junk appended; never a panic.
        let _ = link(&signed[..len], &format!("signed truncation to {len}"));
    }
}

#[test]
fn wrong_kind_of_elf_is_unsupported() {
    let image = patch_module();
    let cases: [(&str, usize, &[u8]); 8] = [
        ("EM_386", 0x12, &3_u16.to_le_bytes()),
        ("EM_AARCH64", 0x12, &183_u16.to_le_bytes()),
        ("ET_EXEC", 0x10, &2_u16.to_le_bytes()),
        ("ET_DYN", 0x10, &3_u16.to_le_bytes()),
        ("ELFCLASS32", 4, &[1]),
        ("ELFCLASSNONE", 4, &[0]),
        ("big endian", 5, &[2]),
        ("no data encoding", 5, &[0]),
    ];
    for (what, offset, bytes) in cases {
        let mut bad = image.to_vec();
        put(&mut bad, offset, bytes);
        match link(&bad, what) {
            Err(LinkError::UnsupportedElf { .. } | LinkError::Parse { .. }) => {}
            other => panic!("{what}: {other:?}"),
        }
    }
    let mut bad = image.to_vec();
    put(&mut bad, 0, b"\x7fELG");
    assert!(matches!(link(&bad, "bad magic"), Err(LinkError::NotElf)));
}

#[test]
fn corrupted_header_fields_are_errors() {
    let image = patch_module();
    let len = u64::try_from(image.len()).expect("len");
    let shoffs = [
        0,
        1,
        7,
        64,
        len - 63,
        len - 1,
        len,
        len + 64,
        1 << 62,
        u64::MAX - 63,
        u64::MAX,
    ];
    for value in shoffs {
        let mut bad = image.to_vec();
        put(&mut bad, 0x28, &value.to_le_bytes());
        assert_error(&bad, &format!("e_shoff {value:#x}"));
    }
    let fields: [(&str, usize, &[u16]); 3] = [
        ("e_shentsize", 0x3a, &[0, 32, 63, 65, 0xffff]),
        ("e_shnum", 0x3c, &[0, 1, 2, 0x7fff, 0xffff]),
        ("e_shstrndx", 0x3e, &[0xfffe, 0xffff]),
    ];
    for (name, offset, values) in fields {
        for &value in values {
            let mut bad = image.to_vec();
            put(&mut bad, offset, &value.to_le_bytes());
            assert_error(&bad, &format!("{name} {value:#x}"));
        }
    }
}

#[test]
fn corrupted_symtab_and_strtab_fields_are_errors() {
    let image = patch_module();
    let len = u64::try_from(image.len()).expect("len");
    let headers = section_headers(image);
    let symtab = headers
        .iter()
        .find(|(_, kind)| *kind == SHT_SYMTAB)
        .map(|(offset, _)| *offset)
        .expect("symtab");
    // (field offset in Elf64_Shdr, bad values)
    let symtab_cases: [(&str, usize, Vec<u64>); 4] = [
        (
            "sh_offset",
            0x18,
            vec![len, len - 1, len - 23, 1 << 62, u64::MAX],
        ),
        (
            "sh_size",
            0x20,
            vec![1, 23, 25, len, len + 24, u64::MAX - 23, u64::MAX],
        ),
        ("sh_entsize", 0x38, vec![0, 1, 16, 32, u64::MAX]),
        ("sh_link", 0x28, vec![0, 0xffff, 0xffff_ffff]),
    ];
    for (field, offset, values) in symtab_cases {
        for value in values {
            let mut bad = image.to_vec();
            if field == "sh_link" {
                let link = u32::try_from(value).expect("u32");
                put(&mut bad, symtab + offset, &link.to_le_bytes());
            } else {
                put(&mut bad, symtab + offset, &value.to_le_bytes());
            }
            assert_error(&bad, &format!(".symtab {field} {value:#x}"));
        }
    }
    // Damage every string table's bounds: either .strtab (symbol names fail
    // to read) or another one (harmless); never a panic.
    for &(header, _) in headers.iter().filter(|(_, kind)| *kind == SHT_STRTAB) {
        for (offset, value) in [(0x18, len), (0x18, u64::MAX), (0x20, u64::MAX), (0x20, len)] {
            let mut bad = image.to_vec();
            put(&mut bad, header + offset, &value.to_le_bytes());
            let _ = link(&bad, &format!("strtab field {offset:#x} = {value:#x}"));
        }
    }
}

#[test]
fn every_section_header_field_damage_is_survived() {
    let image = patch_module();
    let values = [0_u64, 1, 0x7fff_ffff, u64::MAX, u64::MAX / 2];
    for (header, _) in section_headers(image) {
        for field in (0..64).step_by(8) {
            for value in values {
                let mut bad = image.to_vec();
                put(&mut bad, header + field, &value.to_le_bytes());
                let _ = link(
                    &bad,
                    &format!("section header {header:#x}+{field:#x} = {value:#x}"),
                );
            }
        }
    }
}

#[test]
fn undefined_symbol_with_bad_name_offset_is_an_error() {
    let image = patch_module();
    let offset = crate::fixtures::symtab(image)["hidden_func"].offset;
    let mut bad = image.to_vec();
    put(&mut bad, offset, &u32::MAX.to_le_bytes());
    assert!(matches!(
        link(&bad, "st_name"),
        Err(LinkError::Parse { .. })
    ));
}

#[test]
fn random_damage_never_panics() {
    let image = patch_module();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let len = u64::try_from(image.len()).expect("len");
    for round in 0..3000 {
        let mut bad = image.to_vec();
        for _ in 0..=next() % 4 {
            let at = usize::try_from(next() % len).expect("index");
            bad[at] = u8::try_from(next() & 0xff).expect("byte");
        }
        let _ = link(&bad, &format!("random damage round {round}"));
    }
}
