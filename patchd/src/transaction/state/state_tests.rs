//! The state file: saved and read back, locked, damaged or foreign files
//! refused, and the crash-loop guard's fields that leave older files as
//! they were.

use super::*;
use crate::ownership::default_owners;

fn record(id: &str) -> BundleRecord {
    let manifest = crate::testkit::manifest(id);
    BundleRecord {
        id: id.to_owned(),
        sha256: "ab".repeat(32),
        signer_key_id: "fe812c12f3ab4ce6".to_owned(),
        phase: Phase::Applied,
        transaction: 3,
        applied_at: Some(1_700_000_000),
        updated_at: 1_700_000_000,
        bundle_file: format!("applied/{id}.bundle"),
        manifest: ManifestSummary {
            description: manifest.description,
            cves: manifest.cves,
            target: manifest.target,
            functions: vec!["cmdline_proc_show".to_owned()],
            skipped: Vec::new(),
            dependencies: vec![],
            created: manifest.created,
            bundle_version: 0,
            fixes_up_to: None,
            cve_published: Default::default(),
        },
        survived: false,
    }
}

#[test]
fn saves_and_loads_the_same_state_and_an_absent_file_is_empty() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state_dir = StateDir::open(&dir.path().join("state"), &default_owners()).expect("open");
    assert_eq!(state_dir.load().expect("empty"), State::default());
    let state = State {
        version: STATE_VERSION,
        next_transaction: 4,
        open_transaction: Some(OpenTransaction {
            id: 3,
            started: 1_700_000_000,
            reapplying: vec!["fix_b".to_owned()],
            held: Vec::new(),
        }),
        bundles: vec![record("fix_a"), record("fix_b")],
        boot: None,
        highest_versions: Default::default(),
    };
    state_dir.save(&state).expect("save");
    assert_eq!(state_dir.load().expect("load"), state);
    let text = std::fs::read_to_string(state_dir.path().join(STATE_FILE)).expect("read");
    assert!(text.contains("\"phase\": \"applied\""), "{text}");
    assert!(!state_dir.path().join(".state.json.tmp").exists());
}

#[test]
fn a_second_process_is_locked_out() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("state");
    let first = StateDir::open(&path, &default_owners()).expect("open");
    let error = StateDir::open(&path, &default_owners()).expect_err("locked");
    assert!(matches!(error, StateError::Locked { .. }), "{error}");
    drop(first);
    StateDir::open(&path, &default_owners()).expect("free again");
}

#[test]
fn damaged_or_foreign_state_files_are_refused_with_what_to_do() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state_dir = StateDir::open(&dir.path().join("s"), &default_owners()).expect("open");
    let file = state_dir.path().join(STATE_FILE);
    std::fs::write(&file, "{\"version\": 1, \"bundles\": [").expect("w");
    let error = state_dir.load().expect_err("corrupt");
    assert!(error.to_string().contains("move it away"), "{error}");
    std::fs::write(&file, "{\"version\": 2}").expect("w");
    assert!(matches!(
        state_dir.load(),
        Err(StateError::Version { version: 2, .. })
    ));
}

#[test]
fn a_world_writable_state_dir_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("state");
    std::fs::create_dir(&path).expect("mkdir");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    assert!(matches!(
        StateDir::open(&path, &default_owners()),
        Err(StateError::Unsafe { .. })
    ));
}

/// A state file as a patchd without the crash-loop guard wrote it: no
/// `boot`, no `survived`, no `held`.
const OLDER_STATE: &str = r#"{
  "version": 1,
  "next_transaction": 4,
  "open_transaction": {
    "id": 3,
    "started": 1700000000,
    "reapplying": [
      "fix_a"
    ]
  },
  "bundles": [
    {
      "id": "fix_a",
      "sha256": "abababababababababababababababababababababababababababababababab",
      "signer_key_id": "fe812c12f3ab4ce6",
      "phase": "lost",
      "transaction": 3,
      "applied_at": 1700000000,
      "updated_at": 1700000000,
      "bundle_file": "applied/fix_a.bundle",
      "manifest": {
        "description": "",
        "cves": [],
        "target": {
          "kernel_release": "6.1.0-50-amd64",
          "build_id": "06f8bde30046985060c60820f7a11515a33afb06",
          "package_version": null
        },
        "functions": [
          "cmdline_proc_show"
        ],
        "dependencies": [],
        "created": 1700000000
      }
    }
  ]
}
"#;

#[test]
fn an_older_state_file_reads_as_before_and_writes_byte_for_byte() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state_dir = StateDir::open(&dir.path().join("state"), &default_owners()).expect("open");
    let file = state_dir.path().join(STATE_FILE);
    std::fs::write(&file, OLDER_STATE).expect("write");
    let state = state_dir.load().expect("reads");
    assert_eq!(state.boot, None);
    let record = state.get("fix_a").expect("recorded");
    assert!(!record.survived);
    assert_eq!(record.phase, Phase::Lost);
    let open = state.open_transaction.as_ref().expect("open");
    assert!(open.held.is_empty());
    state_dir.save(&state).expect("save");
    assert_eq!(
        std::fs::read_to_string(&file).expect("read"),
        OLDER_STATE,
        "a state without the guard's fields writes as an older patchd wrote it"
    );
}

#[test]
fn the_guards_fields_are_saved_and_read_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state_dir = StateDir::open(&dir.path().join("state"), &default_owners()).expect("open");
    let mut held = record("fix_b");
    held.phase = Phase::Held;
    let mut survivor = record("fix_a");
    survivor.survived = true;
    let state = State {
        open_transaction: Some(OpenTransaction {
            id: 3,
            started: 1_700_000_000,
            reapplying: vec!["fix_b".to_owned()],
            held: vec!["fix_b".to_owned()],
        }),
        bundles: vec![survivor, held],
        boot: Some(BootRecord {
            id: "00000000-0000-0000-0000-000000000001".to_owned(),
            clean_shutdown: false,
            after_crash: true,
        }),
        ..State::default()
    };
    state_dir.save(&state).expect("save");
    assert_eq!(state_dir.load().expect("load"), state);
    let text = std::fs::read_to_string(state_dir.path().join(STATE_FILE)).expect("read");
    for part in [
        "\"phase\": \"held\"",
        "\"survived\": true",
        "\"after_crash\": true",
        "\"held\": [",
    ] {
        assert!(text.contains(part), "{part}: {text}");
    }
    assert_eq!(text.matches("survived").count(), 1, "false is left out");
    assert!(Phase::Held.is_gone() && Phase::Lost.is_gone() && !Phase::Applied.is_gone());
}
