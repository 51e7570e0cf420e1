//! `POST /v1/tickets`: a short-lived, single-use ticket for one EventSource stream.

use axum::{Extension, Json, extract::State, http::StatusCode, response::IntoResponse};
use serde::{Deserialize, Serialize};

use super::extract::{ValidJson, callable_agent};
use super::openapi::Refusals;
use crate::{auth::Identity, error::ApiError, state::AppState, validate};

/// What a ticket is for: one agent and one thread.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TicketBody {
    agent: String,
    thread_id: String,
}

/// A ticket: append `?ticket=` to `stream_path` (or the thread's `events` path) once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Ticket {
    ticket: String,
    /// Seconds since the Unix epoch.
    expires_at: u64,
    stream_path: String,
}

/// A short-lived, single-use ticket for one EventSource stream (EventSource cannot send
/// headers).
#[utoipa::path(
    post,
    path = "/v1/tickets",
    tag = "runs",
    request_body = TicketBody,
    responses(
        (status = 201, description = "Issued", body = Ticket),
        Refusals,
    )
)]
pub(super) async fn issue(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    ValidJson(body): ValidJson<TicketBody>,
) -> Result<impl IntoResponse, ApiError> {
    validate::check_id("agent", &body.agent)?;
    validate::check_id("thread_id", &body.thread_id)?;
    callable_agent(&state, &identity, &body.agent)?;
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
        Json(Ticket {
            ticket,
            expires_at,
            stream_path,
        }),
    ))
}
