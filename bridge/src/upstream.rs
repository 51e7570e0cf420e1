//! Upstream agents: the configured names, a gRPC client for each, and every call the bridge
//! makes to an agent: the streaming `Chat` (as an [`EventStream`], the seam other agent
//! kinds plug into) and the typed unary thread calls, bounded in time.
//!
//! Two kinds of agent sit behind a name: `agent.v1` agents (our contract) and A2A agents
//! ([`a2a`], the Agent2Agent protocol's gRPC binding), whose tasks read as the same events.
//!
//! Channels connect lazily and reconnect by themselves, so the bridge starts (and stays up)
//! while an agent is down; calls to it fail with `UNAVAILABLE` until it returns.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    time::Duration,
};

use agent_bridge_proto::v1::{
    ChatEvent, ChatRequest, DeleteThreadRequest, ListMessagesRequest, ListMessagesResponse,
    ListThreadsRequest, ListThreadsResponse, Thread, ThreadMessage, agent_client::AgentClient,
};
use futures_util::Stream;
use serde::Serialize;
use tonic::{
    Status,
    metadata::MetadataValue,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, channel::Change},
};

use crate::{
    auth::Identity, config::AgentTarget, error::ApiError, filter::EventFilter, secret::Secret,
};

pub(crate) mod a2a;

/// An agent's events for one run, as the bridge pumps them. Dropping it cancels the call.
pub(crate) type EventStream = Pin<Box<dyn Stream<Item = Result<ChatEvent, Status>> + Send>>;

/// One configured agent.
#[derive(Clone)]
pub(crate) struct Agent {
    pub name: Arc<str>,
    client: AgentClient<Channel>,
    /// What of this agent's events reaches clients.
    pub filter: Arc<EventFilter>,
    /// The bridge's own credential, presented on every call.
    token: Option<Secret>,
    /// The same channel, for health checks.
    channel: Channel,
    /// Set for an A2A agent: its calls go through `A2AService` instead of `client`.
    a2a: Option<a2a::A2aAgent>,
}

impl Agent {
    /// A client for one call. Cloning a tonic client is cheap (it shares the channel).
    pub(crate) fn client(&self) -> AgentClient<Channel> {
        self.client.clone()
    }

    /// A call carrying the caller's identity (`x-subject`, `x-tenant`, `x-identity-kind`,
    /// `x-issuer`: the agent scopes threads by them) and the bridge's credential (`authorization: Bearer`).
    pub(crate) fn request<T>(&self, message: T, identity: &Identity) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let metadata = request.metadata_mut();
        // A subject may hold bytes metadata cannot carry: they are percent-escaped, so every
        // identity still reaches the agent, and distinct identities stay distinct.
        for (key, value) in identity.agent_metadata() {
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
    pub(crate) fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// What an A2A agent says about itself (its card), for agent pickers; `None` for
    /// `agent.v1` agents and while the card cannot be read.
    pub(crate) async fn card(&self, identity: &Identity, timeout: Duration) -> Option<a2a::Card> {
        let a2a = self.a2a.as_ref()?;
        a2a.card(self.unary((), identity, timeout)).await
    }

    /// Opens the streaming `Chat` call.
    pub(crate) async fn chat(
        &self,
        call: tonic::Request<ChatRequest>,
    ) -> Result<EventStream, Status> {
        if let Some(a2a) = &self.a2a {
            return a2a.chat(&self.name, call).await;
        }
        let stream = self.client().chat(call).await?.into_inner();
        Ok(Box::pin(stream))
    }

    /// `ListThreads`: the caller's threads at the agent, a page at a time.
    pub(crate) async fn list_threads(
        &self,
        identity: &Identity,
        page: Page,
        timeout: Duration,
    ) -> Result<ThreadPage, ApiError> {
        let Some(a2a) = &self.a2a else {
            let request = ListThreadsRequest {
                page_size: page.page_size,
                page_token: page.page_token,
            };
            let list = |mut agent: AgentClient<Channel>, call| async move {
                agent.list_threads(call).await
            };
            return Ok(self.call(request, identity, timeout, list).await?.into());
        };
        let call = self.unary((), identity, timeout);
        let listed = a2a.list_threads(call, page).await;
        listed.map_err(|s| self.failed(s))
    }

    /// `ListMessages`: a thread's history, a page at a time.
    pub(crate) async fn list_messages(
        &self,
        identity: &Identity,
        thread: &str,
        page: Page,
        timeout: Duration,
    ) -> Result<MessagePage, ApiError> {
        let Some(a2a) = &self.a2a else {
            let request = ListMessagesRequest {
                thread_id: thread.to_owned(),
                page_size: page.page_size,
                page_token: page.page_token,
            };
            let list = |mut agent: AgentClient<Channel>, call| async move {
                agent.list_messages(call).await
            };
            return Ok(self.call(request, identity, timeout, list).await?.into());
        };
        let call = self.unary((), identity, timeout);
        let listed = a2a.list_messages(&self.name, call, thread, page).await;
        listed.map_err(|s| self.failed(s))
    }

    /// `DeleteThread`: the thread's history at the agent; how many messages went.
    pub(crate) async fn delete_thread(
        &self,
        identity: &Identity,
        thread: &str,
        timeout: Duration,
    ) -> Result<u32, ApiError> {
        if self.a2a.is_some() {
            // A2A has no call that removes a context or a task.
            return Err(self.failed(Status::unimplemented("A2A agents cannot delete threads")));
        }
        let request = DeleteThreadRequest {
            thread_id: thread.to_owned(),
        };
        let answer = self
            .call(request, identity, timeout, |mut agent, call| async move {
                agent.delete_thread(call).await
            })
            .await?;
        Ok(answer.deleted_messages)
    }

    /// A unary `agent.v1` call (`method` on a client) with the caller's identity, bounded by
    /// `timeout`; its failure is this agent's.
    async fn call<Req, Res, Answer>(
        &self,
        message: Req,
        identity: &Identity,
        timeout: Duration,
        method: impl FnOnce(AgentClient<Channel>, tonic::Request<Req>) -> Answer,
    ) -> Result<Res, ApiError>
    where
        Answer: Future<Output = Result<tonic::Response<Res>, Status>>,
    {
        method(self.client(), self.unary(message, identity, timeout))
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| self.failed(status))
    }

    /// A unary call with the caller's identity, bounded by `timeout`.
    fn unary<T>(&self, message: T, identity: &Identity, timeout: Duration) -> tonic::Request<T> {
        let mut request = self.request(message, identity);
        request.set_timeout(timeout);
        request
    }

    fn failed(&self, status: Status) -> ApiError {
        ApiError::Upstream {
            agent: self.name.to_string(),
            status,
        }
    }
}

/// Which page of a list to read.
#[derive(Debug, Default, Clone)]
pub(crate) struct Page {
    pub page_size: u32,
    pub page_token: String,
}

/// A page of the caller's threads, as clients see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ThreadPage {
    pub threads: Vec<ThreadSummary>,
    pub next_page_token: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ThreadSummary {
    pub thread_id: String,
    pub title: String,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub message_count: u32,
}

impl From<ListThreadsResponse> for ThreadPage {
    fn from(answer: ListThreadsResponse) -> Self {
        Self {
            threads: answer.threads.into_iter().map(Into::into).collect(),
            next_page_token: answer.next_page_token,
        }
    }
}

impl From<Thread> for ThreadSummary {
    fn from(t: Thread) -> Self {
        Self {
            thread_id: t.thread_id,
            title: t.title,
            created_at: t.created_at.as_ref().map(ToString::to_string),
            updated_at: t.updated_at.as_ref().map(ToString::to_string),
            message_count: t.message_count,
        }
    }
}

/// A page of a thread's history, as clients see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct MessagePage {
    pub messages: Vec<HistoryMessage>,
    pub next_page_token: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct HistoryMessage {
    pub message_id: String,
    pub role: String,
    pub content: String,
    pub agent: String,
    pub run_id: String,
    pub created_at: Option<String>,
}

impl From<ListMessagesResponse> for MessagePage {
    fn from(answer: ListMessagesResponse) -> Self {
        Self {
            messages: answer.messages.into_iter().map(Into::into).collect(),
            next_page_token: answer.next_page_token,
        }
    }
}

impl From<ThreadMessage> for HistoryMessage {
    fn from(m: ThreadMessage) -> Self {
        Self {
            created_at: m.created_at.as_ref().map(ToString::to_string),
            message_id: m.message_id,
            role: m.role,
            content: m.content,
            agent: m.agent,
            run_id: m.run_id,
        }
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
pub(crate) struct Agents {
    by_name: Arc<HashMap<String, Agent>>,
}

/// How the bridge reaches its agents.
pub(crate) struct Settings<'a> {
    pub connect_timeout: Duration,
    /// The bridge's own credential, sent on every call.
    pub token: Option<Secret>,
    /// PEM CA(s) for `https://` agents; `None`: the public web PKI.
    pub ca_pem: Option<&'a str>,
    /// How often `dns://` agents are resolved again.
    pub dns_refresh: Duration,
}

impl Agents {
    /// One client per agent. `http(s)://HOST:PORT` is one endpoint (connected lazily,
    /// reconnected by tonic). `dns://HOST:PORT` (plaintext) and `dns+https://HOST:PORT` (TLS,
    /// the certificate checked against HOST) resolve HOST to all its addresses, spread calls
    /// across them, and follow changes every `dns_refresh`: a headless Service's pods, each
    /// its own connection, so one busy agent pod does not take every call.
    pub(crate) fn new(
        targets: &[AgentTarget],
        settings: Settings<'_>,
        mut filters: HashMap<String, EventFilter>,
    ) -> Result<Self, String> {
        // Several URLs under one name are one agent whose calls spread over them.
        let mut grouped: Vec<(&str, Vec<&str>)> = Vec::new();
        // An A2A agent's URL is its transport URL under an `a2a+` scheme.
        let targets: Vec<(AgentTarget, bool)> = targets
            .iter()
            .map(|target| match a2a::transport_url(&target.url) {
                Some(url) => (
                    AgentTarget {
                        name: target.name.clone(),
                        url,
                    },
                    true,
                ),
                None => (target.clone(), false),
            })
            .collect();
        let kinds: HashMap<&str, bool> = targets
            .iter()
            .map(|(target, is_a2a)| (target.name.as_str(), *is_a2a))
            .collect();
        for (target, _) in &targets {
            match grouped.iter_mut().find(|(name, _)| *name == target.name) {
                Some((_, urls)) => urls.push(&target.url),
                None => grouped.push((&target.name, vec![&target.url])),
            }
        }
        let mut by_name = HashMap::with_capacity(grouped.len());
        for (name, urls) in grouped {
            let target = AgentTarget {
                name: name.to_owned(),
                url: urls[0].to_owned(),
            };
            let channel = if let Some((tls, authority)) = dns_target(&target.url) {
                let (host, port) = authority
                    .rsplit_once(':')
                    .and_then(|(h, p)| {
                        Some((
                            h.trim_matches(['[', ']']).to_owned(),
                            p.parse::<u16>().ok()?,
                        ))
                    })
                    .ok_or_else(|| {
                        format!("agent `{}`: `{}` needs HOST:PORT", target.name, target.url)
                    })?;
                let (channel, changes) = Channel::balance_channel::<SocketAddr>(64);
                let template = EndpointTemplate {
                    name: target.name.clone(),
                    host: host.clone(),
                    tls,
                    connect_timeout: settings.connect_timeout,
                    ca_pem: settings.ca_pem.map(str::to_owned),
                };
                // Validate the template once, so a bad setting fails at start-up.
                template.endpoint(SocketAddr::from(([127, 0, 0, 1], port)))?;
                tokio::spawn(follow_dns(
                    template,
                    host,
                    port,
                    settings.dns_refresh,
                    changes,
                ));
                channel
            } else if urls.len() > 1 {
                let endpoints = urls
                    .iter()
                    .map(|url| endpoint(name, url, settings.connect_timeout, settings.ca_pem, None))
                    .collect::<Result<Vec<_>, _>>()?;
                Channel::balance_list(endpoints.into_iter())
            } else {
                endpoint(
                    &target.name,
                    &target.url,
                    settings.connect_timeout,
                    settings.ca_pem,
                    None,
                )?
                .connect_lazy()
            };
            let client = AgentClient::new(channel.clone());
            by_name.insert(
                target.name.clone(),
                Agent {
                    name: target.name.as_str().into(),
                    client,
                    filter: Arc::new(filters.remove(&target.name).unwrap_or_default()),
                    token: settings.token.clone(),
                    a2a: kinds
                        .get(name)
                        .copied()
                        .unwrap_or(false)
                        .then(|| a2a::A2aAgent::new(channel.clone())),
                    channel,
                },
            );
        }
        Ok(Self {
            by_name: Arc::new(by_name),
        })
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Agent> {
        self.by_name.get(name)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Agent> {
        self.by_name.values()
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }
}

/// `Some((tls, "HOST:PORT"))` for `dns://` and `dns+https://` URLs.
fn dns_target(url: &str) -> Option<(bool, &str)> {
    url.strip_prefix("dns://")
        .map(|rest| (false, rest))
        .or_else(|| url.strip_prefix("dns+https://").map(|rest| (true, rest)))
        .map(|(tls, rest)| (tls, rest.trim_end_matches('/')))
}

/// The settings every connection to an agent gets.
fn endpoint(
    name: &str,
    url: &str,
    connect_timeout: Duration,
    ca_pem: Option<&str>,
    server_name: Option<&str>,
) -> Result<Endpoint, String> {
    let mut endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| format!("agent `{name}`: invalid URL `{url}`: {e}"))?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        // Detect a dead agent connection during long silent runs.
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    if url.starts_with("https://") {
        // TLS to the agent: a private CA when given, else the public web PKI. The server
        // name checked is the URL's host (or, for resolved addresses, the DNS name).
        let mut tls = match ca_pem {
            Some(pem) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
            None => ClientTlsConfig::new().with_webpki_roots(),
        };
        if let Some(server_name) = server_name {
            tls = tls.domain_name(server_name);
        }
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| format!("agent `{name}`: TLS settings: {e}"))?;
    }
    Ok(endpoint)
}

/// How to build the endpoint of one resolved address of a `dns://` agent.
struct EndpointTemplate {
    name: String,
    host: String,
    tls: bool,
    connect_timeout: Duration,
    ca_pem: Option<String>,
}

impl EndpointTemplate {
    fn endpoint(&self, addr: SocketAddr) -> Result<Endpoint, String> {
        let scheme = if self.tls { "https" } else { "http" };
        endpoint(
            &self.name,
            &format!("{scheme}://{addr}"),
            self.connect_timeout,
            self.ca_pem.as_deref(),
            Some(&self.host),
        )
    }
}

/// Keeps a balanced channel's endpoints equal to what `host` resolves to. A failed lookup
/// keeps the last known addresses (DNS hiccups must not empty the pool).
async fn follow_dns(
    template: EndpointTemplate,
    host: String,
    port: u16,
    every: Duration,
    changes: tokio::sync::mpsc::Sender<Change<SocketAddr, Endpoint>>,
) {
    let mut known: HashSet<SocketAddr> = HashSet::new();
    loop {
        match tokio::net::lookup_host((host.as_str(), port)).await {
            Ok(found) => {
                let found: HashSet<SocketAddr> = found.collect();
                for gone in known.difference(&found) {
                    if changes.send(Change::Remove(*gone)).await.is_err() {
                        return;
                    }
                }
                for new in found.difference(&known) {
                    let Ok(endpoint) = template.endpoint(*new) else {
                        continue;
                    };
                    if changes.send(Change::Insert(*new, endpoint)).await.is_err() {
                        return;
                    }
                }
                if found != known {
                    tracing::info!(agent = %template.name, addresses = found.len(), "agent addresses changed");
                }
                known = found;
            }
            Err(e) => {
                tracing::warn!(agent = %template.name, %host, error = %e, "cannot resolve agent")
            }
        }
        tokio::time::sleep(every).await;
    }
}
