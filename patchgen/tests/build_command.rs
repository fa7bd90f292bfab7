//! The `patchgen build` command and its signed bundle, against the pinned
//! target kernel's cache: reproducible bytes, the key checked first, exit
//! statuses and the JSON report, functions left out by name.

mod common;

use std::path::Path;
use std::process::Command;

use common::{keygen, make_patch, request, target};
use patchgen::build;

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
        bundle_version: 0,
        fixes_up_to: None,
        cve_published: [("CVE-2024-0001".to_string(), "2024-01-15".to_string())].into(),
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
        verified.manifest().cve_published["CVE-2024-0001"],
        "2024-01-15"
    );
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

/// `--cve-published`: a date for a CVE not given with --cve, a date that is
/// not a day, a CVE dated twice or a value without `=` are usage errors
/// (exit 2) naming the CVE, found before the key or the kernel is looked
/// at.
#[test]
fn bad_cve_publication_dates_are_usage_errors() {
    let tmp = tempfile::tempdir().expect("tmp");
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_patchgen"))
            .args(["build", "--kernel", "no-such-kernel", "x.patch", "-o"])
            .arg(tmp.path().join("out.bundle"))
            .arg("--key")
            .arg(tmp.path().join("missing.key"))
            .args(["--cve", "CVE-2024-0001"])
            .args(extra)
            .output()
            .expect("run patchgen")
    };
    let cases: [(&[&str], &[&str]); 5] = [
        (
            &["--cve-published", "CVE-2024-0002=2024-01-01"],
            &[
                "CVE-2024-0002 is not given with --cve",
                "--cve CVE-2024-0002",
            ],
        ),
        (
            &["--cve-published", "CVE-2024-0001=2023-02-29"],
            &["CVE-2024-0001", "2023-02-29", "not a calendar date"],
        ),
        (
            &["--cve-published", "CVE-2024-0001=1998-12-31"],
            &["CVE-2024-0001", "1999 to 9999"],
        ),
        (
            &[
                "--cve-published",
                "CVE-2024-0001=2024-01-01",
                "--cve-published",
                "CVE-2024-0001=2024-01-02",
            ],
            &["CVE-2024-0001 twice"],
        ),
        (&["--cve-published", "CVE-2024-0001"], &["CVE=YYYY-MM-DD"]),
    ];
    for (extra, wanted) in cases {
        let out = run(extra);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        for want in wanted {
            assert!(stderr.contains(want), "{extra:?}: no {want:?} in {stderr}");
        }
        assert!(stderr.starts_with("error: "), "{stderr}");
    }
    // A good date gets past the arguments to the key (exit 1).
    let out = run(&["--cve-published", "CVE-2024-0001=2024-02-29"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--key"), "{stderr}");
}

/// The dates given on the command line are signed in the manifest and
/// shown by `patchgen inspect`.
#[test]
fn cve_publication_dates_reach_the_bundle() {
    let t = target();
    let tmp = tempfile::tempdir().expect("tmp");
    let bin = env!("CARGO_BIN_EXE_patchgen");
    let key = keygen(tmp.path());
    let patch = make_patch(&t, tmp.path(), "fs/proc/cmdline.c", |s| {
        s.replace("seq_putc(m, '\\n');", "seq_puts(m, \" dated\\n\");")
    });
    let bundle = tmp.path().join("dated.bundle");
    let out = Command::new(bin)
        .args(["build", "--kernel", &t.release])
        .arg(&patch)
        .arg("-o")
        .arg(&bundle)
        .arg("--key")
        .arg(&key)
        .args(["--cve", "CVE-2024-0002", "--cve", "CVE-2024-0001"])
        .args(["--cve-published", "CVE-2024-0001=2024-01-15"])
        .output()
        .expect("patchgen build");
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
    assert!(
        text.contains(
            "cves: CVE-2024-0002 CVE-2024-0001\ncves published: CVE-2024-0001 2024-01-15\n"
        ),
        "{text}"
    );
    let bytes = std::fs::read(&bundle).expect("read");
    let manifest = suture_bundle::parse(&bytes)
        .expect("parse")
        .inspection()
        .manifest;
    assert_eq!(
        manifest.cve_published,
        [("CVE-2024-0001".to_string(), "2024-01-15".to_string())].into()
    );
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
