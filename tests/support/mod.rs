//! The test harness: real servers on loopback sockets, and clients that read like the domain
//! (`spawn_agent()`, `spawn_bridge(..)`, `bridge.chat_stream(..)`).
//!
//! Servers bind `127.0.0.1:0` first and are handed the listener, so a test never waits for a
//! server to come up. Logs are quiet unless `TEST_LOG` is set.
#![allow(dead_code)] // Each suite uses a different part of the harness.

pub mod process;
pub mod redis;

use std::{net::SocketAddr, sync::Once, time::Duration};

use eventsource_stream::Eventsource as _;
use futures_util::{Stream, StreamExt as _};
use serde_json::Value;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

/// Long enough for a loaded 2-core CI machine, short enough to fail a hung test quickly.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(
                    std::env::var("TEST_LOG").unwrap_or_else(|_| "debug".into()),
                ))
                .with_test_writer()
                .try_init();
        }
    });
}

async fn loopback() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    (listener, addr)
}

/// A reference agent serving gRPC on loopback.
pub struct Agent {
    pub url: String,
    pub addr: SocketAddr,
    pub stats: agent_stub::Stats,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<anyhow::Result<()>>,
}

pub async fn spawn_agent() -> Agent {
    spawn_agent_with(agent_stub::Config::default()).await
}

pub async fn spawn_agent_with(config: agent_stub::Config) -> Agent {
    init_logs();
    let (listener, addr) = loopback().await;
    let stub = agent_stub::Stub::new(config);
    let stats = stub.stats();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(agent_stub::serve(listener, stub, shutdown.clone()));
    Agent {
        url: format!("http://{addr}"),
        addr,
        stats,
        shutdown,
        task,
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A bridge serving HTTP on loopback.
pub struct Bridge {
    pub base: String,
    pub shutdown: CancellationToken,
    pub task: Option<JoinHandle<anyhow::Result<()>>>,
    pub http: reqwest::Client,
    /// The test client for this bridge; its methods are reachable on the bridge itself.
    pub client: Client,
}

/// A bridge in front of `agents` (route name, gRPC URL), with extra flags, open to
/// anonymous callers and without request budgets (the core suite is not about the edge
/// policy; the edge suite is, with [`spawn_bridge_strict`]).
pub async fn spawn_bridge(agents: &[(&str, &str)], flags: &[&str]) -> Bridge {
    spawn_bridge_strict(agents, &open_flags(flags)).await
}

/// A reference agent and an open bridge in front of it, routed as `assistant`: the setup
/// most tests start from.
pub async fn spawn_assistant(flags: &[&str]) -> (Agent, Bridge) {
    let agent = spawn_agent().await;
    let bridge = spawn_bridge(&[("assistant", &agent.url)], flags).await;
    (agent, bridge)
}

/// `flags` after the flags that open a bridge to anonymous callers without budgets.
pub fn open_flags<'a>(flags: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec![
        "--allow-anonymous",
        "--rate-limit-chat",
        "off",
        "--max-streams-per-identity",
        "4096",
    ];
    all.extend_from_slice(flags);
    all
}

/// The `bridge` arguments for `agents` and `flags`.
fn bridge_config(agents: &[(&str, &str)], flags: &[&str]) -> bridge::Config {
    let mut args: Vec<String> = vec!["bridge".into()];
    for (name, url) in agents {
        args.push("--agent".into());
        args.push(format!("{name}={url}"));
    }
    args.extend(flags.iter().map(|f| f.to_string()));
    bridge::Config::from_args(args).expect("bridge flags")
}

/// A bridge in front of `agents` with exactly `flags`: no anonymous access unless asked for.
pub async fn spawn_bridge_strict(agents: &[(&str, &str)], flags: &[&str]) -> Bridge {
    init_logs();
    let (listener, addr) = loopback().await;
    let config = bridge_config(agents, flags);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(bridge::serve(listener, config, shutdown.clone()));
    let client = Client::new(&format!("http://{addr}"));
    Bridge {
        base: client.base.clone(),
        shutdown,
        task: Some(task),
        http: client.http.clone(),
        client,
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Bridge {
    /// Stops accepting, drains, and returns how the server task ended.
    pub async fn shut_down(&mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task.take().expect("bridge task").await?
    }
}

/// A caller of the bridge's HTTP API: one method per request, each sent once and returned
/// as it came (a transport failure fails the test). Works for an in-process [`Bridge`] (it
/// derefs to its client) and for a bridge process ([`Client::new`] with its URL).
#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str) -> Self {
        Self::with_headers(base, &[])
    }

    /// A client that sends `headers` with every request (credentials, `traceparent`).
    pub fn with_headers(base: &str, headers: &[(&str, &str)]) -> Self {
        let headers = headers
            .iter()
            .map(|(name, value)| {
                (
                    reqwest::header::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                    reqwest::header::HeaderValue::from_str(value).expect("header value"),
                )
            })
            .collect();
        Self {
            base: base.to_owned(),
            http: reqwest::Client::builder()
                .default_headers(headers)
                .build()
                .expect("HTTP client"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `POST /v1/agents/{agent}/chat` asking for an SSE stream.
    pub async fn chat_stream(&self, agent: &str, message: &str) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/v1/agents/{agent}/chat")))
            .header("accept", "text/event-stream")
            .json(&serde_json::json!({ "message": message }))
            .send()
            .await
            .expect("chat request")
    }

    /// `POST /v1/agents/{agent}/chat` asking for the JSON answer.
    pub async fn chat_json(&self, agent: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/v1/agents/{agent}/chat")))
            .header("accept", "application/json")
            .json(&body)
            .send()
            .await
            .expect("chat request")
    }

    /// `GET {path}`: a probe, `/metrics`, `/openapi.json`, or any path a test names itself.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        send(self.http.get(self.url(path))).await
    }

    /// `GET {path}`, its body as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        json(self.http.get(self.url(path))).await
    }

    /// `GET {path}`, its body as text (`/metrics`, say).
    pub async fn get_text(&self, path: &str) -> String {
        text(self.http.get(self.url(path))).await
    }

    /// `GET /v1/agents`.
    pub async fn agents(&self) -> reqwest::Response {
        self.get("/v1/agents").await
    }

    /// `POST /v1/tickets` for a stream of `thread` of `agent`.
    pub async fn issue_ticket(&self, agent: &str, thread: &str) -> reqwest::Response {
        let body = serde_json::json!({ "agent": agent, "thread_id": thread });
        send(self.http.post(self.url("/v1/tickets")).json(&body)).await
    }

    /// `GET /v1/agents/{agent}/status`.
    pub async fn agent_status(&self, agent: &str) -> reqwest::Response {
        self.get(&format!("/v1/agents/{agent}/status")).await
    }

    /// `POST /v1/agents/{agent}/threads/{thread}/messages` with `{"message": message}`.
    pub async fn post_message(
        &self,
        agent: &str,
        thread: &str,
        message: &str,
    ) -> reqwest::Response {
        let path = format!("/v1/agents/{agent}/threads/{thread}/messages");
        send(
            self.http
                .post(self.url(&path))
                .json(&serde_json::json!({ "message": message })),
        )
        .await
    }

    /// `GET /v1/agents/{agent}/threads/{thread}/events`, resuming after `last_event_id`.
    pub async fn events(
        &self,
        agent: &str,
        thread: &str,
        last_event_id: Option<&str>,
    ) -> reqwest::Response {
        let path = format!("/v1/agents/{agent}/threads/{thread}/events");
        let mut request = self.http.get(self.url(&path));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        send(request).await
    }

    /// `GET /v1/agents/{agent}/threads`.
    pub async fn list_threads(&self, agent: &str) -> reqwest::Response {
        self.get(&format!("/v1/agents/{agent}/threads")).await
    }

    /// `GET /v1/agents/{agent}/threads/{thread}/messages`.
    pub async fn list_messages(&self, agent: &str, thread: &str) -> reqwest::Response {
        self.get(&format!("/v1/agents/{agent}/threads/{thread}/messages"))
            .await
    }

    /// `DELETE /v1/agents/{agent}/threads/{thread}`.
    pub async fn delete_thread(&self, agent: &str, thread: &str) -> reqwest::Response {
        let path = format!("/v1/agents/{agent}/threads/{thread}");
        send(self.http.delete(self.url(&path))).await
    }
}

impl std::ops::Deref for Bridge {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

/// An HS256 secret in a file of its own (for a bridge's `--jwt-secret-file`), removed with
/// the test, and the bearer tokens it signs.
pub struct JwtSecret {
    pub path: std::path::PathBuf,
    secret: String,
}

impl JwtSecret {
    pub fn new(name: &str, secret: &str) -> Self {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file = format!("bridge-{name}-jwt-{}-{n}", std::process::id());
        let path = std::env::temp_dir().join(file);
        std::fs::write(&path, secret).expect("write the JWT secret");
        let secret = secret.to_owned();
        Self { path, secret }
    }

    /// `--jwt-secret-file` for a bridge's flags.
    pub fn flag_value(&self) -> &str {
        self.path.to_str().expect("a UTF-8 temp path")
    }

    /// A bridge routing `assistant` to `agent_url` that admits callers with a token signed
    /// by this secret (no anonymous access), with `flags` too.
    pub async fn bridge(&self, agent_url: &str, flags: &[&str]) -> Bridge {
        let mut all = vec!["--jwt-secret-file", self.flag_value()];
        all.extend_from_slice(flags);
        spawn_bridge_strict(&[("assistant", agent_url)], &all).await
    }

    /// A token with `claims` (an object) and an `exp` ten minutes from now.
    pub fn token(&self, mut claims: Value) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        claims["exp"] = Value::from(now + 600);
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(self.secret.as_bytes()),
        )
        .expect("an HS256 token")
    }
}

impl Drop for JwtSecret {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Sends a request the test built; a transport failure fails the test (the bridge under test
/// is on loopback, so there is no network to blame).
pub async fn send(request: reqwest::RequestBuilder) -> reqwest::Response {
    request.send().await.expect("request to a loopback server")
}

/// Sends a request and reads its body as JSON, whatever the status (a test that cares about
/// the status uses [`send`]); a transport failure or a body that is not JSON fails the test.
pub async fn json(request: reqwest::RequestBuilder) -> Value {
    send(request).await.json().await.expect("a JSON body")
}

/// Sends a request and reads its body as text, whatever the status.
pub async fn text(request: reqwest::RequestBuilder) -> String {
    send(request).await.text().await.expect("a text body")
}

/// One parsed SSE event, with its `data:` decoded as JSON.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: String,
    pub event: String,
    pub data: Value,
    pub retry: Option<Duration>,
}

/// Parses a streaming response the way an internal service would (with a spec-following SSE
/// parser, `eventsource-stream`).
pub fn sse_events(response: reqwest::Response) -> impl Stream<Item = SseEvent> {
    // A connection cut mid-stream ends the stream here, as it ends an EventSource's; tests
    // that expect a whole run assert its terminal event.
    response
        .bytes_stream()
        .eventsource()
        .take_while(|item| std::future::ready(item.is_ok()))
        .map(|item| {
            let e = item.expect("well-formed SSE");
            SseEvent {
                id: e.id,
                event: e.event,
                data: serde_json::from_str(&e.data)
                    .unwrap_or_else(|err| panic!("data is not JSON ({err}): {:?}", e.data)),
                retry: e.retry,
            }
        })
}

/// Reads a stream to its end.
pub async fn collect_events(response: reqwest::Response) -> Vec<SseEvent> {
    tokio::time::timeout(PATIENCE, sse_events(response).collect::<Vec<_>>())
        .await
        .expect("stream ended in time")
}

/// Polls `check` until it holds, failing the test (naming `what`) after [`PATIENCE`]: the
/// one way tests wait for something that happens in another task or process.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_some(what, || {
        let holds = check();
        async move { holds.await.then_some(()) }
    })
    .await
}

/// Like [`eventually`], for a check that yields what it found: polls `check` until it returns
/// `Some`, and returns that value.
pub async fn eventually_some<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for the next item of a stream, failing the test after [`PATIENCE`].
pub async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("next item in time")
}

/// Sends a message to a thread's WebSocket: `{"type":"message","message":…}`.
pub async fn send_message_frame<S>(socket: &mut S, message: &str)
where
    S: futures_util::Sink<tokio_tungstenite::tungstenite::Message> + Unpin,
    S::Error: std::fmt::Debug,
{
    use futures_util::SinkExt as _;
    let frame = serde_json::json!({ "type": "message", "message": message }).to_string();
    let frame = tokio_tungstenite::tungstenite::Message::text(frame);
    socket.send(frame).await.expect("a frame sent");
}

/// The next frame of a WebSocket, read as JSON.
pub async fn next_frame<S, E>(socket: &mut S) -> Value
where
    S: Stream<Item = Result<tokio_tungstenite::tungstenite::Message, E>> + Unpin,
    E: std::fmt::Debug,
{
    let message = next(socket)
        .await
        .expect("a frame")
        .expect("a WebSocket message");
    serde_json::from_str(message.to_text().expect("a text frame")).expect("a JSON frame")
}

/// A problem+json refusal: its status and document.
pub async fn problem(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json", "status {status}");
    let body: Value = response.json().await.expect("problem body");
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["type"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert!(
        body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    (status, body)
}

/// A bridge on a runtime of its own, so the test can kill it the way a crashed process dies:
/// every task, connection and lease renewal stops at once, nothing is drained.
pub struct KillableBridge {
    pub base: String,
    kill: Option<std::sync::mpsc::Sender<()>>,
}

pub fn spawn_killable_bridge(agents: &[(&str, &str)], flags: &[&str]) -> KillableBridge {
    init_logs();
    let config = bridge_config(agents, &open_flags(flags));
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (kill_tx, kill_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        addr_tx.send(listener.local_addr().unwrap()).unwrap();
        runtime.spawn(bridge::serve(listener, config, CancellationToken::new()));
        let _ = kill_rx.recv();
        runtime.shutdown_background();
    });
    let addr = addr_rx.recv().unwrap();
    KillableBridge {
        base: format!("http://{addr}"),
        kill: Some(kill_tx),
    }
}

impl KillableBridge {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn kill(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
    }
}

impl Drop for KillableBridge {
    fn drop(&mut self) {
        self.kill();
    }
}
