//! The repository client against a loopback server: conditional requests
//! (200, then 304), only this kernel's bundles downloaded, sizes and
//! digests checked against the index, atomic writes into the watch
//! directory.

use std::collections::HashSet;

use super::*;
use crate::daemon::index::{IndexTarget, INDEX_VERSION};
use crate::daemon::test_server::{Route, TestServer};
use crate::fake_kernel::{FAKE_BUILD_ID, FAKE_RELEASE};

const ETAG: &str = "\"index-v1\"";
const LAST_MODIFIED: &str = "Wed, 21 Oct 2026 07:28:00 GMT";

fn running() -> KernelIdentity {
    KernelIdentity {
        release: FAKE_RELEASE.to_owned(),
        build_id: FAKE_BUILD_ID.to_owned(),
    }
}

fn entry(name: &str, bytes: &[u8], build_id: &str) -> IndexEntry {
    IndexEntry {
        name: name.to_owned(),
        sha256: sha256_hex(bytes),
        size: u64::try_from(bytes.len()).expect("small"),
        target: IndexTarget {
            kernel_release: FAKE_RELEASE.to_owned(),
            build_id: build_id.to_owned(),
            package_version: None,
        },
        cves: vec!["CVE-2024-0001".to_owned()],
    }
}

fn serve_index(server: &TestServer, entries: Vec<IndexEntry>) {
    let index = Index {
        version: INDEX_VERSION,
        bundles: entries,
    };
    server.route(
        INDEX_FILE,
        Route::Index {
            body: serde_json::to_vec(&index).expect("json"),
            etag: ETAG.to_owned(),
            last_modified: LAST_MODIFIED.to_owned(),
        },
    );
}

fn repository(server: &TestServer) -> Repository {
    Repository::new(RepositorySettings {
        base_url: server.base_url.clone(),
        interval: Duration::from_secs(3600),
        jitter: Duration::from_secs(300),
        timeout: Duration::from_secs(10),
        max_poll_files: crate::config::DEFAULT_MAX_POLL_FILES,
        max_poll_bytes: crate::config::DEFAULT_MAX_POLL_BYTES,
        ca_file: None,
        ca_pem: None,
    })
}

/// The names a poll downloaded.
fn names(report: &PollReport) -> Vec<String> {
    report
        .downloaded
        .iter()
        .map(|download| download.name.to_string_lossy().into_owned())
        .collect()
}

/// The names in `dir`, sorted (dotfiles too: no partial file may stay).
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn the_second_poll_is_conditional_and_a_304_downloads_nothing() {
    let server = TestServer::start();
    let watch = tempfile::tempdir().expect("temp dir");
    let fix_a = b"bundle fix_a".to_vec();
    let fix_b = b"bundle fix_b, applied already".to_vec();
    let other = b"bundle for another build".to_vec();
    serve_index(
        &server,
        vec![
            entry("fix_a.bundle", &fix_a, FAKE_BUILD_ID),
            entry("fix_b.bundle", &fix_b, FAKE_BUILD_ID),
            entry("other.bundle", &other, &"00".repeat(20)),
        ],
    );
    server.route("fix_a.bundle", Route::File(fix_a.clone()));
    server.route("fix_b.bundle", Route::File(fix_b.clone()));
    server.route("other.bundle", Route::File(other));
    let mut have: HashSet<String> = HashSet::from([sha256_hex(&fix_b)]);
    let mut repository = repository(&server);

    let report = repository
        .poll(&running(), &|sha| have.contains(sha), watch.path())
        .expect("polls");
    assert_eq!(names(&report), ["fix_a.bundle"]);
    assert_eq!(report.downloaded[0].sha256, sha256_hex(&fix_a));
    assert_eq!(
        PollReport {
            downloaded: vec![],
            ..report
        },
        PollReport {
            not_modified: false,
            entries: 3,
            other_kernel: 1,
            present: 1,
            downloaded: vec![],
            deferred: 0,
            failed: vec![],
        }
    );
    assert_eq!(files(watch.path()), ["fix_a.bundle"]);
    assert_eq!(
        std::fs::read(watch.path().join("fix_a.bundle")).expect("read"),
        fix_a
    );
    // The first request had no validators.
    let first = &server.seen()[0];
    assert!(!first.headers.contains_key("if-none-match"));
    assert!(!first.headers.contains_key("if-modified-since"));
    assert!(first.headers["user-agent"].starts_with("patchd/"));

    have.insert(sha256_hex(&fix_a));
    let report = repository
        .poll(&running(), &|sha| have.contains(sha), watch.path())
        .expect("polls again");
    assert!(report.not_modified);
    assert!(report.downloaded.is_empty());
    assert_eq!(report.present, 2);
    let seen = server.seen();
    let again = seen.last().expect("a request");
    assert_eq!(
        again.headers.get("if-none-match").map(String::as_str),
        Some(ETAG)
    );
    assert_eq!(
        again.headers.get("if-modified-since").map(String::as_str),
        Some(LAST_MODIFIED)
    );
    // Another kernel's bundle was never requested.
    assert_eq!(
        server.log(),
        [
            ("index.json".to_owned(), 200),
            ("fix_a.bundle".to_owned(), 200),
            ("index.json".to_owned(), 304)
        ]
    );
}

#[test]
fn a_bundle_whose_sha256_differs_from_the_index_is_not_written() {
    let server = TestServer::start();
    let watch = tempfile::tempdir().expect("temp dir");
    let listed = b"the bundle the index describes".to_vec();
    serve_index(&server, vec![entry("fix_a.bundle", &listed, FAKE_BUILD_ID)]);
    let mut served = listed.clone();
    served[0] ^= 1;
    server.route("fix_a.bundle", Route::File(served));
    let mut repository = repository(&server);
    let report = repository
        .poll(&running(), &|_| false, watch.path())
        .expect("the index is fine");
    assert!(report.downloaded.is_empty());
    assert_eq!(report.failed.len(), 1);
    let (name, error) = &report.failed[0];
    assert_eq!(name, "fix_a.bundle");
    assert!(
        error.contains("has sha256") && error.contains(&sha256_hex(&listed)),
        "{error}"
    );
    assert_eq!(files(watch.path()), Vec::<String>::new());

    // Fixed on the server: the next poll gets a 304 for the index and
    // still downloads the bundle it does not have.
    server.route("fix_a.bundle", Route::File(listed.clone()));
    let report = repository
        .poll(&running(), &|_| false, watch.path())
        .expect("polls");
    assert!(report.not_modified);
    assert_eq!(names(&report), ["fix_a.bundle"]);
    assert_eq!(files(watch.path()), ["fix_a.bundle"]);
}

#[test]
fn oversized_bundles_are_refused() {
    let server = TestServer::start();
    let watch = tempfile::tempdir().expect("temp dir");
    let listed = b"small".to_vec();
    serve_index(
        &server,
        vec![
            entry("declared.bundle", &listed, FAKE_BUILD_ID),
            entry("unsized.bundle", b"other", FAKE_BUILD_ID),
            entry("short.bundle", b"longer than served", FAKE_BUILD_ID),
        ],
    );
    // A Content-Length larger than the index's size: refused unread.
    server.route("declared.bundle", Route::File(vec![b'x'; 4096]));
    // No length: reading stops one byte past the index's size.
    server.route("unsized.bundle", Route::Unsized(vec![b'x'; 1 << 20]));
    server.route("short.bundle", Route::Unsized(b"short".to_vec()));
    let mut repository = repository(&server);
    let report = repository
        .poll(&running(), &|_| false, watch.path())
        .expect("the index is fine");
    assert!(report.downloaded.is_empty());
    let failed: Vec<(&str, &str)> = report
        .failed
        .iter()
        .map(|(name, error)| (name.as_str(), error.as_str()))
        .collect();
    assert_eq!(failed.len(), 3, "{failed:?}");
    let wanted = [
        (
            "declared.bundle",
            "the index says 5 bytes, but the server announced 4096",
        ),
        (
            "unsized.bundle",
            "the index says 5 bytes, but the server sent more",
        ),
        (
            "short.bundle",
            "the index says 18 bytes, but the server sent 5",
        ),
    ];
    for ((name, error), (want_name, want)) in failed.iter().zip(wanted) {
        assert_eq!(*name, want_name);
        assert!(error.contains(want), "{name}: {error}");
    }
    assert_eq!(files(watch.path()), Vec::<String>::new());
}

#[test]
fn index_failures_are_errors_that_keep_nothing() {
    let server = TestServer::start();
    let watch = tempfile::tempdir().expect("temp dir");
    let mut repository = repository(&server);
    // Nothing served yet.
    let error = repository
        .poll(&running(), &|_| false, watch.path())
        .expect_err("404");
    assert!(
        matches!(error, RepositoryError::Status { status: 404, .. }),
        "{error}"
    );
    // Not an index.
    server.route(INDEX_FILE, Route::File(b"<html>not json</html>".to_vec()));
    let error = repository
        .poll(&running(), &|_| false, watch.path())
        .expect_err("garbage");
    assert!(matches!(error, RepositoryError::Index { .. }), "{error}");
    // An entry that would leave the watch directory.
    server.route(
        INDEX_FILE,
        Route::File(
            serde_json::to_vec(&serde_json::json!({
                "version": 1,
                "bundles": [entry("../escape.bundle", b"x", FAKE_BUILD_ID)]
            }))
            .expect("json"),
        ),
    );
    let error = repository
        .poll(&running(), &|_| false, watch.path())
        .expect_err("bad name");
    assert!(
        crate::error_text(&error).contains("the name must be a file name"),
        "{}",
        crate::error_text(&error)
    );
    // Nothing listens: a connection error, not a hang.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address")
    };
    let mut gone = Repository::new(RepositorySettings {
        base_url: format!("http://{closed}/"),
        interval: Duration::from_secs(3600),
        jitter: Duration::ZERO,
        timeout: Duration::from_secs(5),
        max_poll_files: crate::config::DEFAULT_MAX_POLL_FILES,
        max_poll_bytes: crate::config::DEFAULT_MAX_POLL_BYTES,
        ca_file: None,
        ca_pem: None,
    });
    let error = gone
        .poll(&running(), &|_| false, watch.path())
        .expect_err("refused");
    assert!(matches!(error, RepositoryError::Fetch { .. }), "{error}");
    assert_eq!(files(watch.path()), Vec::<String>::new());
}

#[test]
fn downloads_never_overwrite_a_file_and_leave_no_partial_file() {
    let watch = tempfile::tempdir().expect("temp dir");
    std::fs::write(watch.path().join(".fix_a.bundle.part"), b"left by a crash").expect("w");
    write_into(watch.path(), "fix_a.bundle", b"new").expect("writes");
    assert_eq!(files(watch.path()), ["fix_a.bundle"]);
    assert_eq!(
        std::fs::read(watch.path().join("fix_a.bundle")).expect("read"),
        b"new"
    );
    // Regression (issue #16): an operator's file of the same name was
    // replaced by the repository's.
    std::fs::write(watch.path().join("fix_b.bundle"), b"the operator's").expect("w");
    let error = write_into(watch.path(), "fix_b.bundle", b"the repository's").expect_err("kept");
    assert!(matches!(error, RepositoryError::Exists { .. }), "{error}");
    assert!(error.to_string().contains("not overwritten"), "{error}");
    assert_eq!(
        std::fs::read(watch.path().join("fix_b.bundle")).expect("read"),
        b"the operator's"
    );
    assert_eq!(files(watch.path()), ["fix_a.bundle", "fix_b.bundle"]);
}

#[test]
fn one_poll_downloads_at_most_its_file_count_and_byte_budget() {
    let server = TestServer::start();
    let watch = tempfile::tempdir().expect("temp dir");
    let bundles: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 1000]).collect();
    let entries = bundles
        .iter()
        .enumerate()
        .map(|(i, bytes)| entry(&format!("fix_{i}.bundle"), bytes, FAKE_BUILD_ID))
        .collect();
    serve_index(&server, entries);
    for (i, bytes) in bundles.iter().enumerate() {
        server.route(&format!("fix_{i}.bundle"), Route::File(bytes.clone()));
    }
    let mut settings = repository(&server).settings().clone();
    settings.max_poll_files = 2;
    let mut limited = Repository::new(settings.clone());
    let report = limited
        .poll(&running(), &|_| false, watch.path())
        .expect("polls");
    assert_eq!(names(&report), ["fix_0.bundle", "fix_1.bundle"]);
    assert_eq!(report.deferred, 3);

    // The byte budget: 2500 bytes hold two bundles of 1000.
    settings.max_poll_files = 100;
    settings.max_poll_bytes = 2500;
    let mut limited = Repository::new(settings);
    let have: HashSet<String> = report.downloaded.iter().map(|d| d.sha256.clone()).collect();
    let report = limited
        .poll(&running(), &|sha| have.contains(sha), watch.path())
        .expect("polls");
    assert_eq!(names(&report), ["fix_2.bundle", "fix_3.bundle"]);
    assert_eq!(report.deferred, 1);
}

#[test]
fn polls_are_spread_over_the_interval_plus_or_minus_the_jitter() {
    let hour = Duration::from_secs(3600);
    let five_minutes = Duration::from_secs(300);
    // (random, wait in seconds)
    let cases = [
        (0, 3300),
        (300, 3600),
        (600, 3900),
        (601, 3300),
        (u64::MAX, 3300 + u64::MAX % 601),
    ];
    for (random, want) in cases {
        assert_eq!(
            next_poll_in(hour, five_minutes, random),
            Duration::from_secs(want),
            "{random}"
        );
    }
    assert_eq!(next_poll_in(hour, Duration::ZERO, 12345), hour);
}

#[test]
fn not_downloaded_lists_this_kernels_unknown_bundles_and_writes_nothing() {
    let server = TestServer::start();
    let (a, b, other) = (
        b"bundle a".as_slice(),
        b"bundle b".as_slice(),
        b"x".as_slice(),
    );
    serve_index(
        &server,
        vec![
            entry("a.bundle", a, FAKE_BUILD_ID),
            entry("b.bundle", b, FAKE_BUILD_ID),
            entry("again.bundle", b, FAKE_BUILD_ID),
            entry("other.bundle", other, &"ee".repeat(20)),
        ],
    );
    let known = sha256_hex(a);
    let mut repository = repository(&server);
    let names: Vec<String> = repository
        .not_downloaded(&running(), &|sha256| sha256 == known)
        .expect("read")
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["b.bundle"]);
    // Only the index was asked for.
    assert_eq!(server.log(), [(INDEX_FILE.to_owned(), 200)]);
}
