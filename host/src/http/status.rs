//! The status endpoint. With `[status] listen = "127.0.0.1:9464"` (or
//! `WEIR_STATUS_LISTEN`), `weir run` serves, over plain HTTP:
//!
//! - `GET /health` — `ok` while the process runs;
//! - `GET /status` — JSON: the active rule versions, the refused packages
//!   with their reasons, recent swaps and where they took effect, and the
//!   pipeline's counters;
//! - `GET /metrics` — the Prometheus text format
//!   ([`crate::telemetry::exposition`]).
//!
//! What a client can make the server spend is bounded: a request's head
//! (request line and headers) is read up to [`MAX_HEAD_BYTES`] (a bigger
//! one is answered 431 without reading further), its target up to
//! [`MAX_TARGET_BYTES`] (414), within [`READ_TIMEOUT`], by at most
//! [`MAX_CONNECTIONS`] connection threads at once; only `GET` and `HEAD`
//! are answered (405 otherwise). With `[status] token_file`, `/status` and
//! `/metrics` need `Authorization: Bearer <token>` (401 otherwise; the
//! token is compared in constant time); `/health` stays open. Binding
//! beyond loopback is logged at WARN. The request head is parsed by
//! `httparse`.
//!
//! The pipeline writes [`Metrics`] after each batch; the server threads
//! only read them.

use crate::lists::{ListsStatus, LiveLists};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::live::{LiveRules, RulesStatus};
use crate::telemetry::{Counters, Metrics};

/// The largest request head (request line and headers) read.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// The longest request target (path and query).
pub const MAX_TARGET_BYTES: usize = 8 * 1024;
/// How long a client may take to send its request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more wait in the listen queue.
pub const MAX_CONNECTIONS: usize = 16;
const MAX_HEADERS: usize = 64;

/// Why the status endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address cannot be listened on (taken, malformed, not allowed).
    #[error("cannot serve the status endpoint on {listen}: {reason}")]
    Listen { listen: String, reason: Box<dyn std::error::Error + Send + Sync> },
    /// The token file cannot be used.
    #[error("the status token file {}: {reason}", path.display())]
    Token { path: std::path::PathBuf, reason: String },
    /// The server thread could not be started.
    #[error(transparent)]
    Thread(#[from] std::io::Error),
}

/// The body of `/status`.
#[derive(Serialize)]
struct StatusBody {
    engine_version: &'static str,
    pipeline: Counters,
    rules: Option<RulesStatus>,
    /// The runtime lists: where they come from, each list's entries and
    /// version, the changes applied and refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    lists: Option<ListsStatus>,
}

/// What the server answers from.
struct Site {
    live: Option<Arc<LiveRules>>,
    lists: Option<Arc<LiveLists>>,
    metrics: Arc<Metrics>,
    /// `/status` and `/metrics` need this bearer token, when set.
    token: Option<String>,
}

/// Serves `/health`, `/status` and `/metrics` on `listen` from a
/// background thread; with `token_file`, `/status` and `/metrics` need its
/// token.
pub fn serve(
    listen: &str,
    token_file: Option<&std::path::Path>,
    live: Option<Arc<LiveRules>>,
    lists: Option<Arc<LiveLists>>,
    metrics: Arc<Metrics>,
) -> Result<(), ServeError> {
    let token = token_file.map(read_token).transpose()?;
    let listener =
        TcpListener::bind(listen).map_err(|e| ServeError::Listen { listen: listen.to_owned(), reason: e.into() })?;
    let local = listener.local_addr()?;
    if !local.ip().is_loopback() {
        tracing::warn!(
            listen,
            authenticated = token.is_some(),
            "the status endpoint is reachable beyond this machine; it shows rule versions, refusals and counters{}",
            if token.is_some() { "" } else { ", to anyone: set [status] token_file" }
        );
    }
    tracing::info!(listen, "status endpoint: /health /status /metrics");
    let site = Arc::new(Site { live, lists, metrics, token });
    std::thread::Builder::new().name("weir-status".to_owned()).spawn(move || accept(&listener, &site))?;
    Ok(())
}

fn read_token(path: &std::path::Path) -> Result<String, ServeError> {
    let problem = |reason: String| ServeError::Token { path: path.to_owned(), reason };
    let meta = std::fs::metadata(path).map_err(|e| problem(e.to_string()))?;
    #[cfg(unix)]
    if std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o004 != 0 {
        return Err(problem("is readable by every user; make it private (chmod 600)".to_owned()));
    }
    if meta.len() > 4096 {
        return Err(problem("is over 4 KiB; it should hold one token".to_owned()));
    }
    let token = std::fs::read_to_string(path).map_err(|e| problem(e.to_string()))?.trim().to_owned();
    if token.len() < 16 {
        return Err(problem("holds fewer than 16 characters; use a long random token".to_owned()));
    }
    Ok(token)
}

fn accept(listener: &TcpListener, site: &Arc<Site>) {
    let open = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if open.load(Ordering::Acquire) >= MAX_CONNECTIONS {
            // Busy: the client is told to come back, without a thread.
            let _ = respond(stream, 503, "text/plain", b"busy, try again\n", false);
            continue;
        }
        open.fetch_add(1, Ordering::AcqRel);
        let (site, open) = (Arc::clone(site), Arc::clone(&open));
        let spawned = std::thread::Builder::new().name("weir-status-conn".to_owned()).spawn(move || {
            if let Err(e) = handle(stream, &site) {
                tracing::debug!("status endpoint: {e}");
            }
            open.fetch_sub(1, Ordering::AcqRel);
        });
        if spawned.is_err() {
            tracing::warn!("status endpoint: cannot start a connection thread");
        }
    }
}

/// Reads one request head (bounded), answers it, and closes the connection.
fn handle(mut stream: TcpStream, site: &Site) -> std::io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(READ_TIMEOUT))?;
    let mut head = vec![0u8; MAX_HEAD_BYTES];
    let mut filled = 0;
    loop {
        if filled == head.len() {
            return respond(stream, 431, "text/plain", b"request header fields too large\n", false);
        }
        let n = stream.read(&mut head[filled..])?;
        if n == 0 {
            return Ok(());
        }
        filled += n;
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&head[..filled]) {
            Ok(httparse::Status::Complete(_)) => {
                let method = request.method.unwrap_or_default();
                let target = request.path.unwrap_or_default();
                let bearer = request
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("authorization"))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .and_then(|v| v.strip_prefix("Bearer "));
                let (code, content_type, body) = answer(method, target, bearer, site);
                return respond(stream, code, content_type, body.as_bytes(), method == "HEAD");
            }
            Ok(httparse::Status::Partial) => {
                if head[..filled].iter().position(|&b| b == b'\n').is_none() && filled > MAX_TARGET_BYTES {
                    return respond(stream, 414, "text/plain", b"URI too long\n", false);
                }
            }
            Err(httparse::Error::TooManyHeaders) => {
                return respond(stream, 431, "text/plain", b"too many header fields\n", false);
            }
            Err(_) => return respond(stream, 400, "text/plain", b"bad request\n", false),
        }
    }
}

/// The status code, content type and body for `method target`.
fn answer(method: &str, target: &str, bearer: Option<&str>, site: &Site) -> (u16, &'static str, String) {
    if method != "GET" && method != "HEAD" {
        return (405, "text/plain", "only GET and HEAD\n".to_owned());
    }
    if target.len() > MAX_TARGET_BYTES {
        return (414, "text/plain", "URI too long\n".to_owned());
    }
    let path = target.split('?').next().unwrap_or_default();
    let protected = matches!(path, "/status" | "/metrics");
    if protected
        && let Some(token) = &site.token
        && !bearer.is_some_and(|given| constant_time_eq(given.trim().as_bytes(), token.as_bytes()))
    {
        return (401, "text/plain", "a bearer token is needed: Authorization: Bearer <token>\n".to_owned());
    }
    match path {
        "/health" => (200, "text/plain", "ok\n".to_owned()),
        "/status" => {
            let body = StatusBody {
                engine_version: env!("CARGO_PKG_VERSION"),
                pipeline: site.metrics.snapshot(),
                rules: site.live.as_ref().map(|l| l.status()),
                lists: site.lists.as_ref().map(|l| l.status()),
            };
            (200, "application/json", serde_json::to_string_pretty(&body).unwrap_or_default())
        }
        "/metrics" => (
            200,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            site.metrics.exposition(site.live.as_deref()),
        ),
        _ => (404, "text/plain", "not found: try /health, /status or /metrics\n".to_owned()),
    }
}

/// Whether `a` equals `b`, in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn respond(mut stream: TcpStream, code: u16, content_type: &str, body: &[u8], head_only: bool) -> std::io::Result<()> {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let mut extra = String::new();
    if code == 405 {
        extra.push_str("Allow: GET, HEAD\r\n");
    }
    if code == 401 {
        extra.push_str("WWW-Authenticate: Bearer realm=\"weir\"\r\n");
    }
    write!(
        stream,
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    )?;
    if !head_only {
        stream.write_all(body)?;
    }
    stream.flush()?;
    // Whatever the client still sends is not read.
    let _ = stream.shutdown(std::net::Shutdown::Both);
    Ok(())
}
