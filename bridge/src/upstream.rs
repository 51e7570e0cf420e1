//! Upstream agents: the configured names and a gRPC client for each.
//!
//! Channels connect lazily and reconnect by themselves, so the bridge starts (and stays up)
//! while an agent is down; calls to it fail with `UNAVAILABLE` until it returns.

use std::{collections::HashMap, sync::Arc, time::Duration};

use agent_bridge_proto::v1::agent_client::AgentClient;
use tonic::{
    metadata::MetadataValue,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint},
};

use crate::{auth::Identity, config::AgentTarget, policy::EventPolicy, secret::Secret};

/// One configured agent.
#[derive(Clone)]
pub struct Agent {
    pub name: Arc<str>,
    client: AgentClient<Channel>,
    /// What of this agent's events reaches clients.
    pub policy: Arc<EventPolicy>,
    /// The bridge's own credential, presented on every call.
    token: Option<Secret>,
    /// The same channel, for health checks.
    channel: Channel,
}

impl Agent {
    /// A client for one call. Cloning a tonic client is cheap (it shares the channel).
    pub fn client(&self) -> AgentClient<Channel> {
        self.client.clone()
    }

    /// A call carrying the caller's identity (`x-subject`, `x-tenant`: the agent scopes
    /// threads by them) and the bridge's credential (`authorization: Bearer`).
    pub fn request<T>(&self, message: T, identity: &Identity) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let metadata = request.metadata_mut();
        // A subject may hold bytes metadata cannot carry: they are percent-escaped, so every
        // identity still reaches the agent, and distinct identities stay distinct.
        for (key, value) in [
            ("x-subject", &identity.subject),
            ("x-tenant", &identity.tenant),
        ] {
            if let Ok(value) = MetadataValue::try_from(metadata_safe(value).as_str()) {
                metadata.insert(key, value);
            }
        }
        if let Some(token) = &self.token
            && let Ok(value) = MetadataValue::try_from(format!("Bearer {}", token.expose()))
        {
            metadata.insert("authorization", value);
        }
        request
    }

    /// The agent's channel, shared with its client.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }
}

/// `value` with `%`, controls and non-ASCII bytes percent-escaped (valid ASCII metadata).
fn metadata_safe(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_graphic() && b != b'%' || b == b' ' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The agents this bridge may call, by route name.
#[derive(Clone, Default)]
pub struct Agents {
    by_name: Arc<HashMap<String, Agent>>,
}

impl Agents {
    pub fn new(
        targets: &[AgentTarget],
        connect_timeout: Duration,
        token: Option<Secret>,
        mut policies: HashMap<String, EventPolicy>,
        ca_pem: Option<&str>,
    ) -> Result<Self, String> {
        let mut by_name = HashMap::with_capacity(targets.len());
        for target in targets {
            let mut endpoint = Endpoint::from_shared(target.url.clone())
                .map_err(|e| format!("agent `{}`: invalid URL `{}`: {e}", target.name, target.url))?
                .connect_timeout(connect_timeout)
                .tcp_nodelay(true)
                // Detect a dead agent connection during long silent runs.
                .http2_keep_alive_interval(Duration::from_secs(30))
                .keep_alive_timeout(Duration::from_secs(10))
                .keep_alive_while_idle(true);
            if target.url.starts_with("https://") {
                // TLS to the agent: a private CA when given, else the public web PKI. The
                // server name checked is the URL's host.
                let tls = match ca_pem {
                    Some(pem) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
                    None => ClientTlsConfig::new().with_webpki_roots(),
                };
                endpoint = endpoint
                    .tls_config(tls)
                    .map_err(|e| format!("agent `{}`: TLS settings: {e}", target.name))?;
            }
            let channel = endpoint.connect_lazy();
            let client = AgentClient::new(channel.clone());
            by_name.insert(
                target.name.clone(),
                Agent {
                    name: target.name.as_str().into(),
                    client,
                    policy: Arc::new(policies.remove(&target.name).unwrap_or_default()),
                    token: token.clone(),
                    channel,
                },
            );
        }
        Ok(Self {
            by_name: Arc::new(by_name),
        })
    }

    pub fn get(&self, name: &str) -> Option<&Agent> {
        self.by_name.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Agent> {
        self.by_name.values()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }
}
