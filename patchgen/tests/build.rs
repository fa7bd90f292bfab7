//! `patchgen build` against the pinned target kernel's cache (scripts/setup):
//! a real fix builds into a module with link records; every bad input gets
//! an error that names the cause and leaves the cached tree as it was.
//! Without the kernel cache these tests fail with the command to run.

use std::path::{Path, PathBuf};
use std::process::Command;

use patchgen::build::{self, BuildError, BuildRequest, KernelTarget};

fn default_release() -> String {
    let env = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernels/default.env");
    let text = std::fs::read_to_string(env).expect("kernels/default.env");
    text.lines()
        .find_map(|l| l.strip_prefix("SUTURE_DEFAULT_KERNEL="))
        .expect("SUTURE_DEFAULT_KERNEL")
        .trim()
        .to_string()
}

fn target() -> KernelTarget {
    let release = std::env::var("SUTURE_KERNEL").unwrap_or_else(|_| default_release());
    KernelTarget::from_cache(&release).unwrap_or_else(|e| panic!("{e}"))
}

/// A -p1 unified diff of `rel` in the target's tree with `edit` applied.
fn make_patch(t: &KernelTarget, dir: &Path, rel: &str, edit: impl Fn(&str) -> String) -> PathBuf {
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

fn request(t: &KernelTarget, patch: &Path, work: &Path) -> BuildRequest {
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

/// A fix to `c_start` in fs/proc/consoles.c: vmlinux has several statics of
/// that name (arch/x86/kernel/cpu/proc.c, fs/proc/consoles.c, ...).
fn consoles_fix(t: &KernelTarget, dir: &Path) -> PathBuf {
    make_patch(t, dir, "fs/proc/consoles.c", |s| {
        s.replace(
            "\tconsole_lock();\n\tfor_each_console(con)",
            "\tconsole_lock();\n\tif (*pos < 0)\n\t\treturn NULL;\n\tfor_each_console(con)",
        )
    })
}

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

fn build_err(t: &KernelTarget, patch: &Path, tmp: &Path) -> BuildError {
    build::build(&request(t, patch, &tmp.join("work")), &mut |_| {}).expect_err("must fail")
}

#[test]
fn fix_that_does_not_apply_names_the_patch() {
    let t = target();
    let tmp = tempfile::tempdir().expect("tmp");
    let patch = make_patch(&t, tmp.path(), "fs/proc/cmdline.c", |s| {
        s.replace("seq_putc", "seq_putc_x")
    });
    // Make the context lines wrong.
    let text = std::fs::read_to_string(&patch)
        .expect("read")
        .replace("saved_command_line", "other_line");
    std::fs::write(&patch, text).expect("write");
    let e = build_err(&t, &patch, tmp.path());
    assert!(matches!(e, BuildError::PatchDoesNotApply { .. }), "{e}");
    assert!(e.to_string().contains("does not apply"), "{e}");
}

#[test]
fn file_outside_the_build_is_named() {
    let t = target();
    let tmp = tempfile::tempdir().expect("tmp");
    let patch = make_patch(&t, tmp.path(), "arch/arm64/kernel/setup.c", |s| {
        s.replacen("{", "{ ", 1)
    });
    let e = build_err(&t, &patch, tmp.path());
    assert!(matches!(e, BuildError::OutsideBuild { .. }), "{e}");
    assert!(e.to_string().contains("arch/arm64/kernel/setup.c"), "{e}");
}

#[test]
fn build_configuration_changes_are_refused() {
    let t = target();
    let tmp = tempfile::tempdir().expect("tmp");
    let patch = make_patch(&t, tmp.path(), "fs/proc/Makefile", |s| {
        format!("{s}\n# touched\n")
    });
    let e = build_err(&t, &patch, tmp.path());
    assert!(matches!(e, BuildError::NotCode { .. }), "{e}");
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

#[test]
fn unpatchable_change_is_refused_with_the_differs_reason() {
    let t = target();
    let tmp = tempfile::tempdir().expect("tmp");
    // proc_cmdline_init is __init: it has run and been freed.
    let patch = make_patch(&t, tmp.path(), "fs/proc/cmdline.c", |s| {
        s.replace(
            "proc_create_single(\"cmdline\", 0,",
            "proc_create_single(\"cmdline\", 0444,",
        )
    });
    let e = build_err(&t, &patch, tmp.path());
    assert!(matches!(e, BuildError::Refused { .. }), "{e}");
    assert!(e.to_string().contains("init code"), "{e}");
}

#[test]
fn missing_kernel_cache_says_to_run_setup() {
    let e = KernelTarget::from_cache("6.1.0-999-amd64").expect_err("no such cache");
    assert!(
        e.to_string()
            .contains("scripts/setup --kernel 6.1.0-999-amd64"),
        "{e}"
    );
}

#[test]
fn compiler_mismatch_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    for d in ["src", "hdr"] {
        std::fs::create_dir_all(tmp.path().join(d)).expect("mkdir");
        std::fs::write(tmp.path().join(d).join("Makefile"), "").expect("write");
    }
    std::fs::write(
        tmp.path().join("src/.config"),
        "CONFIG_CC_VERSION_TEXT=\"gcc-12 (Debian 12.2.0-14) 12.1.0-not-this-one\"\n",
    )
    .expect("write");
    let e = KernelTarget::explicit(
        "6.1.0-50-amd64",
        None,
        "06f8bde30046985060c60820f7a11515a33afb06",
        &tmp.path().join("src"),
        &tmp.path().join("hdr"),
    )
    .expect_err("mismatch");
    assert!(matches!(e, BuildError::CompilerMismatch { .. }), "{e}");
    assert!(e.to_string().contains("12.1.0-not-this-one"), "{e}");
}

/// What the target builds comes from kbuild's own dry run: the cases a
/// makefile reader got wrong are right.
#[test]
fn the_kbuild_record_says_what_the_target_builds() {
    use patchgen::build::kbuild::{normalize, Record};
    let t = target();
    let record = Record::load(&t, &mut |_| {}).unwrap_or_else(|e| panic!("{e}"));
    let built = |src: &str| -> Vec<(String, bool)> {
        record
            .compiled_from(Path::new(src))
            .iter()
            .map(|b| (normalize(&b.object).display().to_string(), b.module))
            .collect()
    };
    for (src, object, module) in [
        ("fs/proc/cmdline.c", "fs/proc/cmdline.o", false),
        ("kernel/fork.c", "kernel/fork.o", false),
        ("net/ipv4/tcp.c", "net/ipv4/tcp.o", false),
        // a composite object listed with its subdirectory in the parent
        (
            "security/selinux/ss/policydb.c",
            "security/selinux/ss/policydb.o",
            false,
        ),
        // obj-$(subst m,y,$(CONFIG_HYPERV)) in arch/x86/Kbuild
        (
            "arch/x86/hyperv/hv_init.c",
            "arch/x86/hyperv/hv_init.o",
            false,
        ),
        // obj-$(subst m,y,$(CONFIG_VLAN_8021Q))
        ("net/8021q/vlan_core.c", "net/8021q/vlan_core.o", false),
        // built from another directory's makefile, into a module
        ("virt/kvm/kvm_main.c", "virt/kvm/kvm_main.o", true),
        (
            "drivers/gpu/drm/nouveau/nouveau_drm.c",
            "drivers/gpu/drm/nouveau/nouveau_drm.o",
            true,
        ),
    ] {
        assert_eq!(built(src), [(object.to_string(), module)], "{src}");
    }
    // Not compiled on their own: another architecture's, and a file that
    // another one includes.
    assert!(built("arch/arm64/kernel/setup.c").is_empty());
    assert!(built("kernel/sched/rt.c").is_empty());
    // A C file compiled on its own and #included by another, found
    // without the dependency record.
    let includers: Vec<String> = record
        .includers_of(&t, Path::new("fs/binfmt_elf.c"))
        .into_iter()
        .filter_map(|i| record.objects.get(i))
        .map(|b| normalize(&b.object).display().to_string())
        .collect();
    assert!(
        includers.iter().any(|o| o == "fs/compat_binfmt_elf.o"),
        "{includers:?}"
    );
    let deps = record
        .deps(&t, &mut |_| {})
        .unwrap_or_else(|e| panic!("{e}"));
    let readers = |file: &str| -> Vec<String> {
        deps.objects_reading(Path::new(file))
            .into_iter()
            .filter_map(|i| record.objects.get(i))
            .map(|b| normalize(&b.object).display().to_string())
            .collect()
    };
    assert_eq!(
        readers("kernel/sched/rt.c"),
        ["kernel/sched/build_policy.o"]
    );
    assert_eq!(
        readers("kernel/sched/psi.c"),
        ["kernel/sched/build_utility.o"]
    );
    assert!(readers("arch/arm64/kernel/setup.c").is_empty());
    let seq_file = readers("include/linux/seq_file.h");
    assert!(
        seq_file.len() > 1000 && seq_file.iter().any(|o| o == "fs/proc/cmdline.o"),
        "{} readers of seq_file.h",
        seq_file.len()
    );
}

#[test]
fn same_inputs_give_a_byte_identical_signed_bundle() {
    use patchgen::build::package::{package, PatchInfo};
    let t = target();
    let tmp = tempfile::tempdir().expect("tmp");
    let patch = make_patch(&t, tmp.path(), "fs/proc/cmdline.c", |s| {
        s.replace("seq_putc(m, '\\n');", "seq_puts(m, \" again\\n\");")
    });
    let key = suture_bundle::generate_signing_key().expect("key");
    std::env::set_var("SOURCE_DATE_EPOCH", "1763800000");
    let info = PatchInfo {
        description: "reproducibility".to_string(),
        cves: vec!["CVE-2024-0001".to_string()],
        dependencies: vec![],
    };
    let bundles: Vec<Vec<u8>> = (0..2)
        .map(|i| {
            let work = tmp.path().join(format!("work{i}"));
            let out = build::build(&request(&t, &patch, &work), &mut |_| {}).expect("build");
            package(&out, &t, &info, &key).expect("package")
        })
        .collect();
    assert!(
        bundles[0] == bundles[1],
        "two builds of the same fix differ"
    );
    let parsed = suture_bundle::parse(&bundles[0]).expect("parse");
    let verified = parsed.verify(&[key.verifying_key()]).expect("verify");
    assert_eq!(verified.manifest().target.build_id, t.build_id);
    assert_eq!(
        verified.manifest().replaced_functions[0].old_name,
        "cmdline_proc_show"
    );
}

#[test]
fn unusable_key_fails_before_building() {
    let tmp = tempfile::tempdir().expect("tmp");
    let key = tmp.path().join("k");
    suture_bundle::write_keypair(&key).expect("keypair");
    let run = |key_arg: &Path| {
        Command::new(env!("CARGO_BIN_EXE_patchgen"))
            .args(["build", "--kernel", "6.1.0-50-amd64", "x.patch", "-o"])
            .arg(tmp.path().join("out.bundle"))
            .arg("--key")
            .arg(key_arg)
            .output()
            .expect("run patchgen")
    };
    for bad in [key.with_extension("pub"), tmp.path().join("missing.key")] {
        let out = run(&bad);
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("--key") && stderr.contains("patchgen keygen"),
            "{stderr}"
        );
        assert!(
            !stderr.contains("applied the fix"),
            "built before checking the key: {stderr}"
        );
    }
}

/// The special-section entry sizes come from the target's own headers; for
/// Debian 6.1 x86-64 they are the structures' known sizes.
#[test]
fn entry_sizes_are_measured_in_the_target_headers() {
    let t = target();
    let tmp = tempfile::tempdir().expect("tmp");
    let sizes = patchgen::build::entry_sizes::from_headers(&t, tmp.path()).expect("measure");
    for (section, want) in [
        ("__bug_table", 12),
        ("__ex_table", 12),
        ("__jump_table", 16),
        (".altinstructions", 12),
        (".static_call_sites", 8),
        (".parainstructions", 16),
        (".orc_unwind", 6),
        ("__mcount_loc", 8),
        (".return_sites", 4),
    ] {
        assert_eq!(sizes.get(section), Some(want), "{section}");
    }
}

/// Two builds of a fix to an object the cache has never built, started at
/// the same moment: both record the object's command with kbuild in the
/// shared tree and need the record of what the target builds, and neither
/// may see the other's half-written files.
#[test]
fn parallel_builds_of_a_never_built_object_both_succeed() {
    let t = target();
    let rel = "fs/proc/version.c";
    // Forget the object, as a fresh cache has never built it, and the
    // record of what the target builds (both builds make it, one waits).
    for f in [
        "fs/proc/version.o",
        "fs/proc/.version.o.cmd",
        ".suture-kbuild/objects",
    ] {
        let _ = std::fs::remove_file(t.source.join(f));
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let start = std::sync::Arc::new(std::sync::Barrier::new(2));
    let builds: Vec<_> = (0..2)
        .map(|i| {
            let (t, start) = (t.clone(), start.clone());
            let dir = tmp.path().join(format!("build{i}"));
            std::thread::spawn(move || {
                std::fs::create_dir_all(&dir).expect("mkdir");
                let patch = make_patch(&t, &dir, rel, |s| {
                    s.replacen("return 0;", "seq_putc(m, ' ');\n\treturn 0;", 1)
                });
                let mut req = request(&t, &patch, &dir.join("work"));
                req.name = format!("test_parallel{i}");
                start.wait();
                build::build(&req, &mut |_| {}).map(|_| ())
            })
        })
        .collect();
    for (i, b) in builds.into_iter().enumerate() {
        let result = b.join().expect("the build thread panicked");
        assert!(
            result.is_ok(),
            "build {i} failed: {}",
            result.err().map(|e| e.to_string()).unwrap_or_default()
        );
    }
    assert!(t.source.join("fs/proc/.version.o.cmd").is_file());
}

/// A fix that only adds a function nothing calls has nothing to redirect:
/// the error names the new function.
#[test]
fn only_new_functions_are_named_when_nothing_can_be_redirected() {
    let t = target();
    let tmp = tempfile::tempdir().expect("tmp");
    let patch = make_patch(&t, tmp.path(), "fs/proc/cmdline.c", |s| {
        format!("{s}\nint suture_test_unused(int x);\nint suture_test_unused(int x) {{ return x * 7; }}\n")
    });
    let err = build::build(&request(&t, &patch, &tmp.path().join("work")), &mut |_| {})
        .expect_err("nothing calls the new function");
    assert!(
        matches!(&err, BuildError::NothingToRedirect { new_functions } if new_functions.iter().any(|f| f.ends_with("suture_test_unused"))),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("fs/proc/cmdline.o: suture_test_unused"),
        "{err}"
    );
}

/// A fix whose source needs declarations from files it does not change
/// (a header): the error says so and names what the compiler missed.
#[test]
fn a_fix_missing_its_header_change_names_what_is_undeclared() {
    let t = target();
    let tmp = tempfile::tempdir().expect("tmp");
    let patch = make_patch(&t, tmp.path(), "fs/proc/cmdline.c", |s| {
        s.replace(
            "seq_putc(m, '\\n');",
            "seq_putc(m, SUTURE_TEST_NEWLINE + m->suture_test_member);",
        )
    });
    let err = build::build(&request(&t, &patch, &tmp.path().join("work")), &mut |_| {})
        .expect_err("the fix uses declarations it does not add");
    let BuildError::FixIncomplete { missing, .. } = &err else {
        panic!("expected FixIncomplete, got {err}");
    };
    assert!(
        missing.iter().any(|m| m == "SUTURE_TEST_NEWLINE"),
        "{missing:?}"
    );
    assert!(
        missing
            .iter()
            .any(|m| m == "member suture_test_member of struct seq_file"),
        "{missing:?}"
    );
    assert!(
        err.to_string().contains("lacks changes to other files"),
        "{err}"
    );
}

/// A signing key made by `patchgen keygen` in `dir`: the secret key's path.
fn keygen(dir: &Path) -> PathBuf {
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

/// `patchgen build` as a corpus runner uses it: distinct exit statuses for
/// refused (4), nothing to patch (3) and built (0), and a JSON report with
/// each refusal's category, whatever the outcome.
#[test]
fn exit_status_and_json_report_tell_refused_nothing_and_built_apart() {
    let t = target();
    let tmp = tempfile::tempdir().expect("tmp");
    let bin = env!("CARGO_BIN_EXE_patchgen");
    let key = keygen(tmp.path());
    let run = |name: &str, edit: &dyn Fn(&str) -> String| {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let patch = make_patch(&t, &dir, "fs/proc/cmdline.c", edit);
        let report = dir.join("report.json");
        let out = Command::new(bin)
            .args(["build", "--kernel", &t.release])
            .arg(&patch)
            .arg("-o")
            .arg(dir.join(format!("{name}.bundle")))
            .arg("--key")
            .arg(&key)
            .arg("--report")
            .arg(&report)
            .output()
            .expect("patchgen build");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).expect("the report"))
                .expect("JSON");
        (out.status.code(), json)
    };
    // __init code changed: refused.
    let (code, json) = run("refused", &|s| {
        s.replace(
            "proc_create_single(\"cmdline\", 0,",
            "proc_create_single(\"cmdline\", 0444,",
        )
    });
    assert_eq!(code, Some(4), "{json}");
    assert_eq!(json["result"], "refused");
    assert_eq!(json["exit_code"], 4);
    assert_eq!(
        json["objects"][0]["report"]["refusals"][0]["category"], "init-code",
        "{json}"
    );
    // A comment only: nothing to patch.
    let (code, json) = run("nothing", &|s| format!("{s}/* a comment */\n"));
    assert_eq!(code, Some(3), "{json}");
    assert_eq!(json["result"], "nothing-to-patch");
    // A real change: built, with the object's changed function.
    let (code, json) = run("built", &|s| {
        s.replace("seq_putc(m, '\\n');", "seq_puts(m, \" fixed\\n\");")
    });
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(json["result"], "built");
    assert_eq!(
        json["objects"][0]["report"]["changed_functions"][0]["name"], "cmdline_proc_show",
        "{json}"
    );
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

/// The __init part of a fix left out with --skip-function: the run-time
/// part ships, and the bundle says what it does not fix; a name that
/// matches nothing is an error, never silently ignored.
#[test]
fn a_skipped_function_is_left_out_and_named_in_the_bundle() {
    let t = target();
    let tmp = tempfile::tempdir().expect("tmp");
    let bin = env!("CARGO_BIN_EXE_patchgen");
    let key = keygen(tmp.path());
    let patch = make_patch(&t, tmp.path(), "fs/proc/cmdline.c", |s| {
        s.replace(
            "proc_create_single(\"cmdline\", 0,",
            "proc_create_single(\"cmdline\", 0444,",
        )
        .replace("seq_putc(m, '\\n');", "seq_puts(m, \" fixed\\n\");")
    });
    let bundle = tmp.path().join("skip.bundle");
    let build = |skip: &str| {
        Command::new(bin)
            .args(["build", "--kernel", &t.release])
            .arg(&patch)
            .arg("-o")
            .arg(&bundle)
            .arg("--key")
            .arg(&key)
            .args(["--skip-function", skip])
            .output()
            .expect("patchgen build")
    };
    // Without the skip the __init change is refused; with it, it ships.
    let refused = build("cmdline_proc_show_typo");
    assert_eq!(refused.status.code(), Some(4));
    assert!(!bundle.exists());
    let out = build("proc_cmdline_init");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inspect = Command::new(bin)
        .arg("inspect")
        .arg(&bundle)
        .output()
        .expect("inspect");
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(text.contains("NOT fixed by this bundle"), "{text}");
    assert!(
        text.contains("proc_cmdline_init (fs/proc/cmdline.o)"),
        "{text}"
    );
    assert!(text.contains("cmdline_proc_show"), "{text}");
    // A name that matches no changed function is an error.
    std::fs::remove_file(&bundle).expect("rm");
    let typo_dir = tmp.path().join("typo");
    std::fs::create_dir_all(&typo_dir).expect("mkdir");
    let runtime_only = make_patch(&t, &typo_dir, "fs/proc/cmdline.c", |s| {
        s.replace("seq_putc(m, '\\n');", "seq_puts(m, \" fixed\\n\");")
    });
    let typo = Command::new(bin)
        .args(["build", "--kernel", &t.release])
        .arg(&runtime_only)
        .arg("-o")
        .arg(&bundle)
        .arg("--key")
        .arg(&key)
        .args(["--skip-function", "proc_cmdline_int"])
        .output()
        .expect("patchgen build");
    assert_eq!(typo.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&typo.stderr).contains("proc_cmdline_int"));
    assert!(!bundle.exists());
}
