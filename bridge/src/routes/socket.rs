//! WebSocket on a thread (seed 002): one socket both sends messages and receives the same
//! events as the thread's SSE stream.
//!
//! Server -> client text frames: each event's JSON with its log position added as `"id"`
//! (`{"id":"EPOCH-N","type":"thought",...}`); notices (`history_truncated`, `stream_error`)
//! as in SSE; replies to client frames (`accepted` with the run id, or `error` with a
//! problem document). Client -> server: `{"type":"message","message":"...","metadata":{}}`.

use std::collections::HashMap;

use axum::{
    Extension,
    extract::{
        Path, Query, State, WebSocketUpgrade,
        rejection::QueryRejection,
        ws::{Message, WebSocket},
    },
    http::HeaderMap,
    response::Response,
};
use serde::Deserialize;
use serde_json::json;

use super::threads::{EventsQuery, notice, query, resolve, start_position, start_thread_run};
use crate::{auth::Identity, error::ApiError, hub::Delivery, metrics::Transport, state::AppState};

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientFrame {
    Message {
        message: String,
        #[serde(default)]
        metadata: HashMap<String, String>,
    },
}

pub async fn thread_socket(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Path((agent, thread)): Path<(String, String)>,
    headers: HeaderMap,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (_, key) = resolve(&state, &identity, &agent, &thread)?;
    let q = query(q)?;
    if state.shutdown.is_cancelled() {
        return Err(ApiError::ShuttingDown);
    }
    // A socket is an open stream: it counts against the caller's and the process's caps.
    let permit = state.admission.admit(&identity)?;
    // Subscribe before upgrading, so a hub failure is still an HTTP error.
    let open = state.metrics.stream_opened(&agent, Transport::websocket);
    let subscription = state
        .hub
        .subscribe(&key, start_position(&headers, q.last_event_id.as_deref()))
        .await?;
    let max = state.max_body_bytes;
    Ok(ws
        .max_message_size(max)
        .on_upgrade(move |socket| async move {
            serve(socket, subscription, state, identity, agent, thread).await;
            drop((permit, open));
        }))
}

async fn serve(
    mut socket: WebSocket,
    mut subscription: crate::hub::Subscription,
    state: AppState,
    identity: Identity,
    agent: String,
    thread: String,
) {
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
                    let reply = handle(&state, &identity, &agent, &thread, text.as_str()).await;
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
                let _ = socket.send(Message::Text(frame(&Delivery::Failed).into())).await;
                break;
            }
        }
    }
    let _ = socket.send(Message::Close(None)).await;
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
        other => notice(other).to_string(),
    }
}

async fn handle(
    state: &AppState,
    identity: &Identity,
    agent: &str,
    thread: &str,
    text: &str,
) -> serde_json::Value {
    let frame: ClientFrame = match crate::validate::parse_json(text.as_bytes()) {
        Ok(frame) => frame,
        Err(e) => return error_frame(e),
    };
    match frame {
        ClientFrame::Message { message, metadata } => {
            match start_thread_run(state, identity, agent, thread, message, metadata).await {
                Ok(run_id) => json!({ "type": "accepted", "run_id": run_id, "thread_id": thread }),
                Err(e) => error_frame(e),
            }
        }
    }
}

fn error_frame(e: ApiError) -> serde_json::Value {
    json!({ "type": "error", "problem": e.to_problem() })
}
