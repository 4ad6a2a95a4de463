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
//! The pipeline writes [`Metrics`] after each batch; the server thread
//! only reads them.

use std::sync::Arc;

use serde::Serialize;

use crate::live::{LiveRules, RulesStatus};
use crate::telemetry::{Counters, Metrics};

/// Why the status endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address cannot be listened on (taken, malformed, not allowed).
    #[error("cannot serve the status endpoint on {listen}: {reason}")]
    Listen { listen: String, reason: Box<dyn std::error::Error + Send + Sync> },
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
}

/// Serves `/health`, `/status` and `/metrics` on `listen` from a
/// background thread.
pub fn serve(listen: &str, live: Option<Arc<LiveRules>>, metrics: Arc<Metrics>) -> Result<(), ServeError> {
    let server =
        tiny_http::Server::http(listen).map_err(|reason| ServeError::Listen { listen: listen.to_owned(), reason })?;
    tracing::info!(listen, "status endpoint: /health /status /metrics");
    std::thread::Builder::new().name("weir-status".to_owned()).spawn(move || {
        for request in server.incoming_requests() {
            let (code, content_type, body) = respond(request.url(), live.as_deref(), &metrics);
            let header = tiny_http::Header::from_bytes("Content-Type", content_type).expect("a valid header");
            let response = tiny_http::Response::from_string(body).with_status_code(code).with_header(header);
            if let Err(e) = request.respond(response) {
                tracing::debug!("status endpoint: {e}");
            }
        }
    })?;
    Ok(())
}

/// The status code, content type and body for a request to `url`.
fn respond(url: &str, live: Option<&LiveRules>, metrics: &Metrics) -> (u16, &'static str, String) {
    match url {
        "/health" => (200, "text/plain", "ok\n".to_owned()),
        "/status" => {
            let body = StatusBody {
                engine_version: env!("CARGO_PKG_VERSION"),
                pipeline: metrics.snapshot(),
                rules: live.map(|l| l.status()),
            };
            (200, "application/json", serde_json::to_string_pretty(&body).unwrap_or_default())
        }
        "/metrics" => (200, prometheus_client::encoding::prometheus_text::CONTENT_TYPE, metrics.exposition(live)),
        _ => (404, "text/plain", "not found: try /health, /status or /metrics\n".to_owned()),
    }
}
