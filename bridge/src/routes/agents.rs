//! `GET /v1/agents`: which agents a caller may use, for pickers.

use axum::{Extension, Json, extract::State};
use serde_json::{Value, json};

use crate::{auth::Identity, state::AppState};

/// `GET /v1/agents`: the configured agents this caller may call, for pickers.
pub async fn list_agents(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
) -> Json<Value> {
    let agents: Vec<Value> = state
        .agents
        .names()
        .filter(|name| identity.may_call(name))
        .map(|name| json!({ "name": name }))
        .collect();
    Json(json!({ "agents": agents }))
}
