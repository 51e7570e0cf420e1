//! Hostile and faulty conditions found when the bridge was attacked from outside: slow
//! clients holding connections, a killed agent, a bad configuration, a malformed path.

use futures_util::StreamExt as _;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

use crate::support::{
    PATIENCE, collect_events, eventually, next, problem,
    process::{self, binary},
    spawn_assistant, spawn_bridge, sse_events,
};

#[tokio::test]
async fn slow_clients_cannot_hold_the_bridge_and_are_refused_fast_beyond_the_cap() {
    let agent = crate::support::spawn_agent().await;
    let bridge = spawn_bridge(
        &[("assistant", &agent.url)],
        &["--max-connections", "20", "--header-timeout", "1s"],
    )
    .await;
    let addr = bridge.url("").trim_start_matches("http://").to_owned();
    // Slowloris: connections that start a request and never finish its headers.
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(stream);
    }
    // Beyond the cap, a new request is answered at once with a problem, not left hanging.
    let refused = tokio::time::timeout(PATIENCE, raw_get(&addr, "/healthz"))
        .await
        .expect("an answer, not a hang");
    assert!(
        refused.starts_with("HTTP/1.1 503"),
        "beyond the cap: {refused}"
    );
    assert!(refused.contains("application/problem+json"), "{refused}");
    assert!(
        refused.contains("urn:agent-bridge:problem:overloaded"),
        "{refused}"
    );

    // The header timeout closes the slow connections; normal requests are served again
    // while the attacker still holds its sockets open.
    eventually("a normal request is served", || async {
        raw_get(&addr, "/healthz").await.starts_with("HTTP/1.1 200")
    })
    .await;
    let mut closed = 0;
    for stream in &mut slow {
        let mut buf = [0u8; 512];
        if let Ok(Ok(n)) = tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await {
            // hyper answers 408 or closes; either way the slot is free.
            closed += usize::from(n == 0 || buf.starts_with(b"HTTP/1.1"));
        }
    }
    assert_eq!(closed, slow.len(), "every slow connection was closed");
}

/// The first bytes of a connection choose how it is served (HTTP/1 directly, or hyper's
/// builder that reads HTTP/2's preface): HTTP/2 with prior knowledge (h2c, as proxies such
/// as Envoy speak it upstream) streams a run, and an HTTP/1 request whose first byte arrives
/// alone (`P` could begin the preface) is served as HTTP/1.
#[tokio::test]
async fn http2_with_prior_knowledge_and_a_request_sent_in_pieces_are_both_served() {
    let (_agent, bridge) = spawn_assistant(&[]).await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = h2
        .post(bridge.url("/v1/agents/assistant/chat"))
        .header("accept", "text/event-stream")
        .json(&serde_json::json!({ "message": "hello" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let names: Vec<String> = collect_events(response)
        .await
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(
        names.first().map(String::as_str),
        Some("run_started"),
        "{names:?}"
    );
    assert_eq!(
        names.last().map(String::as_str),
        Some("run_completed"),
        "{names:?}"
    );

    let addr = bridge.url("").trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let body = r#"{"message":"hello"}"#;
    stream.set_nodelay(true).unwrap();
    stream.write_all(b"P").await.unwrap();
    // Not a wait for readiness: nothing outside the bridge tells when its accept loop has
    // peeked at the lone byte, so a pause makes that split likely; the request must be
    // served whether or not the rest arrives with it.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let rest = format!(
        "OST /v1/agents/assistant/chat HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(rest.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer))
        .await
        .expect("the run ends in time")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("event: run_completed"), "{answer}");
}

/// One `GET` over a fresh connection; the raw answer (empty if the connection closed).
async fn raw_get(addr: &str, path: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return String::new();
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn an_agent_killed_mid_run_ends_the_stream_unavailable() {
    let mut agent = process::spawn(
        "agent-stub",
        &["--listen".into(), "127.0.0.1:0".into()],
        &[],
        &[],
    )
    .await;
    let bridge = spawn_bridge(&[("assistant", &agent.url())], &[]).await;
    let response = bridge.chat_stream("assistant", "stub: hang-after=2").await;
    assert_eq!(response.status(), 200);
    let mut events = Box::pin(sse_events(response));
    // The run is under way (its first events arrived) when the agent process dies.
    assert_eq!(next(&mut events).await.unwrap().event, "run_started");
    next(&mut events).await.unwrap();
    agent.kill().await;
    let rest: Vec<_> = tokio::time::timeout(PATIENCE, events.collect::<Vec<_>>())
        .await
        .expect("the stream ends");
    let last = rest.last().expect("a final event");
    assert_eq!(last.event, "run_error", "{rest:?}");
    assert_eq!(
        last.data["code"], "UNAVAILABLE",
        "a lost agent is retryable: {}",
        last.data
    );
    assert_eq!(rest.len(), 1, "nothing after the final event: {rest:?}");
    assert_eq!(last.data["agent"], "bridge");
}

#[tokio::test]
async fn a_bad_configuration_exits_without_claiming_to_listen() {
    let output = tokio::process::Command::new(binary("bridge"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--agent",
            "a=http://127.0.0.1:1",
            "--allow-anonymous",
            "--stream-buffer",
            "0",
        ])
        .env_remove("RUST_BACKTRACE")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stdout.contains("listening on"), "{stdout}");
    assert!(
        stderr.contains("--stream-buffer"),
        "the error names the setting: {stderr}"
    );
}

#[tokio::test]
async fn a_path_that_is_not_utf8_gets_a_problem_document() {
    let agent = crate::support::spawn_agent().await;
    let bridge = spawn_bridge(&[("assistant", &agent.url)], &[]).await;
    let response = bridge
        .get("/v1/agents/assistant/threads/%ff%fe/events")
        .await;
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let (status, body) = problem(response).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["type"], "urn:agent-bridge:problem:malformed-request");
}
