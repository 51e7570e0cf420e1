//! Serving: the listener, the router, and a drain that always ends.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    config::Config, metrics::Metrics, readiness::Readiness, routes, run::Limits, sse::SseSettings,
    state::AppState, upstream::Agents,
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
    let agents = Agents::new(&config.agents, config.connect_timeout).map_err(anyhow::Error::msg)?;
    let metrics = Metrics::new();
    let readiness = Readiness::new(&agents, config.readiness_cache, config.connect_timeout);
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
        shutdown: shutdown.clone(),
        metrics: metrics.clone(),
        readiness: std::sync::Arc::new(readiness),
    };
    let app = routes::router(state).into_make_service_with_connect_info::<SocketAddr>();

    let graceful =
        axum::serve(listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let mut server = tokio::spawn(async move { graceful.await });
    tokio::select! {
        joined = &mut server => return Ok(joined??),
        _ = shutdown.cancelled() => {}
    }
    metrics.drain_in_progress.set(1);
    tracing::info!(drain_timeout = ?config.drain_timeout, "draining");
    match tokio::time::timeout(config.drain_timeout, &mut server).await {
        Ok(joined) => Ok(joined??),
        Err(_) => {
            tracing::warn!("drain timeout reached; closing the remaining connections");
            server.abort();
            Ok(())
        }
    }
}
