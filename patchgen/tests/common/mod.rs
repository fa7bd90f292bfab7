//! What the `patchgen build` tests share: the pinned target kernel's cache
//! (scripts/setup), fixes made by editing its sources, build requests.
//! Without the kernel cache the tests fail with the command to run.

// Each test file uses some of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use patchgen::build::{self, BuildError, BuildRequest, KernelTarget};

pub fn default_release() -> String {
    let env = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernels/default.env");
    let text = std::fs::read_to_string(env).expect("kernels/default.env");
    text.lines()
        .find_map(|l| l.strip_prefix("SUTURE_DEFAULT_KERNEL="))
        .expect("SUTURE_DEFAULT_KERNEL")
        .trim()
        .to_string()
}

pub fn target() -> KernelTarget {
    let release = std::env::var("SUTURE_KERNEL").unwrap_or_else(|_| default_release());
    KernelTarget::from_cache(&release).unwrap_or_else(|e| panic!("{e}"))
}

/// A -p1 unified diff of `rel` in the target's tree with `edit` applied.
pub fn make_patch(
    t: &KernelTarget,
    dir: &Path,
    rel: &str,
    edit: impl Fn(&str) -> String,
) -> PathBuf {
    let orig = std::fs::read_to_string(t.source.join(rel)).expect("read source");
    let fixed = edit(&orig);
    assert_ne!(orig, fixed, "the edit changed nothing in {rel}");
    let (a, b) = (dir.join("a").join(rel), dir.join("b").join(rel));
    for (p, text) in [(&a, &orig), (&b, &fixed)] {
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
    let out = Command::new("diff")
        .arg("-u")
        .arg(format!("a/{rel}"))
        .arg(format!("b/{rel}"))
        .current_dir(dir)
        .output()
        .expect("diff");
    let patch = dir.join(format!("{}.patch", rel.replace('/', "_")));
    std::fs::write(&patch, &out.stdout).expect("write patch");
    patch
}

pub fn request(t: &KernelTarget, patch: &Path, work: &Path) -> BuildRequest {
    BuildRequest {
        target: t.clone(),
        patches: vec![patch.to_path_buf()],
        name: "test_fix".to_string(),
        kmod: None,
        work: work.to_path_buf(),
        vmlinux: None,
        accept_layout: Vec::new(),
        skip: Vec::new(),
        max_objects: None,
    }
}

pub fn build_err(t: &KernelTarget, patch: &Path, tmp: &Path) -> BuildError {
    build::build(&request(t, patch, &tmp.join("work")), &mut |_| {}).expect_err("must fail")
}

/// A fix to `c_start` in fs/proc/consoles.c: vmlinux has several statics of
/// that name (arch/x86/kernel/cpu/proc.c, fs/proc/consoles.c, ...).
pub fn consoles_fix(t: &KernelTarget, dir: &Path) -> PathBuf {
    make_patch(t, dir, "fs/proc/consoles.c", |s| {
        s.replace(
            "\tconsole_lock();\n\tfor_each_console(con)",
            "\tconsole_lock();\n\tif (*pos < 0)\n\t\treturn NULL;\n\tfor_each_console(con)",
        )
    })
}

/// A signing key made by `patchgen keygen` in `dir`: the secret key's path.
pub fn keygen(dir: &Path) -> PathBuf {
    let key = dir.join("k");
    let made = Command::new(env!("CARGO_BIN_EXE_patchgen"))
        .args(["keygen", "-o"])
        .arg(&key)
        .output()
        .expect("keygen");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    key.with_extension("key")
}
