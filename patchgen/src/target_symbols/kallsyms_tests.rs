//! Unit tables for kallsyms' filter and order applied to a symbol table.

use super::*;
use crate::target_symbols::vmlinux::{SymbolBinding, SymbolType, SymtabSymbol};

fn symbol(address: u64, letter: char, name: &str) -> SymtabSymbol {
    SymtabSymbol {
        name: name.to_string(),
        address,
        size: 0,
        kind: SymbolType::Other,
        binding: if letter.is_ascii_lowercase() {
            SymbolBinding::Local
        } else {
            SymbolBinding::Global
        },
        letter: Some(letter),
        file: None,
    }
}

fn listed(symbols: Vec<SymtabSymbol>) -> Vec<(u64, char, String)> {
    let symtab = Symtab {
        symbols,
        ..Symtab::default()
    };
    KallsymsList::from_symtab(&symtab, crate::kernel_line::DEFAULT)
        .entries()
        .iter()
        .map(|e| (e.address, e.letter, e.name.clone()))
        .collect()
}

#[test]
fn drops_what_mksysmap_and_kallsyms_drop() {
    let kept = listed(vec![
        symbol(0x10, 't', "kept_static"),
        symbol(0x10, 'a', "local_absolute"),
        symbol(0x10, 'A', "global_absolute"),
        symbol(0x10, 'A', "__gp"),
        symbol(0x10, 'U', "undefined"),
        symbol(0x10, 'w', "weak_undefined"),
        symbol(0x10, 'N', "debugging"),
        symbol(0x10, 'n', "note"),
        symbol(0x10, 'u', "unique"),
        symbol(0x10, 't', ".Ltmp0"),
        symbol(0x10, 't', "$x"),
        symbol(0x10, 'r', "__crc_foo"),
        symbol(0x10, 'r', "__kstrtab_foo"),
        symbol(0x10, 'r', "__kstrtabns_foo"),
        symbol(0x10, 'r', "__ksymtab_foo"),
        symbol(0x10, 'D', "kallsyms_names"),
        symbol(0x10, 'D', "kallsyms_seqs_of_names"),
        symbol(0x10, 'D', "__kcfi_typeid_foo"),
        symbol(0x10, 't', "foo_veneer"),
        symbol(0x10, 't', "a.long_branch.b"),
        symbol(0x10, 't', "L0"),
        SymtabSymbol {
            letter: None,
            ..symbol(0x10, 't', "section_symbol")
        },
    ]);
    let names: Vec<&str> = kept.iter().map(|(_, _, n)| n.as_str()).collect();
    // At one address: fewer leading underscores first, then by name.
    assert_eq!(names, ["kept_static", "__gp", "__ksymtab_foo"]);
}

#[test]
fn per_cpu_symbols_become_absolute_including_the_range_ends() {
    let kept = listed(vec![
        symbol(0x0, 'D', "__per_cpu_start"),
        symbol(0x0, 'd', "fixed_percpu_data"),
        symbol(0x40, 'd', "static_percpu"),
        symbol(0x80, 'D', "__per_cpu_end"),
        symbol(0xffff_ffff_8100_0000, 'T', "_text"),
    ]);
    let letters: Vec<(char, &str)> = kept.iter().map(|(_, l, n)| (*l, n.as_str())).collect();
    assert_eq!(
        letters,
        [
            ('A', "fixed_percpu_data"),
            ('A', "__per_cpu_start"),
            ('A', "static_percpu"),
            ('A', "__per_cpu_end"),
            ('T', "_text"),
        ]
    );
}

#[test]
fn order_is_address_then_weak_then_linker_then_underscores_then_name() {
    let kept = listed(vec![
        symbol(0x30, 't', "late"),
        symbol(0x20, 'W', "a_weak"),
        symbol(0x20, 'T', "__start_table"),
        symbol(0x20, 'T', "__two"),
        symbol(0x20, 'T', "_one"),
        symbol(0x20, 'T', "zero_b"),
        symbol(0x20, 'T', "zero_a"),
        symbol(0x10, 't', "early"),
    ]);
    let names: Vec<&str> = kept.iter().map(|(_, _, n)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "early",
            "zero_a",
            "zero_b",
            "_one",
            "__two",
            "__start_table",
            "a_weak",
            "late"
        ]
    );
}

#[test]
fn positions_count_every_same_named_line_in_order() {
    let list = KallsymsList::new(vec![
        KallsymsEntry {
            address: 0x100,
            letter: 't',
            name: "dup".into(),
        },
        KallsymsEntry {
            address: 0x130,
            letter: 'd',
            name: "other".into(),
        },
        KallsymsEntry {
            address: 0x200,
            letter: 'T',
            name: "dup".into(),
        },
        KallsymsEntry {
            address: 0x200,
            letter: 't',
            name: "alias".into(),
        },
        KallsymsEntry {
            address: 0x240,
            letter: 't',
            name: "dup".into(),
        },
    ]);
    assert_eq!(list.same_named("dup"), [0, 2, 4]);
    assert!(list.same_named("absent").is_empty());
    // Size: distance to the next higher address; aliases do not end a symbol.
    assert_eq!(list.kallsyms_size(0), Some(0x30));
    assert_eq!(list.kallsyms_size(2), Some(0x40));
    assert_eq!(list.kallsyms_size(3), Some(0x40));
    assert_eq!(list.kallsyms_size(4), None);
}
