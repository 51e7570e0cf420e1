//! `POST /v1/agents/{agent}/chat`: one run, as an SSE stream or as one JSON answer.

use agent_bridge_proto::v1::ChatRequest;
use axum::{
    Json,
    body::Bytes,
    extract::{Path, State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::threads::resolve;
use crate::{answer, error::ApiError, record, run, sse, state::AppState, validate};

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
        thread_id: body.thread_id.clone().unwrap_or_default(),
        message: body.message,
        metadata: body.metadata,
        run_id: uuid::Uuid::new_v4().to_string(),
        agent: agent_name.clone(),
    };
    let run = match body.thread_id {
        // On a thread, the run is also recorded for the thread's other subscribers and
        // history, and takes the thread's one active-run slot.
        Some(thread) => {
            let (_, key) = resolve(&state, &agent_name, &thread)?;
            state.hub.begin_run(&key, &request.run_id).await?;
            let run_id = request.run_id.clone();
            match run::start(agent, request, state.limits, &state.shutdown).await {
                Ok(run) => record::tee(
                    state.hub.clone(),
                    key,
                    run,
                    state.run_lease,
                    state.limits.buffer,
                ),
                Err(e) => {
                    let _ = state.hub.end_run(&key, &run_id).await;
                    return Err(e);
                }
            }
        }
        None => run::start(agent, request, state.limits, &state.shutdown).await?,
    };
    if wants_event_stream(&headers) {
        Ok(sse::response(run, state.sse))
    } else {
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
