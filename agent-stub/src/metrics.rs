//! The stub's Prometheus endpoint (`--metrics-listen`): its [`Stats`] as counters.

use axum::{
    Router,
    http::{HeaderValue, header},
    response::IntoResponse,
    routing::get,
};
use prometheus_client::registry::Registry;

use crate::Stats;

/// `GET /metrics` with `agent_stub_runs_started_total`, `agent_stub_events_sent_total` and
/// `agent_stub_cancellations_total`.
pub fn router(stats: Stats) -> Router {
    let mut registry = Registry::default();
    stats.register(&mut registry);
    let registry = std::sync::Arc::new(registry);
    Router::new().route(
        "/metrics",
        get(move || {
            let registry = std::sync::Arc::clone(&registry);
            async move {
                let mut text = String::new();
                let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
                let mut response = text.into_response();
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                );
                response
            }
        }),
    )
}
