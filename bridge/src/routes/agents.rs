//! `GET /v1/agents`: which agents a caller may use, and how they are, for pickers; and
//! `GET /v1/agents/{agent}/status`: one agent's health.

use axum::{Extension, Json, extract::State};
use serde::Serialize;

use super::extract::AgentPath;
use super::openapi::{AgentParams, Refusals};
use crate::{
    auth::Identity,
    readiness::{AgentStatus, Health},
    state::AppState,
    upstream::a2a::Card,
};

/// The agents a caller may call.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct AgentList {
    agents: Vec<AgentEntry>,
}

/// An agent and its last gRPC health answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct AgentEntry {
    name: String,
    #[serde(flatten)]
    health: AgentStatus,
    /// An A2A agent's card (name, description, skills); absent for `agent.v1` agents and
    /// while an A2A agent's card cannot be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    card: Option<Card>,
}

impl AgentEntry {
    /// `name`'s entry: its last health answer (`unknown` before the first), and its `card`.
    fn of(state: &AppState, name: &str, card: Option<Card>) -> Self {
        Self {
            name: name.to_owned(),
            health: state.agent_health.status(name).unwrap_or(AgentStatus {
                status: Health::Unknown,
                reason: None,
            }),
            card,
        }
    }
}

/// `GET /v1/agents`: the configured agents this caller may call, with their health, for pickers.
#[utoipa::path(
    get,
    path = "/v1/agents",
    tag = "agents",
    responses((status = 200, description = "The agents this caller may call, with their health", body = AgentList))
)]
pub(super) async fn list_agents(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
) -> Json<AgentList> {
    let mut names: Vec<&str> = state
        .agents
        .names()
        .filter(|name| identity.may_call(name))
        .collect();
    // By name: the same list on every call and every replica.
    names.sort_unstable();
    let entries = names.into_iter().map(|name| async {
        let card = match state.agents.get(name) {
            Some(agent) => agent.card(&identity, state.limits.first_event).await,
            None => None,
        };
        AgentEntry::of(&state, name, card)
    });
    let agents = futures_util::future::join_all(entries).await;
    Json(AgentList { agents })
}

/// `GET /v1/agents/{agent}/status`: the agent's last gRPC health answer (`serving`,
/// `not_serving`: runs are refused at once with a `503`, `unreachable`, or `unknown`).
#[utoipa::path(
    get,
    path = "/v1/agents/{agent}/status",
    tag = "agents",
    params(AgentParams),
    responses(
        (status = 200, description = "The agent's health", body = AgentEntry),
        Refusals,
    )
)]
pub(super) async fn agent_status(
    State(state): State<AppState>,
    AgentPath(agent, _): AgentPath,
) -> Json<AgentEntry> {
    Json(AgentEntry::of(&state, &agent.name, None))
}
