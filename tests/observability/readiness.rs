//! `/readyz` follows the configured agents' gRPC health (cached); `/healthz` stays liveness.

use crate::{collector::Collector, support::problem, traces::spawn_pair};

#[tokio::test]
async fn readiness_follows_the_agent() {
    let collector = Collector::start().await;
    let (mut agent, bridge) = spawn_pair(&collector, &["--readiness-cache", "50ms"]).await;
    let http = reqwest::Client::new();

    let ready = http
        .get(format!("{}/readyz", bridge.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    assert!(agent.stop().await);
    // The cached answer expires after 50ms; the next probes see the agent gone.
    let deadline = tokio::time::Instant::now() + crate::support::PATIENCE;
    let unready = loop {
        let response = http
            .get(format!("{}/readyz", bridge.url()))
            .send()
            .await
            .unwrap();
        if response.status() != 200 {
            break response;
        }
        assert!(tokio::time::Instant::now() < deadline, "/readyz stayed 200");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let (status, body) = problem(unready).await;
    assert_eq!(status, 503);
    assert_eq!(body["type"], "urn:agent-bridge:problem:agent-not-ready");
    assert!(
        body["detail"].as_str().unwrap().contains("\"assistant\""),
        "{body}"
    );

    let live = http
        .get(format!("{}/healthz", bridge.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200, "liveness does not depend on agents");
}
