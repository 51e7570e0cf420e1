//! The authentication cases an outside attack found open (issue 11, items 1-5), one test
//! each: claims a configured check must not skip, tickets replayed on another replica or
//! another route, identities of different credential kinds meeting, scheme case.

use serde_json::{Value, json};

use crate::{
    fixtures::{
        API_KEY, AUDIENCE, Guarded, ISSUER, JwksServer, claims, es256, hs256, jwk, refused,
    },
    support::{
        Bridge, collect_events, next,
        redis::{RedisCluster, RedisServer},
        send, spawn_bridge_strict, sse_events,
    },
    tickets::issue,
};

fn strs(flags: &[String]) -> Vec<&str> {
    flags.iter().map(String::as_str).collect()
}

/// `claims("alice")` changed by `edit`.
fn claims_with(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut claims = claims("alice");
    edit(claims.as_object_mut().unwrap());
    claims
}

type Sign = fn(&Value) -> String;

/// With `--jwt-issuer` and `--jwt-audience`, `iss` and `aud` are required and must be a
/// string (`aud`: or an array of strings); HS256 and JWKS alike.
#[tokio::test]
async fn configured_issuer_and_audience_are_required_claims() {
    let guarded = Guarded::start(&[]).await;
    let (agent, hs) = (&guarded.agent, &guarded.bridge);
    let jwks = JwksServer::start(vec![jwk("a")]).await;
    let es = spawn_bridge_strict(
        &[("assistant", &agent.url)],
        &[
            "--jwks-url",
            &jwks.url,
            "--jwt-issuer",
            ISSUER,
            "--jwt-audience",
            AUDIENCE,
        ],
    )
    .await;
    let signers: [(&str, &Bridge, Sign); 2] = [
        ("HS256", hs, hs256),
        ("ES256", &es, |c| es256(c, "a", "key-a")),
    ];

    for (alg, bridge, sign) in signers {
        let call = |token: String| {
            bridge
                .http
                .get(bridge.url("/v1/agents"))
                .bearer_auth(token)
                .send()
        };
        assert_eq!(call(sign(&claims("alice"))).await.unwrap().status(), 200);
        let audiences = claims_with(|c| {
            c.insert("aud".into(), json!(["someone-else", AUDIENCE]));
        });
        assert_eq!(call(sign(&audiences)).await.unwrap().status(), 200, "{alg}");

        let cases = [
            ("no iss", claims_with(|c| drop(c.remove("iss")))),
            ("no aud", claims_with(|c| drop(c.remove("aud")))),
            (
                "numeric iss",
                claims_with(|c| drop(c.insert("iss".into(), json!(42)))),
            ),
            (
                "iss array",
                claims_with(|c| drop(c.insert("iss".into(), json!([ISSUER])))),
            ),
            (
                "numeric aud",
                claims_with(|c| drop(c.insert("aud".into(), json!(7)))),
            ),
            (
                "aud of numbers",
                claims_with(|c| drop(c.insert("aud".into(), json!([1, 2])))),
            ),
            (
                "aud object",
                claims_with(|c| drop(c.insert("aud".into(), json!({ "a": AUDIENCE })))),
            ),
        ];
        for (case, claims) in cases {
            let response = call(sign(&claims)).await.unwrap();
            assert_eq!(response.status(), 401, "{alg} {case}");
            refused(response, 401, "unauthenticated").await;
        }
    }
}

/// Two replicas sharing a Redis hub and a ticket key: a ticket opens one stream in total.
#[tokio::test]
async fn a_ticket_is_single_use_across_replicas() {
    let redis = RedisServer::start().await;
    single_use_across_replicas(&redis.url()).await;
}

/// The same on a Redis Cluster hub.
#[tokio::test]
async fn a_ticket_is_single_use_across_replicas_on_a_cluster() {
    let cluster = RedisCluster::start().await;
    single_use_across_replicas(&cluster.url()).await;
}

async fn single_use_across_replicas(hub: &str) {
    let first = Guarded::start(&["--hub", hub]).await;
    let mut flags = first.secrets.auth_flags();
    flags.extend(["--hub".into(), hub.into()]);
    let a = &first.bridge;
    let b = spawn_bridge_strict(&[("assistant", &first.agent.url)], &strs(&flags)).await;

    let ticket = issue(a, "t1").await;
    let stream = |bridge: &Bridge| {
        bridge
            .http
            .get(bridge.url(&format!(
                "/v1/agents/assistant/threads/t1/stream?message=hi&ticket={ticket}"
            )))
            .send()
    };
    let first = stream(&b).await.unwrap();
    assert_eq!(first.status(), 200);
    let events = collect_events(first).await;
    assert_eq!(events.last().unwrap().event, "run_completed");

    for replica in [a, &b] {
        let body = refused(stream(replica).await.unwrap(), 401, "ticket-refused").await;
        assert_eq!(
            body["detail"],
            "the ticket was already used; request a new one"
        );
    }
}

/// A ticket opens only the stream endpoints of its agent and thread; presented anywhere else
/// it is refused and stays usable.
#[tokio::test]
async fn a_ticket_elsewhere_is_refused_and_not_used_up() {
    let edge = Guarded::start(&[]).await;
    let bridge = &edge.bridge;
    let ticket = issue(bridge, "t1").await;
    let get = |path: &str| {
        bridge
            .http
            .get(bridge.url(&format!("{path}?message=hi&ticket={ticket}")))
            .send()
    };

    for (path, detail) in [
        ("/v1/agents", "stream tickets open only"),
        ("/v1/agents/assistant/threads", "stream tickets open only"),
        (
            "/v1/agents/assistant/threads/t1/messages",
            "stream tickets open only",
        ),
        (
            "/v1/agents/assistant/threads/t2/stream",
            "another agent or thread",
        ),
    ] {
        let body = refused(get(path).await.unwrap(), 401, "ticket-refused").await;
        assert!(
            body["detail"].as_str().unwrap().contains(detail),
            "{path}: {body}"
        );
    }

    let opened = get("/v1/agents/assistant/threads/t1/stream").await.unwrap();
    assert_eq!(
        opened.status(),
        200,
        "the refusals did not use the ticket up"
    );
    // The thread's other stream endpoints take a ticket too (the WebSocket here).
    let ticket = issue(bridge, "t1").await;
    let ws = bridge.url(&format!(
        "/v1/agents/assistant/threads/t1/ws?ticket={ticket}"
    ));
    let opened = tokio_tungstenite::connect_async(ws.replace("http://", "ws://")).await;
    assert!(opened.is_ok(), "{:?}", opened.err());

    let metrics = reqwest::get(bridge.url("/metrics")).await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains("bridge_auth_failures_total{reason=\"ticket_wrong_route\"} 3"),
        "{metrics}"
    );
}

/// RFC 9110 11.1: the authentication scheme is case-insensitive.
#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let edge = Guarded::start(&[]).await;
    let bridge = &edge.bridge;
    let token = hs256(&claims("alice"));
    let list_agents = |authorization: String| {
        let request = bridge.http.get(bridge.url("/v1/agents"));
        send(request.header("authorization", authorization))
    };
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let response = list_agents(format!("{scheme} {token}")).await;
        assert_eq!(response.status(), 200, "{scheme}");
    }
    let basic = list_agents(format!("Basic {token}")).await;
    refused(basic, 401, "unauthenticated").await;
}

/// A JWT whose `sub` and `tenant` spell an API key's name is another caller: it neither
/// reads the key's thread log nor its history at the agent.
#[tokio::test]
async fn a_jwt_never_reads_the_threads_of_an_api_key_of_the_same_name() {
    let edge = Guarded::start(&[]).await;
    let bridge = &edge.bridge;
    let impostor = hs256(&claims_with(|c| {
        c.insert("sub".into(), json!("billing"));
        c.insert("tenant".into(), json!("billing"));
    }));
    let thread = bridge.url("/v1/agents/assistant/threads/ledger");
    let as_key = |r: reqwest::RequestBuilder| r.header("x-api-key", API_KEY);
    let as_jwt = |r: reqwest::RequestBuilder| r.bearer_auth(&impostor);

    // The API key `billing` runs on thread `ledger`, to the end.
    let mut key_events = Box::pin(sse_events(
        as_key(bridge.http.get(format!("{thread}/events")))
            .send()
            .await
            .unwrap(),
    ));
    let posted = as_key(bridge.http.post(format!("{thread}/messages")))
        .json(&json!({ "message": "the books" }))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 202, "{:?}", posted.text().await);
    loop {
        let event = next(&mut key_events).await.expect("the key's run");
        if event.event == "run_completed" {
            break;
        }
    }

    // The JWT sees none of it: no thread at the agent, no history, no log.
    let threads = as_jwt(bridge.http.get(bridge.url("/v1/agents/assistant/threads")));
    let threads: Value = threads.send().await.unwrap().json().await.unwrap();
    assert_eq!(threads["threads"], json!([]), "{threads}");
    let history = as_jwt(bridge.http.get(format!("{thread}/messages")))
        .send()
        .await
        .unwrap();
    refused(history, 404, "upstream-error").await;

    // From the beginning of "its" log, the first event it reads is from its own run.
    let mut jwt_events = Box::pin(sse_events(
        as_jwt(bridge.http.get(format!("{thread}/events")))
            .header("last-event-id", "0")
            .send()
            .await
            .unwrap(),
    ));
    let post = as_jwt(bridge.http.post(format!("{thread}/messages")));
    let posted = post
        .json(&json!({ "message": "mine" }))
        .send()
        .await
        .unwrap();
    let posted: Value = posted.json().await.unwrap();
    let first = next(&mut jwt_events).await.expect("its own run");
    assert_eq!(first.event, "run_started");
    assert_eq!(first.data["run_id"], posted["run_id"], "{posted}");
}
