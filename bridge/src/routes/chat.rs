//! `POST /v1/agents/{agent}/chat` (one run, as SSE or one JSON answer) and
//! `GET /v1/agents/{agent}/threads/{thread}/stream` (one run in a thread, for EventSource).

use axum::{
    Json,
    extract::{Query, State, rejection::QueryRejection},
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;

use super::extract::{AgentPath, ThreadPath, ValidJson};
use super::openapi::{AgentParams, Refusals, ThreadParams};
use crate::{
    answer,
    answer::Answer,
    auth::Via,
    chat::{self, ChatInput},
    cors,
    dialect::native::Native,
    error::ApiError,
    event::WireEvent as Event,
    metrics::Transport,
    sse,
    state::AppState,
    validate::{self, ChatBody},
};

/// One run: as SSE when `Accept` lists `text/event-stream` (each agent event one frame, `id:`
/// its sequence, `event:` its kind), else as one JSON answer once the run ends.
#[utoipa::path(
    post,
    path = "/v1/agents/{agent}/chat",
    tag = "runs",
    params(AgentParams),
    request_body = ChatBody,
    responses(
        (status = 200, description = "The run's events (`text/event-stream`), or its answer", content(
            (Event = "text/event-stream"),
            (Answer = "application/json"),
        )),
        Refusals,
    )
)]
pub(super) async fn chat(
    State(state): State<AppState>,
    AgentPath(agent, identity): AgentPath,
    headers: HeaderMap,
    ValidJson(mut body): ValidJson<ChatBody>,
) -> Result<Response, ApiError> {
    let thread = body.check()?;
    let input = ChatInput {
        thread,
        message: body.message,
        metadata: body.metadata,
    };
    if wants_event_stream(&headers) {
        let run = chat::start(&state, &identity, &agent, input, Transport::sse).await?;
        Ok(sse::run(run, Native::NAMED, state.sse))
    } else {
        let run = chat::start(&state, &identity, &agent, input, Transport::json).await?;
        Ok(Json(answer::collect(run).await?).into_response())
    }
}

/// The query of the EventSource endpoint.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct StreamQuery {
    /// The user's message.
    message: String,
    /// Read by the auth layer; named here so it is not mistaken for an unknown parameter.
    #[serde(default, rename = "ticket")]
    #[param(rename = "ticket", value_type = Option<String>)]
    _ticket: Option<serde::de::IgnoredAny>,
}

/// `GET /v1/agents/{agent}/threads/{thread}/stream?message=…[&ticket=…]`: one run in a
/// thread, always as SSE, for `EventSource` (which can only GET and cannot send headers,
/// hence the stream ticket).
#[utoipa::path(
    get,
    path = "/v1/agents/{agent}/threads/{thread}/stream",
    tag = "runs",
    params(ThreadParams, StreamQuery),
    responses(
        (status = 200, description = "The run's events", content_type = "text/event-stream", body = Event),
        Refusals,
    )
)]
pub(super) async fn stream(
    State(state): State<AppState>,
    path: ThreadPath,
    headers: HeaderMap,
    query: Result<Query<StreamQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    // This GET starts a run: with the ambient cookie, only for pages that may.
    if path.identity.via == Via::Cookie {
        cors::check_cookie_get(&headers, state.cors.as_ref())?;
    }
    let Query(query) = query.map_err(|_| {
        ApiError::InvalidRequest("the query must carry `message` (and may carry `ticket`)".into())
    })?;
    validate::check_message(&query.message)?;
    let input = ChatInput {
        thread: Some(path.thread),
        message: query.message,
        metadata: Default::default(),
    };
    let run = chat::start(&state, &path.identity, &path.agent, input, Transport::sse).await?;
    Ok(sse::run(run, Native::NAMED, state.sse))
}

/// A client that lists `text/event-stream` in `Accept` gets the stream.
fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("text/event-stream")
        })
}
