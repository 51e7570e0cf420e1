//! What every request handler shares, built once from the configuration.

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::{
    auth::Auth,
    config::{Config, HubUrl},
    cors::CorsSettings,
    filter,
    hub::{Backend, Hub, Retention, memory::MemoryHub, redis::RedisHub},
    metrics::Metrics,
    ratelimit::{Admission, RateLimits},
    readiness::{AgentHealth, Readiness},
    run::Limits,
    secret::Secret,
    sse::SseSettings,
    upstream::{self, Agents},
};

#[derive(Clone)]
pub(crate) struct AppState {
    pub agents: Agents,
    pub limits: Limits,
    pub sse: SseSettings,
    pub max_body_bytes: usize,
    /// The threads' event logs.
    pub hub: Hub,
    /// How long a thread run's lease lasts without renewal.
    pub run_lease: Duration,
    /// Cancelled when the bridge starts draining: readiness fails, new runs are refused and
    /// open streams end with a final event.
    pub shutdown: CancellationToken,
    pub auth: Arc<Auth>,
    pub rate_limits: Arc<RateLimits>,
    pub admission: Arc<Admission>,
    /// The CORS policy; `None` when no origin is allowed (no CORS headers at all).
    pub cors: Option<crate::cors::CorsSettings>,
    pub metrics: Metrics,
    pub readiness: Arc<Readiness>,
    /// Each agent's last gRPC health answer; never part of readiness.
    pub agent_health: AgentHealth,
    /// Whether `/metrics` is served apart, on the admin listener (`--admin-listen`).
    pub admin_listener: bool,
    /// Whether the chat page and the JavaScript client are served (`--ui`).
    pub ui: bool,
}

impl AppState {
    /// Starts `request`'s call on `agent` for `identity`, under the bridge's limits and
    /// metrics; the bridge draining cancels it.
    pub(crate) async fn start_run(
        &self,
        agent: &upstream::Agent,
        request: agent_bridge_proto::v1::ChatRequest,
        identity: &crate::auth::Identity,
    ) -> Result<crate::run::Run, crate::error::ApiError> {
        crate::run::start(
            agent,
            request,
            identity,
            self.limits,
            &self.shutdown,
            &self.metrics,
        )
        .await
    }

    /// Builds every service from `config` (already validated). `shutdown` is the bridge's
    /// drain signal.
    pub(crate) fn build(config: &Config, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let retention = Retention {
            max_events: config.threads.hub_max_events,
            ttl: config.threads.hub_ttl,
            max_bytes: config.threads.hub_max_bytes,
            run_lease: config.threads.run_lease,
        };
        let metrics = Metrics::new();
        let backend = match &config.threads.hub {
            HubUrl::Memory => Backend::Memory(Arc::new(MemoryHub::new(retention))),
            HubUrl::Redis(url) => Backend::Redis(Arc::new(
                RedisHub::new(url, retention, config.threads.hub_cluster_buckets.into())
                    .map_err(anyhow::Error::msg)?,
            )),
        };
        let hub = Hub::new(backend, metrics.clone());
        tracing::info!(hub = hub.backend(), "threads' event logs");
        let agent_token = config
            .upstream
            .agent_token_file
            .as_deref()
            .map(|p| Secret::from_file(p, "--agent-token-file/BRIDGE_AGENT_TOKEN_FILE"))
            .transpose()
            .map_err(anyhow::Error::msg)?;
        let filters = filter::filters(
            config.agents.iter().map(|a| a.name.clone()),
            &config.edge.hide_events,
            &config.edge.redact_fields,
        );
        let agent_ca = config
            .upstream
            .agent_ca_file
            .as_deref()
            .map(|p| {
                std::fs::read_to_string(p).map_err(|e| {
                    anyhow::anyhow!("--agent-ca-file/BRIDGE_AGENT_CA_FILE {}: {e}", p.display())
                })
            })
            .transpose()?;
        let agents = Agents::new(
            &config.agents,
            upstream::Settings {
                connect_timeout: config.upstream.connect_timeout,
                token: agent_token,
                ca_pem: agent_ca.as_deref(),
                dns_refresh: config.upstream.agent_dns_refresh,
            },
            filters,
        )
        .map_err(anyhow::Error::msg)?;
        let auth =
            Auth::from_config(&config.auth, &config.threads.hub).map_err(anyhow::Error::msg)?;
        if config.auth.allow_anonymous {
            tracing::warn!(
                "anonymous access is enabled (--allow-anonymous): anyone who can reach this \
                 bridge may call every agent"
            );
        }
        let cors = CorsSettings::new(&config.edge.cors_origins, config.edge.cors_max_age)
            .map_err(anyhow::Error::msg)?;
        let readiness = Readiness::new(
            hub.clone(),
            config.server.readiness_cache,
            config.upstream.connect_timeout,
        );
        metrics.agents_configured(agents.names());
        let agent_health = AgentHealth::start(
            &agents,
            &metrics,
            config.server.readiness_cache,
            config.upstream.connect_timeout,
            &shutdown,
        );
        let state = AppState {
            agents,
            limits: Limits {
                first_event: config.streams.first_event_timeout,
                idle: config.streams.idle_timeout,
                max_duration: config.streams.max_run_duration,
                buffer: config.streams.stream_buffer,
            },
            sse: SseSettings {
                heartbeat: config.streams.heartbeat,
                retry_hint: config.streams.retry_hint,
            },
            max_body_bytes: config.streams.max_body_bytes,
            hub,
            run_lease: config.threads.run_lease,
            shutdown,
            auth: Arc::new(auth),
            rate_limits: Arc::new(RateLimits::new(
                config.edge.rate_limit_chat,
                config.edge.rate_limit_read,
                config.edge.rate_limit_auth_failures,
            )),
            admission: Admission::new(
                config.edge.max_streams_per_identity,
                config.edge.max_streams,
            ),
            cors,
            metrics,
            readiness: Arc::new(readiness),
            agent_health,
            admin_listener: config.server.admin_listen.is_some(),
            ui: config.ui,
        };
        Ok(state)
    }
}
