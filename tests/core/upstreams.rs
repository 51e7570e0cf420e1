//! An agent with several endpoints: calls spread across them, not pinned to one.

use serde_json::json;

use crate::support::{spawn_agent, spawn_bridge};

#[tokio::test]
async fn calls_spread_across_an_agents_endpoints() {
    let a = spawn_agent().await;
    let b = spawn_agent().await;
    let bridge = spawn_bridge(&[("assistant", &a.url), ("assistant", &b.url)], &[]).await;
    for i in 0..30 {
        let response = bridge
            .chat_json("assistant", json!({ "message": format!("run {i}") }))
            .await;
        assert_eq!(response.status(), 200);
    }
    let (on_a, on_b) = (a.stats.runs_started(), b.stats.runs_started());
    assert_eq!(on_a + on_b, 30);
    assert!(
        on_a > 0 && on_b > 0,
        "pinned to one endpoint: {on_a} / {on_b}"
    );
}

#[tokio::test]
async fn a_dns_agent_is_reached_through_what_its_name_resolves_to() {
    let agent = spawn_agent().await;
    // `localhost` stands for a headless Service's name: the bridge resolves it and keeps one
    // connection per address it finds.
    let url = format!("dns://localhost:{}", agent.addr.port());
    let bridge = spawn_bridge(&[("assistant", &url)], &[]).await;
    let response = bridge
        .chat_json("assistant", json!({ "message": "hi" }))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(agent.stats.runs_started(), 1);
}
