//! Manifest validation: one valid example, and each rule broken once.

use super::*;

type Edit = fn(&mut Manifest);

fn expect_error(edit: Edit) -> String {
    let mut m = Manifest::example();
    edit(&mut m);
    match m.validate() {
        Ok(()) => panic!("{m:?} validated"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn example_is_valid() {
    Manifest::example().validate().expect("example validates");
}

#[test]
fn valid_edge_cases() {
    let edits: &[(&str, Edit)] = &[
        ("id of 48 bytes", |m| m.id = "a".repeat(48)),
        ("id with every allowed kind of byte", |m| {
            m.id = "abc_xyz_019".to_owned()
        }),
        ("empty description", |m| m.description.clear()),
        ("description with tab and unicode", |m| {
            m.description = "fix\tthe bug in “cmdline” — café".to_owned()
        }),
        ("description with newlines and right-to-left script", |m| {
            m.description = "line one\nשלום, مرحبا\n".to_owned()
        }),
        ("no CVEs", |m| m.cves.clear()),
        ("CVE with 7 digits", |m| {
            m.cves = vec!["CVE-2021-1234567".to_owned()]
        }),
        ("no package version", |m| m.target.package_version = None),
        ("Debian version with epoch and tilde", |m| {
            m.target.package_version = Some("1:6.1.176-1~bpo11+1".to_owned())
        }),
        ("clone-suffixed symbol names", |m| {
            m.replaced_functions[0].old_name = "foo.isra.0".to_owned();
            m.symbols[0].name = "foo.constprop.0".to_owned();
        }),
        ("symbol in a module, unique, nothing else known", |m| {
            m.symbols[0].object = Some("ext4".to_owned());
            m.symbols[0].kind = None;
            m.symbols[0].object_file = None;
            m.symbols[0].sympos = None;
            m.symbols[0].size = None;
        }),
        ("a global found anywhere", |m| {
            m.symbols[0].binding = SymbolBinding::Global;
            m.symbols[0].object = None;
        }),
        ("same kernel name for two module symbols", |m| {
            let mut other = m.symbols[0].clone();
            other.symbol = "suture_old_cmdline_proc_show_2".to_owned();
            other.object = Some("nf_tables".to_owned());
            m.symbols.push(other);
        }),
        ("dependencies", |m| {
            m.dependencies = vec!["base_fix".to_owned(), "other".to_owned()]
        }),
        ("target modules, `-` allowed", |m| {
            m.target_modules = vec!["ext4".to_owned(), "snd-hda-intel".to_owned()]
        }),
        ("target modules at the cap", |m| {
            m.target_modules = (0..MAX_TARGET_MODULES)
                .map(|i| format!("m{i:03}"))
                .collect()
        }),
        ("created at the cap", |m| m.created = MAX_CREATED),
        ("created 0", |m| m.created = 0),
    ];
    for (what, edit) in edits {
        let mut m = Manifest::example();
        edit(&mut m);
        if let Err(e) = m.validate() {
            panic!("{what}: {e}");
        }
    }
}

#[test]
fn invalid_fields_are_named() {
    let cases: &[(&str, Edit)] = &[
        ("field id", |m| m.id.clear()),
        ("field id", |m| m.id = "a".repeat(49)),
        ("field id", |m| m.id = "Cmdline".to_owned()),
        ("field id", |m| m.id = "cmd.line".to_owned()),
        ("field id", |m| m.id = "cmdline-fix".to_owned()),
        ("field id", |m| m.id = "../etc".to_owned()),
        ("field description", |m| {
            m.description = "a\x1b[31mred".to_owned()
        }),
        ("field description", |m| m.description = "x".repeat(4097)),
        // Trojan Source: text that reads otherwise than it is.
        ("field description", |m| {
            m.description = "fixes \u{202E}evil\u{202C} CVE".to_owned()
        }),
        ("field description", |m| {
            m.description = "a\u{2066}b\u{2069}".to_owned()
        }),
        ("field description", |m| {
            m.description = "\u{200F}x".to_owned()
        }),
        ("field description", |m| {
            m.description = "x\u{200B}".to_owned()
        }),
        ("field description", |m| {
            m.description = "x\u{2028}y".to_owned()
        }),
        ("field description", |m| {
            m.description = "\u{FEFF}x".to_owned()
        }),
        ("field description", |m| m.description = "a\rb".to_owned()),
        ("field description", |m| {
            m.description = "a\u{85}b".to_owned()
        }),
        ("field cves[0]", |m| m.cves = vec!["CVE-24-0001".to_owned()]),
        ("field cves[0]", |m| {
            m.cves = vec!["CVE-2024-001".to_owned()]
        }),
        ("field cves[0]", |m| {
            m.cves = vec!["cve-2024-0001".to_owned()]
        }),
        ("field cves[0]", |m| {
            m.cves = vec!["CVE-2024-0001 ".to_owned()]
        }),
        ("field cves[0]", |m| m.cves = vec!["CVE-2024-".to_owned()]),
        ("field cves[0]", |m| {
            m.cves = vec![format!("CVE-2024-{}", "1".repeat(20))]
        }),
        ("field cves lists", |m| {
            m.cves = vec!["CVE-2024-0001".to_owned(), "CVE-2024-0001".to_owned()]
        }),
        ("field cves has 257", |m| {
            m.cves = (0..257).map(|i| format!("CVE-2024-{i:05}")).collect()
        }),
        ("field target.kernel_release", |m| {
            m.target.kernel_release.clear()
        }),
        ("field target.kernel_release", |m| {
            m.target.kernel_release = "6.1.0 50".to_owned()
        }),
        ("field target.kernel_release", |m| {
            m.target.kernel_release = "6".repeat(65)
        }),
        ("field target.build_id", |m| {
            m.target.build_id = "0123456789ABCDEF0123456789abcdef01234567".to_owned()
        }),
        ("field target.build_id", |m| {
            m.target.build_id = "abc".to_owned()
        }),
        ("field target.build_id", |m| {
            m.target.build_id = "0123456".to_owned()
        }),
        ("field target.build_id", |m| {
            m.target.build_id = "a".repeat(130)
        }),
        ("field target.package_version", |m| {
            m.target.package_version = Some("v6.1".to_owned())
        }),
        ("field target.package_version", |m| {
            m.target.package_version = Some(String::new())
        }),
        ("replaces no function", |m| m.replaced_functions.clear()),
        ("field replaced_functions[0].old_name", |m| {
            m.replaced_functions[0].old_name = "cmdline proc".to_owned()
        }),
        ("field replaced_functions[0].old_name", |m| {
            m.replaced_functions[0].old_name = "f".repeat(512)
        }),
        ("field replaced_functions[0].old_size", |m| {
            m.replaced_functions[0].old_size = 0
        }),
        ("field replaced_functions[0].new_name", |m| {
            m.replaced_functions[0].new_name.clear()
        }),
        ("field replaced_functions[0].object_file", |m| {
            m.replaced_functions[0].object_file = "/fs/proc/cmdline.o".to_owned()
        }),
        ("field replaced_functions[0].object_file", |m| {
            m.replaced_functions[0].object_file = "fs/../cmdline.o".to_owned()
        }),
        ("field replaced_functions[0].object_file", |m| {
            m.replaced_functions[0].object_file = "fs//cmdline.o".to_owned()
        }),
        ("field replaced_functions lists", |m| {
            let again = m.replaced_functions[0].clone();
            m.replaced_functions.push(again);
        }),
        ("field new_functions[0].name", |m| {
            m.new_functions.push(NewFunction {
                name: "a-b".to_owned(),
                object_file: "a.o".to_owned(),
            })
        }),
        ("field symbols[0].symbol", |m| m.symbols[0].symbol.clear()),
        ("field symbols[0].name", |m| {
            m.symbols[0].name = "a b".to_owned()
        }),
        ("field symbols[0].object", |m| {
            m.symbols[0].object = Some("a/b".to_owned())
        }),
        ("field symbols[0].object", |m| {
            m.symbols[0].object = Some("m".repeat(56))
        }),
        ("field symbols[0].object_file", |m| {
            m.symbols[0].object_file = Some("..".to_owned())
        }),
        ("field symbols[0].sympos", |m| m.symbols[0].sympos = Some(0)),
        ("field symbols lists", |m| {
            let again = m.symbols[0].clone();
            m.symbols.push(again);
        }),
        ("field dependencies[0]", |m| {
            m.dependencies = vec!["A".to_owned()]
        }),
        ("own id", |m| m.dependencies = vec![m.id.clone()]),
        ("field dependencies lists", |m| {
            m.dependencies = vec!["a".to_owned(), "a".to_owned()]
        }),
        ("field dependencies has 65", |m| {
            m.dependencies = (0..65).map(|i| format!("d{i}")).collect()
        }),
        ("field target_modules[0] is `ext/4`", |m| {
            m.target_modules = vec!["ext/4".to_owned()]
        }),
        ("field target_modules[0] is ``", |m| {
            m.target_modules = vec![String::new()]
        }),
        ("field target_modules[0] is `vmlinux`", |m| {
            m.target_modules = vec!["vmlinux".to_owned()]
        }),
        ("field target_modules[0]", |m| {
            m.target_modules = vec!["m".repeat(56)]
        }),
        ("field target_modules lists `ext4` twice", |m| {
            m.target_modules = vec!["ext4".to_owned(), "ext4".to_owned()]
        }),
        (
            "field target_modules[1] is `ext4`, which is not in sorted order",
            |m| m.target_modules = vec!["jbd2".to_owned(), "ext4".to_owned()],
        ),
        (
            "field target_modules has 257 entries, more than the limit of 256",
            |m| {
                m.target_modules = (0..=MAX_TARGET_MODULES)
                    .map(|i| format!("m{i:03}"))
                    .collect()
            },
        ),
        ("field created", |m| m.created = MAX_CREATED + 1),
        ("field patchgen_version", |m| m.patchgen_version.clear()),
        ("field patchgen_version", |m| {
            m.patchgen_version = "0.1.0 (git)".to_owned()
        }),
        ("field kmod_interface", |m| m.kmod_interface = 0),
    ];
    for (want, edit) in cases {
        let message = expect_error(*edit);
        assert!(message.contains(want), "`{message}` does not name `{want}`");
    }
}

#[test]
fn counts_are_capped() {
    let message = expect_error(|m| {
        let f = m.replaced_functions[0].clone();
        m.replaced_functions = (0..=MAX_FUNCTIONS)
            .map(|i| ReplacedFunction {
                old_name: format!("f{i}"),
                ..f.clone()
            })
            .collect();
    });
    assert!(message.contains("replaced_functions has 4097"), "{message}");
    let message = expect_error(|m| {
        let s = m.symbols[0].clone();
        m.symbols = (0..=MAX_SYMBOLS)
            .map(|i| LinkRecord {
                symbol: format!("s{i}"),
                ..s.clone()
            })
            .collect();
    });
    assert!(message.contains("symbols has 16385"), "{message}");
}

#[test]
fn error_values_are_escaped_and_shortened() {
    let message = expect_error(|m| m.id = format!("\x1b[2J{}", "x".repeat(200)));
    assert!(!message.contains('\x1b'), "{message:?}");
    assert!(message.contains("\\u{1b}[2J"), "{message}");
    assert!(message.len() < 250, "{message}");
}

#[test]
fn unknown_fields_are_rejected() {
    let mut json = serde_json::to_value(Manifest::example()).expect("to json");
    json["target"]["arch"] = "x86_64".into();
    let err = serde_json::from_value::<Manifest>(json).expect_err("unknown field accepted");
    assert!(err.to_string().contains("unknown field `arch`"), "{err}");
    let mut json = serde_json::to_value(Manifest::example()).expect("to json");
    json["symbols"][0]["kind"] = "tls".into();
    assert!(serde_json::from_value::<Manifest>(json).is_err());
}

#[test]
fn json_field_order_is_fixed() {
    let json = serde_json::to_string(&Manifest::example()).expect("to json");
    let order = [
        "\"id\"",
        "\"description\"",
        "\"cves\"",
        "\"target\"",
        "\"kernel_release\"",
        "\"build_id\"",
        "\"package_version\"",
        "\"replaced_functions\"",
        "\"new_functions\"",
        "\"symbols\"",
        "\"dependencies\"",
        "\"created\"",
        "\"patchgen_version\"",
        "\"kmod_interface\"",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|k| json.find(k).unwrap_or_else(|| panic!("{k} missing")))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{json}");
}

#[test]
fn target_modules_round_trip() {
    let mut m = Manifest::example();
    m.target_modules = vec!["ext4".to_owned(), "jbd2".to_owned()];
    m.validate().expect("valid");
    let json = serde_json::to_string(&m).expect("to json");
    assert!(
        json.ends_with(r#","target_modules":["ext4","jbd2"]}"#),
        "{json}"
    );
    let back: Manifest = serde_json::from_str(&json).expect("from json");
    assert_eq!(back, m);
    assert_eq!(serde_json::to_string(&back).expect("to json"), json);
}

#[test]
fn manifest_without_target_modules_parses_and_stays_without() {
    // A manifest written before the field existed, as every vmlinux-only
    // patch's still is: no `target_modules` key.
    let json = serde_json::to_string(&Manifest::example()).expect("to json");
    assert!(!json.contains("target_modules"), "{json}");
    let m: Manifest = serde_json::from_str(&json).expect("from json");
    assert!(m.target_modules.is_empty());
    m.validate().expect("valid");
    assert_eq!(serde_json::to_string(&m).expect("to json"), json);
}

#[test]
fn bundle_version_is_signed_last_and_left_out_when_zero() {
    // 0 (every bundle made before the field): no key, the bytes as before.
    let json = serde_json::to_string(&Manifest::example()).expect("to json");
    assert!(!json.contains("bundle_version"), "{json}");
    let m: Manifest = serde_json::from_str(&json).expect("from json");
    assert_eq!(m.bundle_version, 0);

    let mut m = Manifest::example();
    m.bundle_version = 7;
    m.validate().expect("valid");
    let json = serde_json::to_string(&m).expect("to json");
    assert!(json.ends_with(r#","bundle_version":7}"#), "{json}");
    let back: Manifest = serde_json::from_str(&json).expect("from json");
    assert_eq!(back, m);
    assert!(
        serde_json::from_str::<Manifest>(&json.replace(":7}", ":-1}")).is_err(),
        "a negative version is refused"
    );
}

#[test]
fn fixes_up_to_round_trips_and_is_checked() {
    let mut m = Manifest::example();
    assert!(!serde_json::to_string(&m)
        .expect("to json")
        .contains("fixes_up_to"));
    m.fixes_up_to = Some(crate::FixesUpTo {
        version: "6.1.187-1".to_owned(),
        release: Some("6.1.0-53-amd64".to_owned()),
    });
    m.validate().expect("valid");
    let json = serde_json::to_string(&m).expect("to json");
    assert!(
        json.ends_with(r#","fixes_up_to":{"version":"6.1.187-1","release":"6.1.0-53-amd64"}}"#),
        "{json}"
    );
    let back: Manifest = serde_json::from_str(&json).expect("from json");
    assert_eq!(back, m);

    // Older than the target's own version (6.1.176-1): nonsense.
    let mut older = m.clone();
    if let Some(f) = older.fixes_up_to.as_mut() {
        f.version = "6.1.170-1".to_owned();
    }
    let error = older.validate().expect_err("older").to_string();
    assert!(error.contains("fixes_up_to.version"), "{error}");
    assert!(error.contains("not older than the target"), "{error}");
    // Not a version, not a release.
    for (version, release) in [("latest", None), ("6.1.187-1", Some("6.1 53"))] {
        let mut bad = m.clone();
        bad.fixes_up_to = Some(crate::FixesUpTo {
            version: version.to_owned(),
            release: release.map(str::to_owned),
        });
        assert!(bad.validate().is_err(), "{version} {release:?}");
    }
}

/// The example with publication dates for `(cve, date)`, each CVE added to
/// `cves` too.
fn with_dates(dates: &[(&str, &str)]) -> Manifest {
    let mut m = Manifest::example();
    for (cve, date) in dates {
        if !m.cves.iter().any(|c| c == cve) {
            m.cves.push((*cve).to_owned());
        }
        m.cve_published
            .insert((*cve).to_owned(), (*date).to_owned());
    }
    m
}

#[test]
fn cve_publication_dates_that_are_real_days_validate() {
    for date in [
        "1999-01-01",
        "2024-02-29",
        "2000-02-29",
        "2023-12-31",
        "9999-12-31",
    ] {
        let m = with_dates(&[("CVE-2024-0001", date)]);
        if let Err(e) = m.validate() {
            panic!("{date}: {e}");
        }
    }
    // Some CVEs dated, others not.
    let mut m = with_dates(&[("CVE-2024-0002", "2024-05-01")]);
    m.validate().expect("a date for one CVE of two");
    // As many dates as CVEs, at the cap.
    m.cves = (0..MAX_CVES).map(|i| format!("CVE-2024-{i:05}")).collect();
    m.cve_published = m
        .cves
        .iter()
        .map(|c| (c.clone(), "2024-01-02".to_owned()))
        .collect();
    m.validate().expect("a date for each of 256 CVEs");
}

#[test]
fn cve_publication_dates_are_checked() {
    let bad_dates = [
        "2023-02-29",
        "1900-02-29",
        "2024-04-31",
        "2024-13-01",
        "2024-00-10",
        "2024-01-00",
        "2024-01-32",
        "1998-12-31",
        "0000-01-01",
        "2024-1-01",
        "2024/01/01",
        "24-01-01",
        "2024-01-01T00:00:00Z",
        " 2024-01-01",
        "2024-01-01\n",
        "２０２４-01-01",
        "+024-01-01",
        "",
    ];
    for date in bad_dates {
        let error = with_dates(&[("CVE-2024-0001", date)])
            .validate()
            .expect_err(date)
            .to_string();
        assert!(
            error.contains("field cve_published[CVE-2024-0001]") && error.contains("calendar date"),
            "{date:?}: {error}"
        );
    }
    // A date of a CVE the bundle does not list.
    let mut m = Manifest::example();
    m.cve_published
        .insert("CVE-2024-0002".to_owned(), "2024-01-01".to_owned());
    let error = m.validate().expect_err("not in cves").to_string();
    assert!(
        error.contains("field cve_published is `CVE-2024-0002`") && error.contains("in cves"),
        "{error}"
    );
    // A key that is not even a CVE id, shown escaped.
    let mut m = Manifest::example();
    m.cve_published
        .insert("\x1b[2J".to_owned(), "2024-01-01".to_owned());
    let error = m.validate().expect_err("not a CVE").to_string();
    assert!(!error.contains('\x1b'), "{error:?}");
    // More dates than the cap (and so than CVEs).
    let mut m = Manifest::example();
    m.cve_published = (0..=MAX_CVES)
        .map(|i| (format!("CVE-2024-{i:05}"), "2024-01-01".to_owned()))
        .collect();
    let error = m.validate().expect_err("too many").to_string();
    assert!(error.contains("cve_published has 257 entries"), "{error}");
}

#[test]
fn cve_publication_dates_round_trip_last_and_sorted() {
    let m = with_dates(&[
        ("CVE-2024-9999", "2024-03-01"),
        ("CVE-2024-10000", "2024-02-29"),
    ]);
    m.validate().expect("valid");
    let json = serde_json::to_string(&m).expect("to json");
    assert!(
        json.ends_with(
            r#","cve_published":{"CVE-2024-10000":"2024-02-29","CVE-2024-9999":"2024-03-01"}}"#
        ),
        "{json}"
    );
    let back: Manifest = serde_json::from_str(&json).expect("from json");
    assert_eq!(back, m);
    assert_eq!(serde_json::to_string(&back).expect("to json"), json);
}

#[test]
fn a_manifest_without_publication_dates_keeps_its_bytes() {
    // The golden bundle, signed before the field existed: it still verifies
    // (its signature covers the manifest's bytes), has no dates, and its
    // manifest encodes to the very bytes it holds.
    let golden = include_bytes!("../tests/golden/example.bundle");
    let key = crate::SigningKey::from_bytes(&[7; 32]);
    let bundle = crate::parse(golden).expect("the golden bundle parses");
    bundle
        .verify(&[key.verifying_key()])
        .expect("the golden bundle verifies");
    let manifest = bundle.inspection().manifest;
    assert!(manifest.cve_published.is_empty());
    let json = serde_json::to_vec(&manifest).expect("to json");
    assert!(
        golden.windows(json.len()).any(|w| w == json.as_slice()),
        "the manifest's encoding changed"
    );
    let text = String::from_utf8_lossy(&json);
    assert!(!text.contains("cve_published"), "{text}");
    let back: Manifest = serde_json::from_slice(&json).expect("from json");
    assert_eq!(serde_json::to_vec(&back).expect("to json"), json);
}
