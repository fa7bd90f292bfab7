//! The daemon's metrics: after every change, the metrics text
//! ([`crate::observe::metrics`]) is rendered again from the state and the verified
//! audit log, written to the textfile directory (node-exporter's textfile
//! collector) and handed to the loopback endpoint, if either is configured.
//!
//! The endpoint is a minimal HTTP/1.1 server on its own thread, std only:
//! one fixed document (`GET /metrics`, `HEAD` too) does not need a web
//! framework, and a slow or hostile local client must never stall the
//! daemon's loop, so it is served apart from it. Requests are read with a
//! size cap, one connection at a time, each closed after its answer, and
//! each has [`REQUEST_DEADLINE`] in all to send its request and take the
//! answer: a per-read timeout alone let a client that sends a byte now and
//! then hold the endpoint for hours. It binds loopback addresses only; config refuses others, and so
//! does [`MetricsServer::bind`] again. The server only ever reads the text.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::{Observer, Summary};
use crate::kernel::KernelIdentity;
use crate::observe::metrics::{render, write_textfile, MetricsSnapshot, TEXTFILE_NAME};
use crate::transaction::session::Session;

/// Longest request head read.
const MAX_REQUEST_HEAD: usize = 8 << 10;
/// A client has this long in all to send its request and read the answer.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);

/// The metrics text shared with the endpoint's thread.
pub type SharedText = Arc<Mutex<String>>;

/// Renders and publishes the metrics after every change.
#[derive(Debug)]
pub struct MetricsExporter {
    textfile_dir: Option<PathBuf>,
    served: Option<SharedText>,
    kernel: KernelIdentity,
}

impl MetricsExporter {
    /// Publishes to `textfile_dir/suture.prom` and/or the text `served`
    /// by a [`MetricsServer`], for the running `kernel`.
    pub fn new(
        textfile_dir: Option<PathBuf>,
        served: Option<SharedText>,
        kernel: KernelIdentity,
    ) -> Self {
        Self {
            textfile_dir,
            served,
            kernel,
        }
    }
}

impl Observer for MetricsExporter {
    fn refresh(&mut self, session: &Session<'_>, summary: &Summary) {
        let audit = match session.audit_log().read_verified() {
            Ok(audit) => audit,
            Err(error) => {
                warn!(error = %crate::error_text(&error), "metrics: cannot read the audit log; metrics not refreshed");
                return;
            }
        };
        if let Err(tampered) = &audit {
            warn!(error = %tampered, "metrics: the audit log fails verification; its figures are left out");
        }
        let pending = u64::try_from(summary.pending).unwrap_or(u64::MAX);
        let snapshot = MetricsSnapshot::collect(
            session.state(),
            audit.as_deref(),
            Some(pending),
            &self.kernel,
        );
        let text = render(&snapshot);
        if let Some(dir) = &self.textfile_dir {
            if let Err(error) = write_textfile(dir, &text) {
                warn!(
                    error = %error,
                    "metrics: cannot write {}",
                    dir.join(TEXTFILE_NAME).display()
                );
            }
        }
        if let Some(served) = &self.served {
            *served.lock().unwrap_or_else(PoisonError::into_inner) = text;
        }
        debug!(applied = snapshot.applied, pending, "metrics: refreshed");
    }
}

/// The loopback `GET /metrics` endpoint.
#[derive(Debug)]
pub struct MetricsServer {
    listener: TcpListener,
    text: SharedText,
}

impl MetricsServer {
    /// Binds `address`, which must be a loopback address.
    pub fn bind(address: SocketAddr) -> std::io::Result<Self> {
        if !address.ip().is_loopback() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{address} is not a loopback address; metrics are served on loopback only"),
            ));
        }
        Ok(Self {
            listener: TcpListener::bind(address)?,
            text: SharedText::default(),
        })
    }

    /// The address bound (the port, when 0 was asked for).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The text it serves, for a [`MetricsExporter`].
    pub fn text(&self) -> SharedText {
        self.text.clone()
    }

    /// Serves on a thread of its own until the process ends.
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("metrics".to_owned())
            .spawn(move || {
                for stream in self.listener.incoming() {
                    match stream {
                        Ok(stream) => {
                            if let Err(error) = answer(stream, &self.text) {
                                debug!(error = %error, "metrics: a request failed");
                            }
                        }
                        Err(error) => debug!(error = %error, "metrics: accept failed"),
                    }
                }
            })
    }
}

/// A connection's deadline: every read and write gets only the time left.
struct Deadline(Instant);

impl Deadline {
    /// Sets `stream`'s timeouts to the time left; an error once it passed.
    fn arm(&self, stream: &TcpStream) -> std::io::Result<()> {
        let left = self.0.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client did not finish its request within the deadline",
            ));
        }
        stream.set_read_timeout(Some(left))?;
        stream.set_write_timeout(Some(left))
    }
}

/// Reads one request head and answers it, all within [`REQUEST_DEADLINE`].
fn answer(mut stream: TcpStream, text: &SharedText) -> std::io::Result<()> {
    let deadline = Deadline(Instant::now() + REQUEST_DEADLINE);
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() >= MAX_REQUEST_HEAD {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "",
                false,
                &deadline,
            );
        }
        deadline.arm(&stream)?;
        let n = stream.read(&mut buffer)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(buffer.get(..n).unwrap_or_default());
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split(' ');
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            let body = text.lock().unwrap_or_else(PoisonError::into_inner).clone();
            respond(&mut stream, "200 OK", &body, method == "HEAD", &deadline)
        }
        ("GET" | "HEAD", _) => respond(&mut stream, "404 Not Found", "", false, &deadline),
        _ => respond(&mut stream, "405 Method Not Allowed", "", false, &deadline),
    }
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    body: &str,
    head_only: bool,
    deadline: &Deadline,
) -> std::io::Result<()> {
    let allow = if status.starts_with("405") {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        body.len()
    );
    let mut answer = head.into_bytes();
    if !head_only {
        answer.extend_from_slice(body.as_bytes());
    }
    // In pieces, each with the time left: a client that reads slowly
    // cannot stretch the answer past the deadline either.
    for piece in answer.chunks(16 << 10) {
        deadline.arm(stream)?;
        stream.write_all(piece)?;
    }
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(address: SocketAddr, text: &str) -> String {
        let mut stream = TcpStream::connect(address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        stream.write_all(text.as_bytes()).expect("send");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        answer
    }

    #[test]
    fn serves_the_current_text_and_nothing_else() {
        let server = MetricsServer::bind("127.0.0.1:0".parse().expect("address")).expect("bind");
        let address = server.local_addr().expect("address");
        let text = server.text();
        *text.lock().expect("lock") = "suture_patches_applied 2\n".to_owned();
        server.spawn().expect("thread");

        let got = request(address, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        assert!(
            got.contains("Content-Type: text/plain; version=0.0.4"),
            "{got}"
        );
        assert!(got.ends_with("\r\n\r\nsuture_patches_applied 2\n"), "{got}");

        *text.lock().expect("lock") = "suture_patches_applied 3\n".to_owned();
        let got = request(address, "GET /metrics?x=1 HTTP/1.1\r\n\r\n");
        assert!(got.ends_with("suture_patches_applied 3\n"), "{got}");

        let got = request(address, "HEAD /metrics HTTP/1.1\r\n\r\n");
        assert!(
            got.starts_with("HTTP/1.1 200 OK") && got.ends_with("\r\n\r\n"),
            "{got}"
        );
        assert!(got.contains("Content-Length: 25\r\n"), "{got}");
        let got = request(address, "GET /state.json HTTP/1.1\r\n\r\n");
        assert!(got.starts_with("HTTP/1.1 404"), "{got}");
        let got = request(address, "POST /metrics HTTP/1.1\r\n\r\n");
        assert!(
            got.starts_with("HTTP/1.1 405") && got.contains("Allow: GET, HEAD"),
            "{got}"
        );
        // Exactly the cap without an end of head: all read, then refused.
        let start = "GET /metrics HTTP/1.1\r\nX: ";
        let huge = format!("{start}{}", "a".repeat(MAX_REQUEST_HEAD - start.len()));
        assert_eq!(huge.len(), MAX_REQUEST_HEAD);
        let got = request(address, &huge);
        assert!(got.starts_with("HTTP/1.1 431"), "{got}");
    }

    /// Regression (issue #16): a client that sent a byte now and then,
    /// each within the per-read timeout, held the endpoint for hours.
    #[test]
    fn a_dribbling_client_cannot_hold_the_endpoint_past_its_deadline() {
        let server = MetricsServer::bind("127.0.0.1:0".parse().expect("address")).expect("bind");
        let address = server.local_addr().expect("address");
        *server.text().lock().expect("lock") = "suture_patches_applied 1\n".to_owned();
        server.spawn().expect("thread");
        let slow = std::thread::spawn(move || {
            let mut stream = TcpStream::connect(address).expect("connect");
            // Far longer than the deadline, a byte well within each
            // read's timeout: stops when the server hangs up.
            for _ in 0..100 {
                if stream.write_all(b"G").is_err() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            false
        });
        std::thread::sleep(Duration::from_millis(100));
        let got = request(address, "GET /metrics HTTP/1.1\r\n\r\n");
        assert!(got.ends_with("suture_patches_applied 1\n"), "{got}");
        assert!(
            slow.join().expect("no panic"),
            "the slow client was cut off"
        );
    }

    #[test]
    fn only_loopback_addresses_are_bound() {
        let error =
            MetricsServer::bind("0.0.0.0:0".parse().expect("address")).expect_err("refused");
        assert!(
            error.to_string().contains("not a loopback address"),
            "{error}"
        );
    }
}
