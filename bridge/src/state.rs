//! What every request handler shares.

use tokio_util::sync::CancellationToken;

use std::sync::Arc;

use crate::{
    metrics::Metrics, readiness::Readiness, run::Limits, sse::SseSettings, upstream::Agents,
};

#[derive(Clone)]
pub struct AppState {
    pub agents: Agents,
    pub limits: Limits,
    pub sse: SseSettings,
    pub max_body_bytes: usize,
    /// Cancelled when the bridge starts draining: readiness fails, new runs are refused and
    /// open streams end with a final event.
    pub shutdown: CancellationToken,
    pub metrics: Metrics,
    pub readiness: Arc<Readiness>,
}
