//! Malformed and wrong inputs give errors, never panics; and the CLI's exit
//! codes say changed (0), nothing changed (3), refused (4), error (1).

use std::path::Path;
use std::process::Command;

use patchgen::ObjectFile;

fn sample_object(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    sample_object_with(dir, name, body, &["-g"])
}

fn sample_object_with(dir: &Path, name: &str, body: &str, extra: &[&str]) -> std::path::PathBuf {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, body).expect("write source");
    let out = src.with_extension("o");
    let ok = Command::new("cc")
        .args(extra)
        .args([
            "-c",
            "-O2",
            "-ffunction-sections",
            "-fdata-sections",
            "-pg",
            "-mfentry",
            "-mrecord-mcount",
            "-fno-pic",
            "-mcmodel=kernel",
        ])
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .status()
        .expect("cc")
        .success();
    assert!(ok);
    out
}

#[test]
fn truncated_and_corrupted_objects_are_errors_not_panics() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let obj = sample_object(
        tmp.path(),
        "s",
        "int f(int x) { return x + 1; }\nconst char *s(void) { return \"str\"; }\n",
    );
    let bytes = std::fs::read(&obj).expect("read");
    assert!(ObjectFile::parse(&obj, &bytes).is_ok());
    for len in 0..bytes.len() {
        let _ = ObjectFile::parse(&obj, &bytes[..len]);
    }
    // Flip every byte of the header and section headers, one at a time.
    let shoff = usize::try_from(u64::from_le_bytes(
        bytes[0x28..0x30].try_into().expect("8 bytes"),
    ))
    .expect("shoff");
    for i in (0..64).chain(shoff..bytes.len()) {
        let mut bad = bytes.clone();
        bad[i] ^= 0xff;
        let _ = ObjectFile::parse(&obj, &bad);
    }
    // A pseudo-random walk over the whole file.
    let mut x: u32 = 0x1234_5678;
    for _ in 0..2000 {
        let mut bad = bytes.clone();
        for _ in 0..4 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let at = usize::try_from(x).unwrap_or(0) % bad.len();
            bad[at] = bad[at].wrapping_add(u8::try_from(x >> 24).unwrap_or(1));
        }
        if let Ok(o) = ObjectFile::parse(&obj, &bad) {
            let _ = patchgen::diff(&o, &o, &patchgen::DiffOptions::default());
        }
    }
}

#[test]
fn wrong_kinds_are_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let obj = sample_object(tmp.path(), "w", "int f(int x) { return x; }\n");
    let mut bytes = std::fs::read(&obj).expect("read");
    bytes[0x12] = 0x3e + 1; // e_machine
    let err = ObjectFile::parse(&obj, &bytes)
        .expect_err("wrong machine")
        .to_string();
    assert!(err.contains("x86-64 relocatable"), "{err}");
    let err = ObjectFile::parse(&obj, b"#!/bin/sh\necho not elf\n")
        .expect_err("text")
        .to_string();
    assert!(
        err.contains("not a valid ELF") || err.contains("not ELF"),
        "{err}"
    );
    let exe = Path::new("/bin/true");
    if exe.exists() {
        let err = ObjectFile::read(exe).expect_err("executable").to_string();
        assert!(err.contains("not relocatable"), "{err}");
    }
}

#[test]
fn cli_exit_codes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = sample_object(tmp.path(), "a", "int f(int x) { return x + 1; }\n");
    let b = sample_object(tmp.path(), "b", "int f(int x) { return x + 22; }\n");
    let d = sample_object(
        tmp.path(),
        "d",
        "int table[2] = { 1, 2 };\nint f(int x) { return table[x & 1]; }\n",
    );
    let e = sample_object(
        tmp.path(),
        "e",
        "int table[2] = { 1, 3 };\nint f(int x) { return table[x & 1]; }\n",
    );
    let out = tmp.path().join("out.o");
    let run = |o: &Path, f: &Path| {
        Command::new(env!("CARGO_BIN_EXE_patchgen"))
            .args(["diff"])
            .arg(o)
            .arg(f)
            .arg("-o")
            .arg(&out)
            .output()
            .expect("run patchgen")
    };
    assert_eq!(run(&a, &b).status.code(), Some(0));
    assert!(out.exists());
    std::fs::remove_file(&out).expect("rm");
    // Without DWARF the struct layouts cannot be checked: refused, saying so.
    let (na, nb) = (
        sample_object_with(tmp.path(), "na", "int f(int x) { return x + 1; }\n", &[]),
        sample_object_with(tmp.path(), "nb", "int f(int x) { return x + 22; }\n", &[]),
    );
    let nodwarf = run(&na, &nb);
    assert_eq!(nodwarf.status.code(), Some(4));
    let err = String::from_utf8_lossy(&nodwarf.stderr);
    assert!(err.contains("no DWARF") && err.contains("-g"), "{err}");
    assert!(!out.exists());
    let same = run(&a, &a);
    assert_eq!(same.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&same.stderr).contains("nothing changed"));
    assert!(!out.exists(), "nothing changed must not write an object");
    let refused = run(&d, &e);
    assert_eq!(refused.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("data object table"));
    let missing = run(&tmp.path().join("nope.o"), &a);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.o"));
}

/// Found by the fuzzer (patchgen/fuzz): a section alignment of 2^52, and a
/// NOBITS section of petabytes, made the output writer try to allocate them.
/// Both are refused as corrupt when read.
#[test]
fn regression_fuzz_huge_alignment_or_nobits_size_is_refused_not_allocated() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    for entry in std::fs::read_dir(&dir).expect("regressions") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read");
        match ObjectFile::parse(&path, &bytes) {
            Ok(o) => {
                let _ = patchgen::diff(&o, &o, &patchgen::DiffOptions::default());
            }
            Err(e) => assert!(
                e.to_string().contains("x86-64") || e.to_string().contains("ELF"),
                "{e}"
            ),
        }
    }
}

/// `__LINE__` passed as an immediate moves when a fix adds lines above it:
/// with the fix's hunks (`--fix`, `--source`) that is not a change.
#[test]
fn line_churn_in_immediates_is_not_a_change_given_the_fix() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let body = "extern void report(const char *f, int line);\n\
                int checked(int x) { if (x < 0) report(\"checked\", __LINE__); return x; }\n";
    let a_src = tmp.path().join("a/lib/churn.c");
    let b_src = tmp.path().join("b/lib/churn.c");
    for (p, text) in [
        (&a_src, body.to_string()),
        (&b_src, format!("/* a fix */\n/* two lines */\n{body}")),
    ] {
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
    let a = sample_object(
        tmp.path(),
        "churn_a",
        &std::fs::read_to_string(&a_src).expect("read"),
    );
    let b = sample_object(
        tmp.path(),
        "churn_b",
        &std::fs::read_to_string(&b_src).expect("read"),
    );
    let patch = tmp.path().join("fix.patch");
    let diff = Command::new("diff")
        .args(["-u", "a/lib/churn.c", "b/lib/churn.c"])
        .current_dir(tmp.path())
        .output()
        .expect("diff");
    std::fs::write(&patch, &diff.stdout).expect("write patch");
    let out = tmp.path().join("out.o");
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_patchgen"))
            .arg("diff")
            .arg(&a)
            .arg(&b)
            .arg("-o")
            .arg(&out)
            .args(extra)
            .output()
            .expect("run patchgen")
    };
    assert_eq!(
        run(&[]).status.code(),
        Some(0),
        "without the fix the moved line is a change"
    );
    let fix = patch.to_string_lossy().into_owned();
    let with_fix = run(&["--fix", &fix, "--source", "lib/churn.c"]);
    assert_eq!(
        with_fix.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&with_fix.stderr)
    );
    let wrong = run(&["--fix", &fix, "--source", "lib/other.c"]);
    assert_eq!(wrong.status.code(), Some(1));
}
