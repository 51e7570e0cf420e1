//! The bridge's configuration: every setting is a CLI flag with an environment twin
//! (`--help` lists them with their defaults). Values are checked once, at start-up, with
//! messages that name the setting and the fix.

use std::{net::SocketAddr, str::FromStr, time::Duration};

use clap::Args;

/// Settings of a serving bridge (`bridge` and `bridge demo` share them).
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address the HTTP server listens on.
    #[arg(long, env = "BRIDGE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// An upstream agent as NAME=URL (repeatable; the env twin is comma-separated).
    /// Clients address it as /v1/agents/NAME/...; URL is its gRPC endpoint.
    #[arg(
        long = "agent",
        env = "BRIDGE_AGENTS",
        value_delimiter = ',',
        value_name = "NAME=URL"
    )]
    pub agents: Vec<AgentTarget>,

    /// Comment heartbeat sent on an SSE stream when the agent has been silent this long.
    #[arg(long, env = "BRIDGE_HEARTBEAT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub heartbeat: Duration,

    /// Reconnection delay suggested to SSE clients (`retry:`), on open and on shutdown.
    #[arg(long, env = "BRIDGE_RETRY_HINT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub retry_hint: Duration,

    /// Longest wait for an agent's first event (connect included) before answering 504.
    #[arg(long, env = "BRIDGE_FIRST_EVENT_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub first_event_timeout: Duration,

    /// Longest silence between two agent events before the run ends with a `run_error`.
    #[arg(long, env = "BRIDGE_IDLE_TIMEOUT", default_value = "5m", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,

    /// Longest total duration of one run; also sent to the agent as the gRPC deadline.
    #[arg(long, env = "BRIDGE_MAX_RUN_DURATION", default_value = "30m", value_parser = humantime::parse_duration)]
    pub max_run_duration: Duration,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "BRIDGE_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// Events buffered per stream between the agent and a slow client; beyond it the agent
    /// is slowed down (gRPC flow control), so memory per stream stays bounded.
    #[arg(long, env = "BRIDGE_STREAM_BUFFER", default_value_t = 64)]
    pub stream_buffer: usize,

    /// On SIGTERM, how long open streams get to receive their final event and close before
    /// the process exits anyway.
    #[arg(long, env = "BRIDGE_DRAIN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,

    /// Timeout for establishing a connection to an agent.
    #[arg(long, env = "BRIDGE_CONNECT_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,

    /// How long `/readyz` reuses the agents' gRPC health answers, so that a probe storm does
    /// not reach the agents.
    #[arg(long, env = "BRIDGE_READINESS_CACHE", default_value = "2s", value_parser = humantime::parse_duration)]
    pub readiness_cache: Duration,

    /// Log format: `text` for people, `json` for log pipelines.
    #[arg(long, env = "BRIDGE_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// One `NAME=URL` upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentTarget {
    pub name: String,
    pub url: String,
}

impl FromStr for AgentTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, url) = s.split_once('=').ok_or_else(|| {
            format!("`{s}` is not NAME=URL (e.g. assistant=http://127.0.0.1:50051)")
        })?;
        let name = name.trim();
        let url = url.trim();
        if !crate::validate::is_safe_id(name, 64) {
            return Err(format!(
                "agent name `{name}` must be 1-64 characters of A-Z a-z 0-9 . _ : -"
            ));
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "agent `{name}`: URL `{url}` must start with http:// or https://"
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            url: url.to_owned(),
        })
    }
}

impl Config {
    /// Parses a configuration from command-line style arguments (the environment twins still
    /// apply); for tests and embedding.
    pub fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            config: Config,
        }
        use clap::Parser as _;
        Wrapper::try_parse_from(args).map(|w| w.config)
    }

    /// Checks what clap cannot: relations between settings.
    pub fn validate(&self) -> Result<(), String> {
        if self.agents.is_empty() {
            return Err("no agent configured: pass --agent NAME=URL or set BRIDGE_AGENTS".into());
        }
        let mut names: Vec<&str> = self.agents.iter().map(|a| a.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!(
                "agent `{}` is configured twice in --agent/BRIDGE_AGENTS",
                w[0]
            ));
        }
        if self.stream_buffer == 0 {
            return Err("--stream-buffer/BRIDGE_STREAM_BUFFER must be at least 1".into());
        }
        if self.heartbeat.is_zero() {
            return Err("--heartbeat/BRIDGE_HEARTBEAT must be more than 0s".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_are_repeatable_and_validated() {
        let c = Config::from_args([
            "bridge",
            "--agent",
            "a=http://127.0.0.1:1",
            "--agent",
            "b=https://agent.internal:443",
        ])
        .unwrap();
        assert_eq!(c.agents.len(), 2);
        assert_eq!(
            c.agents[1],
            AgentTarget {
                name: "b".into(),
                url: "https://agent.internal:443".into()
            }
        );
        c.validate().unwrap();

        assert!(Config::from_args(["bridge", "--agent", "no-equals"]).is_err());
        assert!(Config::from_args(["bridge", "--agent", "bad name=http://x"]).is_err());
        assert!(Config::from_args(["bridge", "--agent", "a=ftp://x"]).is_err());
        let dup = Config::from_args(["bridge", "--agent", "a=http://x", "--agent", "a=http://y"])
            .unwrap();
        assert!(dup.validate().unwrap_err().contains("twice"));
        assert!(
            Config::from_args(["bridge"])
                .unwrap()
                .validate()
                .unwrap_err()
                .contains("BRIDGE_AGENTS")
        );
    }

    #[test]
    fn durations_are_human() {
        let c =
            Config::from_args(["bridge", "--heartbeat", "250ms", "--drain-timeout", "1m"]).unwrap();
        assert_eq!(c.heartbeat, Duration::from_millis(250));
        assert_eq!(c.drain_timeout, Duration::from_secs(60));
    }
}
