//! `GET /v1/agents`: which agents a caller may use, for pickers.

use axum::{Extension, Json, extract::State};
use serde::Serialize;

use crate::{auth::Identity, state::AppState, upstream::a2a::Card};

/// The agents a caller may call.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentList {
    agents: Vec<AgentEntry>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentEntry {
    name: String,
    /// An A2A agent's card (name, description, skills); absent for `agent.v1` agents and
    /// while an A2A agent's card cannot be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    card: Option<Card>,
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
    let entries = state
        .agents
        .iter()
        .filter(|agent| identity.may_call(&agent.name))
        .map(|agent| async {
            AgentEntry {
                name: agent.name.to_string(),
                card: agent.card(&identity, state.limits.first_event).await,
            }
        });
    let mut agents = futures_util::future::join_all(entries).await;
    agents.sort_by(|a, b| a.name.cmp(&b.name));
    Json(AgentList { agents })
}
