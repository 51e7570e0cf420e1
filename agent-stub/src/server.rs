//! [`serve`]: the gRPC server around a [`Stub`], with health, reflection and a bounded drain.

use std::time::Duration;

use agent_bridge_proto::v1::agent_server::AgentServer;
use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Server, server::TcpIncoming};
use tonic_health::ServingStatus;
use tracing::{info, warn};

use crate::Stub;

/// How long a graceful shutdown may wait for open calls once every run has ended. Runs end
/// at once on shutdown, but a client may hold other streams open (a health `Watch`, or a run
/// whose reader stopped reading), and hyper's graceful shutdown alone would wait for them
/// forever.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves the agent, plus `grpc.health.v1` (SERVING for `agent.v1.Agent` and for `""`) and
/// server reflection v1 and v1alpha, on an already-bound listener until `shutdown` is
/// cancelled.
///
/// On shutdown, health flips to NOT_SERVING first; then every running run ends promptly with
/// a `run_error` event (`UNAVAILABLE`, "agent is shutting down"), the listener closes and open
/// connections drain (for at most a few seconds) before this returns.
pub async fn serve(
    listener: TcpListener,
    stub: Stub,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let addr = listener
        .local_addr()
        .context("reading the listener's address")?;

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<AgentServer<Stub>>().await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(agent_bridge_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().context("building reflection v1")?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .context("building reflection v1alpha")?;

    // Runs hear `stop`, not `shutdown`, so that health is NOT_SERVING before the first run
    // reports the shutdown to its caller.
    let stop = CancellationToken::new();
    let stub = stub.with_stop(stop.clone());
    let signal = {
        let shutdown = shutdown.clone();
        async move {
            shutdown.cancelled().await;
            health.set_not_serving::<AgentServer<Stub>>().await;
            health
                .set_service_status("", ServingStatus::NotServing)
                .await;
            info!("shutting down: health is NOT_SERVING, ending runs");
            stop.cancel();
        }
    };
    // Events are small and latency matters more than packet count.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));

    info!(%addr, "agent-stub serving agent.v1.Agent");
    let mut builder = Server::builder();
    if let Some(tls) = stub.tls() {
        let identity = tonic::transport::Identity::from_pem(&tls.cert_pem, &tls.key_pem);
        builder = builder
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .context("TLS settings (--tls-cert-file, --tls-key-file)")?;
    }
    let server = builder
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(AgentServer::new(stub))
        .serve_with_incoming_shutdown(incoming, signal);
    let drain_deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(DRAIN_TIMEOUT).await;
    };
    tokio::select! {
        served = server => served.context("serving gRPC")?,
        () = drain_deadline => warn!(
            timeout = ?DRAIN_TIMEOUT,
            "shutdown: connections still open after the drain timeout; leaving them"
        ),
    }
    info!("agent-stub stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use agent_bridge_proto::v1::{
        ChatEvent, ChatRequest, DeleteThreadRequest, ListMessagesRequest, ListThreadsRequest,
        agent_client::AgentClient, chat_event::Payload,
    };
    use tokio::{task::JoinHandle, time::timeout};
    use tonic::{Code, Request, transport::Channel};
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus as Wire,
        health_client::HealthClient,
    };

    use super::*;
    use crate::{Config, Stats};

    /// Long enough for a loaded CI machine, short enough that a hang fails the test.
    const PATIENCE: Duration = Duration::from_secs(10);

    /// A real agent on a real socket, for one test.
    struct TestAgent {
        addr: SocketAddr,
        stats: Stats,
        shutdown: CancellationToken,
        served: JoinHandle<anyhow::Result<()>>,
    }

    impl TestAgent {
        async fn spawn() -> Self {
            // Bound before `serve` runs, so a client can connect at once: no sleeping.
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let stub = Stub::new(Config::default());
            let stats = stub.stats();
            let shutdown = CancellationToken::new();
            let served = tokio::spawn(serve(listener, stub, shutdown.clone()));
            Self {
                addr,
                stats,
                shutdown,
                served,
            }
        }

        /// A stub and a client connected to it: where most tests start.
        async fn connected() -> (Self, AgentClient<Channel>) {
            let agent = Self::spawn().await;
            let client = agent.client().await;
            (agent, client)
        }

        async fn channel(&self) -> Channel {
            Channel::from_shared(format!("http://{}", self.addr))
                .unwrap()
                .connect()
                .await
                .unwrap()
        }

        async fn client(&self) -> AgentClient<Channel> {
            AgentClient::new(self.channel().await)
        }

        async fn stop(self) {
            self.shutdown.cancel();
            timeout(PATIENCE, self.served)
                .await
                .expect("serve returns after shutdown")
                .unwrap()
                .unwrap();
        }
    }

    fn chat(message: &str) -> ChatRequest {
        ChatRequest {
            message: message.into(),
            ..ChatRequest::default()
        }
    }

    fn as_user<T>(subject: &str, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert("x-subject", subject.parse().unwrap());
        request
    }

    async fn collect(
        client: &mut AgentClient<Channel>,
        request: Request<ChatRequest>,
    ) -> Vec<ChatEvent> {
        let mut stream = client.chat(request).await.unwrap().into_inner();
        let mut events = Vec::new();
        while let Some(event) = timeout(PATIENCE, stream.message()).await.unwrap().unwrap() {
            events.push(event);
        }
        events
    }

    /// A run's event stream, which must open.
    async fn open(client: &mut AgentClient<Channel>, message: &str) -> tonic::Streaming<ChatEvent> {
        client.chat(chat(message)).await.unwrap().into_inner()
    }

    /// The kind of the stream's next event, which must come.
    async fn next_kind(stream: &mut tonic::Streaming<ChatEvent>) -> &'static str {
        kind(&stream.message().await.unwrap().unwrap())
    }

    fn kind(event: &ChatEvent) -> &'static str {
        event.payload.as_ref().map_or("none", Payload::kind)
    }

    #[tokio::test]
    async fn a_default_run_streams_the_script_in_order() {
        let (agent, mut client) = TestAgent::connected().await;

        let events = collect(&mut client, Request::new(chat("make the header blue"))).await;

        let kinds: Vec<_> = events.iter().map(kind).collect();
        let deltas = kinds.len() - 7;
        assert_eq!(kinds, crate::script::default_kinds(deltas));

        let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
        assert_eq!(sequences, (1..=events.len() as u64).collect::<Vec<_>>());
        let run_id = &events[0].run_id;
        assert!(!run_id.is_empty() && events.iter().all(|e| &e.run_id == run_id));
        assert!(events[0].thread_id.starts_with("t-"));
        assert!(events.iter().all(|e| e.timestamp.is_some()));
        assert_eq!(agent.stats.runs_started(), 1);
        assert_eq!(agent.stats.events_sent(), events.len() as u64);

        agent.stop().await;
    }

    #[tokio::test]
    async fn scripted_failures_fail_the_call_or_the_stream() {
        let (agent, mut client) = TestAgent::connected().await;

        let status = client.chat(chat("stub: fail-before")).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), "scripted failure");

        let mut stream = open(&mut client, "stub: fail-after=2 code=INTERNAL").await;
        assert_eq!(next_kind(&mut stream).await, "run_started");
        assert_eq!(next_kind(&mut stream).await, "thought");
        assert_eq!(stream.message().await.unwrap_err().code(), Code::Internal);

        let events = collect(&mut client, Request::new(chat("stub: error-event-after=1"))).await;
        assert_eq!(
            events.iter().map(kind).collect::<Vec<_>>(),
            ["run_started", "run_error"]
        );
        assert_eq!(events[1].agent, "System");
        assert_eq!(events[1].sequence, 2);

        let status = client.chat(chat("stub: explode")).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("explode"), "{}", status.message());

        agent.stop().await;
    }

    #[tokio::test]
    async fn a_burst_sends_n_plus_three_events() {
        let (agent, mut client) = TestAgent::connected().await;

        let events = collect(&mut client, Request::new(chat("stub: burst=500 size=16"))).await;
        assert_eq!(events.len(), 503);
        assert!(events[1..501].iter().all(|e| matches!(
            &e.payload,
            Some(Payload::TextDelta(d)) if d.delta.len() == 16
        )));
        assert_eq!(kind(&events[502]), "run_completed");

        agent.stop().await;
    }

    #[tokio::test]
    async fn dropping_the_stream_cancels_the_run() {
        let (agent, mut client) = TestAgent::connected().await;

        // A hanging run, then a burst whose reader stops reading (blocked on a full channel):
        // each must stop when its caller leaves.
        for (left, message) in [(1, "stub: hang"), (2, "stub: burst=100000")] {
            let mut stream = open(&mut client, message).await;
            assert_eq!(next_kind(&mut stream).await, "run_started");
            drop(stream);
            timeout(PATIENCE, agent.stats.wait_for_cancellations(left))
                .await
                .unwrap_or_else(|_| panic!("{message:?} notices the caller left"));
        }
        assert_eq!(agent.stats.cancellations(), 2);

        agent.stop().await;
    }

    #[tokio::test]
    async fn shutdown_ends_a_hanging_run_with_run_error() {
        let (agent, mut client) = TestAgent::connected().await;

        let mut stream = open(&mut client, "stub: hang-after=3").await;
        for _ in 0..3 {
            stream.message().await.unwrap().unwrap();
        }
        agent.shutdown.cancel();

        let last = timeout(PATIENCE, stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let Some(Payload::RunError(error)) = &last.payload else {
            panic!("expected run_error, got {last:?}")
        };
        assert_eq!(
            (error.code.as_str(), error.message.as_str()),
            ("UNAVAILABLE", "agent is shutting down")
        );
        assert_eq!(last.sequence, 4);
        assert!(stream.message().await.unwrap().is_none());
        assert_eq!(agent.stats.cancellations(), 0);

        agent.stop().await;
    }

    #[tokio::test]
    async fn threads_are_kept_per_owner() {
        let (agent, mut client) = TestAgent::connected().await;

        let first = collect(&mut client, as_user("alice", chat("hello there"))).await;
        let thread_id = first[0].thread_id.clone();
        let again = ChatRequest {
            thread_id: thread_id.clone(),
            run_id: "r-2".into(),
            ..chat("and again")
        };
        let second = collect(&mut client, as_user("alice", again)).await;
        assert!(
            second
                .iter()
                .all(|e| e.thread_id == thread_id && e.run_id == "r-2")
        );
        let Some(Payload::RunStarted(started)) = &second[0].payload else {
            panic!()
        };
        assert_eq!(started.user_message_id, "m-3");

        let list = |page_size, page_token: &str| ListMessagesRequest {
            thread_id: thread_id.clone(),
            page_size,
            page_token: page_token.into(),
        };
        let page = client
            .list_messages(as_user("alice", list(3, "")))
            .await
            .unwrap()
            .into_inner();
        let ids: Vec<_> = page
            .messages
            .iter()
            .map(|m| m.message_id.as_str())
            .collect();
        assert_eq!(ids, ["m-1", "m-2", "m-3"]);
        assert_eq!(page.messages[0].role, "user");
        assert_eq!(page.messages[1].role, "assistant");
        assert_eq!(page.messages[1].agent, "Coder");
        let rest = client
            .list_messages(as_user("alice", list(3, &page.next_page_token)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(rest.messages.len(), 1);
        assert_eq!(rest.messages[0].run_id, "r-2");
        assert!(rest.next_page_token.is_empty());

        let bad_token = client
            .list_messages(as_user("alice", list(3, "nope")))
            .await;
        assert_eq!(bad_token.unwrap_err().code(), Code::InvalidArgument);
        let elsewhere = client.list_messages(as_user("mallory", list(0, ""))).await;
        assert_eq!(elsewhere.unwrap_err().code(), Code::NotFound);

        let threads = client
            .list_threads(as_user("alice", ListThreadsRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .threads;
        assert_eq!(threads.len(), 1);
        assert_eq!(
            (threads[0].title.as_str(), threads[0].message_count),
            ("hello there", 4)
        );

        let delete = || {
            as_user(
                "alice",
                DeleteThreadRequest {
                    thread_id: thread_id.clone(),
                },
            )
        };
        let deleted = client.delete_thread(delete()).await.unwrap().into_inner();
        assert_eq!(deleted.deleted_messages, 4);
        assert_eq!(
            client.delete_thread(delete()).await.unwrap_err().code(),
            Code::NotFound
        );

        agent.stop().await;
    }

    /// Asks the reflection service one question in protocol `$version` (`v1` or `v1alpha`:
    /// the same messages, generated twice, so a function cannot take both) and returns the
    /// first answer.
    macro_rules! reflect {
        ($version:ident, $channel:expr, $question:ident($arg:expr)) => {{
            use tonic_reflection::pb::$version::{
                ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
                server_reflection_request::MessageRequest,
            };
            let request = ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::$question($arg)),
            };
            ServerReflectionClient::new($channel)
                .server_reflection_info(tokio_stream::once(request))
                .await
                .unwrap()
                .into_inner()
                .message()
                .await
                .unwrap()
                .unwrap()
        }};
    }

    #[tokio::test]
    async fn health_and_reflection_are_served() {
        use tonic_reflection::pb::{v1, v1alpha};

        let agent = TestAgent::spawn().await;
        let channel = agent.channel().await;

        let mut health = HealthClient::new(channel.clone());
        for service in ["", "agent.v1.Agent"] {
            let request = HealthCheckRequest {
                service: service.into(),
            };
            let status = health.check(request).await.unwrap().into_inner().status();
            assert_eq!(status, Wire::Serving, "{service:?}");
        }

        let response = reflect!(v1, channel.clone(), ListServices(String::new()));
        let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
            response.message_response
        else {
            panic!("unexpected reflection v1 answer: {response:?}")
        };
        let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
        assert!(names.contains(&"agent.v1.Agent"), "{names:?}");
        assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");

        let response = reflect!(
            v1alpha,
            channel,
            FileContainingSymbol("agent.v1.Agent".into())
        );
        assert!(
            matches!(
                response.message_response,
                Some(
                    v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(_)
                )
            ),
            "unexpected reflection v1alpha answer: {response:?}"
        );

        agent.stop().await;
    }
}
