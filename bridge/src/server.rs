//! Serving: the listener, the router, and a drain that always ends.

use std::{net::SocketAddr, sync::Arc};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    auth::Auth,
    config::Config,
    cors::CorsSettings,
    hub::{Backend, Hub, Retention, memory::MemoryHub, redis::RedisHub},
    metrics::Metrics,
    policy,
    ratelimit::{Admission, RateLimits},
    readiness::Readiness,
    routes,
    run::Limits,
    secret::Secret,
    sse::SseSettings,
    state::AppState,
    upstream::{self, Agents},
};

/// Serves the bridge on `listener` until `shutdown` is cancelled, then drains: readiness
/// fails, new runs are refused, every open stream gets a final `run_error` (with a `retry:`
/// hint) and closes. After `config.drain_timeout` the function returns even if some client
/// still holds a connection (hyper's graceful shutdown alone would wait forever on SSE).
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    config.validate().map_err(anyhow::Error::msg)?;
    let retention = Retention {
        max_events: config.hub_max_events,
        ttl: config.hub_ttl,
        max_bytes: config.hub_max_bytes,
        run_lease: config.run_lease,
    };
    let metrics = Metrics::new();
    let backend = if config.hub == "memory" {
        Backend::Memory(Arc::new(MemoryHub::new(retention)))
    } else {
        Backend::Redis(Arc::new(
            RedisHub::new(&config.hub, retention).map_err(anyhow::Error::msg)?,
        ))
    };
    let hub = Hub::new(backend, metrics.clone());
    tracing::info!(hub = hub.backend(), "threads' event logs");
    let agent_token = config
        .agent_token_file
        .as_deref()
        .map(|p| Secret::from_file(p, "--agent-token-file/BRIDGE_AGENT_TOKEN_FILE"))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let policies = policy::policies(
        config.agents.iter().map(|a| a.name.clone()),
        &config.hide_events,
        &config.redact_fields,
    );
    let agent_ca = config
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
            connect_timeout: config.connect_timeout,
            token: agent_token,
            ca_pem: agent_ca.as_deref(),
            dns_refresh: config.agent_dns_refresh,
        },
        policies,
    )
    .map_err(anyhow::Error::msg)?;
    let auth = Auth::from_config(&config).map_err(anyhow::Error::msg)?;
    if config.allow_anonymous {
        tracing::warn!(
            "anonymous access is enabled (--allow-anonymous): anyone who can reach this \
             bridge may call every agent"
        );
    }
    let cors =
        CorsSettings::new(&config.cors_origins, config.cors_max_age).map_err(anyhow::Error::msg)?;
    let readiness = Readiness::new(
        &agents,
        hub.clone(),
        config.readiness_cache,
        config.connect_timeout,
    );
    let state = AppState {
        agents,
        limits: Limits {
            first_event: config.first_event_timeout,
            idle: config.idle_timeout,
            max_duration: config.max_run_duration,
            buffer: config.stream_buffer,
        },
        sse: SseSettings {
            heartbeat: config.heartbeat,
            retry_hint: config.retry_hint,
        },
        max_body_bytes: config.max_body_bytes,
        hub,
        run_lease: config.run_lease,
        shutdown: shutdown.clone(),
        auth: Arc::new(auth),
        rate_limits: Arc::new(RateLimits::new(
            config.rate_limit_chat,
            config.rate_limit_read,
            config.rate_limit_auth_failures,
        )),
        admission: Admission::new(config.max_streams_per_identity, config.max_streams),
        cors,
        metrics: metrics.clone(),
        readiness: std::sync::Arc::new(readiness),
        ui: config.ui,
    };
    let app = routes::router(state).into_make_service_with_connect_info::<SocketAddr>();

    // On shutdown, open streams end at once (they hear `shutdown`); the listener keeps
    // accepting for `--shutdown-accept` more, answering 503 (readiness too) to whatever a
    // load balancer still sends, rather than refusing connections.
    let accept_for = config.shutdown_accept;
    let stop_accepting = {
        let shutdown = shutdown.clone();
        async move {
            shutdown.cancelled().await;
            tokio::time::sleep(accept_for).await;
        }
    };
    let graceful = axum::serve(listener, app).with_graceful_shutdown(stop_accepting);
    let mut server = tokio::spawn(async move { graceful.await });
    tokio::select! {
        joined = &mut server => return Ok(joined??),
        _ = shutdown.cancelled() => {}
    }
    metrics.drain_in_progress.set(1);
    tracing::info!(drain_timeout = ?config.drain_timeout, "draining");
    match tokio::time::timeout(accept_for + config.drain_timeout, &mut server).await {
        Ok(joined) => Ok(joined??),
        Err(_) => {
            tracing::warn!("drain timeout reached; closing the remaining connections");
            server.abort();
            Ok(())
        }
    }
}
