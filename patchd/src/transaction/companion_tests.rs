//! The companion module is checked like the trust store before it is
//! loaded (issue #16): a file others could write, or a link, is refused
//! and nothing changes.

use std::os::unix::fs::PermissionsExt;

use super::companion_path;
use crate::testkit::{companion_image, TestHost};
use crate::transaction::apply::{apply, ApplyError};
use crate::transaction::audit::AuditResult;
use crate::transaction::session::Session;

#[test]
fn a_companion_others_could_write_is_refused_before_loading() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let kmod = host.path().join("suture.ko");
    std::fs::set_permissions(&kmod, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let bundle = host.bundle("fix_a");
    let mut session = host.session(&kernel);
    let state_before = std::fs::read(host.path().join("state/state.json")).ok();
    let error = apply(&mut session, &[bundle]).expect_err("refused");
    assert!(
        matches!(error, ApplyError::UnsafeCompanion { .. }),
        "{error:?}"
    );
    let text = crate::error_text(&error);
    assert!(text.contains("chmod go-w"), "{text}");
    assert!(kernel.changes().is_empty(), "{:?}", kernel.changes());
    assert_eq!(
        std::fs::read(host.path().join("state/state.json")).ok(),
        state_before,
        "the state is unchanged"
    );
    let records = session
        .audit_log()
        .read_verified()
        .expect("read")
        .expect("intact");
    assert_eq!(records.last().map(|r| r.result), Some(AuditResult::Refused));

    // The same file, made private, loads.
    std::fs::set_permissions(&kmod, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    apply(&mut session, &[host.path().join("in/fix_a.bundle")]).expect("applies");
}

#[test]
fn a_companion_behind_a_symbolic_link_is_refused() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let kmod = host.path().join("suture.ko");
    let real = host.path().join("real.ko");
    std::fs::rename(&kmod, &real).expect("mv");
    std::os::unix::fs::symlink(&real, &kmod).expect("link");
    let bundle = host.bundle("fix_a");
    let mut session = host.session(&kernel);
    let error = apply(&mut session, &[bundle]).expect_err("refused");
    assert!(
        crate::error_text(&error).contains("symbolic link"),
        "{}",
        crate::error_text(&error)
    );
    assert!(kernel.changes().is_empty());
}

/// A host whose DKMS tree (`modules/RELEASE/updates/dkms/`) holds `files`,
/// and the config that looks there first.
fn with_dkms(host: &TestHost, files: &[(&str, Vec<u8>)]) -> crate::transaction::session::Config {
    let dkms = host
        .path()
        .join("modules")
        .join(crate::fake_kernel::FAKE_RELEASE)
        .join("updates/dkms");
    std::fs::create_dir_all(&dkms).expect("mkdir dkms");
    for (name, bytes) in files {
        std::fs::write(dkms.join(name), bytes).expect("write module");
    }
    crate::transaction::session::Config {
        dkms_modules_dir: Some(host.path().join("modules")),
        ..host.config()
    }
}

fn xz(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut xz = xz2::write::XzEncoder::new(Vec::new(), 6);
    xz.write_all(bytes).expect("compress");
    xz.finish().expect("finish")
}

#[test]
fn the_companion_dkms_built_for_the_running_kernel_is_loaded_first() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    // Debian 13's DKMS compresses with xz; the configured file is gone, so
    // only the DKMS build can be what loads.
    let config = with_dkms(&host, &[("suture.ko.xz", xz(&companion_image()))]);
    std::fs::remove_file(host.path().join("suture.ko")).expect("rm");
    let bundle = host.bundle("fix_a");
    let mut session = Session::open(&kernel, &host.clock, config).expect("session");
    apply(&mut session, &[bundle]).expect("applies with DKMS's companion");
    assert!(kernel.modules_now().contains(&"suture".to_owned()));
}

#[test]
fn an_uncompressed_dkms_build_wins_over_a_compressed_one() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let config = with_dkms(
        &host,
        &[
            ("suture.ko", companion_image()),
            ("suture.ko.zst", b"stale".to_vec()),
        ],
    );
    let path = companion_path(&config, &kernel).expect("path");
    assert!(
        path.ends_with("6.1.0-50-amd64/updates/dkms/suture.ko"),
        "{path:?}"
    );
}

#[test]
fn without_a_dkms_build_the_configured_companion_is_loaded() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let config = with_dkms(&host, &[]);
    assert_eq!(
        companion_path(&config, &kernel).expect("path"),
        host.path().join("suture.ko")
    );
    let bundle = host.bundle("fix_a");
    let mut session = Session::open(&kernel, &host.clock, config).expect("session");
    apply(&mut session, &[bundle]).expect("applies with the configured companion");
}

#[test]
fn a_companion_given_by_path_is_the_only_one_tried() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    // `--kmod` (or `kmod` in the file) leaves dkms_modules_dir unset: the
    // broken DKMS build beside it is not looked at.
    let config = crate::transaction::session::Config {
        dkms_modules_dir: None,
        ..with_dkms(&host, &[("suture.ko", b"not a module".to_vec())])
    };
    let bundle = host.bundle("fix_a");
    let mut session = Session::open(&kernel, &host.clock, config).expect("session");
    apply(&mut session, &[bundle]).expect("applies with the given companion");
}

#[test]
fn a_dkms_build_others_could_write_is_refused() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let config = with_dkms(&host, &[("suture.ko", companion_image())]);
    let dkms_ko = companion_path(&config, &kernel).expect("path");
    std::fs::set_permissions(&dkms_ko, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let bundle = host.bundle("fix_a");
    let mut session = Session::open(&kernel, &host.clock, config).expect("session");
    let error = apply(&mut session, &[bundle]).expect_err("refused");
    assert!(
        matches!(error, ApplyError::UnsafeCompanion { ref path, .. } if *path == dkms_ko),
        "{error:?}"
    );
}
