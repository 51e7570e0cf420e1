//! `/readyz` is this bridge's own readiness (draining, hub); an agent's gRPC health is
//! reported per agent (`/v1/agents`, `/v1/agents/{agent}/status`, `bridge_agent_serving`)
//! and refuses runs to that agent alone; `/healthz` stays liveness.

use agent_bridge_proto::v1::agent_server::AgentServer;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{
    collector::Collector,
    support::{Client, collect_events, eventually, problem, spawn_agent, spawn_bridge},
    traces::spawn_pair,
};

/// A reference agent whose `grpc.health.v1` answer the test sets.
struct SteerableAgent {
    url: String,
    health: HealthReporter,
    stats: agent_stub::Stats,
    stop: CancellationToken,
}

impl SteerableAgent {
    async fn spawn() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_service_status("", ServingStatus::Serving).await;
        let stub = agent_stub::Stub::new(agent_stub::Config::default());
        let stats = stub.stats();
        let stop = CancellationToken::new();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(health_service)
                .add_service(AgentServer::new(stub))
                .serve_with_incoming_shutdown(
                    TcpIncoming::from(listener),
                    stop.clone().cancelled_owned(),
                ),
        );
        Self {
            url,
            health,
            stats,
            stop,
        }
    }

    async fn set(&self, status: ServingStatus) {
        self.health.set_service_status("", status).await;
    }
}

impl Drop for SteerableAgent {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// An answer's status and JSON body.
async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn an_agent_that_is_not_serving_is_refused_alone_and_the_bridge_stays_ready() {
    let healthy = spawn_agent().await;
    let flaky = SteerableAgent::spawn().await;
    let bridge = spawn_bridge(
        &[("assistant", &healthy.url), ("flaky", &flaky.url)],
        &["--readiness-cache", "50ms"],
    )
    .await;

    eventually("both agents are checked and serving", || async {
        let (_, list) = status_and_json(bridge.agents().await).await;
        list == json!({ "agents": [
            { "name": "assistant", "status": "serving" },
            { "name": "flaky", "status": "serving" },
        ]})
    })
    .await;

    flaky.set(ServingStatus::NotServing).await;
    eventually("the bridge sees the agent not serving", || async {
        status_and_json(bridge.agent_status("flaky").await).await
            == (
                200,
                json!({ "name": "flaky", "status": "not_serving", "reason": "health status NOT_SERVING" }),
            )
    })
    .await;

    // The bridge itself can serve: it stays in the Service.
    let (status, ready) = status_and_json(bridge.get("/readyz").await).await;
    assert_eq!((status, ready), (200, json!({ "status": "ready" })));
    // The other agent is untouched.
    assert_eq!(
        status_and_json(bridge.agent_status("assistant").await).await,
        (200, json!({ "name": "assistant", "status": "serving" }))
    );
    let events = collect_events(bridge.chat_stream("assistant", "hello").await).await;
    assert_eq!(events.last().unwrap().event, "run_completed");

    // A run to the agent that is not serving is refused before it is called, with a problem
    // that names it.
    let (status, body) = problem(
        bridge
            .chat_json("flaky", json!({ "message": "hello" }))
            .await,
    )
    .await;
    assert_eq!(status, 503);
    assert_eq!(body["type"], "urn:agent-bridge:problem:agent-not-ready");
    assert_eq!(body["code"], "UNAVAILABLE");
    assert!(
        body["detail"].as_str().unwrap().contains("\"flaky\""),
        "{body}"
    );
    assert_eq!(flaky.stats.runs_started(), 0, "the agent was never called");

    let (_, list) = status_and_json(bridge.agents().await).await;
    assert_eq!(
        list,
        json!({ "agents": [
            { "name": "assistant", "status": "serving" },
            { "name": "flaky", "status": "not_serving", "reason": "health status NOT_SERVING" },
        ]})
    );

    // Serving again: runs go through again.
    flaky.set(ServingStatus::Serving).await;
    eventually("the bridge sees the agent serving again", || async {
        status_and_json(bridge.agent_status("flaky").await).await.1["status"] == "serving"
    })
    .await;
    let events = collect_events(bridge.chat_stream("flaky", "hello").await).await;
    assert_eq!(events.last().unwrap().event, "run_completed");
    assert_eq!(flaky.stats.runs_started(), 1);

    // An agent that is not configured has no status.
    let unknown = bridge.agent_status("nobody").await;
    assert_eq!(problem(unknown).await.0, 404);
}

#[tokio::test]
async fn a_lost_agent_shows_in_its_status_not_in_readiness() {
    let collector = Collector::start().await;
    let (mut agent, bridge) = spawn_pair(&collector, &["--readiness-cache", "50ms"]).await;
    let client = Client::new(&bridge.url());
    let status_is = |expected: &'static str| {
        let client = &client;
        move || async move {
            status_and_json(client.agent_status("assistant").await)
                .await
                .1["status"]
                == expected
        }
    };
    eventually("the agent is serving", status_is("serving")).await;

    assert!(agent.stop().await);
    eventually("the agent is seen gone", status_is("unreachable")).await;
    let (code, ready) = status_and_json(client.get("/readyz").await).await;
    assert_eq!((code, ready), (200, json!({ "status": "ready" })));
    let live = client.get("/healthz").await;
    assert_eq!(live.status(), 200, "liveness does not depend on agents");
}
