//! `agent-stub`: parses flags, sets up logging, binds and serves until SIGTERM or ctrl-c.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context as _;
use clap::Parser;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

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

    /// Serve over TLS with this PEM certificate chain (with `--tls-key-file`).
    #[arg(long, env = "AGENT_STUB_TLS_CERT_FILE", requires = "tls_key_file")]
    tls_cert_file: Option<std::path::PathBuf>,

    /// The PEM private key of `--tls-cert-file`.
    #[arg(long, env = "AGENT_STUB_TLS_KEY_FILE", requires = "tls_cert_file")]
    tls_key_file: Option<std::path::PathBuf>,
    /// Serve Prometheus metrics (`GET /metrics`) over HTTP on this address; off when unset.
    #[arg(long, env = "AGENT_STUB_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let telemetry = agent_stub::telemetry::init();

    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding --listen / AGENT_STUB_LISTEN {}", args.listen))?;
    let addr = listener.local_addr()?;
    info!(%addr, pace = ?args.pace, "agent-stub listening");
    // Parseable lines, for supervisors and tests that pass 127.0.0.1:0.
    println!("listening on http://{addr}");

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
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    };
    let tls = match (&args.tls_cert_file, &args.tls_key_file) {
        (Some(cert), Some(key)) => Some(agent_stub::TlsIdentity {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        }),
        _ => None,
    };
    let stub = agent_stub::Stub::new(agent_stub::Config {
        pace: args.pace,
        require_token,
        tls,
    });
    if let Some(metrics_addr) = args.metrics_listen {
        let metrics = TcpListener::bind(metrics_addr).await.with_context(|| {
            format!("binding --metrics-listen / AGENT_STUB_METRICS_LISTEN {metrics_addr}")
        })?;
        let metrics_addr = metrics.local_addr()?;
        println!("metrics listening on http://{metrics_addr}");
        let app = agent_stub::metrics::router(stub.stats());
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let served = axum::serve(metrics, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "metrics server failed");
            }
        });
    }
    let served = agent_stub::serve(listener, stub, shutdown).await;
    telemetry.shutdown().await;
    served
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
