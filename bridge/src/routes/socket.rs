//! WebSocket on a thread (seed 002): one socket both sends messages and receives the same
//! events as the thread's SSE stream.
//!
//! Server -> client text frames: each event's JSON with its log position added as `"id"`
//! (`{"id":"EPOCH-N","type":"thought",...}`); notices (`history_truncated`, `stream_error`)
//! as in SSE; replies to client frames (`accepted` with the run id, or `error` with a
//! problem document). Client -> server: `{"type":"message","message":"...","metadata":{}}`.

use std::collections::HashMap;

use axum::{
    extract::{
        State, WebSocketUpgrade,
        ws::rejection::WebSocketUpgradeRejection,
        ws::{Message, WebSocket},
    },
    http::HeaderMap,
    response::Response,
};
use serde::Deserialize;
use serde_json::json;

use super::openapi::{Refusals, ThreadParams};
use super::{
    extract::{ThreadPath, ValidQuery},
    threads::EventsQuery,
};
use crate::{
    auth::Identity,
    dialect::{Notice, native::notice_json},
    error::ApiError,
    hub::{Delivery, Subscription, ThreadKey},
    metrics::Transport,
    ratelimit::StreamGuard,
    state::AppState,
    threads,
    upstream::Agent,
};

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientFrame {
    Message {
        message: String,
        #[serde(default)]
        metadata: HashMap<String, String>,
    },
}

/// A WebSocket on a thread: receives the thread's events (each with its log position as
/// `id`) and sends messages (`{"type":"message","message":"..."}`).
#[utoipa::path(
    get,
    path = "/v1/agents/{agent}/threads/{thread}/ws",
    tag = "threads",
    params(ThreadParams, EventsQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        Refusals,
    )
)]
pub(super) async fn thread_socket(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    State(state): State<AppState>,
    ThreadPath {
        agent,
        key,
        identity,
        ..
    }: ThreadPath,
    headers: HeaderMap,
    ValidQuery(q): ValidQuery<EventsQuery>,
) -> Result<Response, ApiError> {
    let ws = ws.map_err(|rejection| {
        ApiError::InvalidRequest(format!(
            "not a WebSocket upgrade: {}",
            rejection.body_text()
        ))
    })?;
    crate::cors::check_socket_origin(&headers, state.cors.as_ref())?;
    // Subscribe before upgrading, so a hub failure is still an HTTP error. A socket is an
    // open stream: it counts against the caller's and the process's caps.
    let start = threads::start_position(&headers, q.last_event_id.as_deref());
    let (subscription, guard) =
        threads::subscribe(&state, &identity, &key, start, Transport::websocket).await?;
    let max = state.max_body_bytes;
    Ok(ws
        .max_message_size(max)
        .on_upgrade(move |socket| serve(socket, subscription, state, identity, agent, key, guard)))
}

/// A socket's session, to its end; `guard` (its open-stream slot) is released after it.
///
/// Not an `async fn`: its arguments (~1.8 KB: the state, the agent, the socket) would be
/// kept twice in every open socket's task (rust-lang/rust#62958). With the client's command
/// boxed, a session's task is 2,232 bytes, from 12,240 (`size_of_val`).
#[allow(clippy::manual_async_fn)]
fn serve(
    mut socket: WebSocket,
    mut subscription: Subscription,
    state: AppState,
    identity: Identity,
    agent: Agent,
    key: ThreadKey,
    guard: StreamGuard,
) -> impl Future<Output = ()> + Send {
    async move {
        loop {
            tokio::select! {
                delivery = subscription.recv() => {
                    let Some(delivery) = delivery else { break };
                    let failed = matches!(delivery, Delivery::Failed);
                    if socket.send(Message::Text(frame(&delivery).into())).await.is_err() || failed {
                        break;
                    }
                }
                incoming = socket.recv() => match incoming {
                    Some(Ok(Message::Text(text))) => {
                        // Boxed: a client's command (posting a message starts a run) is a deep
                        // future, and held inline it would size every idle socket's task.
                        let command = handle(&state, &identity, &agent, &key, text.as_str());
                        let reply = Box::pin(command).await;
                        if socket.send(Message::Text(reply.to_string().into())).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        let reply = error_frame(ApiError::UnsupportedMediaType);
                        if socket.send(Message::Text(reply.to_string().into())).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {} // pings are answered by the protocol layer
                },
                _ = state.shutdown.cancelled() => {
                    let draining = notice_json(Notice::Draining).to_string();
                    let _ = socket.send(Message::Text(draining.into())).await;
                    break;
                }
            }
        }
        let _ = socket.send(Message::Close(None)).await;
        drop(guard);
    }
}

/// A delivery as a text frame; an event's stored JSON gets its position spliced in front.
fn frame(delivery: &Delivery) -> String {
    match delivery {
        Delivery::Event(entry) => {
            let json = std::str::from_utf8(&entry.json).unwrap_or("{}");
            let rest = json.strip_prefix('{').unwrap_or("}");
            let id = serde_json::to_string(&entry.id).unwrap_or_default();
            if rest.starts_with('}') {
                format!("{{\"id\":{id}}}")
            } else {
                format!("{{\"id\":{id},{rest}")
            }
        }
        Delivery::Truncated { requested } => notice_json(Notice::Truncated {
            requested: &requested[..],
        })
        .to_string(),
        Delivery::Failed => notice_json(Notice::LogUnavailable).to_string(),
    }
}

async fn handle(
    state: &AppState,
    identity: &Identity,
    agent: &Agent,
    key: &ThreadKey,
    text: &str,
) -> serde_json::Value {
    let frame: ClientFrame = match crate::validate::parse_json(text.as_bytes()) {
        Ok(frame) => frame,
        Err(e) => return error_frame(e),
    };
    match frame {
        ClientFrame::Message { message, metadata } => {
            if let Err(e) = crate::validate::check_message(&message)
                .and_then(|()| crate::validate::check_metadata(&metadata))
            {
                return error_frame(e);
            }
            let posted = threads::post(state, identity, agent, key.clone(), message, metadata);
            match posted.await {
                Ok(run_id) => {
                    json!({ "type": "accepted", "run_id": run_id, "thread_id": key.thread })
                }
                Err(e) => error_frame(e),
            }
        }
    }
}

fn error_frame(e: ApiError) -> serde_json::Value {
    json!({ "type": "error", "problem": e.to_problem() })
}
