//! Readiness: the hub is reachable and every configured agent answers SERVING on
//! `grpc.health.v1` (service `""`, the whole server). Answers are cached for `--readiness-cache`, and concurrent probes share one
//! round of checks, so a probe storm reaches each agent at most once per period.

use std::{sync::Arc, time::Duration};

use tokio::{sync::Mutex, time::Instant};
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::{error::ApiError, hub::Hub, upstream::Agents};

pub struct Readiness {
    agents: Vec<(Arc<str>, Channel)>,
    hub: Hub,
    ttl: Duration,
    /// Bounds one check, so a black-holed agent cannot hold the probe.
    timeout: Duration,
    /// The last round: when it ran and the first agent that was not ready (name, reason).
    last: Mutex<Option<(Instant, Verdict)>>,
}

/// Ready, or what is not.
type Verdict = Result<(), NotReady>;

#[derive(Debug, Clone)]
enum NotReady {
    /// The first agent (by name) that is not ready, and why.
    Agent(String, String),
    Hub(String),
}

impl Readiness {
    pub fn new(agents: &Agents, hub: Hub, ttl: Duration, timeout: Duration) -> Self {
        let mut agents: Vec<_> = agents
            .iter()
            .map(|a| (Arc::clone(&a.name), a.channel()))
            .collect();
        agents.sort_by(|a, b| a.0.cmp(&b.0));
        Self {
            agents,
            hub,
            ttl,
            timeout,
            last: Mutex::new(None),
        }
    }

    /// Ready, or the first configured agent (by name) that is not.
    pub async fn check(&self) -> Result<(), ApiError> {
        // Held across the round: probes arriving meanwhile wait for it and reuse its answer.
        let mut last = self.last.lock().await;
        let fresh = last
            .as_ref()
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, answer)| answer.clone());
        let answer = match fresh {
            Some(answer) => answer,
            None => {
                let answer = self.round().await;
                *last = Some((Instant::now(), answer.clone()));
                answer
            }
        };
        answer.map_err(|not_ready| match not_ready {
            NotReady::Agent(agent, reason) => ApiError::AgentNotReady { agent, reason },
            NotReady::Hub(reason) => ApiError::HubUnavailable(reason),
        })
    }

    async fn round(&self) -> Verdict {
        // New runs and subscriptions need the hub: without it this instance only refuses.
        match tokio::time::timeout(self.timeout, self.hub.check()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(NotReady::Hub(e.to_string())),
            Err(_) => return Err(NotReady::Hub("hub check timed out".into())),
        }
        let checks = self.agents.iter().map(|(name, channel)| async move {
            let mut client = HealthClient::new(channel.clone());
            let call = client.check(HealthCheckRequest {
                service: String::new(),
            });
            let reason = match tokio::time::timeout(self.timeout, call).await {
                Err(_) => Some("health check timed out".to_owned()),
                Ok(Err(status)) => Some(format!("health check failed: {}", status.code())),
                Ok(Ok(response)) => match response.into_inner().status() {
                    ServingStatus::Serving => None,
                    other => Some(format!("health status {}", other.as_str_name())),
                },
            };
            (name, reason)
        });
        for (name, reason) in futures_util::future::join_all(checks).await {
            if let Some(reason) = reason {
                tracing::warn!(agent = %name, %reason, "agent not ready");
                return Err(NotReady::Agent(name.to_string(), reason));
            }
        }
        Ok(())
    }
}
