//! What the pipelines report and what they are handed, below both
//! pipelines and below the HTTP layer that serves it ([`crate::http`]).
//!
//! - [`metrics`]: the pipeline's counters since start and the histograms it
//!   observes into ([`Metrics`]), shared with whatever reads them.
//! - [`exposition`]: the Prometheus text format of those metrics, written by
//!   `prometheus-client`.
//! - [`hooks`]: [`Hooks`], what a pipeline is handed by the running host —
//!   where to report, and the live rules to adopt between batches.
//!
//! The pipelines (`crate::pipeline`, `crate::kafka`) import this module and
//! never `crate::http`: the web side can grow without them.

pub mod exposition;
pub mod hooks;
pub mod metrics;

pub use hooks::Hooks;
pub use metrics::{Counters, EVALUATION_SAMPLE, Metrics};
