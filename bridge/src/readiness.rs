//! Readiness and agent health, kept apart.
//!
//! [`Readiness`] is this instance's ability to serve: it answers (the listener), it is not
//! draining (the `/readyz` handler checks that) and its hub is reachable. An agent's health
//! never makes the instance unready: agents are shared by every replica, so one failing agent
//! would take every bridge pod out of the Service (and the disruption budget would then block
//! node drains), while the other agents still answer.
//!
//! [`AgentHealth`] follows each agent instead: every `--readiness-cache` period a background
//! task asks the agent's `grpc.health.v1` (service `""`, the whole server), and its last answer
//! shows in `GET /v1/agents`, `GET /v1/agents/{agent}/status` and the `bridge_agent_serving`
//! gauge. A run to an agent whose last answer was not SERVING is refused at once with a `503`
//! problem naming that agent, rather than waiting for the call to fail.

use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use prometheus_client::metrics::gauge::Gauge;
use serde::Serialize;
use tokio::{sync::Mutex, time::Instant};
use tokio_util::sync::CancellationToken;
use tonic::{Code, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::{error::ApiError, hub::Hub, metrics::Metrics, upstream::Agents};

/// `/readyz`: the hub answers (the answer is cached for `ttl`, and concurrent probes share
/// one check, so a probe storm reaches the hub at most once per period).
pub(crate) struct Readiness {
    hub: Hub,
    ttl: Duration,
    /// Bounds one check, so a black-holed hub cannot hold the probe.
    timeout: Duration,
    /// The last check: when it ran, and why the hub could not serve.
    last: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl Readiness {
    pub(crate) fn new(hub: Hub, ttl: Duration, timeout: Duration) -> Self {
        Self {
            hub,
            ttl,
            timeout,
            last: Mutex::new(None),
        }
    }

    /// Ready, or why not (the hub).
    pub(crate) async fn check(&self) -> Result<(), ApiError> {
        // Held across the check: probes arriving meanwhile wait for it and reuse its answer.
        let mut last = self.last.lock().await;
        let fresh = last
            .as_ref()
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, answer)| answer.clone());
        let answer = match fresh {
            Some(answer) => answer,
            None => {
                // New runs and subscriptions need the hub: without it this instance only refuses.
                let answer = match tokio::time::timeout(self.timeout, self.hub.check()).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("hub check timed out".to_owned()),
                };
                *last = Some((Instant::now(), answer.clone()));
                answer
            }
        };
        answer.map_err(ApiError::HubUnavailable)
    }
}

/// What an agent's last health check said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Health {
    /// Not checked yet, or the agent serves no `grpc.health.v1` (runs are not refused).
    Unknown,
    /// SERVING.
    Serving,
    /// The agent answered, but not SERVING (e.g. NOT_SERVING while it shuts down): runs are
    /// refused at once.
    NotServing,
    /// The check failed (connection refused, timed out): runs fail as the call does.
    Unreachable,
}

/// One agent's health, as `/v1/agents` and `/v1/agents/{agent}/status` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub(crate) struct AgentStatus {
    pub status: Health,
    /// Why it is not serving, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl AgentStatus {
    const UNKNOWN: Self = Self {
        status: Health::Unknown,
        reason: None,
    };
}

/// Every configured agent's last health answer. Clones share the table.
#[derive(Clone)]
pub(crate) struct AgentHealth {
    table: Arc<BTreeMap<Arc<str>, RwLock<AgentStatus>>>,
}

impl AgentHealth {
    /// Starts one checker per agent (when a Tokio runtime runs), each until `shutdown`.
    pub(crate) fn start(
        agents: &Agents,
        metrics: &Metrics,
        period: Duration,
        timeout: Duration,
        shutdown: &CancellationToken,
    ) -> Self {
        let table: BTreeMap<_, _> = agents
            .iter()
            .map(|a| (Arc::clone(&a.name), RwLock::new(AgentStatus::UNKNOWN)))
            .collect();
        let health = Self {
            table: Arc::new(table),
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            for agent in agents.iter() {
                let checker = Checker {
                    name: Arc::clone(&agent.name),
                    channel: agent.channel(),
                    health: health.clone(),
                    serving: metrics.agent_serving(&agent.name),
                    timeout,
                };
                runtime.spawn(checker.run(period, shutdown.clone()));
            }
        }
        health
    }

    /// The agent's last health answer; `None` for an agent that is not configured.
    pub(crate) fn status(&self, agent: &str) -> Option<AgentStatus> {
        let cell = self.table.get(agent)?;
        Some(cell.read().map_or(AgentStatus::UNKNOWN, |s| s.clone()))
    }

    /// Refuses a run to an agent whose last answer was not SERVING: a fast `503` for that
    /// agent only.
    pub(crate) fn admit(&self, agent: &str) -> Result<(), ApiError> {
        match self.status(agent) {
            Some(AgentStatus {
                status: Health::NotServing,
                reason,
            }) => Err(ApiError::AgentNotReady {
                agent: agent.to_owned(),
                reason: reason.unwrap_or_default(),
            }),
            _ => Ok(()),
        }
    }

    fn record(&self, agent: &str, status: AgentStatus) -> Option<AgentStatus> {
        let mut cell = self.table.get(agent)?.write().ok()?;
        Some(std::mem::replace(&mut *cell, status))
    }
}

/// Checks one agent, again and again.
struct Checker {
    name: Arc<str>,
    channel: Channel,
    health: AgentHealth,
    serving: Gauge,
    timeout: Duration,
}

impl Checker {
    async fn run(self, period: Duration, shutdown: CancellationToken) {
        loop {
            let now = self.check().await;
            self.serving.set(i64::from(now.status == Health::Serving));
            let before = self.health.record(&self.name, now.clone());
            if before.as_ref().map(|b| b.status) != Some(now.status) {
                match now.status {
                    Health::Serving => tracing::info!(agent = %self.name, "agent serving"),
                    _ => tracing::warn!(
                        agent = %self.name,
                        status = ?now.status,
                        reason = now.reason.as_deref().unwrap_or(""),
                        "agent not serving"
                    ),
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    async fn check(&self) -> AgentStatus {
        let mut client = HealthClient::new(self.channel.clone());
        let call = client.check(HealthCheckRequest {
            service: String::new(),
        });
        let (status, reason) = match tokio::time::timeout(self.timeout, call).await {
            Err(_) => (Health::Unreachable, "health check timed out".to_owned()),
            Ok(Err(status)) if status.code() == Code::Unimplemented => (
                Health::Unknown,
                "the agent serves no grpc.health.v1".to_owned(),
            ),
            Ok(Err(status)) => (
                Health::Unreachable,
                format!("health check failed: {}", status.code()),
            ),
            Ok(Ok(response)) => match response.into_inner().status() {
                ServingStatus::Serving => (Health::Serving, String::new()),
                other => (
                    Health::NotServing,
                    format!("health status {}", other.as_str_name()),
                ),
            },
        };
        AgentStatus {
            status,
            reason: (!reason.is_empty()).then_some(reason),
        }
    }
}
