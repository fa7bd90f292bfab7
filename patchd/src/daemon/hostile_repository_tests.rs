//! A hostile or stalled repository (issue #16): downloads that are not
//! applied are removed, an operator's file is never overwritten, and a
//! repository that never answers holds up neither the watch directory nor
//! stopping.

use std::sync::mpsc;
use std::time::Duration;

use super::signals::Stop;
use super::test_server::{Route, TestServer};
use super::tests::{daemon, drop_bundle, settings, wait_for, StopOnDrop, DEADLINE};
use crate::config::{RepositorySettings, DEFAULT_MAX_POLL_BYTES, DEFAULT_MAX_POLL_FILES};
use crate::fake_kernel::{FAKE_BUILD_ID, FAKE_RELEASE};
use crate::testkit::{bundle_bytes, manifest, signing_key, stranger_key, TestHost};
use crate::verify::sha256_hex;

fn repository_at(server: &TestServer, timeout: Duration) -> RepositorySettings {
    RepositorySettings {
        base_url: server.base_url.clone(),
        interval: Duration::from_secs(3600),
        jitter: Duration::from_secs(300),
        timeout,
        max_poll_files: DEFAULT_MAX_POLL_FILES,
        max_poll_bytes: DEFAULT_MAX_POLL_BYTES,
        ca_file: None,
        ca_pem: None,
    }
}

fn serve(server: &TestServer, files: &[(&str, &[u8])]) {
    let entries: Vec<_> = files
        .iter()
        .map(|(name, bytes)| {
            serde_json::json!({
                "name": name,
                "sha256": sha256_hex(bytes),
                "size": bytes.len(),
                "target": { "kernel_release": FAKE_RELEASE, "build_id": FAKE_BUILD_ID },
            })
        })
        .collect();
    let index = serde_json::json!({ "version": 1, "bundles": entries });
    server.route(
        "index.json",
        Route::Index {
            body: serde_json::to_vec(&index).expect("json"),
            etag: "\"1\"".to_owned(),
            last_modified: "Wed, 21 Oct 2026 07:28:00 GMT".to_owned(),
        },
    );
    for (name, bytes) in files {
        server.route(name, Route::File(bytes.to_vec()));
    }
}

#[test]
fn downloads_not_applied_are_removed_and_an_operators_file_is_never_replaced() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let server = TestServer::start();
    let good = bundle_bytes(&manifest("fix_a"), &signing_key());
    let untrusted = bundle_bytes(&manifest("fix_b"), &stranger_key());
    let theirs = bundle_bytes(&manifest("fix_c"), &signing_key());
    serve(
        &server,
        &[
            ("fix_a.bundle", &good),
            ("fix_b.bundle", &untrusted),
            ("fix_c.bundle", &theirs),
        ],
    );
    // The operator's own file of a name the repository also uses.
    let watch = host.path().join("watch");
    std::fs::create_dir_all(&watch).expect("mkdir");
    std::fs::write(watch.join("fix_c.bundle"), b"the operator's notes").expect("write");

    let mut settings = settings(&host);
    settings.repository = Some(repository_at(&server, Duration::from_secs(10)));
    let summary = daemon(&host, &kernel, settings).run_once().expect("runs");
    assert_eq!(summary.applied, ["fix_a"]);
    assert_eq!(summary.downloaded, 2, "{summary:?}");
    assert_eq!(summary.repository_failures, 1, "fix_c: {summary:?}");
    assert!(watch.join("fix_a.bundle").exists(), "applied: kept");
    assert!(
        !watch.join("fix_b.bundle").exists(),
        "refused: removed, so a repository cannot fill the disk"
    );
    assert_eq!(
        std::fs::read(watch.join("fix_c.bundle")).expect("read"),
        b"the operator's notes",
        "never overwritten, never removed"
    );
    // The poll is recorded for `patchd status`.
    let poll = crate::observe::last_poll::read(&host.path().join("state")).expect("recorded");
    assert!(poll.ok, "{poll:?}");
    assert_eq!((poll.downloaded, poll.failed), (2, 1), "{poll:?}");
}

#[test]
fn a_stalled_repository_holds_up_neither_the_watch_directory_nor_stopping() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let server = TestServer::start();
    server.route("index.json", Route::Stall);
    let mut settings = settings(&host);
    // The longest timeout the config allows: the poll would wait an hour.
    settings.repository = Some(repository_at(&server, Duration::from_secs(3600)));
    std::fs::create_dir_all(host.path().join("watch")).expect("mkdir");
    let (stop, handle) = Stop::pair().expect("stop pair");
    let (done, finished) = mpsc::channel();
    std::thread::scope(|scope| {
        let settings = settings.clone();
        let (host, kernel, stop) = (&host, &kernel, &stop);
        scope.spawn(move || {
            let result = daemon(host, kernel, settings).run(stop);
            let _ = done.send(result.is_ok());
        });
        let stopper = StopOnDrop(&handle);
        // The poll has started and hangs on the index.
        wait_for("the poll asked for the index", || !server.seen().is_empty());
        // A bundle dropped meanwhile is applied all the same, long before
        // the poll's hour is up.
        drop_bundle(host, "fix_a.bundle", "fix_a");
        wait_for(
            "fix_a applied while the repository stalls (the watch directory waited for it?)",
            || kernel.patch_enabled("fix_a") == Some(true),
        );
        // And SIGTERM is answered without waiting for the poll.
        drop(stopper);
        let stopped = finished.recv_timeout(DEADLINE);
        assert_eq!(
            stopped,
            Ok(true),
            "the daemon waited for the repository to stop"
        );
        drop(server);
    });
}
