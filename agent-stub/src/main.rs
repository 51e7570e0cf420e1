//! `agent-stub`: parses flags, sets up logging, binds and serves until SIGTERM or ctrl-c.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context as _;
use clap::Parser;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;
use tracing_subscriber::EnvFilter;

/// The reference agent: a gRPC server implementing agent.v1.Agent with scripted,
/// deterministic runs, for demos, tests and benchmarks.
#[derive(Debug, Parser)]
#[command(version, after_long_help = concat!("Triggers:\n\n", include_str!("triggers.md")))]
struct Args {
    /// The address to listen on.
    #[arg(long, env = "AGENT_STUB_LISTEN", default_value = "0.0.0.0:50051")]
    listen: SocketAddr,

    /// The delay between events of the default script, so that a demo streams visibly
    /// (for example 20ms, 0s). A `pace=` trigger overrides it per run.
    #[arg(long, env = "AGENT_STUB_PACE", default_value = "20ms", value_parser = humantime::parse_duration)]
    pace: Duration,

    /// A file holding the bearer credential callers must present (`authorization: Bearer`);
    /// the bridge sends it with `--agent-token-file`. Unset: calls are not authenticated.
    #[arg(long, env = "AGENT_STUB_REQUIRE_TOKEN_FILE")]
    require_token_file: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding --listen / AGENT_STUB_LISTEN {}", args.listen))?;
    info!(addr = %listener.local_addr()?, pace = ?args.pace, "agent-stub listening");

    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            termination().await;
            info!("termination signal received");
            shutdown.cancel();
        }
    });
    let require_token = match &args.require_token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading --require-token-file {}", path.display()))?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    let stub = agent_stub::Stub::new(agent_stub::Config {
        pace: args.pace,
        require_token,
    });
    agent_stub::serve(listener, stub, shutdown).await
}

/// Resolves on ctrl-c, or SIGTERM (how containers are stopped) on Unix.
async fn termination() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
