//! The unversioned thread API, for clients built against `GET /agents/{agent}/sse?thread_id=`
//! and `POST /agents/{agent}/messages` (the thread id travels in the query and the body).
//! Such clients read `EventSource.onmessage`, which only sees unnamed events, so this
//! stream's events are unnamed (the kind is the JSON `type`).

use axum::{Extension, Json, extract::State, http::HeaderMap, response::Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{AgentPath, ValidJson, ValidQuery};
use super::openapi::{AgentParams, Refusals};
use crate::{
    auth::Identity,
    dialect::agent_messages::AgentMessages,
    error::ApiError,
    event::WireEvent as Event,
    metrics::Transport,
    state::AppState,
    threads,
    validate::{self, ThreadId},
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
    Extension(identity): Extension<Identity>,
    AgentPath(agent): AgentPath,
    headers: HeaderMap,
    ValidQuery(q): ValidQuery<SseQuery>,
) -> Result<Response, ApiError> {
    let thread = ThreadId::parse("thread", q.thread_id)?;
    identity.authorize(&agent.name, Some(thread.as_str()))?;
    let key = threads::key(&identity, &agent, &thread);
    let start = threads::start_position(&headers, q.last_event_id.as_deref());
    let (subscription, guard) =
        threads::subscribe(&state, &identity, &key, start, Transport::sse).await?;
    Ok(super::follow(
        &state,
        subscription,
        AgentMessages::new(agent.name.to_string()),
        guard,
    ))
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
    Extension(identity): Extension<Identity>,
    AgentPath(agent): AgentPath,
    ValidJson(body): ValidJson<MessageBody>,
) -> Result<Json<Value>, ApiError> {
    let thread = ThreadId::parse("thread", body.thread_id)?;
    identity.authorize(&agent.name, Some(thread.as_str()))?;
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
