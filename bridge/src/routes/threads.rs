//! Threads: post a message to a thread and let any number of subscribers (SSE or WebSocket,
//! on any replica) follow its runs; list, read and delete history.

use std::collections::HashMap;

use agent_bridge_proto::v1::{
    ChatRequest, DeleteThreadRequest, ListMessagesRequest, ListThreadsRequest,
};
use axum::{
    Extension, Json,
    body::Bytes,
    extract::{
        Path, Query, State,
        rejection::{BytesRejection, QueryRejection},
    },
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use bytes::{BufMut as _, BytesMut};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    auth::Identity,
    error::{ApiError, truncate},
    hub::{Delivery, Start, ThreadKey},
    metrics::Transport,
    record,
    routes::chat::body_rejection,
    run,
    sse::{self, put_retry},
    state::AppState,
    upstream::Agent,
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

/// The agent and the thread's key, after validating both names and checking the caller may
/// use them. Keys are namespaced by the caller's tenant and subject: knowing another user's
/// thread id is not enough to read it.
pub(crate) fn resolve<'a>(
    state: &'a AppState,
    identity: &Identity,
    agent: &str,
    thread: &str,
) -> Result<(&'a Agent, ThreadKey), ApiError> {
    let found = state
        .agents
        .get(agent)
        .ok_or_else(|| ApiError::UnknownAgent(agent.to_owned()))?;
    validate::check_id("thread", thread)?;
    identity.authorize(agent, Some(thread))?;
    let key = ThreadKey {
        agent: agent.to_owned(),
        tenant: identity.tenant.clone(),
        subject: identity.subject.clone(),
        thread: thread.to_owned(),
    };
    Ok((found, key))
}

pub(crate) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::InvalidRequest(format!("invalid query string: {}", e.body_text())))
}

/// Starts a run on a thread; it goes on without the request. Returns the run id.
pub(crate) async fn start_thread_run(
    state: &AppState,
    identity: &Identity,
    agent_name: &str,
    thread: &str,
    message: String,
    metadata: HashMap<String, String>,
) -> Result<String, ApiError> {
    let (agent, key) = resolve(state, identity, agent_name, thread)?;
    validate::check_message(&message)?;
    validate::check_metadata(&metadata)?;
    if state.shutdown.is_cancelled() {
        return Err(ApiError::ShuttingDown);
    }
    let request = ChatRequest {
        thread_id: thread.to_owned(),
        message,
        metadata,
        run_id: uuid::Uuid::new_v4().to_string(),
        agent: agent_name.to_owned(),
    };
    let run = start_recorded(state, identity, agent, &key, request).await?;
    let run_id = run.run_id.clone();
    record::detach(state.hub.clone(), key, run, state.run_lease);
    Ok(run_id)
}

/// Starts a run that takes the thread's one active-run slot (409 while another holds it),
/// giving the slot back if the agent refuses. The caller records the run.
pub(crate) async fn start_recorded(
    state: &AppState,
    identity: &Identity,
    agent: &Agent,
    key: &ThreadKey,
    request: ChatRequest,
) -> Result<run::Run, ApiError> {
    let run_id = request.run_id.clone();
    state.hub.begin_run(key, &run_id).await?;
    let started = run::start(
        agent,
        request,
        identity,
        state.limits,
        &state.shutdown,
        &state.metrics,
    )
    .await;
    if started.is_err() {
        let _ = state.hub.end_run(key, &run_id).await;
    }
    started
}

/// `POST /v1/agents/{agent}/threads/{thread}/messages` -> 202 with the run id.
pub async fn post_message(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Path((agent, thread)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    resolve(&state, &identity, &agent, &thread)?;
    let body = body.map_err(|r| body_rejection(&r, state.max_body_bytes))?;
    validate::require_json(&headers)?;
    let body: MessageBody = validate::parse_json(&body)?;
    let run_id = start_thread_run(
        &state,
        &identity,
        &agent,
        &thread,
        body.message,
        body.metadata,
    )
    .await?;
    let events = format!("/v1/agents/{agent}/threads/{thread}/events");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "run_id": run_id, "thread_id": thread, "events": events })),
    )
        .into_response())
}

/// The position a subscriber resumes after: `Last-Event-ID` first, then the query.
pub(crate) fn start_position(headers: &HeaderMap, query: Option<&str>) -> Start {
    let header = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    Start::from_last_event_id(header.or(query).map(|id| truncate(id, 128)))
}

/// `GET /v1/agents/{agent}/threads/{thread}/events` -> SSE: the log after the client's
/// position, then live events.
pub async fn events(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Path((agent, thread)): Path<(String, String)>,
    headers: HeaderMap,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (_, key) = resolve(&state, &identity, &agent, &thread)?;
    let q = query(q)?;
    subscribe_sse(
        &state,
        &identity,
        key,
        start_position(&headers, q.last_event_id.as_deref()),
        q.named,
    )
    .await
}

pub(crate) async fn subscribe_sse(
    state: &AppState,
    identity: &Identity,
    key: ThreadKey,
    start: Start,
    named: bool,
) -> Result<Response, ApiError> {
    if state.shutdown.is_cancelled() {
        return Err(ApiError::ShuttingDown);
    }
    // A subscription is an open stream: it counts against the caller's and the process's caps.
    let permit = state.admission.admit(identity)?;
    let subscription = state.hub.subscribe(&key, start).await?;
    let open = state.metrics.stream_opened(&key.agent, Transport::sse);
    let retry = state.sse.retry_hint;
    let closing = closing_frame(named, retry);
    // Each run delivered to this subscriber is linked, from this request's trace, to the
    // trace of the request that started it (on whichever replica).
    let request_span = tracing::Span::current();
    Ok(sse::stream_until(
        subscription,
        state.sse,
        move |buf, d: &Delivery| {
            let _held = (&permit, &open);
            if let Delivery::Event(entry) = d
                && let Some(link) = &entry.link
            {
                crate::telemetry::link_delivery(&request_span, &entry.run_id, link);
            }
            encode_delivery(buf, d, named, retry)
        },
        Some((state.shutdown.clone(), closing)),
    ))
}

/// The last frame of a subscription when this bridge drains: reconnect (to another
/// replica) and resume with `Last-Event-ID`.
fn closing_frame(named: bool, retry: std::time::Duration) -> Bytes {
    let mut buf = BytesMut::new();
    if named {
        buf.put_slice(b"event: stream_error\n");
    }
    let data = json!({
        "type": "stream_error",
        "code": "UNAVAILABLE",
        "message": "this bridge is restarting; reconnect to resume",
    });
    buf.put_slice(b"data: ");
    buf.put_slice(data.to_string().as_bytes());
    buf.put_u8(b'\n');
    put_retry(&mut buf, retry);
    buf.put_u8(b'\n');
    buf.freeze()
}

/// One delivery as an SSE frame. Events keep their log position as `id`; notices have none,
/// so a client's `Last-Event-ID` always names an event.
fn encode_delivery(
    buf: &mut BytesMut,
    delivery: &Delivery,
    named: bool,
    retry: std::time::Duration,
) {
    let (kind, json) = match delivery {
        Delivery::Event(entry) => {
            buf.put_slice(b"id: ");
            buf.put_slice(entry.id.as_bytes());
            buf.put_u8(b'\n');
            (event_name(&entry.kind), entry.json.clone())
        }
        other => ("notice", Bytes::from(notice(other).to_string())),
    };
    let kind = match delivery {
        Delivery::Truncated { .. } => "history_truncated",
        Delivery::Failed => "stream_error",
        Delivery::Event(_) => kind,
    };
    if named {
        buf.put_slice(b"event: ");
        buf.put_slice(kind.as_bytes());
        buf.put_u8(b'\n');
    }
    buf.put_slice(b"data: ");
    buf.put_slice(&json);
    buf.put_u8(b'\n');
    if matches!(delivery, Delivery::Failed) {
        put_retry(buf, retry);
    }
    buf.put_u8(b'\n');
}

/// The JSON of a notice (a delivery that is not an event).
pub(crate) fn notice(delivery: &Delivery) -> Value {
    match delivery {
        Delivery::Truncated { requested } => json!({
            "type": "history_truncated",
            "requested": requested,
            "message": "events after the requested position are no longer retained; replaying what is",
        }),
        Delivery::Failed => json!({
            "type": "stream_error",
            "code": "UNAVAILABLE",
            "message": "the event log is unavailable; reconnect to resume",
        }),
        Delivery::Event(_) => Value::Null,
    }
}

/// Event kinds come from the log; only plain names go on an `event:` line.
pub(crate) fn event_name(kind: &str) -> &str {
    if !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        kind
    } else {
        "unknown"
    }
}

/// `GET /v1/agents/{agent}/threads`: the caller's threads (from the agent).
pub async fn list_threads(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Path(agent): Path<String>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let found = state
        .agents
        .get(&agent)
        .ok_or_else(|| ApiError::UnknownAgent(agent.clone()))?;
    identity.authorize(&agent, None)?;
    let q = page(query(q)?)?;
    let answer = found
        .client()
        .list_threads(unary(
            found,
            &identity,
            ListThreadsRequest {
                page_size: q.page_size,
                page_token: q.page_token,
            },
            &state,
        ))
        .await
        .map_err(|status| ApiError::Upstream {
            agent: agent.clone(),
            status,
        })?
        .into_inner();
    let threads: Vec<Value> = answer
        .threads
        .iter()
        .map(|t| {
            json!({
                "thread_id": t.thread_id,
                "title": t.title,
                "created_at": t.created_at.as_ref().map(ToString::to_string),
                "updated_at": t.updated_at.as_ref().map(ToString::to_string),
                "message_count": t.message_count,
            })
        })
        .collect();
    Ok(Json(
        json!({ "threads": threads, "next_page_token": answer.next_page_token }),
    ))
}

/// `GET /v1/agents/{agent}/threads/{thread}/messages`: history, a page at a time.
pub async fn list_messages(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Path((agent, thread)): Path<(String, String)>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let (found, _) = resolve(&state, &identity, &agent, &thread)?;
    let q = page(query(q)?)?;
    let request = ListMessagesRequest {
        thread_id: thread,
        page_size: q.page_size,
        page_token: q.page_token,
    };
    let answer = found
        .client()
        .list_messages(unary(found, &identity, request, &state))
        .await
        .map_err(|status| ApiError::Upstream {
            agent: agent.clone(),
            status,
        })?
        .into_inner();
    let messages: Vec<Value> = answer
        .messages
        .iter()
        .map(|m| {
            json!({
                "message_id": m.message_id,
                "role": m.role,
                "content": m.content,
                "agent": m.agent,
                "run_id": m.run_id,
                "created_at": m.created_at.as_ref().map(ToString::to_string),
            })
        })
        .collect();
    Ok(Json(
        json!({ "messages": messages, "next_page_token": answer.next_page_token }),
    ))
}

/// `DELETE /v1/agents/{agent}/threads/{thread}`: the history at the agent and the log here.
pub async fn delete_thread(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Path((agent, thread)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (found, key) = resolve(&state, &identity, &agent, &thread)?;
    state.hub.delete(&key).await?;
    let answer = found
        .client()
        .delete_thread(unary(
            found,
            &identity,
            DeleteThreadRequest {
                thread_id: thread.clone(),
            },
            &state,
        ))
        .await
        .map_err(|status| ApiError::Upstream {
            agent: agent.clone(),
            status,
        })?
        .into_inner();
    Ok(Json(
        json!({ "thread_id": thread, "deleted_messages": answer.deleted_messages }),
    ))
}

fn page(q: PageQuery) -> Result<PageQuery, ApiError> {
    if q.page_size > 200 {
        return Err(ApiError::InvalidRequest(
            "`page_size` must be at most 200".into(),
        ));
    }
    if !q.page_token.is_empty() && !validate::is_safe_id(&q.page_token, 256) {
        return Err(ApiError::InvalidRequest(
            "`page_token` is not a token this API issued".into(),
        ));
    }
    Ok(q)
}

/// A unary agent call, bounded like a run's first event.
fn unary<T>(agent: &Agent, identity: &Identity, message: T, state: &AppState) -> tonic::Request<T> {
    let mut request = agent.request(message, identity);
    request.set_timeout(state.limits.first_event);
    request
}
