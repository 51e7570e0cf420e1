//! `/metrics` after a known workload: counts and label values, exactly.

use std::collections::BTreeMap;

use serde_json::json;

use crate::support::{
    PATIENCE, collect_events, next, problem, spawn_agent, spawn_bridge, sse_events,
};

/// The samples of a scrape, by `name{labels}` as written.
async fn scrape(http: &reqwest::Client, url: &str) -> BTreeMap<String, f64> {
    let response = http.get(url).send().await.unwrap();
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
    http: &reqwest::Client,
    url: &str,
    done: impl Fn(&BTreeMap<String, f64>) -> bool,
) -> BTreeMap<String, f64> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let samples = scrape(http, url).await;
        if done(&samples) {
            return samples;
        }
        assert!(tokio::time::Instant::now() < deadline, "{samples:#?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn get(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no {series} in {samples:#?}"))
}

#[tokio::test]
async fn metrics_count_a_known_workload() {
    let agent = spawn_agent().await;
    let bridge = spawn_bridge(&[("assistant", &agent.url)], &[]).await;
    let metrics = bridge.url("/metrics");

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

    let http = reqwest::Client::new();
    let open_sse = "bridge_open_streams{agent=\"assistant\",transport=\"sse\"}";
    let open_json = "bridge_open_streams{agent=\"assistant\",transport=\"json\"}";
    let s = scrape_until(&http, &metrics, |s| {
        s.get(open_sse) == Some(&1.0) && s.get(open_json) == Some(&0.0)
    })
    .await;

    let forwarded = |kind: &str| {
        get(
            &s,
            &format!("bridge_events_forwarded_total{{agent=\"assistant\",type=\"{kind}\"}}"),
        )
    };
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

    let errors = |code: &str| {
        get(
            &s,
            &format!("bridge_upstream_errors_total{{agent=\"assistant\",code=\"{code}\"}}"),
        )
    };
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
    let s = scrape_until(&http, &metrics, |s| s.get(open_sse) == Some(&0.0)).await;
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

    let http = reqwest::Client::new();
    let url = format!("http://{}/metrics", agent.extra[0]);
    let s = scrape_until(&http, &url, |s| {
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
    let http = reqwest::Client::new();
    let messages = bridge.url("/v1/agents/assistant/threads/t1/messages");

    // Refused twice: no credentials, then a wrong key.
    let refused = http
        .post(&messages)
        .json(&json!({ "message": "hi" }))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(refused).await.0, 401);
    let refused = http
        .post(&messages)
        .header("x-api-key", "not-the-key-0123456789")
        .json(&json!({ "message": "hi" }))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(refused).await.0, 401);

    let subscription = http
        .get(bridge.url("/v1/agents/assistant/threads/t1/events"))
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(subscription.status(), 200);
    let mut events = sse_events(subscription);
    let posted = http
        .post(&messages)
        .header("x-api-key", KEY)
        .json(&json!({ "message": "hi" }))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 202);
    let mut n = 0;
    loop {
        let event = next(&mut events).await.unwrap();
        n += 1;
        if event.event == "run_completed" {
            break;
        }
    }

    let s = scrape_until(&http, &bridge.url("/metrics"), |s| {
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
    scrape_until(&http, &bridge.url("/metrics"), |s| {
        s.get("bridge_open_streams{agent=\"assistant\",transport=\"sse\"}") == Some(&0.0)
    })
    .await;
}

#[tokio::test]
async fn metrics_and_probes_live_on_the_admin_listener_and_start_at_zero() {
    use crate::support::process;
    let agent = spawn_agent().await;
    let bridge = process::spawn(
        "bridge",
        &[
            "--allow-anonymous".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--admin-listen".into(),
            "127.0.0.1:0".into(),
            "--agent".into(),
            format!("assistant={}", agent.url),
            "--readiness-cache".into(),
            "50ms".into(),
        ],
        &[],
        &["admin listening on http://"],
    )
    .await;
    let http = reqwest::Client::new();
    let admin = format!("http://{}", bridge.extra[0]);

    // Before any stream, the scaling gauge is there, at zero, for every transport: an
    // autoscaler on it sees an idle pod as idle.
    let s = scrape_until(&http, &format!("{admin}/metrics"), |s| {
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
    for base in [admin.as_str(), &bridge.url()] {
        for probe in ["/healthz", "/readyz"] {
            let response = http.get(format!("{base}{probe}")).send().await.unwrap();
            assert_eq!(response.status(), 200, "{base}{probe}");
        }
    }
    let public = http
        .get(format!("{}/metrics", bridge.url()))
        .send()
        .await
        .unwrap();
    let (status, body) = problem(public).await;
    assert_eq!(status, 404);
    assert_eq!(body["type"], "urn:agent-bridge:problem:not-found");
    let api = http.get(format!("{admin}/v1/agents")).send().await.unwrap();
    assert_eq!(problem(api).await.0, 404);

    // A run through the main listener is counted on the admin one.
    let streamed = collect_events(
        http.post(format!("{}/v1/agents/assistant/chat", bridge.url()))
            .header("accept", "text/event-stream")
            .json(&json!({ "message": "hello" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(streamed.last().unwrap().event, "run_completed");
    let s = scrape_until(&http, &format!("{admin}/metrics"), |s| {
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
