//! `patchd daemon` as a process, against a fake kernel tree (the hidden
//! `--kernel-root`): `--once` and its exit codes, the metrics it writes and
//! serves, and a clean stop on SIGTERM. Nothing here reaches a bundle that
//! could be loaded (only other kernels' bundles and refused files), so no
//! module is ever loaded, even as root. The daemon needs CAP_SYS_MODULE to
//! start (and then drops all else): without it (not root) these tests check
//! the refusal instead.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use suture_bundle::SigningKey;

use crate::bundle_cli::{manifest, text, Host};
use crate::cli::has_sys_module;

/// A host with a config file pointing patchd at its directories.
fn daemon_host() -> (Host, PathBuf) {
    let key = SigningKey::from_bytes(&[7; 32]);
    let host = Host::new(&key);
    let base = host.dir.path();
    std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let config = base.join("patchd.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\nkeys_dir = {:?}\nwatch_dir = {:?}\nkmod = {:?}\n\n\
             [metrics]\ntextfile_dir = {:?}\nlisten = \"127.0.0.1:0\"\n",
            base.join("state").display().to_string(),
            host.keys().display().to_string(),
            base.join("watch").display().to_string(),
            base.join("suture.ko").display().to_string(),
            base.join("textfile").display().to_string(),
        ),
    )
    .expect("write config");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::fs::create_dir(base.join("textfile")).expect("mkdir");
    (host, config)
}

fn daemon_command(host: &Host, config: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_patchd"));
    command
        .arg("--config")
        .arg(config)
        .arg("daemon")
        .args(extra)
        .arg("--kernel-root")
        .arg(host.dir.path().join("root"))
        .env("RUST_LOG", "info")
        .env_remove("NOTIFY_SOCKET");
    command
}

fn run_once(host: &Host, config: &Path) -> Output {
    daemon_command(host, config, &["--once"])
        .output()
        .expect("run patchd daemon --once")
}

#[test]
fn once_exits_0_when_all_went_well_and_1_when_a_file_was_refused() {
    let (host, config) = daemon_host();
    let output = run_once(&host, &config);
    if !has_sys_module() {
        assert_eq!(output.status.code(), Some(1), "{}", text(&output));
        assert!(text(&output)
            .contains("patchd daemon changes the running kernel and needs CAP_SYS_MODULE"));
        return;
    }
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let log = text(&output);
    assert!(
        log.contains("daemon starting") && log.contains("done (--once)"),
        "{log}"
    );
    // Metrics written once at start (no endpoint with --once).
    let metrics = std::fs::read_to_string(host.dir.path().join("textfile/suture.prom"))
        .expect("metrics written");
    assert!(
        metrics.contains("suture_patches_applied 0\n")
            && metrics.contains("suture_patches_pending 0\n"),
        "{metrics}"
    );
    assert!(!log.contains("metrics: serving"), "{log}");
    let watch = host.dir.path().join("watch");
    assert!(watch.is_dir(), "the watch directory is created");

    // Another kernel's bundle is skipped without a word in the audit log.
    let key = SigningKey::from_bytes(&[7; 32]);
    let mut other = manifest();
    other.target.build_id = "00".repeat(20);
    let bundle = host.bundle("other.bundle", &other, &key);
    std::fs::rename(&bundle, watch.join("other.bundle")).expect("mv");
    let output = run_once(&host, &config);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let audit = host.dir.path().join("state/audit.log");
    assert!(!audit.exists() || std::fs::read(&audit).expect("read").is_empty());

    // A symbolic link is refused, and --once says so with exit 1.
    std::os::unix::fs::symlink(watch.join("other.bundle"), watch.join("link.bundle"))
        .expect("symlink");
    let output = run_once(&host, &config);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let log = text(&output);
    assert!(
        log.contains("link.bundle is a symbolic link")
            && log.contains("could not be applied (link.bundle)"),
        "{log}"
    );
}

/// Kills the child if the test fails before it exits.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_daemon_serves_metrics_and_stops_cleanly_on_sigterm() {
    if !has_sys_module() {
        return; // the refusal is checked above
    }
    let (host, config) = daemon_host();
    let child = daemon_command(&host, &config, &[])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start patchd daemon");
    let mut child = Reaper(child);
    let stderr = child.0.stderr.take().expect("stderr");
    let (lines, log) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let wait_for = |seen: &mut Vec<String>, wanted: &str| {
        // A deadline that fails loudly, not a claim about speed.
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(line) = log.recv_timeout(Duration::from_millis(100)) {
                let found = line.contains(wanted);
                seen.push(line);
                if found {
                    return true;
                }
            }
        }
        false
    };
    assert!(wait_for(&mut seen, "ready: watching"), "{seen:#?}");
    let address = seen
        .iter()
        .find_map(|line| line.split("serving http://").nth(1))
        .and_then(|rest| rest.split('/').next())
        .expect("the metrics address is logged")
        .to_owned();
    let mut stream = std::net::TcpStream::connect(&address).expect("connect");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    assert!(
        answer.starts_with("HTTP/1.1 200 OK") && answer.contains("suture_patches_applied 0\n"),
        "{answer}"
    );
    let pid = Pid::from_raw(i32::try_from(child.0.id()).expect("pid"));
    kill(pid, Signal::SIGTERM).expect("send SIGTERM");
    assert!(wait_for(&mut seen, "stopping on SIGTERM"), "{seen:#?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "patchd did not exit: {seen:#?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{seen:#?}");
}
