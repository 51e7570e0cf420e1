//! Authorization: scopes decide the agents; the identity reaches the agent, which scopes
//! threads by it; the bridge authenticates itself to the agent.

use agent_bridge_proto::v1::{ListThreadsRequest, agent_client::AgentClient};
use serde_json::json;

use crate::{
    fixtures::{Guarded, ISSUER, chat_body, claims, hs256, refused},
    support::{next, send, spawn_agent, spawn_agent_with, spawn_bridge_strict, sse_events},
};

#[tokio::test]
async fn scopes_decide_which_agents_may_be_called() {
    let edge = Guarded::start_with(spawn_agent().await, &["assistant", "admin"], |_| vec![]).await;
    let bridge = &edge.bridge;
    let mut scoped = claims("carol");
    scoped["scope"] = json!("read agent:assistant");
    let token = hs256(&scoped);
    let bearer = Some(("authorization", format!("Bearer {token}")));
    let bearer = bearer.as_ref().map(|(name, value)| (*name, value.as_str()));
    assert_eq!(edge.chat("assistant", bearer).await.status(), 200);
    let body = refused(edge.chat("admin", bearer).await, 403, "forbidden").await;
    assert!(
        body["detail"].as_str().unwrap().contains("agent:admin"),
        "{body}"
    );

    let mut none = claims("dave");
    none.as_object_mut().unwrap().remove("scope");
    refused(edge.chat_as(&hs256(&none)).await, 403, "forbidden").await;
    // Tickets are only issued for agents the caller may call.
    let ticket = bridge
        .http
        .post(bridge.url("/v1/tickets"))
        .bearer_auth(&token)
        .json(&json!({ "agent": "admin", "thread_id": "t1" }));
    refused(send(ticket).await, 403, "forbidden").await;
    assert_eq!(edge.agent.stats.runs_started(), 1);
}

#[tokio::test]
async fn the_agent_sees_the_caller_and_the_bridge_credential() {
    let agent = spawn_agent_with(agent_stub::Config {
        require_token: Some("agent-credential-42".into()),
        ..Default::default()
    })
    .await;
    let edge = Guarded::start_with(agent, &["assistant"], |secrets| {
        vec!["--agent-token-file".into(), secrets.path("agent-token")]
    })
    .await;
    let (bridge, agent) = (&edge.bridge, &edge.agent);

    let response = bridge
        .http
        .post(bridge.url("/v1/agents/assistant/chat"))
        .bearer_auth(hs256(&claims("alice")))
        .json(&json!({ "message": "hi", "thread_id": "alice-thread" }));
    assert_eq!(send(response).await.status(), 200);

    // Ask the agent directly, as each owner: only alice of acme, by a JWT of the configured
    // issuer, sees the thread.
    let mut client = AgentClient::connect(agent.url.clone()).await.unwrap();
    let list = |kind: &str, tenant: &str, subject: &str| {
        let mut request = tonic::Request::new(ListThreadsRequest::default());
        let md = request.metadata_mut();
        md.insert("x-identity-kind", kind.parse().unwrap());
        md.insert("x-issuer", ISSUER.parse().unwrap());
        md.insert("x-tenant", tenant.parse().unwrap());
        md.insert("x-subject", subject.parse().unwrap());
        md.insert(
            "authorization",
            "Bearer agent-credential-42".parse().unwrap(),
        );
        request
    };
    let mine = client
        .list_threads(list("jwt", "acme", "alice"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mine.threads.len(), 1);
    assert_eq!(mine.threads[0].thread_id, "alice-thread");
    // Another tenant, another user, another kind of credential.
    for (kind, tenant, subject) in [
        ("jwt", "globex", "alice"),
        ("jwt", "acme", "mallory"),
        ("api-key", "acme", "alice"),
    ] {
        let theirs = client
            .list_threads(list(kind, tenant, subject))
            .await
            .unwrap()
            .into_inner();
        assert!(theirs.threads.is_empty(), "{kind} {tenant} {subject}");
    }

    // Without the bridge's credential the agent refuses.
    let no_token = client
        .list_threads(tonic::Request::new(ListThreadsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(no_token.code(), tonic::Code::Unauthenticated);
    let bare_flags = edge.secrets.auth_flags();
    let bare_flags: Vec<&str> = bare_flags.iter().map(String::as_str).collect();
    let bare = spawn_bridge_strict(&[("assistant", &agent.url)], &bare_flags).await;
    let refused_upstream = bare
        .http
        .post(bare.url("/v1/agents/assistant/chat"))
        .bearer_auth(hs256(&claims("alice")))
        .json(&chat_body("hi"));
    let body = refused(send(refused_upstream).await, 401, "upstream-error").await;
    assert_eq!(body["code"], "UNAUTHENTICATED");
}

#[tokio::test]
async fn another_users_thread_cannot_be_read_through_the_bridge() {
    let edge = Guarded::start(&[]).await;
    let bridge = &edge.bridge;
    let alice = hs256(&claims("alice"));
    let mut globex = claims("alice");
    globex["tenant"] = json!("globex");
    let strangers = [hs256(&claims("mallory")), hs256(&globex)];

    // alice runs a message on her thread and reads it back.
    let events = bridge.url("/v1/agents/assistant/threads/shared-name/events?last_event_id=0");
    let messages = bridge.url("/v1/agents/assistant/threads/shared-name/messages");
    let follow = |token: &str| {
        let request = bridge.http.get(&events).bearer_auth(token);
        send(request.header("accept", "text/event-stream"))
    };
    let post = |token: &str, message: &str| {
        let body = json!({ "message": message });
        send(bridge.http.post(&messages).bearer_auth(token).json(&body))
    };
    let mut own = Box::pin(sse_events(follow(&alice).await));
    assert_eq!(post(&alice, "alice's secret plan").await.status(), 202);
    while next(&mut own).await.unwrap().event != "run_completed" {}

    // Same thread id, another user or another tenant: an empty thread of their own.
    for token in &strangers {
        let history = send(bridge.http.get(&messages).bearer_auth(token)).await;
        refused(history, 404, "upstream-error").await;
        let replay = follow(token).await;
        assert_eq!(replay.status(), 200);
        // Their own (empty) log: a message of theirs is the first thing they see.
        let mut theirs = Box::pin(sse_events(replay));
        assert_eq!(
            post(token, "hello").await.status(),
            202,
            "alice's active run is not theirs either"
        );
        let first = next(&mut theirs).await.unwrap();
        assert_eq!(first.event, "run_started");
        assert!(
            first.id.ends_with("-1"),
            "their log starts at 1: {}",
            first.id
        );
        loop {
            let event = next(&mut theirs).await.unwrap();
            assert!(!event.data.to_string().contains("secret plan"), "{event:?}");
            if event.event == "run_completed" {
                break;
            }
        }
    }
}
