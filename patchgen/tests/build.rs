//! `patchgen build` against the pinned target kernel's cache (scripts/setup):
//! a real fix builds into a module with link records, whether it changes a
//! C file, a header, a file another one includes, or several files.
//! Without the kernel cache these tests fail with the command to run.

mod common;

use std::path::Path;

use common::{consoles_fix, make_patch, request, target};
use patchgen::build::{self, BuildError};

fn mtime(p: &Path) -> std::time::SystemTime {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .expect("mtime")
}

#[test]
fn cmdline_fix_builds_a_module_with_link_records() {
    let t = target();
    let tmp = tempfile::tempdir().expect("tmp");
    let patch = make_patch(&t, tmp.path(), "fs/proc/cmdline.c", |s| {
        s.replace("seq_putc(m, '\\n');", "seq_puts(m, \" fixed\\n\");")
    });
    let before = mtime(&t.source.join("fs/proc/cmdline.c"));
    let out =
        build::build(&request(&t, &patch, &tmp.path().join("work")), &mut |_| {}).expect("build");
    assert!(out.module.ko.is_file());
    let names: Vec<&str> = out
        .module
        .replacements
        .iter()
        .map(|r| r.old_name.as_str())
        .collect();
    assert_eq!(names, ["cmdline_proc_show"]);
    let rec = out
        .module
        .records
        .iter()
        .find(|r| r.name == "cmdline_proc_show")
        .expect("a record for the replaced static");
    assert!(rec.is_local() && rec.size.is_some() && rec.object.as_deref() == Some("vmlinux"));
    assert_eq!(rec.sympos, Some(1), "a unique static is position 1");
    assert!(
        rec.symbol != rec.name,
        "the old function is referenced under an alias"
    );
    assert_eq!(
        before,
        mtime(&t.source.join("fs/proc/cmdline.c")),
        "the cached source was touched"
    );
    assert!(!t.source.join("fs/proc/cmdline.c.orig").exists());
}

/// fs/pnode.h, included as "pnode.h" by fs/namespace.c, fs/pnode.c and
/// fs/proc_namespace.c: its inline `set_mnt_shared` is used by the first
/// two.
const HEADER: &str = "fs/pnode.h";

const HEADER_FROM: &str = "static inline void set_mnt_shared(struct mount *mnt)\n{\n";

const HEADER_TO: &str = "static inline void set_mnt_shared(struct mount *mnt)\n{\n\tif (WARN_ON_ONCE(!mnt))\n\t\treturn;\n";

const HEADER_READERS: [&str; 3] = ["fs/namespace.o", "fs/pnode.o", "fs/proc_namespace.o"];

/// A fix to a local header compiles exactly the objects whose compilation
/// reads it (kbuild's record, computed once per target) and patches the
/// functions its inline code changes, in each of them: the unchanged `.c`
/// files must read the fix's header, not the tree's beside them.
#[test]
fn a_header_fix_builds_every_object_that_reads_it() {
    let t = target();
    let tmp = tempfile::tempdir().expect("tmp");
    let patch = make_patch(&t, tmp.path(), HEADER, |s| {
        s.replacen(HEADER_FROM, HEADER_TO, 1)
    });
    let mut lines = Vec::new();
    let out = build::build(&request(&t, &patch, &tmp.path().join("work")), &mut |l| {
        lines.push(l.to_string())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", lines.join("\n")));
    let read_by = lines
        .iter()
        .find(|l| l.starts_with(&format!("{HEADER} is read by")))
        .unwrap_or_else(|| panic!("no line on the header's readers:\n{}", lines.join("\n")));
    for object in HEADER_READERS {
        assert!(
            read_by.contains(object),
            "{object} not among the readers: {read_by}"
        );
    }
    let mut objects: Vec<String> = out
        .module
        .replacements
        .iter()
        .map(|r| r.object_file.clone())
        .collect();
    objects.sort();
    objects.dedup();
    assert!(
        objects.len() >= 2,
        "the header's change reaches functions of several objects: {objects:?}"
    );
}

/// Several fix files on the command line, each touching another file, give
/// one module; a refusal in any of them builds nothing (all or nothing).
#[test]
fn several_fix_files_give_one_module_or_none() {
    let t = target();
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(&a).expect("mkdir");
    std::fs::create_dir_all(&b).expect("mkdir");
    let cmdline = make_patch(&t, &a, "fs/proc/cmdline.c", |s| {
        s.replace("seq_putc(m, '\\n');", "seq_puts(m, \" fixed\\n\");")
    });
    let consoles = consoles_fix(&t, &b);
    let mut req = request(&t, &cmdline, &tmp.path().join("work"));
    req.patches.push(consoles);
    let out = build::build(&req, &mut |_| {}).unwrap_or_else(|e| panic!("{e}"));
    let mut replaced: Vec<(&str, &str)> = out
        .module
        .replacements
        .iter()
        .map(|r| (r.old_name.as_str(), r.object_file.as_str()))
        .collect();
    replaced.sort();
    assert_eq!(
        replaced,
        [
            ("c_start", "fs/proc/consoles.o"),
            ("cmdline_proc_show", "fs/proc/cmdline.o")
        ]
    );
    // The same with a third fix the differ refuses (it changes __init
    // code): no module.
    let c = tmp.path().join("c");
    std::fs::create_dir_all(&c).expect("mkdir");
    let init = make_patch(&t, &c, "fs/proc/version.c", |s| {
        s.replacen(
            "proc_create_single(\"version\", 0,",
            "proc_create_single(\"version\", 0444,",
            1,
        )
    });
    req.patches.push(init);
    req.work = tmp.path().join("work2");
    let e = build::build(&req, &mut |_| {}).expect_err("refused");
    assert!(matches!(e, BuildError::Refused { .. }), "{e}");
}

/// A `.c` file that another `.c` file `#include`s is built as part of the
/// object that includes it (kernel/sched/build_utility.c includes psi.c).
#[test]
fn a_fix_to_an_included_c_file_builds_the_object_that_includes_it() {
    let t = target();
    let tmp = tempfile::tempdir().expect("tmp");
    let patch = make_patch(&t, tmp.path(), "kernel/sched/psi.c", |s| {
        s.replacen(
            "static int psi_io_show(struct seq_file *m, void *v)\n{\n",
            "static int psi_io_show(struct seq_file *m, void *v)\n{\n\tif (!m)\n\t\treturn -EINVAL;\n",
            1,
        )
    });
    let out = build::build(&request(&t, &patch, &tmp.path().join("work")), &mut |_| {})
        .unwrap_or_else(|e| panic!("{e}"));
    let replaced: Vec<(&str, &str)> = out
        .module
        .replacements
        .iter()
        .map(|r| (r.old_name.as_str(), r.object_file.as_str()))
        .collect();
    assert_eq!(replaced, [("psi_io_show", "kernel/sched/build_utility.o")]);
}

/// New code in a module that calls an export of a symbol namespace
/// (usb_stor_bulk_transfer_buf, USB_STORAGE): the patch module imports the
/// namespace, so modpost and the kernel accept it.
#[test]
fn exports_in_a_namespace_are_imported() {
    let t = target();
    let tmp = tempfile::tempdir().expect("tmp");
    let patch = make_patch(&t, tmp.path(), "drivers/usb/storage/realtek_cr.c", |s| {
        s.replacen(
            "\t/* copy the command payload */\n\tmemset(bcb->CDB",
            "\tif (cmd_len > sizeof(bcb->CDB))\n\t\treturn USB_STOR_TRANSPORT_ERROR;\n\t/* copy the command payload */\n\tmemset(bcb->CDB",
            1,
        )
    });
    let out = build::build(&request(&t, &patch, &tmp.path().join("work")), &mut |_| {})
        .unwrap_or_else(|e| panic!("{e}"));
    let ko = std::fs::read(&out.module.ko).expect("the module");
    let needle = b"import_ns=USB_STORAGE";
    assert!(
        ko.windows(needle.len()).any(|w| w == needle),
        "the module does not import USB_STORAGE"
    );
}
