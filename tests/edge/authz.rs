//! Authorization: scopes decide the agents; the identity reaches the agent, which scopes
//! threads by it; the bridge authenticates itself to the agent.

use agent_bridge_proto::v1::{ListThreadsRequest, agent_client::AgentClient};
use serde_json::json;

use crate::{
    fixtures::{ISSUER, Secrets, chat_body, claims, hs256, refused},
    support::{spawn_agent, spawn_agent_with, spawn_bridge_strict},
};

#[tokio::test]
async fn scopes_decide_which_agents_may_be_called() {
    let agent = spawn_agent().await;
    let secrets = Secrets::new();
    let flags = secrets.auth_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let bridge =
        spawn_bridge_strict(&[("assistant", &agent.url), ("admin", &agent.url)], &flags).await;
    let mut scoped = claims("carol");
    scoped["scope"] = json!("read agent:assistant");
    let token = hs256(&scoped);
    let call = |agent: &str| {
        bridge
            .http
            .post(bridge.url(&format!("/v1/agents/{agent}/chat")))
            .bearer_auth(&token)
            .json(&chat_body("hi"))
            .send()
    };
    assert_eq!(call("assistant").await.unwrap().status(), 200);
    let body = refused(call("admin").await.unwrap(), 403, "forbidden").await;
    assert!(
        body["detail"].as_str().unwrap().contains("agent:admin"),
        "{body}"
    );

    let mut none = claims("dave");
    none.as_object_mut().unwrap().remove("scope");
    let unscoped = bridge
        .http
        .post(bridge.url("/v1/agents/assistant/chat"))
        .bearer_auth(hs256(&none))
        .json(&chat_body("hi"))
        .send()
        .await
        .unwrap();
    refused(unscoped, 403, "forbidden").await;
    // Tickets are only issued for agents the caller may call.
    let ticket = bridge
        .http
        .post(bridge.url("/v1/tickets"))
        .bearer_auth(&token)
        .json(&json!({ "agent": "admin", "thread_id": "t1" }))
        .send()
        .await
        .unwrap();
    refused(ticket, 403, "forbidden").await;
    assert_eq!(agent.stats.runs_started(), 1);
}

#[tokio::test]
async fn the_agent_sees_the_caller_and_the_bridge_credential() {
    let agent = spawn_agent_with(agent_stub::Config {
        require_token: Some("agent-credential-42".into()),
        ..Default::default()
    })
    .await;
    let secrets = Secrets::new();
    let mut flags = secrets.auth_flags();
    flags.extend(["--agent-token-file".into(), secrets.path("agent-token")]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let bridge = spawn_bridge_strict(&[("assistant", &agent.url)], &flags).await;

    let response = bridge
        .http
        .post(bridge.url("/v1/agents/assistant/chat"))
        .bearer_auth(hs256(&claims("alice")))
        .json(&json!({ "message": "hi", "thread_id": "alice-thread" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

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
    let other_tenant = client
        .list_threads(list("jwt", "globex", "alice"))
        .await
        .unwrap()
        .into_inner();
    assert!(other_tenant.threads.is_empty());
    let other_user = client
        .list_threads(list("jwt", "acme", "mallory"))
        .await
        .unwrap()
        .into_inner();
    assert!(other_user.threads.is_empty());
    let other_kind = client
        .list_threads(list("api-key", "acme", "alice"))
        .await
        .unwrap()
        .into_inner();
    assert!(other_kind.threads.is_empty());

    // Without the bridge's credential the agent refuses.
    let no_token = client
        .list_threads(tonic::Request::new(ListThreadsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(no_token.code(), tonic::Code::Unauthenticated);
    let bare_flags = secrets.auth_flags();
    let bare_flags: Vec<&str> = bare_flags.iter().map(String::as_str).collect();
    let bare = spawn_bridge_strict(&[("assistant", &agent.url)], &bare_flags).await;
    let refused_upstream = bare
        .http
        .post(bare.url("/v1/agents/assistant/chat"))
        .bearer_auth(hs256(&claims("alice")))
        .json(&chat_body("hi"))
        .send()
        .await
        .unwrap();
    let body = refused(refused_upstream, 401, "upstream-error").await;
    assert_eq!(body["code"], "UNAUTHENTICATED");
}

#[tokio::test]
async fn another_users_thread_cannot_be_read_through_the_bridge() {
    let agent = spawn_agent().await;
    let secrets = Secrets::new();
    let flags = secrets.auth_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let bridge = spawn_bridge_strict(&[("assistant", &agent.url)], &flags).await;
    let alice = hs256(&claims("alice"));
    let mut globex = claims("alice");
    globex["tenant"] = json!("globex");
    let strangers = [hs256(&claims("mallory")), hs256(&globex)];

    // alice runs a message on her thread and reads it back.
    let events = bridge.url("/v1/agents/assistant/threads/shared-name/events?last_event_id=0");
    let messages = bridge.url("/v1/agents/assistant/threads/shared-name/messages");
    let mut own = Box::pin(crate::support::sse_events(
        bridge
            .http
            .get(&events)
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap(),
    ));
    let posted = bridge
        .http
        .post(&messages)
        .bearer_auth(&alice)
        .json(&json!({ "message": "alice's secret plan" }))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 202);
    loop {
        let event = crate::support::next(&mut own).await.unwrap();
        if event.event == "run_completed" {
            break;
        }
    }

    // Same thread id, another user or another tenant: an empty thread of their own.
    for token in &strangers {
        let history = bridge
            .http
            .get(&messages)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        refused(history, 404, "upstream-error").await;
        let replay = bridge
            .http
            .get(&events)
            .bearer_auth(token)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(replay.status(), 200);
        // Their own (empty) log: a message of theirs is the first thing they see.
        let mut theirs = Box::pin(crate::support::sse_events(replay));
        let posted = bridge
            .http
            .post(&messages)
            .bearer_auth(token)
            .json(&json!({ "message": "hello" }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            posted.status(),
            202,
            "alice's active run is not theirs either"
        );
        let first = crate::support::next(&mut theirs).await.unwrap();
        assert_eq!(first.event, "run_started");
        assert!(
            first.id.ends_with("-1"),
            "their log starts at 1: {}",
            first.id
        );
        loop {
            let event = crate::support::next(&mut theirs).await.unwrap();
            assert!(!event.data.to_string().contains("secret plan"), "{event:?}");
            if event.event == "run_completed" {
                break;
            }
        }
    }
}
