//! Serving: the listener, the router, and a drain that always ends.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{config::Config, routes, state::AppState};

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
    let state = AppState::build(&config, shutdown.clone())?;
    let metrics = state.metrics.clone();
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
