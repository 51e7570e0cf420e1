//! `bridge`: serve configured agents, or `bridge demo` with an embedded agent stub, or
//! `bridge token` to mint a development JWT.

use std::time::Duration;

use bridge::{Config, config::AgentTarget, demo};
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: Config,
}

#[derive(Subcommand)]
// One value, parsed once at start: boxing `Demo`'s config would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Run with an in-process agent stub (agent `assistant`): nothing else to install.
    Demo {
        #[command(flatten)]
        config: Config,
        /// Delay between the stub's events, so a run can be watched.
        #[arg(long, env = "BRIDGE_DEMO_PACE", default_value = "60ms", value_parser = humantime::parse_duration)]
        pace: Duration,
    },
    /// Print a development HS256 JWT signed with the bridge's `--jwt-secret-file`, to try a
    /// bridge that requires credentials (production tokens come from your identity provider).
    Token(bridge::token::TokenArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let shutdown = CancellationToken::new();
    bridge::shutdown::on_signal(shutdown.clone());

    let config = match cli.command {
        None => cli.config,
        Some(Command::Token(args)) => {
            let token = bridge::token::mint(&args, std::time::SystemTime::now())
                .map_err(anyhow::Error::msg)?;
            println!("{token}");
            return Ok(());
        }
        Some(Command::Demo { mut config, pace }) => {
            let telemetry = bridge::telemetry::init(config.log_format);
            // The demo is for trying the bridge on one machine; serve() logs a warning.
            config.auth.allow_anonymous = true;
            // The demo is also the page a newcomer opens.
            config.ui = true;
            let stub = demo::start_stub(
                agent_stub::Config {
                    pace,
                    ..Default::default()
                },
                shutdown.child_token(),
            )
            .await?;
            config.agents.retain(|a: &AgentTarget| a.name != stub.name);
            config.agents.push(stub);
            let served = serve(config, shutdown, true).await;
            telemetry.shutdown().await;
            return served;
        }
    };
    let telemetry = bridge::telemetry::init(config.log_format);
    let served = serve(config, shutdown, false).await;
    // Spans of the last requests, drained or not, still reach the collector.
    telemetry.shutdown().await;
    served
}

async fn serve(config: Config, shutdown: CancellationToken, demo: bool) -> anyhow::Result<()> {
    let listen = config.listen;
    let agents: Vec<String> = config.agents.iter().map(|a| a.name.clone()).collect();
    let ui = config.ui;
    // Validated and built before anything listens: a bad setting exits 1 without ever
    // printing the `listening on` line supervisors wait for.
    let admin_listen = config.server.admin_listen;
    let mut server = bridge::Server::new(config, shutdown)?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen} (--listen/BRIDGE_LISTEN): {e}"))?;
    // Bound before anything is printed: whoever waits for the lines may scrape at once.
    let admin = match admin_listen {
        Some(admin) => Some(TcpListener::bind(admin).await.map_err(|e| {
            anyhow::anyhow!("cannot listen on {admin} (--admin-listen/BRIDGE_ADMIN_LISTEN): {e}")
        })?),
        None => None,
    };
    let addr = listener.local_addr()?;
    tracing::info!(%addr, ?agents, "bridge listening");
    if !demo {
        // One parseable line, for supervisors and tests that pass --listen 127.0.0.1:0.
        println!("listening on http://{addr}");
    }
    if let Some(admin) = admin {
        // After the main line: tests read the lines in this order.
        println!("admin listening on http://{}", admin.local_addr()?);
        server = server.with_admin(admin);
    }
    if demo {
        println!("bridge demo listening on http://{addr}");

        println!(
            "try: curl -N -H 'Accept: text/event-stream' -H 'Content-Type: application/json' \
             -d '{{\"message\":\"hello\"}}' http://{addr}/v1/agents/{}/chat",
            demo::DEMO_AGENT
        );
    }
    if ui {
        println!("chat page: http://{addr}/ui/");
    }
    server.serve(listener).await
}
