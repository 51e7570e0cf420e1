//! What leaves the edge: hidden event kinds and redacted fields.

use serde_json::json;

use crate::{
    fixtures::{Guarded, claims, hs256},
    support::{collect_events, send},
};

#[tokio::test]
async fn hidden_kinds_never_arrive_and_ids_keep_the_agents_numbers() {
    let edge = Guarded::start(&[
        "--hide-events",
        "assistant=thought,tool_result",
        "--redact-field",
        "path",
    ])
    .await;
    let bridge = &edge.bridge;
    let request = bridge
        .http
        .post(bridge.url("/v1/agents/assistant/chat"))
        .bearer_auth(hs256(&claims("alice")))
        .header("accept", "text/event-stream")
        .json(&json!({ "message": "hi" }));
    let response = send(request).await;
    assert_eq!(response.status(), 200);
    let events = collect_events(response).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert!(
        !kinds.contains(&"thought") && !kinds.contains(&"tool_result"),
        "{kinds:?}"
    );
    assert_eq!(kinds.first(), Some(&"run_started"));
    assert_eq!(kinds.last(), Some(&"run_completed"));

    // Ids are the agent's sequence numbers: increasing, with gaps where events were hidden.
    let ids: Vec<u64> = events.iter().map(|e| e.id.parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(ids[..2], [1, 3], "thought #2 hidden");
    for e in &events {
        assert_eq!(e.data["sequence"].as_u64().unwrap().to_string(), e.id);
    }

    let call = events.iter().find(|e| e.event == "tool_call").unwrap();
    assert_eq!(call.data["arguments"]["path"], "[redacted]");
    assert_eq!(call.data["tool_name"], "read_file");
}
