//! The daemon against the fake kernel: the start-up work (boot re-apply,
//! the watch directory), each file rule, the loop (inotify, the state lock,
//! stopping) and a repository poll through to an applied bundle.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use super::test_server::{Route, TestServer};
use super::*;
use crate::config::RepositorySettings;
use crate::fake_kernel::FakeKernel;
use crate::ownership::default_owners;
use crate::testkit::{bundle_bytes, manifest, signing_key, stranger_key, TestHost};
use crate::transaction::apply::apply;
use crate::transaction::audit::{AuditAction, AuditRecord, AuditResult};
use crate::transaction::state::{Phase, StateDir};
use crate::verify::sha256_hex;

/// The test host's settings, with a watch directory beside the state.
pub(super) fn settings(host: &TestHost) -> Settings {
    Settings {
        state_dir: host.path().join("state"),
        keys_dir: host.path().join("keys"),
        kmod: host.path().join("suture.ko"),
        watch_dir: host.path().join("watch"),
        // Tests never write to the host's system log.
        audit_syslog: None,
        ..Settings::default()
    }
}

pub(super) fn daemon<'k>(
    host: &'k TestHost,
    kernel: &'k FakeKernel,
    settings: Settings,
) -> Daemon<'k> {
    Daemon::new(
        kernel,
        &host.clock,
        settings,
        default_owners(),
        DaemonOptions::default(),
    )
    .expect("daemon starts")
}

/// Writes a bundle of `id` (this kernel, the trusted key) into the watch
/// directory as `name`.
pub(super) fn drop_bundle(host: &TestHost, name: &str, id: &str) -> Vec<u8> {
    let bytes = bundle_bytes(&manifest(id), &signing_key());
    write_watched(host, name, &bytes);
    bytes
}

fn write_watched(host: &TestHost, name: &str, bytes: &[u8]) {
    let dir = host.path().join("watch");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join(name), bytes).expect("write");
}

/// A bundle of `id` made for another kernel build.
fn other_kernel_bundle(id: &str) -> Vec<u8> {
    let mut other = manifest(id);
    other.target.build_id = "00".repeat(20);
    bundle_bytes(&other, &signing_key())
}

pub(super) fn audit_lines(host: &TestHost) -> Vec<AuditRecord> {
    let text = std::fs::read_to_string(host.path().join("state/audit.log")).unwrap_or_default();
    text.lines()
        .map(|line| serde_json::from_str(line).expect("audit record"))
        .collect()
}

pub(super) fn state_of(host: &TestHost) -> crate::transaction::state::State {
    let dir = StateDir::open(&host.path().join("state"), &default_owners()).expect("open");
    dir.load().expect("load")
}

#[test]
fn start_applies_the_watch_directory_bundles_for_this_kernel_only() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    drop_bundle(&host, "fix_a.bundle", "fix_a");
    write_watched(&host, "fix_other.bundle", &other_kernel_bundle("fix_other"));
    // Partial and temporary names, and other files, are not bundles.
    drop_bundle(&host, ".fix_b.bundle.part", "fix_b");
    drop_bundle(&host, "fix_c.bundle.part", "fix_c");
    drop_bundle(&host, ".fix_d.bundle", "fix_d");
    write_watched(&host, "README", b"not a bundle");

    let mut daemon = daemon(&host, &kernel, settings(&host));
    let summary = daemon.run_once().expect("runs");
    assert_eq!(summary.applied, ["fix_a"]);
    assert!(summary.is_clean(), "{summary:?}");
    assert_eq!(kernel.modules_now(), ["suture", "fix_a"]);
    assert_eq!(kernel.patch_enabled("fix_a"), Some(true));
    // The other kernel's bundle left no trace: no refusal in the audit log.
    let lines = audit_lines(&host);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].bundle_id.as_deref(), Some("fix_a"));
    assert_eq!(lines[0].result, AuditResult::Ok);
    // The daemon never changes the watch directory.
    assert!(host.path().join("watch/fix_a.bundle").exists());
}

#[test]
fn a_second_start_finds_everything_applied_and_changes_nothing() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    drop_bundle(&host, "fix_a.bundle", "fix_a");
    daemon(&host, &kernel, settings(&host))
        .run_once()
        .expect("first");
    kernel.clear_calls();
    let summary = daemon(&host, &kernel, settings(&host))
        .run_once()
        .expect("second");
    assert_eq!(summary, Summary::default());
    assert!(kernel.changes().is_empty());
    assert_eq!(audit_lines(&host).len(), 1);
}

#[test]
fn boot_reapply_restores_lost_bundles_and_leaves_other_kernels_bundles_lost() {
    let host = TestHost::new();
    // Before the reboot: fix_a applied on this kernel, fix_old on an older
    // build of it.
    {
        let kernel = TestHost::kernel();
        let mut session = host.session(&kernel);
        apply(&mut session, &[host.bundle("fix_a")]).expect("applies");
    }
    {
        let old =
            TestHost::kernel().with_identity(crate::fake_kernel::FAKE_RELEASE, &"00".repeat(20));
        let path = host.path().join("in/fix_old.bundle");
        std::fs::write(&path, other_kernel_bundle("fix_old")).expect("write");
        let mut session = host.session(&old);
        // The old kernel has no suture loaded yet, and a stale companion
        // from the fixture kallsyms is fine for the fake.
        apply(&mut session, &[path]).expect("applies on the old kernel");
    }
    // The original files are gone; only the copies in the state remain.
    std::fs::remove_dir_all(host.path().join("in")).expect("rm");

    let rebooted = TestHost::kernel();
    let mut daemon = daemon(&host, &rebooted, settings(&host));
    let summary = daemon.run_once().expect("runs");
    assert_eq!(summary.reapplied, ["fix_a"]);
    assert!(summary.is_clean(), "{summary:?}");
    assert_eq!(rebooted.patch_enabled("fix_a"), Some(true));
    assert_eq!(rebooted.patch_enabled("fix_old"), None);

    let state = state_of(&host);
    assert_eq!(state.get("fix_a").map(|r| r.phase), Some(Phase::Applied));
    assert_eq!(state.get("fix_old").map(|r| r.phase), Some(Phase::Lost));
    assert!(host.path().join("state/applied/fix_old.bundle").exists());
    let lines = audit_lines(&host);
    let last = lines.last().expect("a line");
    assert_eq!(last.bundle_id.as_deref(), Some("fix_a"));
    assert_eq!(
        (last.action, last.result),
        (AuditAction::Apply, AuditResult::Ok)
    );
    assert!(last
        .detail
        .as_deref()
        .is_some_and(|d| d.contains("re-applied")));
}

#[test]
fn a_failed_boot_reapply_is_reported_and_the_bundle_stays_lost() {
    let host = TestHost::new();
    {
        let kernel = TestHost::kernel();
        let mut session = host.session(&kernel);
        apply(&mut session, &[host.bundle("fix_a")]).expect("applies");
    }
    // Its file is in the watch directory too: it must not be applied a
    // second way while it is recorded as lost.
    std::fs::create_dir_all(host.path().join("watch")).expect("mkdir");
    std::fs::copy(
        host.path().join("in/fix_a.bundle"),
        host.path().join("watch/fix_a.bundle"),
    )
    .expect("copy");
    let rebooted = TestHost::kernel().busy_on_enable("fix_a", u32::MAX);
    let summary = daemon(&host, &rebooted, settings(&host))
        .run_once()
        .expect("runs");
    assert_eq!(summary.failed, ["fix_a"]);
    assert!(!summary.is_clean());
    assert_eq!(rebooted.patch_enabled("fix_a"), None);
    assert_eq!(
        state_of(&host).get("fix_a").map(|r| r.phase),
        Some(Phase::Lost)
    );
    let failures = audit_lines(&host)
        .iter()
        .filter(|l| l.result != AuditResult::Ok)
        .count();
    assert_eq!(
        failures, 1,
        "one failed apply, no refusal of the watched file"
    );
}

#[test]
fn a_failing_bundle_is_not_tried_again_until_the_file_changes() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let untrusted = bundle_bytes(&manifest("fix_a"), &stranger_key());
    write_watched(&host, "fix_a.bundle", &untrusted);
    let mut daemon = daemon(&host, &kernel, settings(&host));
    let summary = daemon.run_once().expect("runs");
    assert_eq!(summary.failed, ["fix_a.bundle"]);
    assert_eq!(audit_lines(&host).len(), 1);
    assert_eq!(audit_lines(&host)[0].result, AuditResult::Refused);
    assert!(daemon.memory.failed.contains_key(&sha256_hex(&untrusted)));

    // The same bytes again (another close-write of the same file): skipped.
    let mut session = daemon.session().expect("opens").expect("unlocked");
    let changed = daemon.apply_files(&mut session, [OsString::from("fix_a.bundle")]);
    assert!(!changed);
    assert_eq!(audit_lines(&host).len(), 1, "no new attempt");

    // The file changes: tried again, and applied.
    drop_bundle(&host, "fix_a.bundle", "fix_a");
    let changed = daemon.apply_files(&mut session, [OsString::from("fix_a.bundle")]);
    assert!(changed);
    assert_eq!(kernel.patch_enabled("fix_a"), Some(true));
    assert_eq!(daemon.summary().applied, ["fix_a"]);
}

#[test]
fn a_symlink_is_refused_never_followed() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let target = host.bundle("fix_a");
    std::fs::create_dir_all(host.path().join("watch")).expect("mkdir");
    std::os::unix::fs::symlink(&target, host.path().join("watch/fix_a.bundle")).expect("symlink");
    let summary = daemon(&host, &kernel, settings(&host))
        .run_once()
        .expect("runs");
    assert_eq!(summary.failed, ["fix_a.bundle"]);
    assert!(kernel.changes().is_empty());
    assert!(audit_lines(&host).is_empty());
}

#[test]
fn a_bundle_waits_for_its_dependency_in_the_same_directory() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let mut dependent = manifest("fix_b");
    dependent.dependencies = vec!["fix_a".to_owned()];
    // Sorted by name, the dependent comes first.
    write_watched(
        &host,
        "a_fix_b.bundle",
        &bundle_bytes(&dependent, &signing_key()),
    );
    drop_bundle(&host, "b_fix_a.bundle", "fix_a");
    let summary = daemon(&host, &kernel, settings(&host))
        .run_once()
        .expect("runs");
    assert_eq!(summary.applied, ["fix_a", "fix_b"]);
    assert!(summary.is_clean(), "{summary:?}");
    assert_eq!(kernel.patch_enabled("fix_b"), Some(true));
}

/// Counts refreshes and what the state held at each.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Vec<String>>>>);

impl Observer for Recorder {
    fn refresh(&mut self, session: &Session<'_>, _summary: &Summary) {
        let ids = session
            .state()
            .bundles
            .iter()
            .map(|b| b.id.clone())
            .collect();
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(ids);
    }
}

impl Recorder {
    fn refreshes(&self) -> Vec<Vec<String>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Stops the loop when dropped, so a failed assertion in the test thread
/// ends the test instead of leaving the daemon's thread running.
pub(super) struct StopOnDrop<'a>(pub(super) &'a signals::StopHandle);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// How long a test waits for something the daemon's thread must do: a
/// deadline that fails the test loudly when it is missed, never a claim
/// about speed. A loaded machine may take seconds; a missing wake-up (an
/// arrival left to the next poll, a timer a day late) takes far longer.
/// Timings belong in benchmarks (the VM check prints the daemon's as a
/// figure).
pub(super) const DEADLINE: Duration = Duration::from_secs(60);

/// Waits for `done`, at most [`DEADLINE`]; fails the test naming `what`
/// when it is missed.
#[track_caller]
pub(super) fn wait_for(what: &str, done: impl Fn() -> bool) {
    assert!(
        eventually(DEADLINE, done),
        "{what}: not done within {DEADLINE:?}"
    );
}

/// Waits up to `limit` for `done`, checking every 10 ms.
pub(super) fn eventually(limit: Duration, done: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    done()
}

#[test]
fn the_loop_applies_arrivals_waits_for_the_lock_and_stops() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let recorder = Recorder::default();
    let (stop, handle) = Stop::pair().expect("stop pair");
    std::fs::create_dir_all(host.path().join("watch")).expect("mkdir");
    let watch = host.path().join("watch");
    let summary = std::thread::scope(|scope| {
        let observer = recorder.clone();
        let running = scope.spawn(|| {
            let mut daemon = daemon(&host, &kernel, settings(&host));
            daemon.add_observer(Box::new(observer));
            daemon.run(&stop)
        });
        let stopper = StopOnDrop(&handle);
        wait_for("the metrics refreshed at start", || {
            recorder.refreshes().len() == 1
        });

        // Written in place: applied on IN_CLOSE_WRITE (there is no
        // repository to poll: nothing else would bring it in).
        drop_bundle(&host, "fix_a.bundle", "fix_a");
        wait_for("fix_a applied on IN_CLOSE_WRITE", || {
            kernel.patch_enabled("fix_a") == Some(true)
        });

        // A partial file is ignored until it is renamed: IN_MOVED_TO.
        let bytes = bundle_bytes(&manifest("fix_b"), &signing_key());
        std::fs::write(watch.join(".fix_b.bundle.part"), &bytes).expect("write");
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(kernel.patch_enabled("fix_b"), None);
        std::fs::rename(watch.join(".fix_b.bundle.part"), watch.join("fix_b.bundle")).expect("mv");
        wait_for("fix_b applied on IN_MOVED_TO", || {
            kernel.patch_enabled("fix_b") == Some(true)
        });

        // Another patchd holds the lock: the arrival waits, then goes in.
        // (The daemon may still be finishing fix_b's batch: wait for it.)
        let state = host.path().join("state");
        let lock = Mutex::new(None);
        wait_for("the test took the state lock", || {
            let mut held = lock.lock().unwrap_or_else(PoisonError::into_inner);
            if held.is_none() {
                *held = StateDir::open(&state, &default_owners()).ok();
            }
            held.is_some()
        });
        drop_bundle(&host, "fix_c.bundle", "fix_c");
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(kernel.patch_enabled("fix_c"), None);
        drop(lock);
        wait_for("fix_c applied once the lock was free", || {
            kernel.patch_enabled("fix_c") == Some(true)
        });

        drop(stopper);
        running.join().expect("no panic")
    })
    .expect("stops cleanly");
    assert_eq!(summary.applied, ["fix_a", "fix_b", "fix_c"]);
    let refreshes = recorder.refreshes();
    assert_eq!(refreshes.first(), Some(&vec![]), "told at start");
    assert_eq!(
        refreshes.last(),
        Some(&vec![
            "fix_a".to_owned(),
            "fix_b".to_owned(),
            "fix_c".to_owned()
        ])
    );
}

#[test]
fn a_removed_watch_directory_stops_the_loop_with_an_error() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let (stop, handle) = Stop::pair().expect("stop pair");
    let watch = host.path().join("watch");
    let result = std::thread::scope(|scope| {
        let running = scope.spawn(|| daemon(&host, &kernel, settings(&host)).run(&stop));
        // Only for a failure below: the loop ends on the removal itself.
        let _stopper = StopOnDrop(&handle);
        wait_for("the daemon created the watch directory", || watch.exists());
        // Let the loop start waiting, then take the directory away.
        std::thread::sleep(Duration::from_millis(100));
        std::fs::remove_dir(&watch).expect("rmdir");
        running.join().expect("no panic")
    });
    assert!(
        matches!(result, Err(DaemonError::Watch(WatchError::Gone { .. }))),
        "{result:?}"
    );
}

#[test]
fn once_polls_the_repository_and_applies_what_it_brought() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let server = TestServer::start();
    let fix_a = bundle_bytes(&manifest("fix_a"), &signing_key());
    let other = other_kernel_bundle("fix_other");
    let entry = |name: &str, bytes: &[u8], build_id: &str| {
        serde_json::json!({
            "name": name,
            "sha256": sha256_hex(bytes),
            "size": bytes.len(),
            "target": { "kernel_release": crate::fake_kernel::FAKE_RELEASE, "build_id": build_id },
        })
    };
    let index = serde_json::json!({
        "version": 1,
        "bundles": [
            entry("fix_a-6.1.bundle", &fix_a, crate::fake_kernel::FAKE_BUILD_ID),
            entry("fix_other-6.1.bundle", &other, &"00".repeat(20)),
        ]
    });
    server.route(
        "index.json",
        Route::Index {
            body: serde_json::to_vec(&index).expect("json"),
            etag: "\"1\"".to_owned(),
            last_modified: "Wed, 21 Oct 2026 07:28:00 GMT".to_owned(),
        },
    );
    server.route("fix_a-6.1.bundle", Route::File(fix_a));
    let mut settings = settings(&host);
    settings.repository = Some(RepositorySettings {
        base_url: server.base_url.clone(),
        interval: Duration::from_secs(3600),
        jitter: Duration::from_secs(300),
        timeout: Duration::from_secs(10),
        max_poll_files: crate::config::DEFAULT_MAX_POLL_FILES,
        max_poll_bytes: crate::config::DEFAULT_MAX_POLL_BYTES,
        ca_file: None,
        ca_pem: None,
    });

    let summary = daemon(&host, &kernel, settings.clone())
        .run_once()
        .expect("runs");
    assert_eq!(summary.downloaded, 1);
    assert_eq!(summary.applied, ["fix_a"]);
    assert!(summary.is_clean(), "{summary:?}");
    assert!(host.path().join("watch/fix_a-6.1.bundle").exists());
    assert_eq!(
        server.log(),
        [
            ("index.json".to_owned(), 200),
            ("fix_a-6.1.bundle".to_owned(), 200)
        ]
    );

    // --no-repository: nothing is asked of the server.
    let no_repository = DaemonOptions { repository: false };
    Daemon::new(
        &kernel,
        &host.clock,
        settings,
        default_owners(),
        no_repository,
    )
    .expect("starts")
    .run_once()
    .expect("runs");
    assert_eq!(server.log().len(), 2);
}

#[test]
fn an_unsafe_watch_directory_is_refused_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let watch = host.path().join("watch");
    std::fs::create_dir(&watch).expect("mkdir");
    std::fs::set_permissions(&watch, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let error = Daemon::new(
        &kernel,
        &host.clock,
        settings(&host),
        default_owners(),
        DaemonOptions::default(),
    )
    .expect_err("world-writable");
    assert!(
        crate::error_text(&error).contains("chmod go-w"),
        "{}",
        crate::error_text(&error)
    );
    assert!(Path::new(&watch).exists());
}

#[test]
fn metrics_are_written_at_start_and_after_each_change_with_what_is_pending() {
    use crate::daemon::exporter::MetricsExporter;
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let textfile = host.path().join("textfile");
    std::fs::create_dir(&textfile).expect("mkdir");
    drop_bundle(&host, "fix_a.bundle", "fix_a");
    // fix_b is refused (an untrusted signer): pending.
    write_watched(
        &host,
        "fix_b.bundle",
        &bundle_bytes(&manifest("fix_b"), &stranger_key()),
    );
    let mut daemon = daemon(&host, &kernel, settings(&host));
    let exporter = MetricsExporter::new(Some(textfile.clone()), None, daemon.running().clone());
    daemon.add_observer(Box::new(exporter));
    let summary = daemon.run_once().expect("runs");
    assert_eq!(summary.pending, 1);
    let text = std::fs::read_to_string(textfile.join("suture.prom")).expect("written");
    for line in [
        "suture_patches_applied 1\n",
        "suture_patches_pending 1\n",
        "suture_audit_log_intact 1\n",
        "suture_patches_failed_total{result=\"refused\"} 1\n",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }

    // A fixed fix_b arrives: applied, nothing pending.
    drop_bundle(&host, "fix_b.bundle", "fix_b");
    let mut session = daemon.session().expect("opens").expect("unlocked");
    let changed = daemon.apply_files(&mut session, [OsString::from("fix_b.bundle")]);
    daemon.finish(&session, changed);
    let text = std::fs::read_to_string(textfile.join("suture.prom")).expect("written");
    assert!(text.contains("suture_patches_applied 2\n"), "{text}");
    assert!(text.contains("suture_patches_pending 0\n"), "{text}");
}
