//! The `functions` file of a simulated patch (docs/kmod-interface.md).

use std::fmt::Write as _;

/// A function a simulated patch replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FakeFunction {
    /// The replaced kernel function.
    pub(super) name: String,
    /// Redirected by the ftrace handler instead of a direct call, as when
    /// another ftrace user holds the function.
    pub(super) ftrace_handler: bool,
}

impl FakeFunction {
    /// `name`, redirected by a direct call.
    pub(super) fn direct(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ftrace_handler: false,
        }
    }
}

/// The file's text: one line per function, `old_name old_addr old_size
/// new_name new_addr new_size active calls path`, with made-up addresses
/// and sizes; `active` and the path follow `enabled` (`-`: not attached).
pub(super) fn functions_file(functions: &[FakeFunction], enabled: bool) -> String {
    let mut text = String::new();
    for (index, function) in (0u64..).zip(functions) {
        let path = match (enabled, function.ftrace_handler) {
            (false, _) => "-",
            (true, false) => "direct",
            (true, true) => "ftrace",
        };
        let _ = writeln!(
            text,
            "{name} {old:#x} 37 new_{name} {new:#x} 45 {active} 0 {path}",
            name = function.name,
            old = 0xffff_ffff_8135_0c40_u64 + index * 0x100,
            new = 0xffff_ffff_c0a0_1000_u64 + index * 0x100,
            active = u8::from(enabled),
        );
    }
    text
}
