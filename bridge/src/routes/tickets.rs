//! `POST /v1/tickets`: a short-lived, single-use ticket for one EventSource stream.

use axum::{Extension, Json, extract::State, http::StatusCode, response::IntoResponse};
use serde::Deserialize;
use serde_json::json;

use super::extract::ValidJson;
use crate::{auth::Identity, error::ApiError, state::AppState, validate};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketBody {
    agent: String,
    thread_id: String,
}

pub async fn issue(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    ValidJson(body): ValidJson<TicketBody>,
) -> Result<impl IntoResponse, ApiError> {
    validate::check_id("agent", &body.agent)?;
    validate::check_id("thread_id", &body.thread_id)?;
    if state.agents.get(&body.agent).is_none() {
        return Err(ApiError::UnknownAgent(body.agent));
    }
    identity.authorize(&body.agent, None)?;
    let (ticket, expires_at) = state
        .auth
        .tickets
        .issue(&identity, &body.agent, &body.thread_id);
    let stream_path = format!(
        "/v1/agents/{}/threads/{}/stream",
        body.agent, body.thread_id
    );
    Ok((
        StatusCode::CREATED,
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "ticket": ticket,
            "expires_at": expires_at,
            "stream_path": stream_path,
        })),
    ))
}
