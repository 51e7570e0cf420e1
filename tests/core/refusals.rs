//! Requests refused before any stream opens: precise problem+json documents.

use crate::support::{problem, send, spawn_assistant};

/// Sends `request` and reads the refusal it must get.
async fn problem_of(request: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    problem(send(request).await).await
}

#[tokio::test]
async fn refusals_are_problem_documents() {
    let (agent, bridge) = spawn_assistant(&["--max-body-bytes", "1024"]).await;
    let chat = bridge.url("/v1/agents/assistant/chat");
    // One refused chat: its status and problem document.
    let post = |url: String, content_type: &'static str, body: Vec<u8>| {
        problem_of(
            bridge
                .http
                .post(url)
                .header("content-type", content_type)
                .header("accept", "text/event-stream")
                .body(body),
        )
    };

    let (status, body) = post(
        bridge.url("/v1/agents/nobody/chat"),
        "application/json",
        br#"{"message":"hi"}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["type"], "urn:agent-bridge:problem:unknown-agent");
    assert!(body["detail"].as_str().unwrap().contains("nobody"));

    let (status, body) = post(chat.clone(), "application/json", b"{\"message\":".to_vec()).await;
    assert_eq!(status, 400);
    assert_eq!(body["type"], "urn:agent-bridge:problem:malformed-body");

    let (status, body) = post(chat.clone(), "text/plain", br#"{"message":"hi"}"#.to_vec()).await;
    assert_eq!(status, 415);
    assert_eq!(
        body["type"],
        "urn:agent-bridge:problem:unsupported-media-type"
    );

    let big = serde_json::to_vec(&serde_json::json!({ "message": "x".repeat(4096) })).unwrap();
    let (status, body) = post(chat.clone(), "application/json", big).await;
    assert_eq!(status, 413);
    assert!(body["detail"].as_str().unwrap().contains("1024"));

    let (status, body) = post(
        chat.clone(),
        "application/json",
        br#"{"message":"hi","surprise":1}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        body["detail"].as_str().unwrap().contains("surprise"),
        "{body}"
    );

    let (status, _) = post(
        chat.clone(),
        "application/json",
        br#"{"message":"hi","thread_id":"a\nb"}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 422);

    let (status, _) = post(
        chat.clone(),
        "application/json",
        br#"{"message":""}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 422);

    let (status, _) = problem_of(bridge.http.get(chat.clone())).await;
    assert_eq!(status, 405);
    let (status, _) = problem(bridge.get("/nowhere").await).await;
    assert_eq!(status, 404);

    // None of this reached the agent.
    assert_eq!(agent.stats.runs_started(), 0);
}
