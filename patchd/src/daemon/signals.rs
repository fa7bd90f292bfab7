//! How the daemon learns it must stop, and how it tells systemd where it is.
//!
//! SIGTERM and SIGINT are blocked and read from a signalfd, so the one poll
//! loop sees them as a readable descriptor next to inotify's and finishes
//! the apply it is in before it stops: a signal never interrupts an apply
//! half way (nix's signalfd; no handler runs, nothing async-signal-unsafe
//! can happen, and no extra crate is needed). Tests and embedders stop the
//! loop through a socket pair instead.
//!
//! [`Notifier`] speaks the `sd_notify` protocol (a datagram to
//! `$NOTIFY_SOCKET`) for `Type=notify` units: `READY=1` once the start-up
//! work is done, `STOPPING=1` on the way out. Without `$NOTIFY_SOCKET` it
//! does nothing.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{SocketAddr, UnixDatagram, UnixStream};
use std::path::Path;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use tracing::warn;

/// What the loop waits on to stop.
#[derive(Debug)]
pub struct Stop {
    source: StopSource,
}

#[derive(Debug)]
enum StopSource {
    Signals(SignalFd),
    Socket(UnixStream),
}

/// Asks a [`Stop::pair`] loop to stop, from any thread.
#[derive(Debug)]
pub struct StopHandle {
    socket: UnixStream,
}

impl StopHandle {
    /// Makes the loop stop after the work it is doing.
    pub fn stop(&self) {
        // A full buffer or a loop gone both mean the message is there or
        // not needed.
        let _ = (&self.socket).write(b"x");
    }
}

impl Stop {
    /// Blocks SIGTERM and SIGINT in the calling thread and reads them from
    /// a signalfd. Call it from the main thread before any other thread
    /// starts (threads inherit the mask; a thread without it would take the
    /// signal's default action and kill the process).
    pub fn on_signals() -> Result<Self, nix::Error> {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGTERM);
        mask.add(Signal::SIGINT);
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)?;
        let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        Ok(Self {
            source: StopSource::Signals(fd),
        })
    }

    /// A stop that a [`StopHandle`] triggers.
    pub fn pair() -> std::io::Result<(Self, StopHandle)> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        Ok((
            Self {
                source: StopSource::Socket(read),
            },
            StopHandle { socket: write },
        ))
    }

    /// The descriptor that becomes readable when the loop must stop.
    pub fn fd(&self) -> BorrowedFd<'_> {
        match &self.source {
            StopSource::Signals(fd) => fd.as_fd(),
            StopSource::Socket(socket) => socket.as_fd(),
        }
    }

    /// Why the loop must stop, if it must (`SIGTERM`, `SIGINT`, `stop
    /// requested`).
    pub fn requested(&self) -> Option<String> {
        match &self.source {
            StopSource::Signals(fd) => match fd.read_signal() {
                Ok(Some(info)) => Some(
                    i32::try_from(info.ssi_signo)
                        .ok()
                        .and_then(|signo| Signal::try_from(signo).ok())
                        .map_or_else(|| format!("signal {}", info.ssi_signo), |s| s.to_string()),
                ),
                Ok(None) => None,
                Err(error) => {
                    warn!(error = %error, "cannot read the signalfd; stopping");
                    Some("an unreadable signalfd".to_owned())
                }
            },
            StopSource::Socket(socket) => {
                let mut byte = [0u8; 1];
                match (&*socket).read(&mut byte) {
                    Ok(0) => Some("the stop handle went away".to_owned()),
                    Ok(_) => Some("stop requested".to_owned()),
                    Err(_) => None,
                }
            }
        }
    }
}

/// Sends `sd_notify` messages to systemd, if it listens.
#[derive(Debug, Default)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// The socket named by `$NOTIFY_SOCKET`: a path, or `@name` for an
    /// abstract socket. None set: a notifier that does nothing.
    pub fn from_env() -> Self {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(name) => Self::to(Path::new(&name)),
            None => Self::default(),
        }
    }

    /// A notifier for the socket at `name` (`@` first: abstract).
    pub fn to(name: &Path) -> Self {
        let address = match name.as_os_str().as_encoded_bytes().strip_prefix(b"@") {
            Some(abstract_name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(abstract_name)
            }
            None => SocketAddr::from_pathname(name),
        };
        let target = match (UnixDatagram::unbound(), address) {
            (Ok(socket), Ok(address)) => Some((socket, address)),
            (Err(error), _) | (_, Err(error)) => {
                warn!(socket = %name.display(), error = %error, "cannot notify systemd");
                None
            }
        };
        Self { target }
    }

    /// Sends `message` (`READY=1`, `STOPPING=1`, `STATUS=...`).
    pub fn notify(&self, message: &str) {
        if let Some((socket, address)) = &self.target {
            if let Err(error) = socket.send_to_addr(message.as_bytes(), address) {
                warn!(error = %error, "cannot notify systemd ({message})");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_handle_makes_the_fd_readable() {
        let (stop, handle) = Stop::pair().expect("pair");
        assert_eq!(stop.requested(), None);
        handle.stop();
        assert_eq!(stop.requested().as_deref(), Some("stop requested"));
        drop(handle);
        assert_eq!(
            stop.requested().as_deref(),
            Some("the stop handle went away")
        );
    }

    #[test]
    fn notifications_reach_the_socket() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notify");
        let systemd = UnixDatagram::bind(&path).expect("bind");
        let notifier = Notifier::to(&path);
        notifier.notify("READY=1");
        notifier.notify("STATUS=watching");
        let mut buffer = [0u8; 64];
        let n = systemd.recv(&mut buffer).expect("recv");
        assert_eq!(&buffer[..n], b"READY=1");
        let n = systemd.recv(&mut buffer).expect("recv");
        assert_eq!(&buffer[..n], b"STATUS=watching");
        // No systemd: nothing happens.
        Notifier::default().notify("READY=1");
    }

    #[test]
    fn abstract_sockets_are_named_with_an_at() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("suture-notify-test-{}", std::process::id());
        let address = SocketAddr::from_abstract_name(name.as_bytes()).expect("address");
        let systemd = UnixDatagram::bind_addr(&address).expect("bind");
        Notifier::to(Path::new(&format!("@{name}"))).notify("STOPPING=1");
        let mut buffer = [0u8; 64];
        let n = systemd.recv(&mut buffer).expect("recv");
        assert_eq!(&buffer[..n], b"STOPPING=1");
    }
}
