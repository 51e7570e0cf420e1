//! The HTTP surface and its middleware stack.

mod chat;
mod compat;
mod health;
mod socket;
mod threads;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    routing::{get, post},
};
use tower_http::trace::TraceLayer;

use crate::{error::ApiError, state::AppState};

/// Every route of the bridge.
pub fn router(state: AppState) -> Router {
    let max_body = state.max_body_bytes;
    Router::new()
        .route("/v1/agents/{agent}/chat", post(chat::chat))
        .route("/v1/agents/{agent}/threads", get(threads::list_threads))
        .route(
            "/v1/agents/{agent}/threads/{thread}",
            axum::routing::delete(threads::delete_thread),
        )
        .route(
            "/v1/agents/{agent}/threads/{thread}/messages",
            post(threads::post_message).get(threads::list_messages),
        )
        .route(
            "/v1/agents/{agent}/threads/{thread}/events",
            get(threads::events),
        )
        .route(
            "/v1/agents/{agent}/threads/{thread}/ws",
            get(socket::thread_socket),
        )
        // Seed 004's API, as written.
        .route("/agents/{agent}/sse", get(compat::sse))
        .route("/agents/{agent}/messages", post(compat::messages))
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // Outermost first:
        // - trace: one span per request, around everything else, so refusals are visible;
        // - body limit: enforced while the body is read, before any parsing.
        .layer(DefaultBodyLimit::max(max_body))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
