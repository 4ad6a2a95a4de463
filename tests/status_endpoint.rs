//! The status endpoint against a client that is not polite: a 128 MB
//! header, a long URL and other methods are refused without being read,
//! `/status` and `/metrics` need the bearer token when one is configured,
//! and binding beyond loopback is logged at WARN.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weir::telemetry::Metrics;

use crate::deploy::free_addr;
use crate::util::tempdir;

/// The status line and body of a raw request.
fn exchange(addr: &str, request: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (head.to_owned(), body.to_owned())
}

fn serve_with_token(dir: &std::path::Path) -> (String, String) {
    let token = "a-long-random-status-token-0123456789";
    let file = dir.join("status.token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let addr = free_addr();
    weir::http::serve(&addr, Some(&file), None, None, Arc::new(Metrics::default())).unwrap();
    (addr, token.to_owned())
}

#[test]
fn status_and_metrics_need_the_token_and_health_does_not() {
    let dir = tempdir();
    let (addr, token) = serve_with_token(dir.path());
    let get = |path: &str, auth: &str| exchange(&addr, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\n"));
    assert!(get("/health", "").0.starts_with("HTTP/1.1 200"));
    for path in ["/status", "/metrics"] {
        let (head, _) = get(path, "");
        assert!(head.starts_with("HTTP/1.1 401") && head.contains("WWW-Authenticate: Bearer"), "{head}");
        assert!(get(path, "Authorization: Bearer wrong-token-of-some-length\r\n").0.starts_with("HTTP/1.1 401"));
        let (head, body) = get(path, &format!("Authorization: Bearer {token}\r\n"));
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(!body.is_empty());
    }
    // A token file every user can read is refused.
    let open = dir.path().join("open.token");
    std::fs::write(&open, "a-long-random-status-token-0123456789").unwrap();
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let err = weir::http::serve(&free_addr(), Some(&open), None, None, Arc::new(Metrics::default())).unwrap_err();
    assert!(err.to_string().contains("readable by every user"), "{err}");
}

#[test]
fn only_get_and_bounded_requests_are_answered() {
    let addr = free_addr();
    weir::http::serve(&addr, None, None, None, Arc::new(Metrics::default())).unwrap();
    let (head, _) = exchange(&addr, "POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 405") && head.contains("Allow: GET, HEAD"), "{head}");
    let (head, body) = exchange(&addr, "HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200") && body.is_empty(), "{head}");
    let long = format!("GET /status?{} HTTP/1.1\r\nHost: x\r\n\r\n", "q".repeat(9000));
    let (head, _) = exchange(&addr, &long);
    assert!(head.starts_with("HTTP/1.1 414"), "{head}");

    // A 128 MB header: the server stops reading at its limit and closes the
    // connection; the client cannot push the lot.
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(b"GET /health HTTP/1.1\r\nX-Big: ").unwrap();
    let block = vec![b'a'; 1 << 20];
    let started = Instant::now();
    let mut written = 0usize;
    while written < 128 << 20 {
        match stream.write(&block) {
            Ok(n) => written += n,
            Err(_) => break,
        }
    }
    assert!(written < 32 << 20, "the server took {written} bytes of one header");
    assert!(started.elapsed() < Duration::from_secs(10));
    // And it still answers.
    assert!(exchange(&addr, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n").0.starts_with("HTTP/1.1 200"));
}

#[test]
fn binding_beyond_loopback_is_logged_at_warn() {
    let dir = tempdir();
    let rules = dir.path().join("rules");
    weir::packages::export_shipped(&rules).unwrap();
    let port = free_addr().rsplit_once(':').unwrap().1.to_owned();
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "--input", "-", "--rules", "rules", "--output", "out"])
        .current_dir(dir.path())
        .env("WEIR_STATUS_LISTEN", format!("0.0.0.0:{port}"))
        .env("WEIR_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.lines().any(|l| l.contains("WARN") && l.contains("reachable beyond this machine")), "{log}");
}
