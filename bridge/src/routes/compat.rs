//! Seed 004's API as written, for clients built against it: `GET /agents/{agent}/sse` and
//! `POST /agents/{agent}/messages`. Its client reads `EventSource.onmessage`, which only
//! sees unnamed events, so this stream's events are unnamed (the kind is the JSON `type`).

use axum::{
    Extension, Json,
    body::Bytes,
    extract::{
        Path, Query, State,
        rejection::{BytesRejection, QueryRejection},
    },
    http::HeaderMap,
    response::Response,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    chat::body_rejection,
    threads::{query, resolve, start_position, start_thread_run, subscribe_sse},
};
use crate::{auth::Identity, error::ApiError, state::AppState, validate};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SseQuery {
    pub thread_id: String,
    pub last_event_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageBody {
    pub thread_id: String,
    pub message: String,
}

pub async fn sse(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Path(agent): Path<String>,
    headers: HeaderMap,
    q: Result<Query<SseQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let (_, key) = resolve(&state, &identity, &agent, &q.thread_id)?;
    subscribe_sse(
        &state,
        &identity,
        key,
        start_position(&headers, q.last_event_id.as_deref()),
        false,
    )
    .await
}

pub async fn messages(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Path(agent): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(|r| body_rejection(&r, state.max_body_bytes))?;
    validate::require_json(&headers)?;
    let body: MessageBody = validate::parse_json(&body)?;
    start_thread_run(
        &state,
        &identity,
        &agent,
        &body.thread_id,
        body.message,
        Default::default(),
    )
    .await?;
    Ok(Json(
        json!({ "status": "success", "message": "Message sent to agent." }),
    ))
}
