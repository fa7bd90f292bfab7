//! The audit log's chain: appends, and every kind of tampering found at the
//! right line.

use super::*;

fn entry(id: &str) -> AuditEntry {
    AuditEntry {
        bundle_id: Some(id.to_owned()),
        bundle_sha256: Some("ab".repeat(32)),
        signer_key_id: Some("fe812c12f3ab4ce6".to_owned()),
        cves: vec!["CVE-2024-0001".to_owned()],
        bundle_created: Some(1_699_990_000),
        cve_published: Default::default(),
        error: None,
        detail: None,
    }
}

/// A log of `n` lines in a fresh directory.
fn log_of(n: u64) -> (tempfile::TempDir, AuditLog) {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = AuditLog::new(dir.path());
    for i in 1..=n {
        let record = log
            .append(
                1_700_000_000 + i,
                AuditAction::Apply,
                AuditResult::Ok,
                entry(&format!("fix_{i}")),
            )
            .expect("append");
        assert_eq!(record.seq, i);
    }
    (dir, log)
}

fn lines(log: &AuditLog) -> Vec<String> {
    std::fs::read_to_string(log.path())
        .expect("read")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn rewrite(log: &AuditLog, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(log.path(), text).expect("write");
}

fn problem(log: &AuditLog) -> Tampered {
    log.verify().expect("readable").expect_err("tampered")
}

#[test]
fn lines_chain_from_the_genesis_hash_in_a_fixed_layout() {
    let (_dir, log) = log_of(3);
    let lines = lines(&log);
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[0],
        format!(
            "{{\"seq\":1,\"time\":\"2023-11-14T22:13:21Z\",\"action\":\"apply\",\"bundle_id\":\"fix_1\",\
             \"bundle_sha256\":\"{}\",\"signer_key_id\":\"fe812c12f3ab4ce6\",\"cves\":[\"CVE-2024-0001\"],\
             \"bundle_created\":\"2023-11-14T19:26:40Z\",\"result\":\"ok\",\"error\":null,\"detail\":null,\"prev\":\"{GENESIS}\"}}",
            "ab".repeat(32)
        )
    );
    for pair in lines.windows(2) {
        let next: AuditRecord = serde_json::from_str(&pair[1]).expect("record");
        assert_eq!(next.prev, sha256_hex(pair[0].as_bytes()));
    }
    assert_eq!(log.verify().expect("readable"), Ok(3));
}

#[test]
fn an_empty_or_absent_log_verifies() {
    let dir = tempfile::tempdir().expect("temp dir");
    assert_eq!(AuditLog::new(dir.path()).verify().expect("readable"), Ok(0));
}

#[test]
fn an_edited_line_is_found() {
    for edited in [0usize, 2] {
        let (_dir, log) = log_of(5);
        let mut all = lines(&log);
        all[edited] = all[edited].replace("\"result\":\"ok\"", "\"result\":\"failed\"");
        rewrite(&log, &all);
        let found = problem(&log);
        assert_eq!(found.line, edited as u64 + 1, "{found}");
        assert!(found.what.contains("edited"), "{found}");
    }
}

#[test]
fn an_edited_last_line_is_found_through_the_head() {
    let (_dir, log) = log_of(3);
    let mut all = lines(&log);
    all[2] = all[2].replace("fix_3", "fix_9");
    rewrite(&log, &all);
    let found = problem(&log);
    assert_eq!(found.line, 3, "{found}");
    assert!(found.what.contains("edited"), "{found}");
}

#[test]
fn a_removed_line_is_found() {
    let (_dir, log) = log_of(5);
    let mut all = lines(&log);
    all.remove(2);
    rewrite(&log, &all);
    let found = problem(&log);
    assert_eq!(found.line, 3, "{found}");
    assert!(found.what.contains("removed"), "{found}");

    let (_dir, log) = log_of(3);
    let mut all = lines(&log);
    all.remove(0);
    rewrite(&log, &all);
    let found = problem(&log);
    assert_eq!(found.line, 1, "{found}");
    assert!(found.what.contains("removed"), "{found}");
}

#[test]
fn lines_removed_at_the_end_are_found_through_the_head() {
    let (_dir, log) = log_of(4);
    let mut all = lines(&log);
    all.truncate(2);
    rewrite(&log, &all);
    let found = problem(&log);
    assert_eq!(found.line, 3, "{found}");
    assert!(
        found.what.contains("last 2 line(s) were removed"),
        "{found}"
    );
}

#[test]
fn an_inserted_line_is_found_even_when_it_chains_to_its_predecessor() {
    let (_dir, log) = log_of(3);
    let mut all = lines(&log);
    // A forged line that chains to line 1 and takes seq 2.
    let forged = AuditRecord {
        seq: 2,
        time: "2023-11-14T22:13:21Z".to_owned(),
        action: AuditAction::Revert,
        bundle_id: Some("fix_1".to_owned()),
        bundle_sha256: None,
        signer_key_id: None,
        cves: vec![],
        bundle_created: None,
        cve_published: Default::default(),
        result: AuditResult::Ok,
        error: None,
        detail: None,
        prev: sha256_hex(all[0].as_bytes()),
    };
    all.insert(1, serde_json::to_string(&forged).expect("encode"));
    rewrite(&log, &all);
    let found = problem(&log);
    assert_eq!(found.line, 2, "{found}");
    assert!(found.what.contains("inserted"), "{found}");
}

#[test]
fn a_torn_last_line_after_the_head_is_cut_off_and_noted() {
    // A crash in the middle of an append: the head never recorded the
    // fragment, so the next append removes it and says so.
    let (_dir, log) = log_of(2);
    let mut text = std::fs::read_to_string(log.path()).expect("read");
    text.push_str("{\"seq\":3,\"ti");
    std::fs::write(log.path(), text).expect("write");
    assert_eq!(problem(&log).line, 3, "verify still reports the fragment");
    let record = log
        .append(
            1_700_000_100,
            AuditAction::Revert,
            AuditResult::Ok,
            entry("x"),
        )
        .expect("append after a torn line");
    assert_eq!(record.seq, 3);
    assert!(
        record
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("cut short by a crash"),
        "{record:?}"
    );
    assert_eq!(log.verify().expect("reads"), Ok(3));
}

#[test]
fn a_cut_before_the_head_is_not_laundered_by_the_next_append() {
    // Regression (issue #16): lines cut off the end were reported only
    // until the next append wrote a new head over the shortened log.
    for cut in ["whole lines", "half a line"] {
        let (_dir, log) = log_of(3);
        let text = std::fs::read_to_string(log.path()).expect("read");
        let keep = match cut {
            "whole lines" => text.lines().take(2).map(|l| format!("{l}\n")).collect(),
            _ => text[..text.len() - 20].to_owned(),
        };
        std::fs::write(log.path(), &keep).expect("cut");
        let error = log
            .append(
                1_700_000_100,
                AuditAction::Apply,
                AuditResult::Ok,
                entry("x"),
            )
            .expect_err(cut);
        assert!(
            matches!(error, AuditError::Broken { .. }),
            "{cut}: {error:?}"
        );
        let text_of = crate::error_text(&error);
        assert!(text_of.contains("patchd audit restart"), "{text_of}");
        assert_eq!(
            std::fs::read_to_string(log.path()).expect("read"),
            keep,
            "{cut}: nothing appended"
        );
        assert!(
            log.verify().expect("reads").is_err(),
            "{cut}: still reported"
        );
    }
}

#[test]
fn each_head_goes_to_the_system_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("log.sock");
    let receiver = std::os::unix::net::UnixDatagram::bind(&socket).expect("bind");
    receiver
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("timeout");
    let log = AuditLog::new(dir.path()).with_syslog(Some(socket.clone()));
    let record = log
        .append(1, AuditAction::Apply, AuditResult::Ok, entry("fix_a"))
        .expect("append");
    let mut buffer = [0u8; 4096];
    let read = receiver.recv(&mut buffer).expect("a datagram");
    let text = String::from_utf8_lossy(&buffer[..read]).into_owned();
    let head: Head =
        serde_json::from_slice(&std::fs::read(dir.path().join(HEAD_FILE)).expect("head"))
            .expect("json");
    assert!(text.starts_with("<85>patchd["), "{text}");
    assert!(
        text.contains(&format!(
            "audit head seq={} sha256={}",
            record.seq, head.sha256
        )),
        "{text}"
    );
    // No listener: the append still succeeds (a warning is logged).
    drop(receiver);
    std::fs::remove_file(&socket).expect("rm");
    log.append(2, AuditAction::Apply, AuditResult::Ok, entry("fix_b"))
        .expect("an append does not fail without a system log");
    assert_eq!(log.verify().expect("reads"), Ok(2));
}

#[test]
fn a_missing_head_is_reported() {
    let (dir, log) = log_of(2);
    std::fs::remove_file(dir.path().join(HEAD_FILE)).expect("rm");
    let found = problem(&log);
    assert!(found.what.contains("audit.head"), "{found}");
}

#[test]
fn long_error_texts_are_cut_at_a_character_boundary() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = AuditLog::new(dir.path());
    let record = log
        .append(
            0,
            AuditAction::Apply,
            AuditResult::Failed,
            AuditEntry {
                error: Some("é".repeat(5000)),
                ..AuditEntry::default()
            },
        )
        .expect("append");
    let error = record.error.expect("error text");
    assert!(error.len() <= MAX_ERROR_TEXT + 6 && error.ends_with("[...]"));
    assert_eq!(log.verify().expect("readable"), Ok(1));
}

#[test]
fn read_verified_returns_the_records_of_an_intact_chain_only() {
    let (_dir, log) = log_of(3);
    let records = log.read_verified().expect("readable").expect("intact");
    let ids: Vec<_> = records.iter().map(|r| r.bundle_id.as_deref()).collect();
    assert_eq!(ids, [Some("fix_1"), Some("fix_2"), Some("fix_3")]);
    assert_eq!(
        records[0].bundle_created.as_deref(),
        Some("2023-11-14T19:26:40Z")
    );

    let mut all = lines(&log);
    all[1] = all[1].replace("fix_2", "fix_9");
    rewrite(&log, &all);
    let found = log
        .read_verified()
        .expect("readable")
        .expect_err("tampered");
    assert_eq!(found.line, 2, "{found}");

    // Only the head shows this one: the records must not be handed out.
    let (_dir, log) = log_of(2);
    let mut all = lines(&log);
    all.pop();
    rewrite(&log, &all);
    assert!(log.read_verified().expect("readable").is_err());
}

#[test]
fn lines_written_before_bundle_created_existed_still_read_and_chain() {
    // A line as patchd wrote it before the field: no `bundle_created`.
    let dir = tempfile::tempdir().expect("temp dir");
    let log = AuditLog::new(dir.path());
    let old = format!(
        "{{\"seq\":1,\"time\":\"2023-11-14T22:13:21Z\",\"action\":\"apply\",\"bundle_id\":\"fix_1\",\
         \"bundle_sha256\":null,\"signer_key_id\":null,\"cves\":[],\"result\":\"ok\",\"error\":null,\
         \"detail\":null,\"prev\":\"{GENESIS}\"}}"
    );
    std::fs::write(log.path(), format!("{old}\n")).expect("write");
    let head = Head {
        seq: 1,
        sha256: sha256_hex(old.as_bytes()),
    };
    std::fs::write(
        dir.path().join(HEAD_FILE),
        serde_json::to_vec(&head).expect("head"),
    )
    .expect("write head");
    log.append(
        1_700_000_100,
        AuditAction::Revert,
        AuditResult::Ok,
        entry("fix_1"),
    )
    .expect("append after an old line");
    let records = log.read_verified().expect("readable").expect("intact");
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].bundle_created, None);
    assert!(records[1].bundle_created.is_some());
}

#[test]
fn cve_publication_dates_are_written_only_when_there_are_some() {
    // Without dates the line is as before the field (checked byte for byte
    // above); with them they follow `bundle_created`, and read back.
    let dir = tempfile::tempdir().expect("temp dir");
    let log = AuditLog::new(dir.path());
    let mut dated = entry("fix_1");
    dated
        .cve_published
        .insert("CVE-2024-0001".to_owned(), "2024-01-15".to_owned());
    log.append(1_700_000_000, AuditAction::Apply, AuditResult::Ok, dated)
        .expect("append");
    log.append(
        1_700_000_100,
        AuditAction::Apply,
        AuditResult::Ok,
        entry("fix_2"),
    )
    .expect("append");
    let lines = lines(&log);
    assert!(
        lines[0].contains(
            "\"bundle_created\":\"2023-11-14T19:26:40Z\",\
             \"cve_published\":{\"CVE-2024-0001\":\"2024-01-15\"},\"result\":\"ok\""
        ),
        "{}",
        lines[0]
    );
    assert!(!lines[1].contains("cve_published"), "{}", lines[1]);
    let records = log.read_verified().expect("readable").expect("intact");
    assert_eq!(records[0].cve_published["CVE-2024-0001"], "2024-01-15");
    assert!(records[1].cve_published.is_empty());
}
