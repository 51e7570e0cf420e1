//! Credentials never reach the logs, even at debug level: the bridge runs as a process and
//! everything it writes is searched for the secrets the test sent it.

use serde_json::{Value, json};

use crate::support::{Client, collect_events, process, send};

const KEY: &str = "log-test-api-key-0123456789";
const BEARER: &str = "eyJhbGciOiJIUzI1NiJ9.bG9nLXRlc3Q.c2lnbmF0dXJlLXNlY3JldA";
const COOKIE: &str = "cookie-secret-0123456789";

#[tokio::test]
async fn credentials_never_reach_the_logs() {
    let keys = std::env::temp_dir().join(format!("agent-bridge-log-keys-{}", std::process::id()));
    std::fs::write(&keys, format!("svc:{KEY}\n")).unwrap();
    let debug = [("RUST_LOG".to_owned(), "debug".to_owned())];
    let agent = process::spawn_agent_stub(&debug).await;
    let flags = [
        "--api-keys-file",
        keys.to_str().unwrap(),
        "--log-format",
        "json",
    ];
    let mut bridge = process::spawn_bridge(&agent.url(), &flags, &debug, &[]).await;
    let base = bridge.url();
    let caller = |headers: &[(&str, &str)]| Client::with_headers(&base, headers);
    let service = caller(&[("x-api-key", KEY)]);
    let body = json!({ "message": "hello" });

    // Accepted: an API key.
    let ok = service.chat_stream("assistant", "hello").await;
    assert_eq!(
        collect_events(ok).await.last().unwrap().event,
        "run_completed"
    );
    // Refused: a bearer token, a cookie, a long-lived key in the query string.
    let bearer = format!("Bearer {BEARER}");
    let refused = caller(&[("authorization", &bearer)])
        .chat_json("assistant", body.clone())
        .await;
    assert_eq!(refused.status(), 401);
    let cookie = format!("bridge_token={COOKIE}");
    let refused = caller(&[("cookie", &cookie)])
        .chat_json("assistant", body.clone())
        .await;
    assert_eq!(refused.status(), 401);
    let anonymous = caller(&[]);
    let in_query = format!("/v1/agents/assistant/chat?api_key={KEY}");
    let refused = send(anonymous.http.post(anonymous.url(&in_query)).json(&body)).await;
    assert_eq!(refused.status(), 401);
    // A stream ticket, used once and then replayed.
    let issued: Value = service
        .issue_ticket("assistant", "t1")
        .await
        .json()
        .await
        .unwrap();
    let ticket = issued["ticket"].as_str().expect("a ticket").to_owned();
    let stream = format!(
        "{}?message=hi&ticket={ticket}",
        issued["stream_path"].as_str().unwrap()
    );
    let used = anonymous.get(&stream).await;
    assert_eq!(used.status(), 200);
    collect_events(used).await;

    assert!(bridge.stop().await);
    let logs = bridge.output();
    assert!(
        logs.contains("\"level\":\"DEBUG\""),
        "debug logs were captured: {logs}"
    );
    for secret in [KEY, BEARER, COOKIE, ticket.as_str()] {
        assert!(!logs.contains(secret), "a credential reached the logs");
    }
}
