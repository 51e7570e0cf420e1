//! `/metrics` after a known workload: counts and label values, exactly.

use std::collections::BTreeMap;

use serde_json::json;

use crate::support::{
    Client, collect_events, eventually_some, next, problem, spawn_agent, spawn_assistant,
    spawn_bridge, sse_events,
};

/// The samples of a scrape of `server`'s `/metrics`, by `name{labels}` as written.
async fn scrape(server: &Client) -> BTreeMap<String, f64> {
    let response = server.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = response.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

/// Scrapes until `done` holds: a stream's gauge drops just after its last byte is sent.
async fn scrape_until(
    server: &Client,
    done: impl Fn(&BTreeMap<String, f64>) -> bool,
) -> BTreeMap<String, f64> {
    eventually_some("the scrape shows the expected samples", || async {
        Some(scrape(server).await).filter(|samples| done(samples))
    })
    .await
}

fn get(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no {series} in {samples:#?}"))
}

#[tokio::test]
async fn metrics_count_a_known_workload() {
    let (_agent, bridge) = spawn_assistant(&[]).await;

    // Two completed runs, one per transport.
    let streamed = collect_events(bridge.chat_stream("assistant", "hello").await).await;
    assert_eq!(streamed.last().unwrap().event, "run_completed");
    let deltas = streamed.iter().filter(|e| e.event == "text_delta").count() as f64;
    let answered = bridge
        .chat_json("assistant", json!({ "message": "hello" }))
        .await;
    assert_eq!(answered.status(), 200);
    // One failing before its first event, one after two events.
    let (status, _) = problem(
        bridge
            .chat_json(
                "assistant",
                json!({ "message": "stub: fail-before code=INTERNAL" }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 502);
    let failed = collect_events(
        bridge
            .chat_stream("assistant", "stub: fail-after=2 code=UNAVAILABLE")
            .await,
    )
    .await;
    let kinds: Vec<&str> = failed.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds, ["run_started", "thought", "run_error"]);

    // And one still open.
    let mut open = sse_events(bridge.chat_stream("assistant", "stub: hang").await);
    assert_eq!(next(&mut open).await.unwrap().event, "run_started");

    let open_sse = "bridge_open_streams{agent=\"assistant\",transport=\"sse\"}";
    let open_json = "bridge_open_streams{agent=\"assistant\",transport=\"json\"}";
    let s = scrape_until(&bridge, |s| {
        s.get(open_sse) == Some(&1.0) && s.get(open_json) == Some(&0.0)
    })
    .await;

    // The assistant's sample of `series` whose other label is `label="value"`.
    let of_assistant = |series: &str, label: &str, value: &str| {
        get(
            &s,
            &format!("{series}{{agent=\"assistant\",{label}=\"{value}\"}}"),
        )
    };
    let forwarded = |kind: &str| of_assistant("bridge_events_forwarded_total", "type", kind);
    assert_eq!(forwarded("run_started"), 4.0);
    assert_eq!(forwarded("thought"), 5.0);
    assert_eq!(forwarded("tool_call"), 2.0);
    assert_eq!(forwarded("tool_result"), 2.0);
    assert_eq!(forwarded("text_delta"), 2.0 * deltas);
    assert_eq!(forwarded("message"), 2.0);
    assert_eq!(forwarded("run_completed"), 2.0);
    assert_eq!(forwarded("run_error"), 1.0);
    let forwarded_series = s
        .keys()
        .filter(|k| k.starts_with("bridge_events_forwarded_total"))
        .count();
    assert_eq!(forwarded_series, 8, "{s:#?}");

    let errors = |code: &str| of_assistant("bridge_upstream_errors_total", "code", code);
    assert_eq!(errors("INTERNAL"), 1.0);
    assert_eq!(errors("UNAVAILABLE"), 1.0);
    assert_eq!(
        s.keys()
            .filter(|k| k.starts_with("bridge_upstream_errors_total"))
            .count(),
        2
    );

    assert_eq!(
        get(
            &s,
            "bridge_time_to_first_event_seconds_count{agent=\"assistant\"}"
        ),
        4.0,
        "every run that started, not the one refused"
    );
    assert_eq!(
        get(
            &s,
            "bridge_stream_duration_seconds_count{agent=\"assistant\"}"
        ),
        3.0,
        "the ended streams and answers; the open one is not counted yet"
    );
    assert_eq!(get(&s, "bridge_drain_in_progress"), 0.0);

    // The client leaves: the stream closes.
    drop(open);
    let s = scrape_until(&bridge, |s| s.get(open_sse) == Some(&0.0)).await;
    assert_eq!(
        get(
            &s,
            "bridge_stream_duration_seconds_count{agent=\"assistant\"}"
        ),
        4.0
    );
}

#[tokio::test]
async fn the_agent_stub_exports_its_counters() {
    use crate::support::process;
    let agent = process::spawn(
        "agent-stub",
        &[
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--metrics-listen".into(),
            "127.0.0.1:0".into(),
            "--pace".into(),
            "0s".into(),
        ],
        &[],
        &["metrics listening on http://"],
    )
    .await;
    let bridge = spawn_bridge(&[("assistant", &agent.url())], &[]).await;
    let streamed = collect_events(bridge.chat_stream("assistant", "hello").await).await;
    let mut cancelled = sse_events(bridge.chat_stream("assistant", "stub: hang").await);
    assert_eq!(next(&mut cancelled).await.unwrap().event, "run_started");
    drop(cancelled);

    let stub_metrics = Client::new(&format!("http://{}", agent.extra[0]));
    let s = scrape_until(&stub_metrics, |s| {
        s.get("agent_stub_cancellations_total") == Some(&1.0)
    })
    .await;
    assert_eq!(get(&s, "agent_stub_runs_started_total"), 2.0);
    assert_eq!(
        get(&s, "agent_stub_events_sent_total"),
        streamed.len() as f64 + 1.0
    );
}

#[tokio::test]
async fn metrics_count_refusals_hub_operations_and_subscriptions() {
    const KEY: &str = "svc-key-0123456789abcdef";
    let agent = spawn_agent().await;
    let keys =
        std::env::temp_dir().join(format!("agent-bridge-metrics-keys-{}", std::process::id()));
    std::fs::write(&keys, format!("svc:{KEY}\n")).unwrap();
    let bridge = crate::support::spawn_bridge_strict(
        &[("assistant", &agent.url)],
        &["--api-keys-file", keys.to_str().unwrap()],
    )
    .await;
    let service = Client::with_headers(&bridge.base, &[("x-api-key", KEY)]);

    // Refused twice: no credentials, then a wrong key.
    let refused = bridge.post_message("assistant", "t1", "hi").await;
    assert_eq!(problem(refused).await.0, 401);
    let impostor = Client::with_headers(&bridge.base, &[("x-api-key", "not-the-key-0123456789")]);
    let refused = impostor.post_message("assistant", "t1", "hi").await;
    assert_eq!(problem(refused).await.0, 401);

    let subscription = service.events("assistant", "t1", None).await;
    assert_eq!(subscription.status(), 200);
    let mut events = sse_events(subscription);
    let posted = service.post_message("assistant", "t1", "hi").await;
    assert_eq!(posted.status(), 202);
    let mut n = 0;
    loop {
        let event = next(&mut events).await.unwrap();
        n += 1;
        if event.event == "run_completed" {
            break;
        }
    }

    let s = scrape_until(&bridge, |s| {
        s.get("bridge_hub_operation_seconds_count{backend=\"memory\",op=\"end_run\"}") == Some(&1.0)
    })
    .await;
    assert_eq!(
        get(&s, "bridge_refusals_total{type=\"unauthenticated\"}"),
        2.0
    );
    assert_eq!(
        get(&s, "bridge_auth_failures_total{reason=\"missing\"}"),
        1.0
    );
    assert_eq!(
        get(&s, "bridge_auth_failures_total{reason=\"bad_api_key\"}"),
        1.0
    );
    assert_eq!(
        get(
            &s,
            "bridge_hub_operation_seconds_count{backend=\"memory\",op=\"append\"}"
        ),
        n as f64
    );
    assert_eq!(
        get(
            &s,
            "bridge_hub_operation_seconds_count{backend=\"memory\",op=\"subscribe\"}"
        ),
        1.0
    );
    assert_eq!(
        get(
            &s,
            "bridge_open_streams{agent=\"assistant\",transport=\"sse\"}"
        ),
        1.0,
        "the subscription is open"
    );
    drop(events);
    scrape_until(&bridge, |s| {
        s.get("bridge_open_streams{agent=\"assistant\",transport=\"sse\"}") == Some(&0.0)
    })
    .await;
}

#[tokio::test]
async fn metrics_and_probes_live_on_the_admin_listener_and_start_at_zero() {
    use crate::support::process;
    let agent = spawn_agent().await;
    let flags = [
        "--allow-anonymous",
        "--admin-listen",
        "127.0.0.1:0",
        "--readiness-cache",
        "50ms",
    ];
    let also = ["admin listening on http://"];
    let bridge = process::spawn_bridge(&agent.url, &flags, &[], &also).await;
    let admin = Client::new(&format!("http://{}", bridge.extra[0]));
    let public = Client::new(&bridge.url());

    // Before any stream, the scaling gauge is there, at zero, for every transport: an
    // autoscaler on it sees an idle pod as idle.
    let s = scrape_until(&admin, |s| {
        s.get("bridge_agent_serving{agent=\"assistant\"}") == Some(&1.0)
    })
    .await;
    let open: BTreeMap<&str, f64> = s
        .iter()
        .filter(|(k, _)| k.starts_with("bridge_open_streams{"))
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        open,
        BTreeMap::from([
            (
                "bridge_open_streams{agent=\"assistant\",transport=\"json\"}",
                0.0
            ),
            (
                "bridge_open_streams{agent=\"assistant\",transport=\"sse\"}",
                0.0
            ),
            (
                "bridge_open_streams{agent=\"assistant\",transport=\"websocket\"}",
                0.0
            ),
        ])
    );

    // Probes answer on both listeners; the scrape only on the admin one, and the API only
    // on the main one.
    for listener in [&admin, &public] {
        for probe in ["/healthz", "/readyz"] {
            let response = listener.get(probe).await;
            assert_eq!(response.status(), 200, "{}{probe}", listener.base);
        }
    }
    let (status, body) = problem(public.get("/metrics").await).await;
    assert_eq!(status, 404);
    assert_eq!(body["type"], "urn:agent-bridge:problem:not-found");
    assert_eq!(problem(admin.agents().await).await.0, 404);

    // A run through the main listener is counted on the admin one.
    let streamed = collect_events(public.chat_stream("assistant", "hello").await).await;
    assert_eq!(streamed.last().unwrap().event, "run_completed");
    let s = scrape_until(&admin, |s| {
        s.get("bridge_stream_duration_seconds_count{agent=\"assistant\"}") == Some(&1.0)
    })
    .await;
    assert_eq!(
        get(
            &s,
            "bridge_open_streams{agent=\"assistant\",transport=\"sse\"}"
        ),
        0.0
    );
}
