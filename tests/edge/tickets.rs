//! Stream tickets for EventSource: issued to an authenticated caller, valid once, on GET,
//! for one agent and thread, for a short time.

use std::time::Duration;

use bridge::testing::{Origin, Secret, TicketClaims, Tickets};
use serde_json::{Value, json};

use crate::{
    fixtures::{Guarded, ISSUER, claims, hs256, now, refused},
    support::{Bridge, collect_events, send},
};

/// A ticket for alice on `assistant`'s `thread`, checked for its stream path and lifetime.
pub async fn issue(bridge: &Bridge, thread: &str) -> String {
    let response = bridge
        .http
        .post(bridge.url("/v1/tickets"))
        .bearer_auth(hs256(&claims("alice")))
        .json(&json!({ "agent": "assistant", "thread_id": thread }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["stream_path"],
        format!("/v1/agents/assistant/threads/{thread}/stream")
    );
    assert!(body["expires_at"].as_u64().unwrap() <= now() + 60);
    body["ticket"].as_str().unwrap().to_owned()
}

fn stream_url(bridge: &Bridge, thread: &str, ticket: &str) -> String {
    bridge.url(&format!(
        "/v1/agents/assistant/threads/{thread}/stream?message=hello%20there&ticket={ticket}"
    ))
}

#[tokio::test]
async fn a_ticket_opens_one_stream_for_its_thread_only() {
    let edge = Guarded::start(&[]).await;
    let bridge = &edge.bridge;

    // Issuing needs credentials.
    let anonymous = bridge.issue_ticket("assistant", "t1").await;
    refused(anonymous, 401, "unauthenticated").await;

    // The browser's EventSource: a GET with the ticket in the query, no headers.
    let ticket = issue(bridge, "t1").await;
    let response = bridge
        .http
        .get(stream_url(bridge, "t1", &ticket))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let events = collect_events(response).await;
    assert_eq!(events.first().unwrap().event, "run_started");
    assert_eq!(events.last().unwrap().event, "run_completed");
    assert_eq!(events[0].data["thread_id"], "t1");

    let open =
        |thread: &str, ticket: &str| send(bridge.http.get(stream_url(bridge, thread, ticket)));

    // Single use.
    let again = open("t1", &ticket).await;
    let body = refused(again, 401, "ticket-refused").await;
    assert!(
        body["detail"].as_str().unwrap().contains("already used"),
        "{body}"
    );

    // Bound to its thread.
    let ticket = issue(bridge, "t1").await;
    let elsewhere = open("t2", &ticket).await;
    refused(elsewhere, 401, "ticket-refused").await;

    // Never accepted on a POST.
    let ticket = issue(bridge, "t1").await;
    let on_post = bridge
        .http
        .post(bridge.url(&format!("/v1/agents/assistant/chat?ticket={ticket}")))
        .json(&json!({ "message": "hi", "thread_id": "t1" }))
        .send()
        .await
        .unwrap();
    let body = refused(on_post, 401, "ticket-refused").await;
    assert!(
        body["detail"].as_str().unwrap().contains("only on GET"),
        "{body}"
    );

    // Expired (signed with the bridge's ticket key, so only the expiry is wrong).
    let tickets = Tickets::new(
        Some(Secret::new("ticket-secret-for-tests")),
        Duration::from_secs(60),
    );
    let expired = tickets.mint(&TicketClaims {
        sub: "alice".into(),
        tenant: "acme".into(),
        origin: Origin::Jwt {
            issuer: ISSUER.into(),
        },
        scopes: vec!["agent:*".into()],
        agent: "assistant".into(),
        thread: "t1".into(),
        exp: now() - 1,
        jti: "expired-1".into(),
    });
    let late = open("t1", &expired).await;
    let body = refused(late, 401, "ticket-refused").await;
    assert!(
        body["detail"].as_str().unwrap().contains("expired"),
        "{body}"
    );

    // Forged (another key).
    let forged =
        Tickets::new(Some(Secret::new("guessed")), Duration::from_secs(60)).mint(&TicketClaims {
            exp: now() + 60,
            jti: "forged-1".into(),
            ..serde_json::from_value(json!({
                "sub": "alice", "tenant": "acme", "scopes": ["agent:*"],
                "origin": { "kind": "jwt", "issuer": ISSUER },
                "agent": "assistant", "thread": "t1", "exp": 0, "jti": ""
            }))
            .unwrap()
        });
    let forged = open("t1", &forged).await;
    refused(forged, 401, "ticket-refused").await;

    assert_eq!(edge.agent.stats.runs_started(), 1);
}
