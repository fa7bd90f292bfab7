//! The audit log's witness: after every append the new head (its `seq` and
//! sha256) is sent to the system log, as one syslog line on a Unix datagram
//! socket (`/dev/log`, which journald and the syslog daemons read). The
//! copies there are out of reach of someone who later rewrites `audit.log`
//! and `audit.head` on this host without also controlling the journal (or
//! the log server it forwards to): a rewritten chain disagrees with the
//! heads logged when the lines were written.
//!
//! The send never blocks (a full socket buffer is an error, not a wait)
//! and never fails an apply: the caller warns instead.

use std::os::unix::net::UnixDatagram;
use std::path::Path;

use tracing::warn;

/// Where the heads go unless the config file says otherwise.
pub const DEFAULT_SYSLOG_SOCKET: &str = "/dev/log";
/// The syslog tag, as `journalctl -t patchd` finds the lines.
pub const SYSLOG_TAG: &str = "patchd";
/// `LOG_AUTHPRIV | LOG_NOTICE`: a security record, kept where only root
/// reads it (auth.log) by the usual syslog configurations.
const PRIORITY: u8 = 10 * 8 + 5;

/// The syslog line of a new head: `<85>patchd[PID]: audit head seq=N
/// sha256=HEX log=PATH`.
pub fn syslog_line(pid: u32, log: &Path, seq: u64, sha256: &str) -> String {
    format!(
        "<{PRIORITY}>{SYSLOG_TAG}[{pid}]: audit head seq={seq} sha256={sha256} log={}",
        log.display()
    )
}

/// Sends `line` to the datagram socket `socket` without blocking.
pub fn send_to_syslog(socket: &Path, line: &str) -> std::io::Result<()> {
    let sender = UnixDatagram::unbound()?;
    sender.set_nonblocking(true)?;
    sender.send_to(line.as_bytes(), socket)?;
    Ok(())
}

/// Sends the new head to the system log; a failure is a warning, never a
/// failed append (the log and its head are written already).
pub(super) fn witness_head(socket: &Path, log: &Path, seq: u64, sha256: &str) {
    let line = syslog_line(std::process::id(), log, seq, sha256);
    if let Err(error) = send_to_syslog(socket, &line) {
        warn!(
            socket = %socket.display(),
            error = %error,
            seq,
            sha256,
            "cannot send the audit log's head to the system log; the audit log itself is written, but nothing outside this host's files will show a later rewrite of it: check that syslog or journald listens on the socket"
        );
    }
}
