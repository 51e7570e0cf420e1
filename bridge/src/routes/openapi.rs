//! `GET /openapi.json`: the HTTP API as an OpenAPI 3.1 document, generated (utoipa) from the
//! handlers' own annotations and the types they read and write, so it cannot drift from
//! them unnoticed (the core suite checks every documented route against the router).

use axum::Json;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use super::{agents, chat, dialects, health, socket, threads, tickets, unversioned};
use crate::error::Problem;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "agent-bridge",
        description = "Agents speak gRPC; browsers and services get Server-Sent Events. Every \
                       refusal before a stream starts is an RFC 9457 problem document; a failure \
                       after it is a `run_error` event."
    ),
    paths(
        chat::chat,
        chat::stream,
        tickets::issue,
        threads::post_message,
        threads::events,
        threads::list_threads,
        threads::list_messages,
        threads::delete_thread,
        socket::thread_socket,
        unversioned::sse,
        unversioned::messages,
        agents::list_agents,
        agents::agent_status,
        health::live,
        health::ready,
        health::metrics,
        dialects::ai_sdk_chat,
        dialects::ai_sdk_resume,
        dialects::ag_ui_run,
        dialects::ag_ui_resume,
        dialects::a2a_rpc,
        dialects::a2a_card,
        dialects::openai_completions,
        dialects::interactions_chat,
    ),
    modifiers(&Credentials),
    security(("bearer" = []), ("api_key" = []), ("cookie" = []), ("ticket" = [])),
    tags(
        (name = "runs", description = "One agent run, streamed"),
        (name = "threads", description = "Conversations many subscribers follow and resume"),
        (name = "agents", description = "The configured agents"),
        (name = "dialects", description = "The same runs in other clients' wire formats (README: Use it from your front end)"),
        (name = "operations", description = "Probes and metrics (no credentials)"),
    )
)]
struct ApiDoc;

/// The ways a caller authenticates (README: Authentication).
struct Credentials;

impl Modify for Credentials {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("bridge_token"))),
        );
        components.add_security_scheme(
            "ticket",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "ticket",
                "A single-use stream ticket from POST /v1/tickets (stream endpoints only)",
            ))),
        );
    }
}

/// The document, built once per request (it is small and rarely fetched).
pub(super) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// The refusals every `/v1` operation may answer, as problem documents (README: Errors).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only the documentation reads it.
pub(super) enum Refusals {
    /// Refused before anything started: credentials, scopes, input, limits, conflicts.
    #[response(status = "4XX", content_type = "application/problem+json")]
    Client(Problem),
    /// An agent or the hub failed before anything started, or the bridge is overloaded or
    /// draining.
    #[response(status = "5XX", content_type = "application/problem+json")]
    Server(Problem),
}

/// `{agent}` in a path, as the documentation names it (`extract::AgentPath` parses it).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Only the documentation reads it.
pub(super) struct AgentParams {
    /// A configured agent's name
    agent: String,
}

/// `{agent}` and `{thread}` in a path, as the documentation names them
/// (`extract::ThreadPath` parses them).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Only the documentation reads it.
pub(super) struct ThreadParams {
    /// A configured agent's name
    agent: String,
    /// The thread id: 1-128 of A-Z a-z 0-9 . _ : -
    thread: String,
}
