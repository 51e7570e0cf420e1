//! Rate limits and admission, applied before a stream starts: 429 (503 when shedding) with
//! `Retry-After` and the `RateLimit` headers.

use serde_json::json;

use crate::{
    fixtures::{API_KEY, Guarded, chat_body, claims, hs256, refused},
    support::{next, send, spawn_agent, spawn_bridge_strict, sse_events},
};

#[tokio::test]
async fn the_request_budget_is_per_identity() {
    let edge = Guarded::start(&["--rate-limit-chat", "2/1h"]).await;
    let alice = hs256(&claims("alice"));

    let first = edge.chat_as(&alice).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["ratelimit-policy"], "\"chat\";q=2;w=3600");
    assert_eq!(first.headers()["ratelimit"], "\"chat\";r=1;t=0");
    assert_eq!(edge.chat_as(&alice).await.status(), 200);

    let third = edge.chat_as(&alice).await;
    let retry_after: u64 = third.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1, "{retry_after}");
    let state = third.headers()["ratelimit"].to_str().unwrap().to_owned();
    assert!(state.starts_with("\"chat\";r=0;t="), "{state}");
    let body = refused(third, 429, "rate-limited").await;
    assert_eq!(body["retry_after"], retry_after);

    // Another identity has its own budget; so does an API key.
    assert_eq!(edge.chat_as(&hs256(&claims("bob"))).await.status(), 200);
    let by_key = edge.chat("assistant", Some(("x-api-key", API_KEY))).await;
    assert_eq!(by_key.status(), 200);
    assert_eq!(edge.agent.stats.runs_started(), 4);
}

#[tokio::test]
async fn failed_authentications_are_budgeted_per_ip() {
    let edge = Guarded::start(&["--rate-limit-auth-failures", "2/1h"]).await;
    let guess = |key| edge.chat("assistant", Some(("x-api-key", key)));
    for key in ["guess-number-one-xxxx", "guess-number-two-xxxx"] {
        refused(guess(key).await, 401, "unauthenticated").await;
    }
    let third = guess("guess-number-three-xx").await;
    assert!(third.headers().contains_key("retry-after"));
    refused(third, 429, "rate-limited").await;
    // A caller with valid credentials from the same address is not locked out.
    assert_eq!(guess(API_KEY).await.status(), 200);
}

#[tokio::test]
async fn open_streams_are_capped_per_identity_and_per_process() {
    let edge = Guarded::start(&[
        "--max-streams-per-identity",
        "1",
        "--max-streams",
        "2",
        // The retry loop below must not run into the request budget.
        "--rate-limit-chat",
        "off",
    ])
    .await;
    let bridge = &edge.bridge;
    let open = |sub: &str| {
        let request = bridge.http.post(bridge.url("/v1/agents/assistant/chat"));
        send(
            request
                .bearer_auth(hs256(&claims(sub)))
                .header("accept", "text/event-stream")
                .json(&json!({ "message": "stub: hang" })),
        )
    };

    let held = open("alice").await;
    assert_eq!(held.status(), 200);
    let mut held = Box::pin(sse_events(held));
    assert_eq!(next(&mut held).await.unwrap().event, "run_started");

    let second = open("alice").await;
    assert!(second.headers().contains_key("retry-after"));
    refused(second, 429, "too-many-streams").await;

    let bob = open("bob").await;
    assert_eq!(bob.status(), 200);
    let shed = open("carol").await;
    assert!(shed.headers().contains_key("retry-after"));
    refused(shed, 503, "overloaded").await;

    // Closing a stream frees its slot (and the process's): as soon as the bridge has seen
    // the client leave, alice may open another.
    drop(held);
    let deadline = tokio::time::Instant::now() + crate::support::PATIENCE;
    loop {
        let retry = open("alice").await;
        if retry.status() == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "slot never freed");
        let (status, _) = crate::support::problem(retry).await;
        assert!(status == 429 || status == 503, "{status}");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn hostile_ids_are_refused_precisely() {
    let edge = Guarded::start(&[]).await;
    let bridge = &edge.bridge;
    let token = hs256(&claims("alice"));

    let get = |path: &str| send(bridge.http.get(bridge.url(path)).bearer_auth(&token));
    for thread in ["a%0Ab", "a%20b", "..%2F..%2Fetc", &"x".repeat(129)] {
        let path = format!("/v1/agents/assistant/threads/{thread}/stream?message=hi");
        refused(get(&path).await, 422, "invalid-request").await;
    }
    for thread in ["a\nb", "a\r\nevent: x", "", "é"] {
        let body = json!({ "agent": "assistant", "thread_id": thread });
        let request = bridge.http.post(bridge.url("/v1/tickets")).json(&body);
        refused(
            send(request.bearer_auth(&token)).await,
            422,
            "invalid-request",
        )
        .await;
    }
    let bearer = format!("Bearer {token}");
    let response = edge.chat("ev%0Ail", Some(("authorization", &bearer))).await;
    let body = refused(response, 404, "unknown-agent").await;
    assert!(!body["detail"].as_str().unwrap().contains('\n'), "{body}");
    let no_message = get("/v1/agents/assistant/threads/t1/stream").await;
    refused(no_message, 422, "invalid-request").await;
    assert_eq!(edge.agent.stats.runs_started(), 0);
}

#[tokio::test]
async fn anonymous_callers_are_keyed_by_ip_and_forwarded_for_only_from_trusted_proxies() {
    let agent = spawn_agent().await;
    let budget = ["--allow-anonymous", "--rate-limit-chat", "1/1h"];
    let behind_proxy = spawn_bridge_strict(
        &[("assistant", &agent.url)],
        &[&budget[..], &["--trusted-proxy", "127.0.0.0/8"]].concat(),
    )
    .await;
    let direct = spawn_bridge_strict(&[("assistant", &agent.url)], &budget).await;
    let call = |bridge: &crate::support::Bridge, client: &str| {
        let request = bridge.http.post(bridge.url("/v1/agents/assistant/chat"));
        let forwarded = format!("{client}, 127.0.0.2");
        send(
            request
                .header("x-forwarded-for", forwarded)
                .json(&chat_body("hi")),
        )
    };

    // Behind a trusted proxy, each forwarded client has its own budget.
    assert_eq!(call(&behind_proxy, "203.0.113.1").await.status(), 200);
    refused(
        call(&behind_proxy, "203.0.113.1").await,
        429,
        "rate-limited",
    )
    .await;
    assert_eq!(call(&behind_proxy, "203.0.113.2").await.status(), 200);

    // Without one, the header is ignored: a client cannot pick a fresh budget.
    assert_eq!(call(&direct, "203.0.113.1").await.status(), 200);
    refused(call(&direct, "203.0.113.2").await, 429, "rate-limited").await;
}
