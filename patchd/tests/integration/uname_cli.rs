//! `patchd uname` and `patchd cves` as the binary runs them against a fake
//! kernel tree (the hidden `--kernel-root`): on a machine where patchd has
//! applied nothing they show the running kernel and no CVE, and create
//! nothing.

use std::path::Path;
use std::process::{Command, Output};

fn patchd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_patchd"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run patchd")
}

fn kernel_root(dir: &Path) -> String {
    let sys = dir.join("proc/sys/kernel");
    std::fs::create_dir_all(&sys).expect("mkdir");
    std::fs::write(sys.join("osrelease"), "6.1.0-50-amd64\n").expect("write");
    std::fs::write(
        sys.join("version"),
        "#1 SMP PREEMPT_DYNAMIC Debian 6.1.176-1 (2025-06-13)\n",
    )
    .expect("write");
    std::fs::write(sys.join("hostname"), "server1\n").expect("write");
    dir.display().to_string()
}

#[test]
fn without_a_state_the_running_kernel_is_shown_and_nothing_is_created() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = kernel_root(tmp.path());
    let state = tmp.path().join("no-state");
    let state = state.to_str().expect("utf-8");
    let common = ["--kernel-root", root.as_str(), "--state-dir", state];

    let out = patchd(&[&["uname"][..], &common].concat());
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "6.1.0-50-amd64\n");

    let out = patchd(&[&["uname", "-a"][..], &common].concat());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "Linux server1 6.1.0-50-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.176-1 (2025-06-13) {} GNU/Linux\n",
            std::env::consts::ARCH
        )
    );

    let out = patchd(&[&["uname", "--json"][..], &common].concat());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["running"]["package_version"], "6.1.176-1");
    assert_eq!(json["effective"], json["running"]);
    assert_eq!(json["raised_by"], serde_json::Value::Null);

    let out = patchd(&[&["cves", "--openvex"][..], &common].concat());
    assert!(out.status.success(), "{out:?}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["@context"], "https://openvex.dev/ns/v0.2.0");
    assert_eq!(doc["statements"].as_array().map(Vec::len), Some(0));

    let out = patchd(&[&["cves"][..], &common].concat());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no CVE is fixed"));

    // Read-only: no state directory appeared.
    assert!(!Path::new(state).exists());
}

#[test]
fn uname_options_are_exclusive() {
    let out = patchd(&["uname", "-a", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// `patchd status --check`: the verdict line and the monitoring code.
#[test]
fn status_check_exits_with_the_monitoring_code() {
    use std::os::unix::fs::PermissionsExt;
    let key = suture_bundle::generate_signing_key().expect("key");
    let host = crate::bundle_cli::Host::new(&key);
    let dir = host.dir.path();
    let root = dir.join("root");
    std::fs::write(root.join("proc/modules"), "").expect("write");
    let state = dir.join("state");
    std::fs::create_dir(&state).expect("mkdir");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let watch = dir.join("watch");
    std::fs::create_dir(&watch).expect("mkdir");
    let config = dir.join("patchd.toml");
    std::fs::write(&config, format!("watch_dir = \"{}\"\n", watch.display())).expect("write");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let run = |state: &Path| {
        patchd(&[
            "--config",
            config.to_str().expect("utf-8"),
            "status",
            "--check",
            "--kernel-root",
            root.to_str().expect("utf-8"),
            "--state-dir",
            state.to_str().expect("utf-8"),
        ])
    };

    let out = run(&state);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "OK: no bundle applied\n"
    );

    std::fs::write(watch.join("next.bundle"), b"not applied yet").expect("write");
    let out = run(&state);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout)
        .starts_with("WARNING: 1 bundle in the watch directory not applied"));

    let out = run(&dir.join("no-state"));
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("UNKNOWN: "));
}

/// `patchd updates` without a repository: the watch directory's bundles
/// not applied.
#[test]
fn updates_lists_the_watch_directorys_bundles_not_applied() {
    use std::os::unix::fs::PermissionsExt;
    let key = suture_bundle::generate_signing_key().expect("key");
    let host = crate::bundle_cli::Host::new(&key);
    let dir = host.dir.path();
    let watch = dir.join("watch");
    std::fs::create_dir(&watch).expect("mkdir");
    std::fs::write(watch.join("next.bundle"), b"not applied yet").expect("write");
    let config = dir.join("patchd.toml");
    std::fs::write(&config, format!("watch_dir = \"{}\"\n", watch.display())).expect("write");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = patchd(&[
        "--config",
        config.to_str().expect("utf-8"),
        "updates",
        "--kernel-root",
        dir.join("root").to_str().expect("utf-8"),
        "--state-dir",
        dir.join("no-state").to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "watch directory: next.bundle (not applied)\nrepository: none configured\n"
    );
}
