//! The `functions` file's redirect paths, and how status words them.

use super::*;
use crate::kernel::RealKernel;

const NINE: &str = "cmdline_proc_show 0xffffffff81350c40 37 new_cmdline_proc_show 0xffffffffc0a01000 45 1 12 direct\n\
    proc_cmdline_init 0xffffffff81350d40 52 new_proc_cmdline_init 0xffffffffc0a01100 60 1 0 ftrace\n\
    seq_show 0xffffffff81350e40 20 new_seq_show 0xffffffffc0a01200 24 0 0 -\n";

fn named(paths: &[(&str, RedirectPath)]) -> Vec<(String, RedirectPath)> {
    paths.iter().map(|(n, p)| ((*n).to_owned(), *p)).collect()
}

#[test]
fn nine_columns_give_each_function_its_path() {
    assert_eq!(
        parse_functions(NINE),
        named(&[
            ("cmdline_proc_show", RedirectPath::Direct),
            ("proc_cmdline_init", RedirectPath::FtraceHandler),
            ("seq_show", RedirectPath::NotAttached),
        ])
    );
    let odd = "f 0x10 1 g 0x20 2 1 0 trampoline\nh 0x10 1 i 0x20 2 1 0 direct extra\n";
    assert_eq!(
        parse_functions(odd),
        named(&[("f", RedirectPath::Unknown), ("h", RedirectPath::Direct)]),
        "an unknown word is unknown; a column after the path is ignored"
    );
}

#[test]
fn older_companions_without_the_path_column_are_unknown() {
    let eight = "cmdline_proc_show 0xffffffff81350c40 37 new_cmdline_proc_show 0xffffffffc0a01000 45 1 12\n";
    let seven =
        "cmdline_proc_show 0xffffffff81350c40 37 new_cmdline_proc_show 0xffffffffc0a01000 45 0";
    for text in [eight, seven] {
        assert_eq!(
            parse_functions(text),
            named(&[("cmdline_proc_show", RedirectPath::Unknown)]),
            "{text}"
        );
    }
}

#[test]
fn malformed_lines_are_skipped() {
    let garbage = [
        "",
        "\n\n",
        "cmdline_proc_show",
        "f 0x10 1 g 0x20 2",
        "f 10 1 g 0x20 2 1 0 direct",
        "f 0x 1 g 0x20 2 1 0 direct",
        "f 0x10 1 g 0xzz 2 1 0 direct",
        "f 0x10 -1 g 0x20 2 1 0 direct",
        "f 0x10 1 g 0x20 2 2 0 direct",
        "f 0x10 1 g 0x20 2 1 many direct",
        "\u{0}\u{ff} é 0x10 1",
    ];
    for text in garbage {
        assert_eq!(parse_functions(text), [], "{text:?}");
    }
    let mixed = format!("junk line\n{NINE}f 0x10 1 g\n");
    assert_eq!(parse_functions(&mixed).len(), 3);
}

#[test]
fn the_summary_counts_each_path_and_names_the_ftrace_handler_functions() {
    let redirect = Redirect::from_paths(parse_functions(NINE));
    assert_eq!(redirect.direct, ["cmdline_proc_show"]);
    assert_eq!(redirect.ftrace, ["proc_cmdline_init"]);
    assert_eq!(
        redirect.to_string(),
        "direct call (1), not attached (1), ftrace handler (1): proc_cmdline_init"
    );
    let direct = Redirect::from_paths(named(&[
        ("a", RedirectPath::Direct),
        ("b", RedirectPath::Direct),
    ]));
    assert_eq!(direct.to_string(), "direct call (2)");
    assert!(direct.is_known());
    let old = Redirect::from_paths(named(&[("a", RedirectPath::Unknown)]));
    assert!(!old.is_known(), "an older companion says nothing");
}

#[test]
fn an_unreadable_or_absent_file_is_no_redirect() {
    let dir = tempfile::tempdir().expect("tempdir");
    let patch = dir.path().join("sys/kernel/suture/fix_a");
    std::fs::create_dir_all(&patch).expect("mkdir");
    let kernel = RealKernel::with_root(dir.path());
    assert_eq!(Redirect::read(&kernel, "fix_a"), None, "absent");
    assert_eq!(Redirect::read(&kernel, "../x"), None, "not a patch name");
    // A directory in its place: opening works, reading fails (EISDIR),
    // as a read without root fails (EACCES).
    std::fs::create_dir(patch.join("functions")).expect("mkdir");
    assert_eq!(Redirect::read(&kernel, "fix_a"), None, "unreadable");
    std::fs::remove_dir(patch.join("functions")).expect("rmdir");
    std::fs::write(patch.join("functions"), "").expect("write");
    assert_eq!(Redirect::read(&kernel, "fix_a"), None, "empty");
    std::fs::write(patch.join("functions"), NINE).expect("write");
    let read = Redirect::read(&kernel, "fix_a").expect("read");
    assert_eq!(read.not_attached, ["seq_show"]);
}
