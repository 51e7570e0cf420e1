//! The dialects' routes seen from outside without a client SDK: refusals before a stream
//! (problem documents; JSON-RPC errors for A2A protocol mistakes), the wire details clients
//! rely on (headers, `[DONE]`, AG-UI's `id:` lines and resume), 204 when there is nothing to
//! resume, a client that leaves cancelling the agent, and the dialect label on the metrics.

use futures_util::StreamExt as _;
use serde_json::{Value, json};

use crate::{
    clients::{Setup, setup},
    support::{PATIENCE, collect_events, next, problem, send, sse_events},
};

impl Setup {
    /// `POST {path}` with the caller's token and `body`.
    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        let request = self.bridge.http.post(self.bridge.url(path));
        send(request.bearer_auth(&self.token).json(&body)).await
    }

    /// `POST {path}` with the caller's token and `body`, which the route must accept (200): a
    /// dialect's stream, or an A2A JSON-RPC answer.
    async fn accepted(&self, path: &str, body: Value) -> reqwest::Response {
        let response = self.post(path, body).await;
        assert_eq!(response.status(), 200, "{path}");
        response
    }

    /// The AI SDK transport's request for `text` in chat `chat`: its accepted stream.
    async fn ai_sdk_stream(&self, chat: &str, text: &str) -> reqwest::Response {
        let body = ai_sdk_body(chat, text);
        self.accepted("/v1/agents/assistant/ai-sdk/chat", body)
            .await
    }

    /// `GET {path}` with the caller's token, and `last_event_id` if given.
    async fn get(&self, path: &str, last_event_id: Option<&str>) -> reqwest::Response {
        let mut request = self.bridge.http.get(self.bridge.url(path));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        send(request.bearer_auth(&self.token)).await
    }
}

fn ai_sdk_body(chat: &str, text: &str) -> Value {
    json!({
        "id": chat,
        "trigger": "submit-message",
        "messages": [{ "id": "u1", "role": "user", "parts": [{ "type": "text", "text": text }] }],
    })
}

fn ag_ui_body(thread: &str, text: &str) -> Value {
    json!({
        "threadId": thread,
        "runId": "client-run-1",
        "messages": [{ "id": "u1", "role": "user", "content": text }],
        "tools": [],
        "context": [],
    })
}

fn a2a_body(method: &str, params: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": 7, "method": method, "params": params })
}

#[tokio::test]
async fn refusals_before_the_stream_are_problem_documents() {
    let s = setup().await;
    let routes: [(&str, Value); 5] = [
        ("/v1/agents/nobody/ai-sdk/chat", ai_sdk_body("c1", "hi")),
        ("/v1/agents/nobody/ag-ui", ag_ui_body("t1", "hi")),
        (
            "/v1/agents/nobody/a2a",
            a2a_body("SendStreamingMessage", json!({})),
        ),
        (
            "/v1/chat/completions",
            json!({ "model": "nobody", "messages": [{ "role": "user", "content": "hi" }] }),
        ),
        (
            "/v1/agents/nobody/chat/interactions",
            json!({ "message": "hi" }),
        ),
    ];
    for (path, body) in &routes {
        // No credentials: 401 whatever the dialect.
        let anonymous = send(s.bridge.http.post(s.bridge.url(path)).json(body)).await;
        assert_eq!(problem(anonymous).await.0, 401, "{path}");
        // An agent that is not configured: 404.
        let (status, doc) = problem(s.post(path, body.clone()).await).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(
            doc["type"], "urn:agent-bridge:problem:unknown-agent",
            "{path}"
        );
    }
    let card = s
        .get("/v1/agents/nobody/.well-known/agent-card.json", None)
        .await;
    assert_eq!(problem(card).await.0, 404);

    // A request without a user message to answer.
    for (path, body) in [
        (
            "/v1/agents/assistant/ai-sdk/chat",
            json!({ "id": "c1", "messages": [] }),
        ),
        ("/v1/agents/assistant/ag-ui", ag_ui_body("t1", "")),
        (
            "/v1/chat/completions",
            json!({ "model": "assistant", "messages": [{ "role": "system", "content": "be brief" }] }),
        ),
    ] {
        let (status, doc) = problem(s.post(path, body).await).await;
        assert_eq!(status, 422, "{path}: {doc}");
    }
    // A thread id the bridge cannot use.
    let bad = s
        .post(
            "/v1/agents/assistant/ai-sdk/chat",
            ai_sdk_body("no spaces", "hi"),
        )
        .await;
    assert_eq!(problem(bad).await.0, 422);
}

#[tokio::test]
async fn a2a_protocol_mistakes_are_json_rpc_errors() {
    let s = setup().await;
    let rpc = |body| async {
        let response = s.accepted("/v1/agents/assistant/a2a", body).await;
        response.json::<Value>().await.unwrap()
    };
    let answer = rpc(a2a_body("tasks/pushNotificationConfig/set", json!({}))).await;
    assert_eq!(answer["id"], 7);
    assert_eq!(answer["error"]["code"], -32601, "{answer}");
    let answer = rpc(a2a_body(
        "SendStreamingMessage",
        json!({ "message": { "parts": [] } }),
    ))
    .await;
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    let answer = rpc(a2a_body(
        "SubscribeToTask",
        json!({ "id": "t1:not-running" }),
    ))
    .await;
    assert_eq!(answer["error"]["code"], -32001, "{answer}");
    let answer = rpc(json!({ "jsonrpc": "1.0", "id": 1, "method": "SendStreamingMessage" })).await;
    assert_eq!(answer["error"]["code"], -32600, "{answer}");
}

#[tokio::test]
async fn ai_sdk_stream_headers_done_and_nothing_to_resume() {
    let s = setup().await;
    let response = s.ai_sdk_stream("chat-h", "hi").await;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("x-vercel-ai-ui-message-stream"), "v1");
    assert_eq!(header("content-type"), "text/event-stream");
    let body = tokio::time::timeout(PATIENCE, response.text())
        .await
        .unwrap()
        .unwrap();
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    let first = body
        .lines()
        .find(|l| l.starts_with("data: "))
        .unwrap()
        .trim_start_matches("data: ");
    let first: Value = serde_json::from_str(first).unwrap();
    assert_eq!(first["type"], "start");

    // Nothing to resume once the run is over, in either dialect.
    for path in [
        "/v1/agents/assistant/ai-sdk/chat/chat-h/stream",
        "/v1/agents/assistant/ag-ui/chat-h/stream",
    ] {
        assert_eq!(s.get(path, None).await.status(), 204, "{path}");
    }

    // The dialect is a label of the stream metrics.
    let metrics = s.bridge.get_text("/metrics").await;
    assert!(metrics.contains("transport=\"ai_sdk\""), "{metrics}");
}

#[tokio::test]
async fn ag_ui_frames_carry_ids_and_resume_after_the_last_one_seen() {
    let s = setup().await;
    let response = s
        .accepted(
            "/v1/agents/assistant/ag-ui",
            ag_ui_body("ag-thread", "stub: pace=30ms"),
        )
        .await;
    let mut original = Box::pin(sse_events(response));
    // Read up to the end of the tool call (event 3), as a client that is then cut off.
    let mut seen = Vec::new();
    loop {
        let frame = next(&mut original).await.expect("frame");
        let done = frame.id == "3";
        seen.push(frame);
        if done {
            break;
        }
    }
    let ids: Vec<&str> = seen.iter().map(|f| f.id.as_str()).collect();
    // Only an event's last frame names it (the rest repeat the previous id, as SSE keeps it).
    assert_eq!(seen[0].data["type"], "RUN_STARTED");
    assert_eq!(seen[0].id, "1");
    assert_eq!(seen.last().unwrap().data["type"], "TOOL_CALL_END");
    assert!(ids.contains(&"2"), "{ids:?}");

    let resumed = s
        .get("/v1/agents/assistant/ag-ui/ag-thread/stream", Some("3"))
        .await;
    assert_eq!(resumed.status(), 200);
    let resumed = collect_events(resumed).await;
    let rest: Vec<_> = tokio::time::timeout(PATIENCE, original.collect::<Vec<_>>())
        .await
        .unwrap();
    let types = |frames: &[crate::support::SseEvent]| -> Vec<Value> {
        frames.iter().map(|f| f.data["type"].clone()).collect()
    };
    // The resumed stream is the rest of the run: no event lost, none repeated.
    assert_eq!(types(&resumed), types(&rest));
    assert_eq!(resumed.first().unwrap().data["type"], "TOOL_CALL_RESULT");
    assert_eq!(resumed.last().unwrap().data["type"], "RUN_FINISHED");
    let text = |frames: &[crate::support::SseEvent]| -> String {
        frames
            .iter()
            .filter(|f| f.data["type"] == "TEXT_MESSAGE_CONTENT")
            .map(|f| f.data["delta"].as_str().unwrap())
            .collect()
    };
    assert_eq!(text(&resumed), text(&rest));
    assert!(!text(&rest).is_empty());
}

#[tokio::test]
async fn a_client_that_leaves_cancels_the_agent() {
    let s = setup().await;
    let response = s.ai_sdk_stream("chat-leaves", "stub: hang").await;
    let mut body = response.bytes_stream();
    next(&mut body).await.expect("first bytes").unwrap();
    drop(body);
    tokio::time::timeout(PATIENCE, s.agent.stats.wait_for_cancellations(1))
        .await
        .expect("the agent call was cancelled");
}
