//! Agent failures: before the first event they are HTTP errors, after it `run_error` events.

use crate::support::{collect_events, problem, spawn_assistant, spawn_bridge};

#[tokio::test]
async fn failures_before_the_first_event_map_to_http_statuses() {
    let (_agent, bridge) = spawn_assistant(&[]).await;
    for (code, status) in [
        ("UNAVAILABLE", 503),
        ("DEADLINE_EXCEEDED", 504),
        ("INVALID_ARGUMENT", 400),
        ("NOT_FOUND", 404),
        ("PERMISSION_DENIED", 403),
        ("UNAUTHENTICATED", 401),
        ("RESOURCE_EXHAUSTED", 429),
        ("INTERNAL", 502),
        ("UNKNOWN", 502),
    ] {
        let response = bridge
            .chat_stream("assistant", &format!("stub: fail-before code={code}"))
            .await;
        let (got, body) = problem(response).await;
        assert_eq!(got, status, "{code}: {body}");
        assert_eq!(body["code"], code, "{body}");
        assert_eq!(body["type"], "urn:agent-bridge:problem:upstream-error");
    }
}

#[tokio::test]
async fn an_unreachable_agent_is_503_without_internals() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let bridge = spawn_bridge(&[("assistant", &url)], &[]).await;
    let (status, body) = problem(bridge.chat_stream("assistant", "hi").await).await;
    assert_eq!(status, 503);
    assert_eq!(body["code"], "UNAVAILABLE");
    let text = body.to_string();
    assert!(
        !text.contains(&port.to_string()) && !text.contains("127.0.0.1"),
        "leaks the address: {text}"
    );
}

#[tokio::test]
async fn failure_after_the_first_event_ends_the_stream_with_run_error() {
    let (_agent, bridge) = spawn_assistant(&[]).await;

    let response = bridge
        .chat_stream("assistant", "stub: fail-after=3 code=INTERNAL")
        .await;
    assert_eq!(response.status(), 200);
    let events = collect_events(response).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds, ["run_started", "thought", "tool_call", "run_error"]);
    let error = &events[3];
    assert_eq!(error.id, "4", "the bridge continues the run's sequence");
    assert_eq!(error.data["code"], "INTERNAL");
    assert_eq!(error.data["run_id"], events[0].data["run_id"]);
    assert!(!error.data["message"].as_str().unwrap().is_empty());
    assert!(
        error.retry.is_none(),
        "a failed run is not a reason to reconnect"
    );

    // An agent that reports its own error in band is passed through as is.
    let events = collect_events(
        bridge
            .chat_stream(
                "assistant",
                "stub: error-event-after=2 code=RESOURCE_EXHAUSTED",
            )
            .await,
    )
    .await;
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds, ["run_started", "thought", "run_error"]);
    assert_eq!(events[2].data["code"], "RESOURCE_EXHAUSTED");
    assert_eq!(events[2].id, "3");
}

#[tokio::test]
async fn a_failed_run_is_a_problem_in_the_json_answer() {
    let (_agent, bridge) = spawn_assistant(&[]).await;
    let response = bridge
        .chat_json(
            "assistant",
            serde_json::json!({ "message": "stub: fail-after=2 code=UNAVAILABLE" }),
        )
        .await;
    let (status, body) = problem(response).await;
    assert_eq!(status, 503);
    assert_eq!(body["code"], "UNAVAILABLE");
    assert!(body["run_id"].as_str().is_some_and(|id| !id.is_empty()));
}

#[tokio::test]
async fn a_silent_agent_times_out_before_and_after_the_first_event() {
    let (agent, bridge) =
        spawn_assistant(&["--first-event-timeout", "300ms", "--idle-timeout", "300ms"]).await;

    let (status, body) = problem(
        bridge
            .chat_stream("assistant", "stub: silent-before=10s")
            .await,
    )
    .await;
    assert_eq!(status, 504);
    assert_eq!(body["code"], "DEADLINE_EXCEEDED");

    let events = collect_events(bridge.chat_stream("assistant", "stub: hang-after=2").await).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds, ["run_started", "thought", "run_error"]);
    assert_eq!(events[2].data["code"], "DEADLINE_EXCEEDED");
    // Both abandoned calls were cancelled at the agent.
    tokio::time::timeout(
        crate::support::PATIENCE,
        agent.stats.wait_for_cancellations(2),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_run_longer_than_the_limit_is_ended() {
    let (_agent, bridge) = spawn_assistant(&["--max-run-duration", "500ms"]).await;
    let events = collect_events(bridge.chat_stream("assistant", "stub: hang-after=1").await).await;
    let last = events.last().unwrap();
    assert_eq!(last.event, "run_error");
    assert_eq!(last.data["code"], "DEADLINE_EXCEEDED");
}
