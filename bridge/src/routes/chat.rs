//! `POST /v1/agents/{agent}/chat`: one run, as an SSE stream or as one JSON answer.

use agent_bridge_proto::v1::ChatRequest;
use axum::{
    Json,
    body::Bytes,
    extract::{Path, State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::{answer, error::ApiError, metrics::Transport, run, sse, state::AppState, validate};

pub async fn chat(
    State(state): State<AppState>,
    Path(agent_name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let agent = state
        .agents
        .get(&agent_name)
        .ok_or_else(|| ApiError::UnknownAgent(agent_name.clone()))?;
    let body = body.map_err(|rejection| body_rejection(&rejection, state.max_body_bytes))?;
    let body = validate::chat_body(&headers, &body)?;
    if state.shutdown.is_cancelled() {
        return Err(ApiError::ShuttingDown);
    }

    let request = ChatRequest {
        thread_id: body.thread_id.unwrap_or_default(),
        message: body.message,
        metadata: body.metadata,
        run_id: String::new(),
        agent: agent_name,
    };
    let mut run = run::start(
        agent,
        request,
        state.limits,
        &state.shutdown,
        &state.metrics,
    )
    .await?;
    if wants_event_stream(&headers) {
        run.open_stream = Some(state.metrics.stream_opened(&agent.name, Transport::sse));
        Ok(sse::response(run, state.sse))
    } else {
        run.open_stream = Some(state.metrics.stream_opened(&agent.name, Transport::json));
        Ok(Json(answer::collect(run).await?).into_response())
    }
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
