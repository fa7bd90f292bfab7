//! Unit tables for kallsyms parsing, records and resolution.

use super::*;

/// A kallsyms excerpt with the cases that matter: a unique static, a static
/// defined in two files of vmlinux and once in a module, an exported function
/// with its export entries, and module-local symbols.
const KALLSYMS: &str = "\
ffffffff81000000 T _text
ffffffff81234560 t cmdline_proc_show
ffffffff81100010 t dup_static
ffffffff81100020 t dup_static
ffffffff81111110 T stack_trace_save_tsk
ffffffff81222220 T register_ftrace_function
ffffffff82222220 r __ksymtab_register_ftrace_function
ffffffff82222230 r __kstrtab_register_ftrace_function
ffffffff82222240 A __crc_register_ftrace_function
ffffffffc0001000 t dup_static\t[ext4]
ffffffffc0002000 T ext4_helper\t[ext4]
ffffffffc0003000 d my_counter\t[my_mod]
";

fn kallsyms() -> Kallsyms {
    Kallsyms::parse(KALLSYMS).expect("valid kallsyms")
}

fn record(text: &str) -> LinkRecord {
    parse_symbol_arg(text).expect("valid record")
}

/// A record for `symbol` (the kernel's `name`) in vmlinux or anywhere.
fn linked(
    symbol: &str,
    name: &str,
    object: Option<&str>,
    sympos: Option<u32>,
    local: Option<bool>,
    function: Option<bool>,
    size: Option<u64>,
) -> LinkRecord {
    LinkRecord {
        object: object.map(str::to_owned),
        sympos,
        size,
        ..LinkRecord::new(symbol, name, local, function)
    }
}

#[test]
fn parses_module_column_and_unique_symbols() {
    let k = kallsyms();
    assert!(!k.addresses_hidden());
    let found = k.resolve("ext4_helper", None).expect("unique");
    assert_eq!(
        found,
        Resolved {
            name: "ext4_helper".to_owned(),
            address: 0xffff_ffff_c000_2000,
            object: "ext4".to_owned(),
        }
    );
    let found = k.resolve("cmdline_proc_show", None).expect("unique");
    assert_eq!(
        (found.address, found.object.as_str()),
        (0xffff_ffff_8123_4560, "vmlinux")
    );
}

#[test]
fn exported_means_a_ksymtab_entry_exists() {
    let k = kallsyms();
    assert!(k.is_exported("register_ftrace_function"));
    assert!(!k.is_exported("stack_trace_save_tsk"));
    assert!(!k.is_exported("cmdline_proc_show"));
    assert!(!k.is_exported("no_such_symbol"));
}

#[test]
fn export_machinery_symbols_are_never_candidates() {
    let k = kallsyms();
    for name in [
        "__ksymtab_register_ftrace_function",
        "__kstrtab_register_ftrace_function",
        "__crc_register_ftrace_function",
    ] {
        assert!(
            matches!(k.resolve(name, None), Err(LinkError::NotFound { .. })),
            "{name}"
        );
    }
}

#[test]
fn duplicates_are_refused_listing_every_candidate() {
    let error = kallsyms()
        .resolve("dup_static", None)
        .expect_err("ambiguous");
    let LinkError::Ambiguous { name, candidates } = &error else {
        panic!("unexpected error {error:?}");
    };
    assert_eq!(name, "dup_static");
    let listed: Vec<(char, &str, u32)> = candidates
        .iter()
        .map(|c| (c.kind, c.object.as_str(), c.sympos))
        .collect();
    assert_eq!(
        listed,
        [('t', "vmlinux", 1), ('t', "vmlinux", 2), ('t', "ext4", 1)]
    );
    let message = error.to_string();
    assert!(
        message.contains("dup_static") && message.contains("--symbol"),
        "{message}"
    );
    assert!(message.contains("in ext4 (position 1)"), "{message}");
}

#[test]
fn records_select_exactly() {
    let k = kallsyms();
    let cases = [
        ("dup_static=vmlinux,1", 0xffff_ffff_8110_0010, "vmlinux"),
        ("dup_static=vmlinux,2", 0xffff_ffff_8110_0020, "vmlinux"),
        ("dup_static=ext4", 0xffff_ffff_c000_1000, "ext4"),
        ("dup_static=ext4,1", 0xffff_ffff_c000_1000, "ext4"),
        (
            "cmdline_proc_show=vmlinux",
            0xffff_ffff_8123_4560,
            "vmlinux",
        ),
        // Module names are spelled with `_` in kallsyms; `-` is the same name.
        ("my_counter=my-mod", 0xffff_ffff_c000_3000, "my_mod"),
    ];
    for (text, address, object) in cases {
        let record = record(text);
        let found = k
            .resolve(&record.name, Some(&record))
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(
            (found.address, found.object.as_str()),
            (address, object),
            "{text}"
        );
    }
}

#[test]
fn records_that_match_nothing_are_errors_naming_them() {
    let k = kallsyms();
    let error = k
        .resolve("dup_static", Some(&record("dup_static=vmlinux,3")))
        .expect_err("no third");
    assert!(
        matches!(error, LinkError::NoSuchPosition { count: 2, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("dup_static=vmlinux,3"));

    let error = k
        .resolve("dup_static", Some(&record("dup_static=vmlinux")))
        .expect_err("two in vmlinux");
    let LinkError::Ambiguous { candidates, .. } = &error else {
        panic!("unexpected error {error:?}");
    };
    assert_eq!(candidates.len(), 2);

    let error = k
        .resolve("dup_static", Some(&record("dup_static=xfs")))
        .expect_err("not loaded");
    assert!(
        matches!(error, LinkError::ObjectNotLoaded { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("xfs"));

    let error = k
        .resolve("cmdline_proc_show", Some(&record("cmdline_proc_show=ext4")))
        .expect_err("not in ext4");
    assert!(matches!(error, LinkError::NotInObject { .. }), "{error:?}");
    assert!(
        error.to_string().contains("in vmlinux (position 1)"),
        "{error}"
    );

    let zero = LinkRecord::selecting("dup_static", "vmlinux", Some(0));
    assert!(matches!(
        k.resolve("dup_static", Some(&zero)),
        Err(LinkError::InvalidSympos { .. })
    ));
}

#[test]
fn unknown_symbol_names_it_and_where_it_was_expected() {
    let message = kallsyms()
        .resolve("no_such_symbol", None)
        .expect_err("absent")
        .to_string();
    assert!(
        message.contains("no_such_symbol") && message.contains("vmlinux"),
        "{message}"
    );
}

#[test]
fn hidden_addresses_are_reported_as_such() {
    let hidden = "0000000000000000 T _text\n0000000000000000 t foo\t[bar]\n";
    let k = Kallsyms::parse(hidden).expect("valid");
    assert!(k.addresses_hidden());
    assert!(!k.is_exported("foo"));
    let message = k.resolve("foo", None).expect_err("hidden").to_string();
    assert!(
        message.contains("kptr_restrict") && message.contains("root"),
        "{message}"
    );
}

#[test]
fn malformed_lines_are_errors_with_their_number() {
    let cases = [
        "ffffffff81000000 T\n",
        "ffffffff81000000\n",
        "zzzzzzzz81000000 T foo\n",
        "+fffffff81000000 T foo\n",
        "1ffffffff81000000 T foo\n",
        "ffffffff81000000 TT foo\n",
        "ffffffff81000000 T foo bar\n",
        "ffffffff81000000 T foo\t[]\n",
        "ffffffff81000000 T foo\t[bar\n",
        "ffffffff81000000 T foo\t[bar] x\n",
    ];
    for case in cases {
        let text = format!("ffffffff81000000 T _text\n{case}");
        match Kallsyms::parse(&text) {
            Err(KallsymsError::Malformed { line: 2, .. }) => {}
            other => panic!("{case:?}: {other:?}"),
        }
    }
    assert!(matches!(Kallsyms::parse("\n\n"), Err(KallsymsError::Empty)));
}

#[test]
fn record_syntax() {
    assert_eq!(
        record("cmdline_proc_show=vmlinux,2"),
        LinkRecord::selecting("cmdline_proc_show", "vmlinux", Some(2))
    );
    assert_eq!(record("foo=ext4").sympos, None);
    assert_eq!(record("foo=ext4,1").to_string(), "foo=ext4,1");
    for bad in [
        "foo",
        "=vmlinux",
        "foo=",
        "foo=vmlinux,",
        "foo=vmlinux,0",
        "foo=vmlinux,x",
        "foo=a=b",
        "foo=vmlinux,-1",
    ] {
        let error = parse_symbol_arg(bad).expect_err(bad);
        assert!(error.to_string().contains("NAME=OBJECT[,POS]"), "{error}");
    }
}

/// A kallsyms the size of a real one (about 200,000 lines, a quarter of
/// them in modules, names repeated across modules).
fn large_kallsyms() -> String {
    use std::fmt::Write;
    let mut text = String::with_capacity(200_000 * 48);
    for i in 0..200_000_u64 {
        let module = match i % 4 {
            0 => "\t[ext4]",
            1 => "\t[xfs]",
            _ => "",
        };
        let _ = writeln!(
            text,
            "{:016x} t sym_{}{module}",
            0xffff_ffff_8100_0000 + i * 16,
            i % 150_000
        );
    }
    text
}

/// A real kallsyms' size parses, and names repeated across it resolve or
/// are ambiguous as they should. Outcomes only: how long it takes is
/// measured by the ignored benchmark below, not asserted (a loaded
/// machine once took longer than a threshold here did).
#[test]
fn parses_a_large_kallsyms() {
    let text = large_kallsyms();
    let k = Kallsyms::parse(&text).expect("valid");
    assert!(k.resolve("sym_149999", None).is_ok());
    assert!(matches!(
        k.resolve("sym_1", None),
        Err(LinkError::Ambiguous { .. })
    ));
}

/// The time [`parses_a_large_kallsyms`] takes to parse, printed:
///
///   cargo test --release -p patchd --lib kallsyms_parse_timing -- --ignored --nocapture
#[test]
#[ignore = "a timing, not a test: run it by hand"]
fn kallsyms_parse_timing() {
    let text = large_kallsyms();
    let best = (0..5)
        .map(|_| {
            let start = std::time::Instant::now();
            let parsed = Kallsyms::parse(&text).expect("valid");
            let elapsed = start.elapsed();
            drop(parsed);
            elapsed
        })
        .min()
        .unwrap_or_default();
    eprintln!("parsed 200,000 kallsyms lines in {best:?} (best of 5)");
}

/// Records as patchgen writes them: the module's name for a kernel static
/// differs from the kernel's, binding and size pick among same-named ones.
#[test]
fn patchgen_records_resolve_by_alias_binding_and_size() {
    let text = "\
ffffffff81000000 T _text
ffffffff81100000 t helper
ffffffff81100030 t next_one
ffffffff81100100 t helper
ffffffff81100180 t after
ffffffff81200000 T helper_global
ffffffff81200040 T helper
ffffffff81200080 T tail
";
    let k = Kallsyms::parse(text).expect("valid");
    let rec = |local, size| {
        linked(
            "suture0_old__helper",
            "helper",
            Some("vmlinux"),
            None,
            Some(local),
            Some(true),
            size,
        )
    };
    // Two statics named helper: sizes 0x30 and 0x80. ELF size 0x2a fits the
    // first with padding, 0x80 the second exactly.
    let first = k
        .resolve("suture0_old__helper", Some(&rec(true, Some(0x2a))))
        .expect("first");
    assert_eq!(
        (first.name.as_str(), first.address),
        ("suture0_old__helper", 0xffff_ffff_8110_0000)
    );
    let second = k
        .resolve("suture0_old__helper", Some(&rec(true, Some(0x80))))
        .expect("second");
    assert_eq!(second.address, 0xffff_ffff_8110_0100);
    // Without a size the two statics are ambiguous: refused, never guessed.
    assert!(matches!(
        k.resolve("suture0_old__helper", Some(&rec(true, None))),
        Err(LinkError::Ambiguous { .. })
    ));
    // A size matching neither: not found in vmlinux.
    assert!(matches!(
        k.resolve("suture0_old__helper", Some(&rec(true, Some(0x200)))),
        Err(LinkError::NotInObject { .. })
    ));
    // The global helper is the only uppercase one.
    let global = k
        .resolve("suture0_old__helper", Some(&rec(false, None)))
        .expect("global");
    assert_eq!(global.address, 0xffff_ffff_8120_0040);
}

/// `--records` files hold the link contract's records (patchgen
/// --emit-module writes them with the bundle's type); unknown fields are
/// refused. The manifest's records are the same type: nothing translates.
#[test]
fn records_file_holds_link_records() {
    let json = r#"[{"symbol":"suture0_old__f","name":"f","kind":"func","binding":"local","object":"vmlinux","object_file":"fs/x.o","sympos":null,"size":42},
                   {"symbol":"g","name":"g","kind":null,"binding":"global","object":null,"object_file":null,"sympos":null,"size":null}]"#;
    let records: Vec<LinkRecord> = serde_json::from_str(json).expect("parse");
    assert_eq!(records[0].name, "f");
    assert_eq!(records[0].symbol, "suture0_old__f");
    assert_eq!(records[0].size, Some(42));
    assert_eq!(records[0].local(), Some(true));
    assert_eq!(records[0].function(), Some(true));
    assert_eq!(records[1].function(), None);
    assert_eq!(records[1].local(), Some(false));
    assert_eq!(records[1].object, None);
    assert!(serde_json::from_str::<Vec<LinkRecord>>(
        r#"[{"symbol":"a","name":"a","binding":"local","bogus":1}]"#
    )
    .is_err());
    // Weak: either binding.
    let weak = LinkRecord {
        binding: suture_bundle::manifest::SymbolBinding::Weak,
        ..records[1].clone()
    };
    assert_eq!(weak.local(), None);
}

/// Issue #4: records with a position proven by patchgen. Positions count
/// the same-named lines of vmlinux only (no `[module]` column: modules,
/// BPF programs, ftrace trampolines), every type included; the selected
/// line's type and, for a function, its room are checked.
#[test]
fn issue_4_positions_count_vmlinux_lines_and_are_checked() {
    let text = "\
0000000000000000 A fixed_percpu_data
0000000000001000 A counter
ffffffff81000000 T _text
ffffffff81100000 t helper
ffffffff81100030 t next_one
ffffffffc0001000 t helper\t[ext4]
ffffffff81100100 T helper
ffffffff81100180 d counter
ffffffffc0002000 t helper\t[bpf]
ffffffff81100200 t helper
ffffffff81100240 t after
ffffffffc0003000 t helper\t[__builtin__ftrace]
";
    let k = Kallsyms::parse(text).expect("valid");
    let rec = |sympos, local, function, size| {
        linked(
            "suture0_old__helper",
            "helper",
            Some("vmlinux"),
            Some(sympos),
            Some(local),
            Some(function),
            size,
        )
    };
    let at = |record: LinkRecord| {
        k.resolve("suture0_old__helper", Some(&record))
            .map(|r| r.address)
    };
    assert_eq!(
        at(rec(1, true, true, Some(0x30))).ok(),
        Some(0xffff_ffff_8110_0000)
    );
    assert_eq!(
        at(rec(2, false, true, None)).ok(),
        Some(0xffff_ffff_8110_0100)
    );
    assert_eq!(
        at(rec(3, true, true, Some(0x40))).ok(),
        Some(0xffff_ffff_8110_0200)
    );
    // Module lines are not positions of vmlinux.
    assert!(matches!(
        at(rec(4, true, true, None)),
        Err(LinkError::NoSuchPosition { count: 3, .. })
    ));
    // Position 2 is the global one: a record for a static there is wrong.
    let error = at(rec(2, true, true, None)).expect_err("global line");
    assert!(
        matches!(error, LinkError::WrongType { found: 'T', .. }),
        "{error}"
    );
    assert!(error.to_string().contains("a static function"), "{error}");
    // A function larger than the room before the next symbol.
    let error = at(rec(1, true, true, Some(0x31))).expect_err("too small");
    assert!(
        matches!(
            error,
            LinkError::TooSmall {
                size: 0x31,
                kallsyms_size: 0x30,
                ..
            }
        ),
        "{error}"
    );
    // Per-CPU variables are `A` whatever their binding; data is not `t`.
    let counter = |sympos| {
        linked(
            "counter",
            "counter",
            Some("vmlinux"),
            Some(sympos),
            Some(true),
            Some(false),
            Some(8),
        )
    };
    assert_eq!(
        k.resolve("counter", Some(&counter(1)))
            .map(|r| r.address)
            .ok(),
        Some(0x1000)
    );
    assert_eq!(
        k.resolve("counter", Some(&counter(2)))
            .map(|r| r.address)
            .ok(),
        Some(0xffff_ffff_8110_0180)
    );
    let data_as_function = LinkRecord {
        kind: Some(suture_bundle::manifest::SymbolKind::Func),
        ..counter(2)
    };
    assert!(matches!(
        k.resolve("counter", Some(&data_as_function)),
        Err(LinkError::WrongType { found: 'd', .. })
    ));
}

/// Regression (real fix fs/ext4/namei.c): a loaded module's non-exported
/// globals are lowercase in /proc/kallsyms (`ext4_search_dir` is `t` in
/// ext4), so a global record takes the one module line of that name; in
/// vmlinux a lowercase line is still a static, never a global.
#[test]
fn global_records_take_lowercase_module_lines() {
    let text = "\
ffffffff81000000 T _text
ffffffff81100000 t only_static
ffffffffc0001000 t ext4_search_dir\t[ext4]
ffffffffc0001100 t ext4_other\t[ext4]
ffffffffc0002000 t __SCT__tp_func_kyber_adjust\t[kyber_iosched]
";
    let k = Kallsyms::parse(text).expect("valid");
    let global = |name: &str| linked(name, name, None, None, Some(false), Some(true), None);
    let found = k
        .resolve("ext4_search_dir", Some(&global("ext4_search_dir")))
        .expect("module global");
    assert_eq!(
        (found.address, found.object.as_str()),
        (0xffff_ffff_c000_1000, "ext4")
    );
    let trampoline = k
        .resolve(
            "__SCT__tp_func_kyber_adjust",
            Some(&global("__SCT__tp_func_kyber_adjust")),
        )
        .expect("module trampoline");
    assert_eq!(trampoline.object, "kyber_iosched");
    assert!(matches!(
        k.resolve("only_static", Some(&global("only_static"))),
        Err(LinkError::NotInObject { .. })
    ));
    // A vmlinux global whose name is also a static of a loaded module:
    // the uppercase line wins, as before.
    let text = "\
ffffffff81000000 T _text
ffffffff81100000 T shared_name
ffffffffc0001000 t shared_name\t[some_mod]
";
    let k = Kallsyms::parse(text).expect("valid");
    let found = k
        .resolve("shared_name", Some(&global("shared_name")))
        .expect("the vmlinux global");
    assert_eq!(
        (found.address, found.object.as_str()),
        (0xffff_ffff_8110_0000, "vmlinux")
    );
}

/// 6.12 (CALL_PADDING) lists every function's `__pfx_` padding in
/// /proc/kallsyms (lines of 6.12.107+deb13-amd64): a record names the
/// function, never its padding, and a function's room ends at the next
/// function's `__pfx_`, past the linker's filler.
#[test]
fn kallsyms_of_6_12_with_pfx_padding_resolves_the_function() {
    let k = Kallsyms::parse(
        "ffffffff81000000 T _text\n\
         ffffffff81508150 t __pfx_cmdline_proc_show\n\
         ffffffff81508160 t cmdline_proc_show\n\
         ffffffff815081c0 t __pfx_c_next\n\
         ffffffff815081d0 t c_next\n",
    )
    .expect("valid kallsyms");
    let fits = linked(
        "cmdline_proc_show",
        "cmdline_proc_show",
        Some("vmlinux"),
        Some(1),
        Some(true),
        Some(true),
        Some(46),
    );
    let found = k
        .resolve("cmdline_proc_show", Some(&fits))
        .expect("resolves");
    assert_eq!(found.address, 0xffff_ffff_8150_8160);
    let too_big = LinkRecord {
        size: Some(97),
        ..fits
    };
    let error = k
        .resolve("cmdline_proc_show", Some(&too_big))
        .expect_err("no room for 97 bytes before __pfx_c_next");
    assert!(error.to_string().contains("96"), "{error}");
}
