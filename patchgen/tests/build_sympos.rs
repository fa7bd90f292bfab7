//! The link records' kallsyms positions in `patchgen build`, against the
//! pinned target kernel's cache: a static vmlinux has several of is placed
//! from its object's evidence, or refused with the remedy.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{build_err, consoles_fix, make_patch, request, target};
use patchgen::build::{self, BuildError};

/// The position of the `c_start` of consoles.c among vmlinux's kallsyms
/// lines of that name, from `readelf` (not patchgen's reader): kallsyms
/// lists these statics in address order.
fn consoles_c_start_position(vmlinux: &Path) -> u32 {
    let out = Command::new("readelf")
        .arg("-sW")
        .arg(vmlinux)
        .output()
        .expect("readelf");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut file = String::new();
    let mut all = Vec::new();
    let mut ours = None;
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        if f[3] == "FILE" {
            file = f[7].to_string();
        } else if f[7] == "c_start" && f[4] == "LOCAL" {
            let address = u64::from_str_radix(f[1], 16).expect("address");
            all.push(address);
            if file == "consoles.c" {
                ours = Some(address);
            }
        }
    }
    all.sort_unstable();
    let ours = ours.expect("consoles.c defines c_start");
    let index = all.iter().position(|&a| a == ours).expect("listed");
    u32::try_from(index + 1).expect("small")
}

#[test]
fn duplicated_static_gets_the_position_of_its_objects_symbol() {
    let t = target();
    let Some(vmlinux) = t.debug_vmlinux.clone() else {
        panic!(
            "no -dbg vmlinux for {}: run scripts/setup --kernel {} --with-dbg (or apt-get install linux-image-{}-dbg)",
            t.release, t.release, t.release
        );
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let patch = consoles_fix(&t, tmp.path());
    let out =
        build::build(&request(&t, &patch, &tmp.path().join("work")), &mut |_| {}).expect("build");
    let rec = out
        .module
        .records
        .iter()
        .find(|r| r.name == "c_start")
        .expect("a record for the replaced static");
    assert_eq!(rec.object.as_deref(), Some("vmlinux"));
    assert_eq!(rec.sympos, Some(consoles_c_start_position(&vmlinux)));
    assert!(rec.sympos > Some(1), "{rec:?}");
}

#[test]
fn duplicated_static_without_symbol_table_is_refused_with_the_remedy() {
    let mut t = target();
    t.debug_vmlinux = None;
    let tmp = tempfile::tempdir().expect("tmp");
    let patch = consoles_fix(&t, tmp.path());
    let e = build_err(&t, &patch, tmp.path());
    let BuildError::Sympos(cause) = &e else {
        panic!("unexpected error: {e}");
    };
    let message = cause.to_string();
    assert!(
        message.contains("`c_start`")
            && message.contains(&format!("linux-image-{}-dbg", t.release))
            && message.contains("--vmlinux"),
        "{message}"
    );
}

#[test]
fn vmlinux_of_another_build_is_refused() {
    let t = target();
    let tmp = tempfile::tempdir().expect("tmp");
    let patch = make_patch(&t, tmp.path(), "fs/proc/cmdline.c", |s| {
        s.replace("seq_putc(m, '\\n');", "seq_puts(m, \" fixed\\n\");")
    });
    let mut req = request(&t, &patch, &tmp.path().join("work"));
    req.vmlinux = Some(PathBuf::from("/bin/true"));
    let e = build::build(&req, &mut |_| {}).expect_err("not a vmlinux");
    assert!(matches!(e, BuildError::Symbols(_)), "{e}");
    let cause = std::error::Error::source(&e).expect("cause").to_string();
    assert!(cause.contains("/bin/true"), "{cause}");
}
