//! The bridge's configuration: every setting is a CLI flag with an environment twin
//! (`--help` lists them with their defaults). Values are checked once, at start-up, with
//! messages that name the setting and the fix.

use std::{net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use clap::Args;

/// Settings of a serving bridge (`bridge` and `bridge demo` share them).
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address the HTTP server listens on.
    #[arg(long, env = "BRIDGE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// An upstream agent as NAME=URL (repeatable; the env twin is comma-separated). URL is
    /// `http(s)://HOST:PORT`, or `dns://HOST:PORT` / `dns+https://HOST:PORT` to spread calls
    /// over every address HOST resolves to (a headless Service). Repeating a NAME with other
    /// URLs spreads its calls over them. An A2A agent (the Agent2Agent protocol's gRPC
    /// binding) takes the same forms with `a2a+grpc://`, `a2a+grpcs://` (TLS), `dns+a2a+grpc://`
    /// and `dns+a2a+grpcs://`.
    /// Clients address it as /v1/agents/NAME/...; URL is its gRPC endpoint.
    #[arg(
        long = "agent",
        env = "BRIDGE_AGENTS",
        value_delimiter = ',',
        value_name = "NAME=URL"
    )]
    pub agents: Vec<AgentTarget>,

    /// Log format: `text` for people, `json` for log pipelines.
    #[arg(long, env = "BRIDGE_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,

    /// Serve the chat page at `/ui/` (and redirect `/` to it), with the JavaScript client
    /// at `/ui/agent-bridge.js`. Off by default: an API-only bridge serves no HTML.
    #[arg(long, env = "BRIDGE_UI")]
    pub ui: bool,

    /// How each stream runs: timeouts, heartbeats, buffering.
    #[command(flatten, next_help_heading = "Streams")]
    pub streams: StreamSettings,

    /// Client connections, readiness and the drain on shutdown.
    #[command(flatten, next_help_heading = "Connections and shutdown")]
    pub server: ServerSettings,

    /// How the bridge reaches its agents.
    #[command(flatten, next_help_heading = "Agents")]
    pub upstream: UpstreamSettings,

    /// The threads' event logs (the hub) and run leases.
    #[command(flatten, next_help_heading = "Threads")]
    pub threads: ThreadSettings,

    /// Who may call: JWT, JWKS, API keys, cookies, stream tickets.
    #[command(flatten, next_help_heading = "Authentication")]
    pub auth: AuthSettings,

    /// CORS, rate limits, stream caps, and what of each event leaves the edge.
    #[command(flatten, next_help_heading = "Edge policy")]
    pub edge: EdgeSettings,
}

/// How each stream runs: timeouts, heartbeats, buffering.
#[derive(Debug, Clone, Args)]
pub struct StreamSettings {
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
}

/// Client connections, readiness and the drain on shutdown.
#[derive(Debug, Clone, Args)]
pub struct ServerSettings {
    /// On SIGTERM, how long open streams get to receive their final event and close before
    /// the process exits anyway.
    #[arg(long, env = "BRIDGE_DRAIN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,

    /// On SIGTERM, how long the listener still accepts connections (answering 503, readiness
    /// included) before it closes; the drain time starts after it.
    #[arg(long, env = "BRIDGE_SHUTDOWN_ACCEPT", default_value = "0s", value_parser = humantime::parse_duration)]
    pub shutdown_accept: Duration,

    /// Client connections served at once. Beyond it a new connection gets an immediate
    /// `503` problem and is closed, so a flood of idle or slow connections cannot exhaust
    /// file descriptors (keep it below the process's open-file limit, `ulimit -n`).
    #[arg(long, env = "BRIDGE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// How long a client has to send a request's headers (from connecting, or between
    /// requests on a kept-alive connection); slower connections are closed.
    #[arg(long, env = "BRIDGE_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,

    /// How often each agent's gRPC health is checked (shown in `/v1/agents`, `GET
    /// /v1/agents/NAME/status` and `bridge_agent_serving`; a run to an agent that answers
    /// NOT_SERVING is refused at once), and how long `/readyz` reuses the hub's answer, so
    /// that a probe storm does not reach the hub.
    #[arg(long, env = "BRIDGE_READINESS_CACHE", default_value = "2s", value_parser = humantime::parse_duration)]
    pub readiness_cache: Duration,

    /// Address of the admin listener: `/metrics`, `/healthz` and `/readyz` apart from the API,
    /// for scrapers and probes (a Service port no Ingress or route exposes). Set, `/metrics`
    /// leaves the API listener; unset, everything is served on `--listen`.
    #[arg(long, env = "BRIDGE_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
}

/// How the bridge reaches its agents.
#[derive(Debug, Clone, Args)]
pub struct UpstreamSettings {
    /// Timeout for establishing a connection to an agent.
    #[arg(long, env = "BRIDGE_CONNECT_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,

    /// File holding the bearer credential the bridge presents to agents.
    #[arg(long, env = "BRIDGE_AGENT_TOKEN_FILE")]
    pub agent_token_file: Option<PathBuf>,

    /// How often `dns://` agents are resolved again (to follow a headless Service's pods).
    #[arg(long, env = "BRIDGE_AGENT_DNS_REFRESH", default_value = "5s", value_parser = humantime::parse_duration)]
    pub agent_dns_refresh: Duration,

    /// PEM file of the CA(s) that sign `https://` agents' certificates (a private CA);
    /// unset: the public web PKI roots.
    #[arg(long, env = "BRIDGE_AGENT_CA_FILE")]
    pub agent_ca_file: Option<PathBuf>,
}

/// The threads' event logs (the hub) and run leases.
#[derive(Debug, Clone, Args)]
pub struct ThreadSettings {
    /// Where threads' event logs live: `memory` (this process only), `redis://HOST:PORT[/DB]`
    /// (shared by every replica), or `redis+cluster://HOST:PORT,HOST:PORT` (Redis Cluster).
    #[arg(long, env = "BRIDGE_HUB", default_value = "memory")]
    pub hub: HubUrl,

    /// Events kept per thread.
    #[arg(long, env = "BRIDGE_HUB_MAX_EVENTS", default_value_t = 1000)]
    pub hub_max_events: usize,

    /// A thread's log is dropped this long after its last event.
    #[arg(long, env = "BRIDGE_HUB_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub hub_ttl: Duration,

    /// Memory hub only: bytes the hub holds across all threads (events, logs, subscribers'
    /// bookkeeping).
    #[arg(long, env = "BRIDGE_HUB_MAX_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub hub_max_bytes: usize,

    /// Redis Cluster only: buckets the threads are spread over; all keys of a bucket share a
    /// slot, so one blocking read per bucket (per 4,096 of its threads) follows a replica's
    /// threads in it: reader connections per replica are bounded by this, not by threads.
    /// A few times the number of shards; the same on every replica (changing it drops
    /// threads' history in flight).
    #[arg(long, env = "BRIDGE_HUB_CLUSTER_BUCKETS", default_value_t = 16,
        value_parser = clap::value_parser!(u16).range(1..=crate::hub::redis::MAX_BUCKETS as i64))]
    pub hub_cluster_buckets: u16,

    /// A thread run's lease, renewed by its bridge: if that bridge dies, subscribers get a
    /// `run_error` within about this long.
    #[arg(long, env = "BRIDGE_RUN_LEASE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub run_lease: Duration,
}

/// Who may call: JWT, JWKS, API keys, cookies, stream tickets.
#[derive(Debug, Clone, Args)]
pub struct AuthSettings {
    // ---- Authentication -------------------------------------------------------------
    /// Serve requests without credentials (as the identity `anonymous`, allowed every
    /// agent). Off by default: only for demos and trusted networks.
    #[arg(long, env = "BRIDGE_ALLOW_ANONYMOUS")]
    pub allow_anonymous: bool,

    /// File holding the HS256 shared secret for bearer JWTs.
    #[arg(long, env = "BRIDGE_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,

    /// URL of a JWKS document with the RS256/ES256 keys that sign bearer JWTs. Fetched at
    /// start, cached, and refetched when a token names an unknown `kid`.
    #[arg(long, env = "BRIDGE_JWKS_URL")]
    pub jwks_url: Option<String>,

    /// Shortest interval between two JWKS refetches (bounds what unknown `kid`s cost).
    #[arg(long, env = "BRIDGE_JWKS_MIN_REFRESH", default_value = "10s", value_parser = humantime::parse_duration)]
    pub jwks_min_refresh: Duration,

    /// Required `iss` of JWTs (repeatable). Unset: `iss` is not checked.
    #[arg(long = "jwt-issuer", env = "BRIDGE_JWT_ISSUERS", value_delimiter = ',')]
    pub jwt_issuers: Vec<String>,

    /// Required `aud` of JWTs (repeatable; one must match). Unset: `aud` is not checked.
    #[arg(
        long = "jwt-audience",
        env = "BRIDGE_JWT_AUDIENCES",
        value_delimiter = ','
    )]
    pub jwt_audiences: Vec<String>,

    /// Clock skew tolerated on `exp` and `nbf`.
    #[arg(long, env = "BRIDGE_JWT_LEEWAY", default_value = "30s", value_parser = humantime::parse_duration)]
    pub jwt_leeway: Duration,

    /// The JWT claim holding the tenant.
    #[arg(long, env = "BRIDGE_JWT_TENANT_CLAIM", default_value = "tenant")]
    pub jwt_tenant_claim: String,

    /// Name of the HttpOnly cookie that may carry the same JWT (same-site EventSource).
    #[arg(long, env = "BRIDGE_AUTH_COOKIE", default_value = "bridge_token")]
    pub auth_cookie: String,

    /// File of API keys, one `NAME:KEY` a line (`#` comments). Keys are kept only as SHA-256
    /// digests and compared in constant time; clients send `X-API-Key: KEY`.
    #[arg(long, env = "BRIDGE_API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,

    /// File holding the key that signs stream tickets. Unset: a random key per process (tickets
    /// then only work on the replica that issued them).
    #[arg(long, env = "BRIDGE_TICKET_SECRET_FILE")]
    pub ticket_secret_file: Option<PathBuf>,

    /// Lifetime of a stream ticket.
    #[arg(long, env = "BRIDGE_TICKET_TTL", default_value = "60s", value_parser = humantime::parse_duration)]
    pub ticket_ttl: Duration,

    /// A proxy (IP or CIDR, repeatable) whose `X-Forwarded-For` is believed when keying
    /// anonymous clients by IP. Unset: the socket peer is the client.
    #[arg(
        long = "trusted-proxy",
        env = "BRIDGE_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<IpNet>,
}

/// CORS, rate limits, stream caps, and what of each event leaves the edge.
#[derive(Debug, Clone, Args)]
pub struct EdgeSettings {
    // ---- CORS ------------------------------------------------------------------------
    /// A browser origin allowed to call the API with credentials (repeatable, exact match,
    /// e.g. `https://app.example.com`). Unset: no CORS headers at all.
    #[arg(
        long = "cors-origin",
        env = "BRIDGE_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,

    /// How long browsers may cache a preflight answer.
    #[arg(long, env = "BRIDGE_CORS_MAX_AGE", default_value = "10m", value_parser = humantime::parse_duration)]
    pub cors_max_age: Duration,

    // ---- Rate limits and admission -----------------------------------------------------
    /// Request rate per identity on chat routes (runs and tickets), as `N/PERIOD` (a token
    /// bucket of N refilled over PERIOD), or `off`.
    #[arg(long, env = "BRIDGE_RATE_LIMIT_CHAT", default_value = "60/1m")]
    pub rate_limit_chat: RateSpec,

    /// Request rate per identity on read routes (everything else under /v1), or `off`.
    #[arg(long, env = "BRIDGE_RATE_LIMIT_READ", default_value = "600/1m")]
    pub rate_limit_read: RateSpec,

    /// Failed authentications per client IP (`N/PERIOD` or `off`); beyond it the IP's
    /// failures are answered 429 instead of 401, so credentials cannot be guessed at speed.
    #[arg(long, env = "BRIDGE_RATE_LIMIT_AUTH_FAILURES", default_value = "30/1m")]
    pub rate_limit_auth_failures: RateSpec,

    /// Runs (streams and JSON answers) one identity may have open at once.
    #[arg(long, env = "BRIDGE_MAX_STREAMS_PER_IDENTITY", default_value_t = 16)]
    pub max_streams_per_identity: usize,

    /// Runs this process serves at once; beyond it new runs are shed with 503.
    #[arg(long, env = "BRIDGE_MAX_STREAMS", default_value_t = 2048)]
    pub max_streams: usize,

    // ---- What leaves the edge ----------------------------------------------------------
    /// Event kinds an agent's clients do not see, as `AGENT=KIND,KIND` or `*=KIND` (repeatable;
    /// kinds: thought, tool_call, tool_result, text_delta, message).
    #[arg(
        long = "hide-events",
        env = "BRIDGE_HIDE_EVENTS",
        value_delimiter = ';'
    )]
    pub hide_events: Vec<HideRule>,

    /// A JSON field name whose value is replaced by `"[redacted]"` in tool arguments and
    /// results, at any depth (repeatable).
    #[arg(
        long = "redact-field",
        env = "BRIDGE_REDACT_FIELDS",
        value_delimiter = ','
    )]
    pub redact_fields: Vec<String>,
}

/// Where the threads' event logs live, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubUrl {
    /// In this process only.
    Memory,
    /// `redis://...` or `redis+cluster://...`: shared by every replica.
    Redis(String),
}

impl FromStr for HubUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "memory" {
            Ok(Self::Memory)
        } else if s.starts_with("redis://") || s.starts_with("redis+cluster://") {
            Ok(Self::Redis(s.to_owned()))
        } else {
            Err(format!(
                "`{s}` must be `memory`, `redis://...` or `redis+cluster://...`"
            ))
        }
    }
}

/// A request rate: `N/PERIOD` (`60/1m`), or none (`off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSpec(pub Option<(u32, Duration)>);

impl FromStr for RateSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim() == "off" {
            return Ok(Self(None));
        }
        let bad = || format!("`{s}` is not N/PERIOD (e.g. 60/1m) or `off`");
        let (n, period) = s.split_once('/').ok_or_else(bad)?;
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        let period = humantime::parse_duration(period.trim()).map_err(|_| bad())?;
        if n == 0 || period.is_zero() {
            return Err(format!(
                "`{s}`: N and PERIOD must be more than 0 (or say `off`)"
            ));
        }
        Ok(Self(Some((n, period))))
    }
}

/// An IP network: `10.0.0.0/8`, `::1/128`, or a bare address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: std::net::IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or CIDR network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: prefix must be 0-{max}"))?,
        };
        Ok(Self { addr, prefix })
    }
}

/// Event kinds hidden from one agent's clients (`*` for every agent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HideRule {
    pub agent: String,
    pub kinds: Vec<String>,
}

/// Kinds a policy may hide. Run boundaries (`run_started`, `run_completed`, `run_error`)
/// always pass: clients rely on them to know a run began and ended.
pub const HIDEABLE_KINDS: [&str; 5] = [
    "thought",
    "tool_call",
    "tool_result",
    "text_delta",
    "message",
];

impl FromStr for HideRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (agent, kinds) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}` is not AGENT=KIND,KIND (e.g. assistant=thought)"))?;
        let kinds: Vec<String> = kinds.split(',').map(|k| k.trim().to_owned()).collect();
        if let Some(bad) = kinds.iter().find(|k| !HIDEABLE_KINDS.contains(&k.as_str())) {
            return Err(format!(
                "`{bad}` cannot be hidden; hideable kinds: {}",
                HIDEABLE_KINDS.join(", ")
            ));
        }
        Ok(Self {
            agent: agent.trim().to_owned(),
            kinds,
        })
    }
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
        let schemes = [
            "http://",
            "https://",
            "dns://",
            "dns+https://",
            "a2a+grpc://",
            "a2a+grpcs://",
            "dns+a2a+grpc://",
            "dns+a2a+grpcs://",
        ];
        if !schemes.iter().any(|scheme| url.starts_with(scheme)) {
            return Err(format!(
                "agent `{name}`: URL `{url}` must start with http://, https://, dns:// or dns+https:// \
                 (an agent.v1 agent), or a2a+grpc://, a2a+grpcs://, dns+a2a+grpc:// or dns+a2a+grpcs:// \
                 (an A2A agent)"
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
        // A name given several times is one agent with several endpoints (calls spread
        // across them); a `dns://` agent finds its endpoints itself, so it stands alone.
        let mut seen: Vec<&AgentTarget> = Vec::new();
        for target in &self.agents {
            for other in seen.iter().filter(|o| o.name == target.name) {
                if other.url == target.url {
                    return Err(format!(
                        "agent `{}` lists `{}` twice in --agent/BRIDGE_AGENTS",
                        target.name, target.url
                    ));
                }
                if other.url.starts_with("dns") || target.url.starts_with("dns") {
                    return Err(format!(
                        "agent `{}`: a dns:// URL finds every endpoint itself; give it alone",
                        target.name
                    ));
                }
            }
            seen.push(target);
        }
        if self.streams.stream_buffer == 0 {
            return Err("--stream-buffer/BRIDGE_STREAM_BUFFER must be at least 1".into());
        }
        if self.threads.run_lease < Duration::from_millis(300) {
            return Err("--run-lease/BRIDGE_RUN_LEASE must be at least 300ms".into());
        }
        if self.streams.heartbeat.is_zero() {
            return Err("--heartbeat/BRIDGE_HEARTBEAT must be more than 0s".into());
        }
        if let Some(origin) =
            self.edge.cors_origins.iter().find(|o| {
                o.as_str() == "*" || !(o.starts_with("http://") || o.starts_with("https://"))
            })
        {
            return Err(format!(
                "--cors-origin/BRIDGE_CORS_ORIGINS `{origin}` must be an exact origin such as \
                 https://app.example.com (`*` is refused: the API is called with credentials)"
            ));
        }
        if self.server.max_connections == 0 {
            return Err("--max-connections/BRIDGE_MAX_CONNECTIONS must be at least 1".into());
        }
        if self.server.header_timeout.is_zero() {
            return Err("--header-timeout/BRIDGE_HEADER_TIMEOUT must be longer than 0s".into());
        }
        if self.edge.max_streams == 0 || self.edge.max_streams_per_identity == 0 {
            return Err("--max-streams and --max-streams-per-identity must be at least 1".into());
        }
        if self.auth.ticket_ttl.is_zero() || self.auth.ticket_ttl > Duration::from_secs(600) {
            return Err("--ticket-ttl/BRIDGE_TICKET_TTL must be between 1s and 10m".into());
        }
        let has_credentials = self.auth.jwt_secret_file.is_some()
            || self.auth.jwks_url.is_some()
            || self.auth.api_keys_file.is_some();
        if !has_credentials && !self.auth.allow_anonymous {
            return Err(
                "no way to authenticate clients: set --jwt-secret-file, --jwks-url or \
                 --api-keys-file, or pass --allow-anonymous for a trusted network"
                    .into(),
            );
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
            "--allow-anonymous",
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
        let dup = Config::from_args([
            "bridge",
            "--allow-anonymous",
            "--agent",
            "a=http://x",
            "--agent",
            "a=http://x",
        ])
        .unwrap();
        assert!(dup.validate().unwrap_err().contains("twice"));
        let spread = Config::from_args([
            "bridge",
            "--allow-anonymous",
            "--agent",
            "a=http://x:1",
            "--agent",
            "a=http://y:1",
        ])
        .unwrap();
        spread.validate().unwrap();
        let mixed = Config::from_args([
            "bridge",
            "--allow-anonymous",
            "--agent",
            "a=dns://x:1",
            "--agent",
            "a=http://y:1",
        ])
        .unwrap();
        assert!(mixed.validate().unwrap_err().contains("dns://"));
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
        assert_eq!(c.streams.heartbeat, Duration::from_millis(250));
        assert_eq!(c.server.drain_timeout, Duration::from_secs(60));
    }

    #[test]
    fn edge_settings_parse_and_are_checked() {
        assert_eq!(
            "30/1m".parse::<RateSpec>().unwrap(),
            RateSpec(Some((30, Duration::from_secs(60))))
        );
        assert_eq!("off".parse::<RateSpec>().unwrap(), RateSpec(None));
        assert!("0/1m".parse::<RateSpec>().is_err());
        let net: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!(
            "::1"
                .parse::<IpNet>()
                .unwrap()
                .contains("::1".parse().unwrap())
        );
        assert!("a=run_started".parse::<HideRule>().is_err());
        let no_auth = Config::from_args(["bridge", "--agent", "a=http://x"]).unwrap();
        assert!(
            no_auth
                .validate()
                .unwrap_err()
                .contains("--allow-anonymous")
        );
        let star = Config::from_args([
            "bridge",
            "--allow-anonymous",
            "--agent",
            "a=http://x",
            "--cors-origin",
            "*",
        ])
        .unwrap();
        assert!(star.validate().unwrap_err().contains("`*` is refused"));
    }
}
