//! One request followed across both hops: the bridge and the agent run as separate
//! processes and export to a real OTLP receiver.

use crate::{
    collector::{CLIENT, Collector, SERVER, Span},
    support::{Client, collect_events, process},
};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
/// Credentials a caller sends (an API key that authenticates it, and an unrelated cookie);
/// none may reach a span.
const SECRETS: [&str; 2] = ["s3cr3t-api-key-0123456789", "c00kie-session"];

/// An agent stub and a bridge in front of it, both exporting to `collector`.
pub async fn spawn_pair(
    collector: &Collector,
    bridge_flags: &[&str],
) -> (process::Process, process::Process) {
    let agent = process::spawn_agent_stub(&collector.env()).await;
    let flags = [
        &["--allow-anonymous", "--drain-timeout", "2s"],
        bridge_flags,
    ]
    .concat();
    let bridge = process::spawn_bridge(&agent.url(), &flags, &collector.env(), &[]).await;
    (agent, bridge)
}

fn find<'a>(spans: &'a [Span], service: &str, name: &str) -> Option<&'a Span> {
    spans
        .iter()
        .find(|s| s.service == service && s.name == name && s.trace_id == TRACE_ID)
}

#[tokio::test]
async fn one_trace_spans_bridge_and_agent() {
    let collector = Collector::start().await;
    let keys = std::env::temp_dir().join(format!("agent-bridge-otel-keys-{}", std::process::id()));
    std::fs::write(&keys, format!("svc:{}\n", SECRETS[0])).unwrap();
    let (mut agent, mut bridge) =
        spawn_pair(&collector, &["--api-keys-file", keys.to_str().unwrap()]).await;

    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let cookie = format!("session={}", SECRETS[1]);
    let caller = Client::with_headers(
        &bridge.url(),
        &[
            ("traceparent", &traceparent),
            ("x-api-key", SECRETS[0]),
            ("cookie", &cookie),
        ],
    );
    let response = caller.chat_stream("assistant", "hello").await;
    assert_eq!(response.status(), 200);
    let traceresponse = response
        .headers()
        .get("traceresponse")
        .expect("traceresponse header")
        .to_str()
        .unwrap()
        .to_owned();
    let events = collect_events(response).await;
    assert_eq!(events[0].event, "run_started");
    assert_eq!(events[0].data["trace_id"], TRACE_ID, "{:?}", events[0].data);
    assert_eq!(events.last().unwrap().event, "run_completed");
    assert!(
        events[1..].iter().all(|e| e.data.get("trace_id").is_none()),
        "only run_started carries the trace id"
    );

    let spans = collector
        .wait_for(|spans| {
            find(spans, "bridge", "POST /v1/agents/{agent}/chat").is_some()
                && find(spans, "bridge", "agent.v1.Agent/Chat").is_some()
                && find(spans, "agent-stub", "agent.v1.Agent/Chat").is_some()
                && find(spans, "agent-stub", "tool_call read_file").is_some()
                && find(spans, "agent-stub", "run_completed").is_some()
        })
        .await;
    let server = find(&spans, "bridge", "POST /v1/agents/{agent}/chat").unwrap();
    let client = find(&spans, "bridge", "agent.v1.Agent/Chat").unwrap();
    let run = find(&spans, "agent-stub", "agent.v1.Agent/Chat").unwrap();
    let tool_call = find(&spans, "agent-stub", "tool_call read_file").unwrap();

    assert_eq!(server.kind, SERVER);
    assert_eq!(
        server.parent_span_id, CALLER_SPAN,
        "continues the caller's trace"
    );
    assert_eq!(server.attributes["http.response.status_code"], "200");
    assert_eq!(client.kind, CLIENT);
    assert_eq!(client.parent_span_id, server.span_id);
    assert_eq!(client.attributes["rpc.grpc.status_code"], "0");
    assert_eq!(run.kind, SERVER);
    assert_eq!(
        run.parent_span_id, client.span_id,
        "the agent continues the bridge's call"
    );
    assert_eq!(
        run.attributes["run_id"],
        events[0].data["run_id"].as_str().unwrap()
    );
    assert_eq!(tool_call.parent_span_id, run.span_id);
    assert_eq!(tool_call.attributes["tool.name"], "read_file");
    assert_eq!(
        traceresponse,
        format!("00-{TRACE_ID}-{}-01", server.span_id),
        "traceresponse names the bridge's server span"
    );

    for span in &spans {
        for (key, value) in &span.attributes {
            let key = key.to_ascii_lowercase();
            assert!(
                !key.contains("authorization") && !key.contains("cookie"),
                "{span:?}"
            );
            for secret in SECRETS {
                assert!(!value.contains(secret), "secret in {key} of {span:?}");
            }
        }
    }

    assert!(bridge.stop().await, "bridge exits cleanly on SIGTERM");
    assert!(agent.stop().await, "agent exits cleanly on SIGTERM");
}

#[tokio::test]
async fn a_request_without_traceparent_starts_a_trace() {
    let collector = Collector::start().await;
    let (_agent, bridge) = spawn_pair(&collector, &[]).await;
    let response = Client::new(&bridge.url())
        .chat_json("assistant", serde_json::json!({ "message": "hello" }))
        .await;
    assert_eq!(response.status(), 200);
    let header = response.headers()["traceresponse"]
        .to_str()
        .unwrap()
        .to_owned();
    let parts: Vec<&str> = header.split('-').collect();
    assert_eq!(parts.len(), 4, "{header}");
    assert_eq!(parts[0], "00");
    let trace_id = parts[1].to_owned();
    assert_eq!(trace_id.len(), 32);
    assert_ne!(trace_id, "0".repeat(32));

    let spans = collector
        .wait_for(|spans| {
            ["agent-stub", "bridge"].iter().all(|service| {
                spans
                    .iter()
                    .any(|s| s.service == *service && s.trace_id == trace_id && s.kind == SERVER)
            })
        })
        .await;
    let server = spans
        .iter()
        .find(|s| s.service == "bridge" && s.kind == SERVER && s.trace_id == trace_id)
        .expect("the bridge's server span");
    assert_eq!(
        server.parent_span_id, "",
        "a new trace starts at the bridge"
    );
}

#[tokio::test]
async fn a_thread_subscriber_is_linked_to_the_run_it_receives() {
    const SUBSCRIBER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    let collector = Collector::start().await;
    let (_agent, bridge) = spawn_pair(&collector, &[]).await;
    let subscriber_parent = format!("00-{SUBSCRIBER_TRACE}-b7ad6b7169203331-01");
    let subscriber = Client::with_headers(&bridge.url(), &[("traceparent", &subscriber_parent)]);
    let subscription = subscriber.events("assistant", "t1", None).await;
    assert_eq!(subscription.status(), 200);
    let mut events = Box::pin(crate::support::sse_events(subscription));
    let caller_parent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let poster = Client::with_headers(&bridge.url(), &[("traceparent", &caller_parent)]);
    let posted = poster.post_message("assistant", "t1", "hello").await;
    assert_eq!(posted.status(), 202);
    let first = crate::support::next(&mut events).await.unwrap();
    assert_eq!(
        first.data["trace_id"], TRACE_ID,
        "the log keeps the run's trace id"
    );
    while crate::support::next(&mut events).await.unwrap().event != "run_completed" {}
    // The subscriber's request span ends (and is exported) when its stream does.
    drop(events);

    // The run is in the poster's trace; the delivery, in the subscriber's, links to it.
    let spans = collector
        .wait_for(|spans| {
            find(spans, "bridge", "agent.v1.Agent/Chat").is_some()
                && spans.iter().any(|d| {
                    d.name == "thread run delivered"
                        && spans.iter().any(|s| s.span_id == d.parent_span_id)
                })
        })
        .await;
    let client = find(&spans, "bridge", "agent.v1.Agent/Chat").unwrap();
    assert_eq!(client.kind, CLIENT);
    let delivered = spans
        .iter()
        .find(|s| s.name == "thread run delivered")
        .unwrap();
    assert_eq!(delivered.trace_id, SUBSCRIBER_TRACE);
    assert_eq!(
        delivered.links,
        vec![(TRACE_ID.to_owned(), client.span_id.clone())]
    );
    let subscriber_server = spans
        .iter()
        .find(|s| s.span_id == delivered.parent_span_id)
        .expect("the delivery's parent");
    assert_eq!(subscriber_server.kind, SERVER);
    assert_eq!(subscriber_server.trace_id, SUBSCRIBER_TRACE);
}
