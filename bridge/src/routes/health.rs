//! Probes. `/healthz` answers while the process runs; `/readyz` stops answering 200 as soon
//! as the bridge drains, so load balancers send new streams elsewhere.

use axum::{Json, extract::State, response::IntoResponse};
use serde_json::json;

use crate::{error::ApiError, state::AppState};

pub async fn live() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

pub async fn ready(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    if state.shutdown.is_cancelled() {
        return Err(ApiError::ShuttingDown);
    }
    Ok(Json(json!({ "status": "ready" })))
}
