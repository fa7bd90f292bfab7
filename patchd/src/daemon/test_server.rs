//! A loopback HTTP/1.1 server for the repository tests: serves fixed
//! routes from a thread, answers the index conditionally (304 when the
//! request's `If-None-Match` or `If-Modified-Since` matches), closes every
//! connection after one answer, and records each request's path and
//! headers. It listens on 127.0.0.1 only and stops when dropped.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How a path is answered.
#[derive(Debug, Clone)]
pub(crate) enum Route {
    /// 200 with `ETag` and `Last-Modified`, or 304 when the request
    /// carries either validator.
    Index {
        body: Vec<u8>,
        etag: String,
        last_modified: String,
    },
    /// 200 with a `Content-Length` of the body.
    File(Vec<u8>),
    /// 200 with this body and no length: the body ends when the
    /// connection closes.
    Unsized(Vec<u8>),
    /// Another status, empty body.
    Status(u16),
    /// No answer at all: the request is recorded, then the connection is
    /// held open until the server stops (a stalled repository).
    Stall,
}

/// One request as the server read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) path: String,
    /// Header names lowercase.
    pub(crate) headers: HashMap<String, String>,
    /// The status answered.
    pub(crate) status: u16,
}

pub(crate) struct TestServer {
    pub(crate) base_url: String,
    routes: Arc<Mutex<HashMap<String, Route>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    pub(crate) fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).expect("nonblocking");
        let base_url = format!(
            "http://{}/repo/",
            listener.local_addr().expect("local address")
        );
        let routes = Arc::new(Mutex::new(HashMap::new()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (routes, seen, stop) = (routes.clone(), seen.clone(), stop.clone());
            std::thread::spawn(move || serve(&listener, &routes, &seen, &stop))
        };
        Self {
            base_url,
            routes,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// Serves `route` at `/repo/NAME`.
    pub(crate) fn route(&self, name: &str, route: Route) {
        self.routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(format!("/repo/{name}"), route);
    }

    /// The requests so far, in order.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The paths requested so far, with their statuses.
    pub(crate) fn log(&self) -> Vec<(String, u16)> {
        self.seen()
            .into_iter()
            .map(|s| (s.path.trim_start_matches("/repo/").to_owned(), s.status))
            .collect()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    listener: &TcpListener,
    routes: &Mutex<HashMap<String, Route>>,
    seen: &Mutex<Vec<Seen>>,
    stop: &AtomicBool,
) {
    // Bounded: a test that forgets the server still ends it after a minute.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        match listener.accept() {
            Ok((stream, _)) => {
                // A request that cannot be read is not recorded.
                let _ = answer(stream, routes, seen, stop);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Reads one request, records it, then answers it: recorded first, so a
/// test that has its answer also finds the request in [`TestServer::seen`].
fn answer(
    stream: TcpStream,
    routes: &Mutex<HashMap<String, Route>>,
    seen: &Mutex<Vec<Seen>>,
    stop: &AtomicBool,
) -> Option<()> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let route = routes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&path)
        .cloned()
        .unwrap_or(Route::Status(404));
    if let Route::Stall = route {
        seen.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Seen {
                path,
                headers,
                status: 0,
            });
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        return Some(());
    }
    let (status, extra, body, length) = match route {
        Route::Index {
            body,
            etag,
            last_modified,
        } => {
            let fresh = headers.get("if-none-match") == Some(&etag)
                || headers.get("if-modified-since") == Some(&last_modified);
            if fresh {
                (304, String::new(), Vec::new(), None)
            } else {
                let extra = format!("ETag: {etag}\r\nLast-Modified: {last_modified}\r\n");
                let length = body.len();
                (200, extra, body, Some(length))
            }
        }
        Route::File(body) => {
            let length = body.len();
            (200, String::new(), body, Some(length))
        }
        Route::Unsized(body) => (200, String::new(), body, None),
        Route::Status(status) => (status, String::new(), Vec::new(), Some(0)),
        Route::Stall => return Some(()),
    };
    let reason = match status {
        200 => "OK",
        304 => "Not Modified",
        404 => "Not Found",
        _ => "Error",
    };
    let length = length.map_or(String::new(), |n| format!("Content-Length: {n}\r\n"));
    let head = format!("HTTP/1.1 {status} {reason}\r\nConnection: close\r\n{length}{extra}\r\n");
    seen.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Seen {
            path,
            headers,
            status,
        });
    let mut stream = stream;
    // A client that gave up early (a refused size) may have closed.
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
    let _ = stream.flush();
    Some(())
}
