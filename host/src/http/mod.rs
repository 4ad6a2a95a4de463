//! The HTTP side of a running weir, above the pipelines: it reads what they
//! report ([`crate::telemetry`]) and the live rules ([`crate::live`]), and
//! nothing below imports it.
//!
//! - [`status`]: the status endpoint, `/health`, `/status` and `/metrics`.

pub mod status;

pub use status::{ServeError, serve};
