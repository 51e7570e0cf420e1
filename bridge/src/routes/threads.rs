//! The thread routes: post a message, follow the thread's runs (SSE), list, read and delete
//! history. The work is the thread service's ([`crate::threads`]).

use std::collections::HashMap;

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};

use super::extract::{AgentPath, ThreadPath, ValidJson, ValidQuery};
use super::openapi::{AgentParams, Refusals, ThreadParams};
use crate::{
    dialect::native::Native,
    error::{ApiError, Problem},
    event::WireEvent as Event,
    state::AppState,
    threads,
    upstream::{MessagePage, Page, ThreadPage},
    validate,
};

/// The body of `POST .../threads/{thread}/messages`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MessageBody {
    pub message: String,
    #[serde(default)]
    pub metadata: HashMap<String, String>,
}

/// `?last_event_id=` (for a first connect; `Last-Event-ID` wins) and `?named=false` (every
/// event unnamed, for `EventSource.onmessage` clients; the kind stays in the JSON `type`).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsQuery {
    /// Resume after this position on a first connect (`Last-Event-ID` wins); `0`: from the
    /// oldest retained event.
    pub last_event_id: Option<String>,
    /// `false`: every frame unnamed, for `EventSource.onmessage` (the kind stays in `type`).
    #[serde(default = "yes")]
    pub named: bool,
    /// A stream ticket: already redeemed by the auth middleware, named here only so that
    /// EventSource clients (which cannot send headers) may subscribe with one.
    #[serde(default, rename = "ticket")]
    #[param(rename = "ticket", value_type = Option<String>)]
    pub _ticket: Option<serde::de::IgnoredAny>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct PageQuery {
    /// At most 200; 0 lets the agent choose.
    #[serde(default)]
    pub page_size: u32,
    /// The `next_page_token` of the previous page.
    #[serde(default)]
    pub page_token: String,
}

/// The answer to a posted message.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct MessageAccepted {
    pub run_id: String,
    pub thread_id: String,
    /// Where to follow the run (`GET`, SSE).
    pub events: String,
}

/// The answer to a deleted thread.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct ThreadDeleted {
    pub thread_id: String,
    /// Messages the agent deleted.
    pub deleted_messages: u32,
}

impl PageQuery {
    fn check(self) -> Result<Page, ApiError> {
        if self.page_size > 200 {
            return Err(ApiError::InvalidRequest(
                "`page_size` must be at most 200".into(),
            ));
        }
        if !self.page_token.is_empty() && !validate::is_safe_id(&self.page_token, 256) {
            return Err(ApiError::InvalidRequest(
                "`page_token` is not a token this API issued".into(),
            ));
        }
        Ok(Page {
            page_size: self.page_size,
            page_token: self.page_token,
        })
    }
}

/// `POST /v1/agents/{agent}/threads/{thread}/messages` -> 202 with the run id.
#[utoipa::path(
    post,
    path = "/v1/agents/{agent}/threads/{thread}/messages",
    tag = "threads",
    params(ThreadParams),
    request_body = MessageBody,
    responses(
        (status = 202, description = "The run started; it goes on without this request", body = MessageAccepted),
        (status = 409, description = "Another run is active on the thread", content_type = "application/problem+json", body = Problem),
        Refusals,
    )
)]
pub(super) async fn post_message(
    State(state): State<AppState>,
    path: ThreadPath,
    ValidJson(body): ValidJson<MessageBody>,
) -> Result<Response, ApiError> {
    validate::check_message(&body.message)?;
    validate::check_metadata(&body.metadata)?;
    let run_id = threads::post(
        &state,
        &path.identity,
        &path.agent,
        path.key,
        body.message,
        body.metadata,
    )
    .await?;
    let events = format!(
        "/v1/agents/{}/threads/{}/events",
        path.agent.name, path.thread
    );
    let accepted = MessageAccepted {
        run_id,
        thread_id: path.thread.to_string(),
        events,
    };
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

/// `GET /v1/agents/{agent}/threads/{thread}/events` -> SSE: the log after the client's
/// position, then live events.
#[utoipa::path(
    get,
    path = "/v1/agents/{agent}/threads/{thread}/events",
    tag = "threads",
    params(ThreadParams, EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this position")),
    responses(
        (status = 200, description = "Replayed then live events (`id:` the log position), and notices `history_truncated` / `stream_error`", content_type = "text/event-stream", body = Event),
        Refusals,
    )
)]
pub(super) async fn events(
    State(state): State<AppState>,
    path: ThreadPath,
    headers: HeaderMap,
    ValidQuery(q): ValidQuery<EventsQuery>,
) -> Result<Response, ApiError> {
    let start = threads::start_position(&headers, q.last_event_id.as_deref());
    let encoder = Native { named: q.named };
    super::follow_thread(&state, &path.identity, &path.key, start, encoder).await
}

/// `GET /v1/agents/{agent}/threads`: the caller's threads (from the agent).
#[utoipa::path(
    get,
    path = "/v1/agents/{agent}/threads",
    tag = "threads",
    params(AgentParams, PageQuery),
    responses(
        (status = 200, description = "A page of the caller's threads", body = ThreadPage),
        Refusals,
    )
)]
pub(super) async fn list_threads(
    State(state): State<AppState>,
    AgentPath(agent, identity): AgentPath,
    ValidQuery(q): ValidQuery<PageQuery>,
) -> Result<Json<ThreadPage>, ApiError> {
    let page = q.check()?;
    let threads = agent
        .list_threads(&identity, page, state.limits.first_event)
        .await?;
    Ok(Json(threads))
}

/// `GET /v1/agents/{agent}/threads/{thread}/messages`: history, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/agents/{agent}/threads/{thread}/messages",
    tag = "threads",
    params(ThreadParams, PageQuery),
    responses(
        (status = 200, description = "A page of the thread's history", body = MessagePage),
        Refusals,
    )
)]
pub(super) async fn list_messages(
    State(state): State<AppState>,
    path: ThreadPath,
    ValidQuery(q): ValidQuery<PageQuery>,
) -> Result<Json<MessagePage>, ApiError> {
    let page = q.check()?;
    let messages = path
        .agent
        .list_messages(
            &path.identity,
            path.thread.as_str(),
            page,
            state.limits.first_event,
        )
        .await?;
    Ok(Json(messages))
}

/// `DELETE /v1/agents/{agent}/threads/{thread}`: the history at the agent and the log here.
#[utoipa::path(
    delete,
    path = "/v1/agents/{agent}/threads/{thread}",
    tag = "threads",
    params(ThreadParams),
    responses(
        (status = 200, description = "Deleted", body = ThreadDeleted),
        Refusals,
    )
)]
pub(super) async fn delete_thread(
    State(state): State<AppState>,
    path: ThreadPath,
) -> Result<Json<ThreadDeleted>, ApiError> {
    let deleted = threads::delete(&state, &path.identity, &path.agent, &path.key).await?;
    Ok(Json(ThreadDeleted {
        thread_id: path.thread.to_string(),
        deleted_messages: deleted,
    }))
}
