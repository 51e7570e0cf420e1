//! The HTTP surface: every route, and the middleware stack around them. Handlers only
//! extract, call a service ([`crate::chat`], [`crate::threads`], [`crate::upstream`]) and
//! encode the answer.

mod agents;
mod chat;
mod dialects;
mod extract;
mod health;
mod middleware;
mod openapi;
mod socket;
mod threads;
mod tickets;
mod ui;
mod unversioned;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    middleware::from_fn_with_state,
    routing::{get, post},
};
use tower::util::option_layer;

use crate::{auth, error::ApiError, state::AppState, telemetry};

/// Every route of the bridge.
pub fn router(state: AppState) -> Router {
    let max_body = state.max_body_bytes;
    let cors = state.cors.as_ref().map(crate::cors::CorsSettings::layer);
    let api = Router::new()
        .route("/v1/agents", get(agents::list_agents))
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
        .route("/agents/{agent}/sse", get(unversioned::sse))
        .route("/agents/{agent}/messages", post(unversioned::messages))
        .route(
            "/v1/agents/{agent}/threads/{thread}/stream",
            get(chat::stream),
        )
        .route("/v1/tickets", post(tickets::issue))
        .merge(dialects::router())
        // Route layers run only for matched routes, the last added first:
        // - auth: every /v1 request needs an identity (probes do not); failures count
        //   against the client IP, so credentials cannot be guessed at speed;
        // - rate limit: after auth, because the bucket is the identity's.
        .route_layer(from_fn_with_state(
            state.rate_limits.clone(),
            middleware::rate_limit,
        ))
        .route_layer(from_fn_with_state(
            (state.auth.clone(), state.rate_limits.clone()),
            auth::middleware,
        ));
    let ui = if state.ui {
        Router::new()
            .route("/", get(ui::to_page))
            .route("/ui", get(ui::to_page))
            .route("/ui/", get(ui::index))
            .route("/ui/app.js", get(ui::app_js))
            .route("/ui/style.css", get(ui::style_css))
            .route("/ui/agent-bridge.js", get(ui::client_js))
    } else {
        Router::new()
    };
    Router::new()
        .merge(api)
        .merge(ui)
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::document))
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // Outermost first:
        // - trace: one span per request (child of the caller's `traceparent`), around
        //   everything else, so refusals are visible; it records the path only, never the
        //   query string (tickets travel there); `traceresponse` is added inside it;
        // - refusal metrics: see every problem response, including auth and rate limits;
        // - CORS: answers preflights before auth (browsers send them without credentials)
        //   and adds its headers to refusals too, so a browser can read them;
        // - (auth and rate limit: route layers above);
        // - body limit: enforced while the body is read, before any parsing.
        .layer(DefaultBodyLimit::max(max_body))
        .layer(option_layer(cors))
        .layer(axum::middleware::map_response(
            telemetry::http::traceresponse,
        ))
        .layer(axum::middleware::map_response_with_state(
            state.metrics.clone(),
            middleware::count_refusals,
        ))
        .layer(telemetry::http::trace_layer())
        .with_state(state)
}
