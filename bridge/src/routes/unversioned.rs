//! The unversioned thread API, for clients built against `GET /agents/{agent}/sse?thread_id=`
//! and `POST /agents/{agent}/messages` (the thread id travels in the query and the body).
//! Such clients read `EventSource.onmessage`, which only sees unnamed events, so this
//! stream's events are unnamed (the kind is the JSON `type`).

use axum::{Json, extract::State, http::HeaderMap, response::Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{AgentPath, ValidJson, ValidQuery, named_thread};
use super::openapi::{AgentParams, Refusals};
use crate::{
    dialect::agent_messages::AgentMessages, error::ApiError, event::WireEvent as Event,
    state::AppState, threads, validate,
};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct SseQuery {
    pub thread_id: String,
    pub last_event_id: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = ThreadMessageBody)]
#[serde(deny_unknown_fields)]
pub(super) struct MessageBody {
    pub thread_id: String,
    pub message: String,
}

/// A thread's events, unnamed (for `EventSource.onmessage`).
#[utoipa::path(
    get,
    path = "/agents/{agent}/sse",
    tag = "threads",
    params(AgentParams, SseQuery),
    responses(
        (status = 200, description = "Replayed then live events, unnamed", content_type = "text/event-stream", body = Event),
        Refusals,
    )
)]
pub(super) async fn sse(
    State(state): State<AppState>,
    AgentPath(agent, identity): AgentPath,
    headers: HeaderMap,
    ValidQuery(q): ValidQuery<SseQuery>,
) -> Result<Response, ApiError> {
    let thread = named_thread(&identity, &agent, "thread", q.thread_id)?;
    let key = threads::key(&identity, &agent, &thread);
    let start = threads::start_position(&headers, q.last_event_id.as_deref());
    let encoder = AgentMessages::new(agent.name.to_string());
    super::follow_thread(&state, &identity, &key, start, encoder).await
}

/// Posts a message to the thread named in the body.
#[utoipa::path(
    post,
    path = "/agents/{agent}/messages",
    tag = "threads",
    params(AgentParams),
    request_body = MessageBody,
    responses(
        (status = 200, description = "The run started", body = Object),
        Refusals,
    )
)]
pub(super) async fn messages(
    State(state): State<AppState>,
    AgentPath(agent, identity): AgentPath,
    ValidJson(body): ValidJson<MessageBody>,
) -> Result<Json<Value>, ApiError> {
    let thread = named_thread(&identity, &agent, "thread", body.thread_id)?;
    validate::check_message(&body.message)?;
    let key = threads::key(&identity, &agent, &thread);
    threads::post(
        &state,
        &identity,
        &agent,
        key,
        body.message,
        Default::default(),
    )
    .await?;
    Ok(Json(
        json!({ "status": "success", "message": "Message sent to agent." }),
    ))
}
