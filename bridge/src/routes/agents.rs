//! `GET /v1/agents`: which agents a caller may use, for pickers.

use axum::{Extension, Json, extract::State};
use serde::Serialize;

use crate::{auth::Identity, state::AppState};

/// The agents a caller may call.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentList {
    agents: Vec<AgentEntry>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentEntry {
    name: String,
}

/// `GET /v1/agents`: the configured agents this caller may call, for pickers.
#[utoipa::path(
    get,
    path = "/v1/agents",
    tag = "agents",
    responses((status = 200, description = "The agents this caller may call", body = AgentList))
)]
pub async fn list_agents(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
) -> Json<AgentList> {
    let agents = state
        .agents
        .names()
        .filter(|name| identity.may_call(name))
        .map(|name| AgentEntry {
            name: name.to_owned(),
        })
        .collect();
    Json(AgentList { agents })
}
