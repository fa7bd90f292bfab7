//! The status model and its text, and what it reads from the fake kernel.

use super::*;
use crate::testkit::TestHost;
use crate::transaction::apply::apply;

fn bundle(skipped: &[&str]) -> BundleStatus {
    BundleStatus {
        skipped: skipped.iter().map(|s| (*s).to_owned()).collect(),
        ..test_bundle("fix", "applied", "enabled")
    }
}

#[test]
fn functions_left_out_of_a_fix_are_shown_as_not_fixed() {
    let status = |b| test_status(vec![b]);
    let text = status(bundle(&["proc_cmdline_init"])).to_string();
    assert!(
        text.contains("NOT fixed (left out of the fix by its author): proc_cmdline_init"),
        "{text}"
    );
    assert!(!status(bundle(&[])).to_string().contains("NOT fixed"));
}

#[test]
fn the_facts_of_the_verdict_come_from_phases_and_the_kernel() {
    let with = |phase: &'static str, kernel_state: &'static str| {
        let mut b = bundle(&[]);
        b.phase = phase;
        b.kernel_state = kernel_state;
        b
    };
    let mut status = test_status(vec![
        with("applied", "enabled"),
        with("held", "not loaded"),
        with("applied", "not loaded"),
        with("lost", "not loaded"),
        with("enabling", "disabled"),
    ]);
    status.set_pending(vec!["x.bundle".to_owned()]);
    let facts = status.facts();
    assert_eq!(
        (
            facts.in_effect,
            facts.held,
            facts.not_in_effect,
            facts.cut_short,
            facts.pending
        ),
        (1, 1, 2, 1, 1)
    );
    assert_eq!(status.verdict.level, super::super::verdict::Level::Critical);
    assert!(status.to_string().starts_with("CRITICAL: "), "{status}");
}

#[test]
fn status_shows_how_the_kernel_redirects_each_bundle() {
    let host = TestHost::new();
    let kernel = TestHost::kernel()
        .with_functions("fix_a", &["cmdline_proc_show"])
        .with_functions("fix_b", &["cmdline_proc_show", "proc_cmdline_init"])
        .with_ftrace_handler("fix_b", "cmdline_proc_show");
    let mut session = host.session(&kernel);
    apply(&mut session, &[host.bundle("fix_a"), host.bundle("fix_b")]).expect("applies");
    kernel.clear_calls();
    let shown = status(&session).expect("status");
    assert!(kernel.changes().is_empty(), "status only reads");
    let text = shown.to_string();
    assert!(
        text.contains("    functions: cmdline_proc_show\n    redirect: direct call (1)\n"),
        "{text}"
    );
    assert!(
        text.contains("    redirect: direct call (1), ftrace handler (1): cmdline_proc_show\n"),
        "{text}"
    );
    let json = serde_json::to_value(&shown).expect("json");
    let fix_b = &json["bundles"][1];
    assert_eq!(
        fix_b["redirect"]["direct"],
        serde_json::json!(["proc_cmdline_init"])
    );
    assert_eq!(
        fix_b["redirect"]["ftrace"],
        serde_json::json!(["cmdline_proc_show"])
    );
    assert_eq!(fix_b["functions"], serde_json::json!(["cmdline_proc_show"]));

    // Nothing registered after a reboot: nothing to read, no line.
    kernel.reboot();
    let shown = status(&session).expect("status");
    assert_eq!(shown.bundles[0].redirect, None);
    assert!(!shown.to_string().contains("redirect:"), "{shown}");
    let json = serde_json::to_value(&shown).expect("json");
    assert!(json["bundles"][0]["redirect"].is_null());
}

#[test]
fn a_patch_whose_functions_file_is_empty_or_says_nothing_shows_no_line() {
    let host = TestHost::new();
    // No functions set: the fake's file is empty.
    let kernel = TestHost::kernel();
    let mut session = host.session(&kernel);
    apply(&mut session, &[host.bundle("fix_a")]).expect("applies");
    let shown = status(&session).expect("status");
    assert_eq!(shown.bundles[0].redirect, None);
    // An older companion module prints no path column.
    let mut old = test_bundle("fix_a", "applied", "enabled");
    old.redirect = Some(Redirect::from_paths(
        crate::observe::redirect::parse_functions("f 0x10 1 g 0x20 2 1 0"),
    ));
    let text = test_status(vec![old]).to_string();
    assert!(!text.contains("redirect:"), "{text}");
}
