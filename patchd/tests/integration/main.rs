//! patchd's host-side integration tests: one binary, with shared fixtures
//! that compile small C objects at test time (needs `cc`, no root, no VM).

mod bundle_cli;
mod cli;
mod daemon_cli;
mod fixtures;
mod link;
mod load;
mod malformed;
mod report_cli;
mod uname_cli;
