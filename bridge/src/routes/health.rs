//! Operations: probes and metrics. `/healthz` answers while the process runs (liveness:
//! restarting would not help otherwise). `/readyz` answers 200 while this instance can serve
//! new streams: not draining and its hub reachable (cached, see
//! [`Readiness`](crate::readiness::Readiness)). Agents' health is not part of it: it is
//! reported per agent (`/v1/agents/{agent}/status`). `/metrics` is the Prometheus scrape, on
//! the admin listener when there is one.

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::{
    error::{ApiError, Problem},
    state::AppState,
};

/// Liveness: 200 while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive", body = Object)))]
pub(super) async fn live() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Readiness: 200 while this instance should get new streams.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Object),
        (status = 503, description = "Not ready (draining, or the hub down); never because of an agent", content_type = "application/problem+json", body = Problem),
    )
)]
pub(super) async fn ready(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    if state.shutdown.is_cancelled() {
        return Err(ApiError::ShuttingDown);
    }
    state.readiness.check().await?;
    Ok(Json(json!({ "status": "ready" })))
}

/// `GET /metrics`.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus metrics (OpenMetrics text)", content_type = "application/openmetrics-text", body = String)))]
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = state.metrics.encode().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}
