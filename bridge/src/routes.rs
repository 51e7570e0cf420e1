//! The HTTP surface and its middleware stack.

mod chat;
mod health;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    routing::{get, post},
};

use crate::{error::ApiError, state::AppState, telemetry};

/// Every route of the bridge.
pub fn router(state: AppState) -> Router {
    let max_body = state.max_body_bytes;
    Router::new()
        .route("/v1/agents/{agent}/chat", post(chat::chat))
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(crate::metrics::scrape))
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // Outermost first:
        // - trace: one span per request (child of the caller's `traceparent`), around
        //   everything else, so refusals are visible; `traceresponse` is added inside it;
        // - body limit: enforced while the body is read, before any parsing.
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::map_response(
            telemetry::http::traceresponse,
        ))
        .layer(telemetry::http::trace_layer())
        .with_state(state)
}
