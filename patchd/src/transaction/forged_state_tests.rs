//! A state file cannot be turned into a weapon (issue #16): a record
//! forged for an unrelated module (`ext4`) never gets it unloaded, by
//! reconciling, undoing an open apply, reverting or rolling back; ids that
//! are not patch ids and times past the year 9999 are refused when the
//! state is read, naming the field, instead of being acted on or
//! aborting patchd at every start.

use serde_json::{json, Value};

use super::revert::{revert, RevertTarget};
use super::session::Session;
use super::state::{StateDir, StateError};
use crate::fake_kernel::{FakeKernel, KernelCall};
use crate::observe::status::status;
use crate::ownership::default_owners;
use crate::testkit::{manifest, TestHost};

/// A record of bundle `id` in `phase`, as `state.json` has it.
fn record(id: &str, phase: &str) -> Value {
    let manifest = manifest(id);
    json!({
        "id": id,
        "sha256": "ab".repeat(32),
        "signer_key_id": "fe812c12f3ab4ce6",
        "phase": phase,
        "transaction": 1,
        "applied_at": null,
        "updated_at": 1_700_000_000u64,
        "bundle_file": format!("applied/{id}.bundle"),
        "manifest": {
            "description": manifest.description,
            "cves": manifest.cves,
            "target": manifest.target,
            "functions": ["cmdline_proc_show"],
            "dependencies": [],
            "created": manifest.created,
        }
    })
}

/// Writes `state.json` of `host` with these records (and open apply).
fn write_state(host: &TestHost, bundles: Vec<Value>, open: Option<Value>) {
    let dir = host.path().join("state");
    drop(StateDir::open(&dir, &default_owners()).expect("state dir"));
    let state = json!({
        "version": 1,
        "next_transaction": 2,
        "open_transaction": open,
        "bundles": bundles,
    });
    let text = serde_json::to_vec_pretty(&state).expect("json");
    std::fs::write(dir.join("state.json"), text).expect("write state");
}

/// A kernel where an unrelated module `ext4` is loaded (not a patch: it
/// never registered with the companion module, which is loaded too).
fn kernel_with_ext4() -> FakeKernel {
    TestHost::kernel().with_loaded_modules(["ext4", "suture"])
}

fn unloads(kernel: &FakeKernel) -> Vec<String> {
    kernel
        .calls()
        .into_iter()
        .filter_map(|call| match call {
            KernelCall::DeleteModule { name } => Some(name),
            _ => None,
        })
        .collect()
}

fn open_error(host: &TestHost, kernel: &FakeKernel) -> String {
    match Session::open(kernel, &host.clock, host.config()) {
        Ok(_) => panic!("the session opened"),
        Err(error) => crate::error_text(&error),
    }
}

#[test]
fn a_forged_loading_record_for_ext4_never_unloads_it() {
    // A record in `loading` needs no audit line, so this one reaches
    // reconciling, which used to unload a loaded-but-not-enabled module.
    let host = TestHost::new();
    write_state(&host, vec![record("ext4", "loading")], None);
    let kernel = kernel_with_ext4();
    let session = host.session(&kernel);
    assert_eq!(unloads(&kernel), Vec::<String>::new());
    assert_eq!(kernel.modules_now(), ["ext4", "suture"]);
    assert!(session.state().get("ext4").is_none(), "the record is gone");
    let what = &session.reconciled().changes[0].what;
    assert!(
        what.contains("not a patch registered with the companion module")
            && what.contains("forgotten"),
        "{what}"
    );
}

#[test]
fn a_forged_open_apply_naming_ext4_never_unloads_it() {
    let host = TestHost::new();
    let open = json!({"id": 1, "started": 1_700_000_000u64});
    write_state(&host, vec![record("ext4", "enabling")], Some(open));
    let kernel = kernel_with_ext4();
    let session = host.session(&kernel);
    assert_eq!(unloads(&kernel), Vec::<String>::new());
    assert_eq!(kernel.modules_now(), ["ext4", "suture"]);
    assert!(session.state().get("ext4").is_none());
}

#[test]
fn reverting_a_record_that_names_ext4_never_unloads_it() {
    // Past the audit check (as if the log had been forged too): the
    // revert forgets the record and leaves the module alone.
    let host = TestHost::new();
    write_state(&host, vec![record("ext4", "disabled")], None);
    let kernel = kernel_with_ext4();
    let mut session = Session::lock(&kernel, &host.clock, host.config()).expect("locks");
    let report = revert(&mut session, &RevertTarget::Ids(vec!["ext4".into()])).expect("revert");
    assert_eq!(report.reverted, ["ext4"]);
    assert_eq!(unloads(&kernel), Vec::<String>::new());
    assert_eq!(kernel.modules_now(), ["ext4", "suture"]);
}

#[test]
fn a_patch_patchd_loaded_is_still_unloaded() {
    // The proof holds for patchd's own patches: registered under their
    // own module's name.
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let mut session = host.session(&kernel);
    super::apply::apply(&mut session, &[host.bundle("fix_a")]).expect("applies");
    revert(&mut session, &RevertTarget::Ids(vec!["fix_a".into()])).expect("reverts");
    assert_eq!(unloads(&kernel), ["fix_a"]);
}

#[test]
fn status_shows_a_forged_record_without_touching_ext4() {
    let host = TestHost::new();
    write_state(&host, vec![record("ext4", "loading")], None);
    let kernel = kernel_with_ext4();
    let session = Session::open_read_only(&kernel, &host.clock, host.config()).expect("opens");
    let shown = status(&session).expect("status");
    assert!(
        shown.bundles[0]
            .kernel_state
            .contains("not loaded as a patch"),
        "{}",
        shown.bundles[0].kernel_state
    );
    assert!(kernel.changes().is_empty());
}

#[test]
fn ids_that_are_not_patch_ids_are_refused_when_the_state_is_read() {
    let cases = [
        ("../../x", "bundles[0].id"),
        ("Ext4", "bundles[0].id"),
        ("a-b", "bundles[0].id"),
        ("", "bundles[0].id"),
    ];
    for (id, field) in cases {
        let host = TestHost::new();
        let mut forged = record("fix_a", "loading");
        forged["id"] = json!(id);
        write_state(&host, vec![forged], None);
        let kernel = kernel_with_ext4();
        let text = open_error(&host, &kernel);
        assert!(
            text.contains(field) && text.contains("a patch id") && text.contains("state.json"),
            "{id:?}: {text}"
        );
        assert!(kernel.calls().is_empty(), "{id:?}: the kernel was asked");
    }
}

#[test]
fn other_fields_patchd_acts_on_are_checked_too() {
    let mut twice = vec![record("fix_a", "loading"), record("fix_a", "loading")];
    let mut elsewhere = record("fix_a", "loading");
    elsewhere["bundle_file"] = json!("applied/fix_b.bundle");
    let mut dependency = record("fix_a", "loading");
    dependency["manifest"]["dependencies"] = json!(["../x"]);
    let mut escape = record("fix_a", "loading");
    escape["manifest"]["description"] = json!("ok\u{1b}[2J");
    let mut bad_date = record("fix_a", "loading");
    bad_date["manifest"]["cve_published"] = json!({"CVE-2024-0001": "2024-02-30"});
    let mut other_cve = record("fix_a", "loading");
    other_cve["manifest"]["cve_published"] = json!({"CVE-2024-0002": "2024-02-01"});
    let cases = [
        (std::mem::take(&mut twice), None, "bundles[1].id"),
        (vec![elsewhere], None, "bundles[0].bundle_file"),
        (
            vec![dependency],
            None,
            "bundles[0].manifest.dependencies[0]",
        ),
        (vec![escape], None, "bundles[0].manifest.description"),
        (
            vec![bad_date],
            None,
            "bundles[0].manifest.cve_published[CVE-2024-0001]",
        ),
        (
            vec![other_cve],
            None,
            "bundles[0].manifest.cve_published is `CVE-2024-0002`",
        ),
        (
            vec![],
            Some(json!({"id": 1, "started": 1, "reapplying": ["A"]})),
            "open_transaction.reapplying[0]",
        ),
    ];
    for (bundles, open, field) in cases {
        let host = TestHost::new();
        write_state(&host, bundles, open);
        let kernel = TestHost::kernel();
        let text = open_error(&host, &kernel);
        assert!(text.contains(field), "{field}: {text}");
    }
}

#[test]
fn absurd_times_are_an_error_naming_the_field_not_a_panic() {
    type SetTime = fn(&mut Value, u64);
    let max = u64::MAX;
    let fields: [(&str, SetTime); 4] = [
        ("bundles[0].applied_at", |r, t| r["applied_at"] = json!(t)),
        ("bundles[0].updated_at", |r, t| r["updated_at"] = json!(t)),
        ("bundles[0].manifest.created", |r, t| {
            r["manifest"]["created"] = json!(t)
        }),
        ("open_transaction.started", |_, _| {}),
    ];
    for (field, set) in fields {
        let host = TestHost::new();
        let mut forged = record("fix_a", "applied");
        set(&mut forged, max);
        let open = (field == "open_transaction.started").then(|| json!({"id": 1, "started": max}));
        write_state(&host, vec![forged], open);
        let kernel = TestHost::kernel();
        // The read-write session (every start) and the read-only one
        // (status) both refuse, naming the field and what to do.
        let text = open_error(&host, &kernel);
        assert!(
            text.contains(field) && text.contains("before the year 10000"),
            "{field}: {text}"
        );
        assert!(text.contains("restore the file"), "{text}");
        let read_only = Session::open_read_only(&kernel, &host.clock, host.config());
        assert!(
            matches!(read_only, Err(StateError::Invalid { .. })),
            "{field}: {read_only:?}"
        );
    }
}

#[test]
fn the_last_time_rfc3339_can_write_is_accepted() {
    let host = TestHost::new();
    let mut record = record("fix_a", "loading");
    record["updated_at"] = json!(253_402_300_799u64);
    write_state(&host, vec![record], None);
    let kernel = TestHost::kernel();
    host.session(&kernel);
}
