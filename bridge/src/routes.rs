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
    response::Response,
    routing::{get, post},
};
use tower::util::option_layer;

use crate::{auth, error::ApiError, state::AppState, telemetry};

/// Every route of the bridge.
pub(crate) fn router(state: AppState) -> Router {
    let max_body = state.max_body_bytes;
    let cors = state.cors.as_ref().map(crate::cors::CorsSettings::layer);
    let api = Router::new()
        .route("/v1/agents", get(agents::list_agents))
        .route("/v1/agents/{agent}/status", get(agents::agent_status))
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
    // The JavaScript client always; the chat page with `--ui`.
    let ui = ui::router(state.ui);
    // With an admin listener, the scrape lives there only: whatever exposes the API (an
    // Ingress, a route on `/`) does not expose the metrics.
    let metrics = if state.admin_listener {
        Router::new()
    } else {
        Router::new().route("/metrics", get(health::metrics))
    };
    Router::new()
        .merge(api)
        .merge(ui)
        .merge(metrics)
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
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

/// The admin listener's routes (`--admin-listen`): probes and the scrape, no credentials,
/// nothing of the API.
pub(crate) fn admin_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(health::metrics))
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
}

/// A thread's log from `start`, then its live events, as an SSE response in `encoder`'s
/// dialect; an open stream, it counts against the caller's and the process's caps.
async fn follow_thread<E: crate::dialect::Encoder + Unpin>(
    state: &AppState,
    identity: &crate::auth::Identity,
    key: &crate::hub::ThreadKey,
    start: crate::hub::Start,
    encoder: E,
) -> Result<Response, ApiError> {
    let transport = crate::metrics::Transport::sse;
    let (subscription, guard) =
        crate::threads::subscribe(state, identity, key, start, transport).await?;
    Ok(follow(state, subscription, encoder, guard))
}

/// A followed thread's deliveries as an SSE response in `encoder`'s dialect; the bridge
/// draining ends it.
fn follow<E: crate::dialect::Encoder + Unpin>(
    state: &AppState,
    subscription: crate::hub::Subscription,
    encoder: E,
    guard: crate::ratelimit::StreamGuard,
) -> Response {
    crate::sse::subscription(
        subscription,
        encoder,
        state.sse,
        guard,
        state.shutdown.clone(),
    )
}
