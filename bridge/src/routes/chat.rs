//! `POST /v1/agents/{agent}/chat`: one run, as an SSE stream or as one JSON answer.

use std::collections::HashMap;

use agent_bridge_proto::v1::ChatRequest;
use axum::{
    Extension, Json,
    body::Bytes,
    extract::{
        Path, Query, State,
        rejection::{BytesRejection, QueryRejection},
    },
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};

use serde::Deserialize;

use super::threads::{resolve, start_recorded};
use crate::{
    answer, auth::Identity, error::ApiError, metrics::Transport, record, run, sse, state::AppState,
    validate,
};

pub async fn chat(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Path(agent_name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    state
        .agents
        .get(&agent_name)
        .ok_or_else(|| ApiError::UnknownAgent(agent_name.clone()))?;
    identity.authorize(&agent_name, None)?;
    let body = body.map_err(|rejection| body_rejection(&rejection, state.max_body_bytes))?;
    let body = validate::chat_body(&headers, &body)?;
    if state.shutdown.is_cancelled() {
        return Err(ApiError::ShuttingDown);
    }
    let permit = state.admission.admit(&identity)?;
    let mut run = start_chat(
        &state,
        &identity,
        &agent_name,
        body.thread_id,
        body.message,
        body.metadata,
    )
    .await?;
    run.permit = Some(permit);
    if wants_event_stream(&headers) {
        run.open_stream = Some(state.metrics.stream_opened(&agent_name, Transport::sse));
        Ok(sse::response(run, state.sse))
    } else {
        run.open_stream = Some(state.metrics.stream_opened(&agent_name, Transport::json));
        Ok(Json(answer::collect(run).await?).into_response())
    }
}

/// Starts a run. On a thread, the run is also recorded for the thread's other subscribers
/// and its history, and takes the thread's one active-run slot.
async fn start_chat(
    state: &AppState,
    identity: &Identity,
    agent_name: &str,
    thread: Option<String>,
    message: String,
    metadata: HashMap<String, String>,
) -> Result<run::Run, ApiError> {
    let agent = state
        .agents
        .get(agent_name)
        .ok_or_else(|| ApiError::UnknownAgent(agent_name.to_owned()))?;
    let request = ChatRequest {
        thread_id: thread.clone().unwrap_or_default(),
        message,
        metadata,
        run_id: uuid::Uuid::new_v4().to_string(),
        agent: agent_name.to_owned(),
    };
    let Some(thread) = thread else {
        return run::start(
            agent,
            request,
            identity,
            state.limits,
            &state.shutdown,
            &state.metrics,
        )
        .await;
    };
    let (_, key) = resolve(state, identity, agent_name, &thread)?;
    let run = start_recorded(state, identity, agent, &key, request).await?;
    Ok(record::tee(
        state.hub.clone(),
        key,
        run,
        state.run_lease,
        state.limits.buffer,
    ))
}

/// The query of the EventSource endpoint.
#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    message: String,
    /// Read by the auth layer; named here so it is not mistaken for an unknown parameter.
    #[serde(default, rename = "ticket")]
    _ticket: Option<serde::de::IgnoredAny>,
}

/// `GET /v1/agents/{agent}/threads/{thread_id}/stream?message=…[&ticket=…]`: one run in a
/// thread, always as SSE, for `EventSource` (which can only GET and cannot send headers,
/// hence the stream ticket).
pub async fn stream(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Path((agent_name, thread_id)): Path<(String, String)>,
    query: Result<Query<StreamQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    state
        .agents
        .get(&agent_name)
        .ok_or_else(|| ApiError::UnknownAgent(agent_name.clone()))?;
    validate::check_id("thread_id", &thread_id)?;
    identity.authorize(&agent_name, Some(&thread_id))?;
    let Query(query) = query.map_err(|_| {
        ApiError::InvalidRequest("the query must carry `message` (and may carry `ticket`)".into())
    })?;
    validate::check_message(&query.message)?;
    if state.shutdown.is_cancelled() {
        return Err(ApiError::ShuttingDown);
    }
    let permit = state.admission.admit(&identity)?;
    let mut run = start_chat(
        &state,
        &identity,
        &agent_name,
        Some(thread_id),
        query.message,
        HashMap::new(),
    )
    .await?;
    run.permit = Some(permit);
    Ok(sse::response(run, state.sse))
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

pub(crate) fn body_rejection(rejection: &BytesRejection, limit: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge { limit }
    } else {
        ApiError::MalformedBody("the request body could not be read".into())
    }
}
