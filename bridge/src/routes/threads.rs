//! The thread routes: post a message, follow the thread's runs (SSE), list, read and delete
//! history. The work is the thread service's ([`crate::threads`]).

use std::collections::HashMap;

use axum::{
    Extension, Json,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{AgentPath, ThreadPath, ValidJson, ValidQuery};
use crate::{
    auth::Identity,
    dialect::native::Native,
    error::ApiError,
    metrics::Transport,
    sse,
    state::AppState,
    threads,
    upstream::{MessagePage, Page, ThreadPage},
    validate,
};

/// The body of `POST .../threads/{thread}/messages`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageBody {
    pub message: String,
    #[serde(default)]
    pub metadata: HashMap<String, String>,
}

/// `?last_event_id=` (for a first connect; `Last-Event-ID` wins) and `?named=false` (every
/// event unnamed, for `EventSource.onmessage` clients; the kind stays in the JSON `type`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    pub last_event_id: Option<String>,
    #[serde(default = "yes")]
    pub named: bool,
    /// A stream ticket: already redeemed by the auth middleware, named here only so that
    /// EventSource clients (which cannot send headers) may subscribe with one.
    #[serde(default, rename = "ticket")]
    pub _ticket: Option<serde::de::IgnoredAny>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    #[serde(default)]
    pub page_size: u32,
    #[serde(default)]
    pub page_token: String,
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
pub async fn post_message(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    path: ThreadPath,
    ValidJson(body): ValidJson<MessageBody>,
) -> Result<Response, ApiError> {
    validate::check_message(&body.message)?;
    validate::check_metadata(&body.metadata)?;
    let run_id = threads::post(
        &state,
        &identity,
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
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "run_id": run_id, "thread_id": path.thread.as_str(), "events": events })),
    )
        .into_response())
}

/// `GET /v1/agents/{agent}/threads/{thread}/events` -> SSE: the log after the client's
/// position, then live events.
pub async fn events(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    path: ThreadPath,
    headers: HeaderMap,
    ValidQuery(q): ValidQuery<EventsQuery>,
) -> Result<Response, ApiError> {
    let start = threads::start_position(&headers, q.last_event_id.as_deref());
    let (subscription, guard) =
        threads::subscribe(&state, &identity, &path.key, start, Transport::sse).await?;
    Ok(sse::subscription(
        subscription,
        Native { named: q.named },
        state.sse,
        guard,
        state.shutdown.clone(),
    ))
}

/// `GET /v1/agents/{agent}/threads`: the caller's threads (from the agent).
pub async fn list_threads(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    AgentPath(agent): AgentPath,
    ValidQuery(q): ValidQuery<PageQuery>,
) -> Result<Json<ThreadPage>, ApiError> {
    let page = q.check()?;
    let threads = agent
        .list_threads(&identity, page, state.limits.first_event)
        .await?;
    Ok(Json(threads))
}

/// `GET /v1/agents/{agent}/threads/{thread}/messages`: history, a page at a time.
pub async fn list_messages(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    path: ThreadPath,
    ValidQuery(q): ValidQuery<PageQuery>,
) -> Result<Json<MessagePage>, ApiError> {
    let page = q.check()?;
    let messages = path
        .agent
        .list_messages(
            &identity,
            path.thread.as_str(),
            page,
            state.limits.first_event,
        )
        .await?;
    Ok(Json(messages))
}

/// `DELETE /v1/agents/{agent}/threads/{thread}`: the history at the agent and the log here.
pub async fn delete_thread(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    path: ThreadPath,
) -> Result<Json<Value>, ApiError> {
    let deleted = threads::delete(&state, &identity, &path.agent, &path.key).await?;
    Ok(Json(
        json!({ "thread_id": path.thread.as_str(), "deleted_messages": deleted }),
    ))
}
