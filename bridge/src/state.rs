//! What every request handler shares.

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::{
    auth::Auth,
    hub::Hub,
    metrics::Metrics,
    ratelimit::{Admission, RateLimits},
    readiness::Readiness,
    run::Limits,
    sse::SseSettings,
    upstream::Agents,
};

#[derive(Clone)]
pub struct AppState {
    pub agents: Agents,
    pub limits: Limits,
    pub sse: SseSettings,
    pub max_body_bytes: usize,
    /// The threads' event logs.
    pub hub: Hub,
    /// How long a thread run's lease lasts without renewal.
    pub run_lease: Duration,
    /// Cancelled when the bridge starts draining: readiness fails, new runs are refused and
    /// open streams end with a final event.
    pub shutdown: CancellationToken,
    pub auth: Arc<Auth>,
    pub rate_limits: Arc<RateLimits>,
    pub admission: Arc<Admission>,
    /// The CORS policy; `None` when no origin is allowed (no CORS headers at all).
    pub cors: Option<crate::cors::CorsSettings>,
    pub metrics: Metrics,
    pub readiness: Arc<Readiness>,
    /// Whether the chat page and the JavaScript client are served (`--ui`).
    pub ui: bool,
}
