//! The config file: defaults, every key, flags over the file, and each
//! refusal naming its key and the file.

use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::ownership::default_owners;

const FULL: &str = r#"
state_dir = "/srv/suture/state"
keys_dir = "/srv/suture/keys"
kmod = "/srv/suture/suture.ko"
watch_dir = "/srv/suture/bundles"
switch_attempts = 5
switch_backoff_ms = 100
crash_guard_uptime_secs = 1800

[repository]
url = "https://patches.example.org/debian/6.1"
interval_secs = 600
jitter_secs = 60
timeout_secs = 30

[metrics]
textfile_dir = "/var/lib/prometheus/node-exporter"
listen = "127.0.0.1:9464"
"#;

fn parse(text: &str) -> Result<Settings, ConfigError> {
    Settings::parse(text, Path::new("/etc/suture/patchd.toml"))
}

/// A config file in a fresh private directory, with `mode`.
fn config_file(text: &str, mode: u32) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = dir.path().join("patchd.toml");
    std::fs::write(&path, text).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    (dir, path)
}

#[test]
fn an_empty_file_gives_the_documented_defaults() {
    let settings = parse("").expect("empty is fine");
    assert_eq!(
        (
            settings.state_dir.as_path(),
            settings.keys_dir.as_path(),
            settings.kmod.as_path(),
            settings.watch_dir.as_path()
        ),
        (
            Path::new("/var/lib/suture"),
            Path::new("/etc/suture/keys"),
            Path::new("/usr/lib/suture/suture.ko"),
            Path::new("/var/lib/suture/bundles")
        )
    );
    assert_eq!(
        (settings.switch_attempts, settings.switch_backoff_ms),
        (10, 20)
    );
    assert_eq!(settings.retry(), RetryPolicy::default());
    assert_eq!(settings.crash_guard_uptime_secs, 600);
    assert_eq!(settings.repository, None);
    assert_eq!(settings.metrics, MetricsSettings::default());
    assert_eq!(
        settings.file.as_deref(),
        Some(Path::new("/etc/suture/patchd.toml"))
    );
}

#[test]
fn every_key_is_read() {
    let settings = parse(FULL).expect("valid");
    assert_eq!(settings.state_dir, Path::new("/srv/suture/state"));
    assert_eq!(settings.keys_dir, Path::new("/srv/suture/keys"));
    assert_eq!(settings.kmod, Path::new("/srv/suture/suture.ko"));
    assert_eq!(settings.watch_dir, Path::new("/srv/suture/bundles"));
    assert_eq!(settings.crash_guard_uptime_secs, 1800);
    assert_eq!(
        settings
            .session_config(default_owners())
            .crash_guard_uptime_secs,
        1800
    );
    assert_eq!(
        settings.retry(),
        RetryPolicy {
            attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        }
    );
    assert_eq!(
        settings.repository,
        Some(RepositorySettings {
            base_url: "https://patches.example.org/debian/6.1/".to_owned(),
            interval: Duration::from_secs(600),
            jitter: Duration::from_secs(60),
            timeout: Duration::from_secs(30),
            max_poll_files: crate::config::DEFAULT_MAX_POLL_FILES,
            max_poll_bytes: crate::config::DEFAULT_MAX_POLL_BYTES,
            ca_file: None,
            ca_pem: None,
        })
    );
    assert_eq!(
        settings.metrics,
        MetricsSettings {
            textfile_dir: Some(PathBuf::from("/var/lib/prometheus/node-exporter")),
            listen: Some("127.0.0.1:9464".parse().expect("address")),
        }
    );
}

#[test]
fn repository_defaults_and_the_jitter_bound() {
    let settings =
        parse("[repository]\nurl = \"http://10.0.0.1/p/\"\nallow_insecure_http = true\n")
            .expect("valid");
    let repository = settings.repository.expect("configured");
    assert_eq!(repository.base_url, "http://10.0.0.1/p/");
    assert_eq!(repository.interval, Duration::from_secs(3600));
    assert_eq!(repository.jitter, Duration::from_secs(300));
    assert_eq!(repository.timeout, Duration::from_secs(120));
    // The default jitter never exceeds half a short interval.
    let short = parse("[repository]\nurl = \"https://h/\"\ninterval_secs = 120\n").expect("valid");
    assert_eq!(
        short.repository.expect("configured").jitter,
        Duration::from_secs(60)
    );
}

#[test]
fn flags_win_over_the_file() {
    let overrides = Overrides {
        state_dir: Some(PathBuf::from("state")),
        switch_attempts: Some(3),
        ..Overrides::default()
    };
    let settings = parse(FULL)
        .expect("valid")
        .with_overrides(&overrides)
        .expect("valid");
    assert_eq!(settings.state_dir, Path::new("state"));
    assert_eq!(settings.keys_dir, Path::new("/srv/suture/keys"));
    assert_eq!(settings.switch_attempts, 3);
    assert_eq!(settings.switch_backoff_ms, 100);
    let bad = Overrides {
        switch_attempts: Some(0),
        ..Overrides::default()
    };
    let error = Settings::default()
        .with_overrides(&bad)
        .expect_err("0 attempts");
    assert_eq!(
        error.to_string(),
        "command line: switch_attempts = 0: give 1 to 1000"
    );
}

#[test]
fn refusals_name_the_key_and_the_file() {
    // (file text, what the error must contain)
    let cases: [(&str, &[&str]); 13] = [
        (
            "stat_dir = \"/x\"\n",
            &["/etc/suture/patchd.toml", "stat_dir", "line 1"],
        ),
        (
            "[repository]\nurl = \"https://h/\"\ninterval = 5\n",
            &["/etc/suture/patchd.toml", "interval", "line 3"],
        ),
        ("[metrics]\nport = 9464\n", &["port", "line 2"]),
        ("[repo]\nurl = \"http://h/\"\n", &["repo"]),
        ("switch_attempts = \"ten\"\n", &["switch_attempts"]),
        ("state_dir = \"var/lib\"\n", &["state_dir", "absolute path"]),
        (
            "switch_attempts = 0\n",
            &["switch_attempts = 0", "1 to 1000"],
        ),
        (
            "switch_backoff_ms = 600000\n",
            &["switch_backoff_ms", "at most 60000"],
        ),
        ("[repository]\n", &["missing field `url`"]),
        (
            "[repository]\nurl = \"ftp://h/\"\n",
            &["repository.url", "http:// or https://"],
        ),
        (
            "[repository]\nurl = \"https://h/?x=1\"\n",
            &["repository.url", "without ?query"],
        ),
        (
            "[repository]\nurl = \"https://h/\"\ninterval_secs = 5\n",
            &["repository.interval_secs = 5", "at least 60"],
        ),
        (
            "[repository]\nurl = \"https://h/\"\ninterval_secs = 600\njitter_secs = 400\n",
            &["repository.jitter_secs = 400", "at most half"],
        ),
    ];
    for (text, wanted) in cases {
        let error = parse(text).expect_err(text);
        let message = crate::error_text(&error);
        assert!(
            message.contains("/etc/suture/patchd.toml"),
            "{text:?}: {message}"
        );
        for want in wanted {
            assert!(message.contains(want), "{text:?}: {message}");
        }
    }
}

#[test]
fn metrics_are_served_on_loopback_only() {
    for good in [
        "127.0.0.1:9464",
        "127.1.2.3:80",
        "[::1]:9464",
        "127.0.0.1:0",
    ] {
        let text = format!("[metrics]\nlisten = \"{good}\"\n");
        let settings = parse(&text).expect(good);
        assert!(
            settings
                .metrics
                .listen
                .is_some_and(|a| a.ip().is_loopback()),
            "{good}"
        );
    }
    for bad in [
        "0.0.0.0:9464",
        "[::]:9464",
        "10.1.2.3:9464",
        "192.168.1.1:9464",
        "[::ffff:127.0.0.1]:9464",
    ] {
        let text = format!("[metrics]\nlisten = \"{bad}\"\n");
        let message = parse(&text).expect_err(bad).to_string();
        assert!(
            message.contains("metrics.listen") && message.contains("not a loopback address"),
            "{bad}: {message}"
        );
    }
    for unparsable in ["localhost:9464", "127.0.0.1", "9464"] {
        let text = format!("[metrics]\nlisten = \"{unparsable}\"\n");
        let message = parse(&text).expect_err(unparsable).to_string();
        assert!(message.contains("give an IP address and port"), "{message}");
    }
}

#[test]
fn a_missing_default_file_means_the_defaults_but_a_named_one_is_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("patchd.toml");
    let error = Settings::load(Some(&missing), &Overrides::default(), &default_owners())
        .expect_err("named and missing");
    assert!(matches!(error, ConfigError::Missing { .. }), "{error}");
    assert!(error.to_string().contains("leave out --config"), "{error}");
    // The default path: absent on a build machine, then the defaults.
    if !Path::new(DEFAULT_CONFIG_FILE).exists() {
        let settings =
            Settings::load(None, &Overrides::default(), &default_owners()).expect("defaults");
        assert_eq!(settings, Settings::default());
    }
}

#[test]
fn a_file_is_read_with_its_overrides() {
    let (_dir, path) = config_file(FULL, 0o644);
    let overrides = Overrides {
        watch_dir: Some(PathBuf::from("/tmp/w")),
        ..Overrides::default()
    };
    let settings = Settings::load(Some(&path), &overrides, &default_owners()).expect("loads");
    assert_eq!(settings.file.as_deref(), Some(path.as_path()));
    assert_eq!(settings.watch_dir, Path::new("/tmp/w"));
    assert_eq!(settings.state_dir, Path::new("/srv/suture/state"));
}

#[test]
fn a_file_others_could_have_written_is_refused() {
    let (_dir, path) = config_file(FULL, 0o664);
    let error = Settings::load(Some(&path), &Overrides::default(), &default_owners())
        .expect_err("group-writable");
    assert!(
        matches!(
            &error,
            ConfigError::Unsafe {
                source: OwnershipError::Writable { .. },
                ..
            }
        ),
        "{error}"
    );
    assert!(crate::error_text(&error).contains("chmod go-w"), "{error}");

    let (_dir, path) = config_file(FULL, 0o644);
    // Owned by someone patchd does not trust (as if it were not root's).
    let stranger = u32::MAX - 1;
    let error =
        Settings::load(Some(&path), &Overrides::default(), &[stranger]).expect_err("foreign owner");
    assert!(
        matches!(
            &error,
            ConfigError::Unsafe {
                source: OwnershipError::Owner { .. },
                ..
            }
        ),
        "{error}"
    );

    let (dir, path) = config_file(FULL, 0o644);
    let link = dir.path().join("link.toml");
    std::os::unix::fs::symlink(&path, &link).expect("symlink");
    let error =
        Settings::load(Some(&link), &Overrides::default(), &default_owners()).expect_err("a link");
    assert!(
        matches!(
            &error,
            ConfigError::Unsafe {
                source: OwnershipError::Symlink { .. },
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn a_huge_file_is_refused() {
    let text = format!("# {}\n", "x".repeat(2 << 20));
    let (_dir, path) = config_file(&text, 0o644);
    let error = Settings::load(Some(&path), &Overrides::default(), &default_owners())
        .expect_err("too large");
    assert!(matches!(error, ConfigError::TooLarge { .. }), "{error}");
}

#[test]
fn plain_http_repositories_need_an_explicit_opt_in() {
    let error = parse("[repository]\nurl = \"http://h/\"\n").expect_err("refused");
    let text = error.to_string();
    assert!(
        text.contains("repository.url") && text.contains("allow_insecure_http = true"),
        "{text}"
    );
    let error = parse("[repository]\nurl = \"http://h/\"\nallow_insecure_http = false\n")
        .expect_err("refused");
    assert!(error.to_string().contains("https://"), "{error}");
    let settings =
        parse("[repository]\nurl = \"http://h/\"\nallow_insecure_http = true\n").expect("opted in");
    assert_eq!(
        settings.repository.map(|r| r.base_url).as_deref(),
        Some("http://h/")
    );
    parse("[repository]\nurl = \"https://h/\"\n").expect("https needs nothing");
}

#[test]
fn a_fifo_config_is_refused_without_blocking() {
    let (dir, path) = config_file("", 0o644);
    std::fs::remove_file(&path).expect("rm");
    crate::files::tests::mkfifo(&path);
    let error = crate::files::tests::without_blocking(move || {
        Settings::load(Some(&path), &Overrides::default(), &default_owners()).map(|_| ())
    })
    .expect_err("a FIFO is refused");
    assert!(matches!(error, ConfigError::Read { .. }), "{error:?}");
    assert!(
        crate::error_text(&error).contains("not a regular file"),
        "{}",
        crate::error_text(&error)
    );
    drop(dir);
}

#[test]
fn a_fifo_module_is_refused_without_blocking() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("suture.ko");
    crate::files::tests::mkfifo(&path);
    let error = crate::files::tests::without_blocking(move || {
        crate::link::load::read_module(&path).map(|_| ())
    })
    .expect_err("a FIFO is refused");
    assert!(
        crate::error_text(&error).contains("not a regular file"),
        "{}",
        crate::error_text(&error)
    );
}

#[test]
fn the_crash_guard_uptime_is_bounded_and_a_flag_wins() {
    let zero = parse("crash_guard_uptime_secs = 0\n").expect("0 turns the uptime proof off");
    assert_eq!(zero.crash_guard_uptime_secs, 0);
    let error = parse("crash_guard_uptime_secs = 2592001\n").expect_err("over 30 days");
    let text = error.to_string();
    assert!(
        text.contains("crash_guard_uptime_secs = 2592001") && text.contains("at most 2592000"),
        "{text}"
    );
    let overrides = Overrides {
        crash_guard_uptime_secs: Some(30),
        ..Overrides::default()
    };
    let settings = parse(FULL)
        .expect("valid")
        .with_overrides(&overrides)
        .expect("valid");
    assert_eq!(settings.crash_guard_uptime_secs, 30);
    let too_long = Overrides {
        crash_guard_uptime_secs: Some(u64::MAX),
        ..Overrides::default()
    };
    let error = parse("").expect("valid").with_overrides(&too_long);
    assert!(
        error.is_err_and(|e| e.to_string().starts_with("command line")),
        "refused, naming the command line"
    );
}

/// A self-signed test CA (public data, made for this test).
const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBiTCCAS+gAwIBAgIUQMEv7d9MdVZ3iMegecQlixl/+kIwCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOc3V0dXJlIHRlc3QgQ0EwIBcNMjYxMjA1MDYxOTIyWhgPMjEy
NjExMTEwNjE5MjJaMBkxFzAVBgNVBAMMDnN1dHVyZSB0ZXN0IENBMFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAE/PHIJIu+ukG1AEXNbJ2DC6H0yj9kQatnFmNiwFxD
CHy6xeXO7kjlWFXTJFARpBY+KQhCeNamKlRTvALXEBc8EKNTMFEwHQYDVR0OBBYE
FDTnOEh2mChZ8To0E6OFebJpXJojMB8GA1UdIwQYMBaAFDTnOEh2mChZ8To0E6OF
ebJpXJojMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIgHSojbu5J
32E1nQwRXWE/3aBXwrSNN0BzO14M/r+0aNwCIQDS6RiF0Q9/uuzmn31kEwiCi9UO
sH66/MqVSzsFKJk/eg==
-----END CERTIFICATE-----
";

#[test]
fn a_ca_file_is_read_like_the_trust_store_and_must_hold_a_certificate() {
    let (dir, _) = config_file("", 0o644);
    let ca = dir.path().join("ca.pem");
    let load = |pem: &str, mode: u32| {
        std::fs::write(&ca, pem).expect("write");
        std::fs::set_permissions(&ca, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let text = format!(
            "[repository]\nurl = \"https://repo.internal/\"\nca_file = \"{}\"\n",
            ca.display()
        );
        let path = dir.path().join("patchd.toml");
        std::fs::write(&path, text).expect("write");
        Settings::load(Some(&path), &Overrides::default(), &default_owners())
    };
    let settings = load(TEST_CA, 0o644).expect("a CA");
    let repository = settings.repository.expect("repository");
    assert_eq!(repository.ca_pem.as_deref(), Some(TEST_CA.as_bytes()));
    // The client is made with it (only that authority is trusted).
    let _client = crate::daemon::repository::Repository::new(repository);

    let error = load("not a certificate", 0o644).expect_err("no certificate");
    assert!(error.to_string().contains("repository.ca_file"), "{error}");
    assert!(
        format!("{error:#}").contains("no PEM certificate")
            || error.to_string().contains("no PEM certificate"),
        "{error}"
    );
    let error = load(TEST_CA, 0o666).expect_err("world-writable");
    assert!(error.to_string().contains("only root"), "{error}");
    let error =
        parse("[repository]\nurl = \"https://h/\"\nca_file = \"ca.pem\"\n").expect_err("relative");
    assert!(error.to_string().contains("absolute"), "{error}");
}

#[test]
fn a_companion_path_given_turns_off_the_dkms_lookup() {
    let lookup = |settings: Settings| settings.session_config(vec![0]).dkms_modules_dir;
    let defaults = parse("").expect("empty is fine");
    assert_eq!(
        lookup(defaults.clone()),
        Some(PathBuf::from("/lib/modules"))
    );
    let in_file = parse("kmod = \"/srv/suture/suture.ko\"").expect("parses");
    assert_eq!(lookup(in_file), None);
    let flag = Overrides {
        kmod: Some(PathBuf::from("/tmp/suture.ko")),
        ..Overrides::default()
    };
    assert_eq!(lookup(defaults.with_overrides(&flag).expect("valid")), None);
}
