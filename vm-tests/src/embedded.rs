//! The rig's data files a command built on it needs at run time, built
//! into the binary so that it runs without the checkout it was compiled in
//! (an installed `patchtest`): the guest's `/init` and shell library and
//! the pinned default kernel. The companion module's sources come from
//! patchgen ([`patchgen::build::companion::SOURCES`]).
//!
//! `tests/embedded.rs` checks that these are the files of the checkout.

/// `vm-tests/guest/init`: the guest's `/init`.
pub const GUEST_INIT: &[u8] = include_bytes!("../guest/init");

/// `vm-tests/guest/lib.sh`: the shell functions every guest check sources.
pub const GUEST_LIB: &[u8] = include_bytes!("../guest/lib.sh");

/// `kernels/default.env`: the pinned default target kernel.
pub const DEFAULT_ENV: &str = include_str!("../../kernels/default.env");

/// Every embedded file, by its path in the checkout.
pub const FILES: &[(&str, &[u8])] = &[
    ("vm-tests/guest/init", GUEST_INIT),
    ("vm-tests/guest/lib.sh", GUEST_LIB),
    ("kernels/default.env", DEFAULT_ENV.as_bytes()),
];
