//! The embedded default: the reference agent runs in this process, so a newcomer can `curl`
//! the bridge with nothing else installed.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::AgentTarget;

/// The route name of the embedded agent.
pub const DEMO_AGENT: &str = "assistant";

/// Starts the agent stub on a free loopback port; it stops when `shutdown` is cancelled.
pub async fn start_stub(
    config: agent_stub::Config,
    shutdown: CancellationToken,
) -> anyhow::Result<AgentTarget> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let stub = agent_stub::Stub::new(config);
    tokio::spawn(async move {
        if let Err(e) = agent_stub::serve(listener, stub, shutdown).await {
            tracing::error!(error = %e, "embedded agent stub failed");
        }
    });
    Ok(AgentTarget {
        name: DEMO_AGENT.into(),
        url: format!("http://{addr}"),
    })
}
