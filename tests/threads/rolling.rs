//! A rolling update on loopback, with the real binaries as separate processes: two bridge
//! replicas sharing a real `redis-server`, clients subscribed to a thread on the replica that
//! is replaced, and a run streaming on the other. SIGTERM (what Kubernetes sends after the
//! preStop sleep) must end every subscription with a `stream_error` carrying a `retry:`
//! hint; each client then reconnects to the surviving replica with `Last-Event-ID` and,
//! across both connections, sees exactly the run's events: none lost, none twice, in order.

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;

use crate::{
    start_run, subscribe,
    support::{PATIENCE, SseEvent, process, redis::RedisServer},
    until_run_ends,
};

/// The drain settings the chart renders by default (`helm/agent-bridge/values.yaml`:
/// `bridge.drainTimeout: 10s`, `bridge.retryHint: 2s`).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
const RETRY_HINT: Duration = Duration::from_secs(2);

const CLIENTS: usize = 5;
/// A run long enough to be cut mid-way: 200 deltas (plus run_started, message,
/// run_completed) 20 ms apart, about four seconds.
const RUN: &str = "stub: burst=200 size=16 pace=20ms";

async fn spawn_replica(agent: &str, hub: &str) -> process::Process {
    let drain = format!("{}s", DRAIN_TIMEOUT.as_secs());
    let retry = format!("{}s", RETRY_HINT.as_secs());
    let flags = [
        "--hub",
        hub,
        "--allow-anonymous",
        "--drain-timeout",
        &drain,
        "--retry-hint",
        &retry,
    ];
    process::spawn_bridge(agent, &flags, &[], &[]).await
}

fn is_stream_error(event: &SseEvent) -> bool {
    event.data["type"] == "stream_error"
}

#[tokio::test]
async fn a_rolling_update_loses_and_repeats_no_event() {
    let redis = RedisServer::start().await;
    let agent = process::spawn(
        "agent-stub",
        &["--listen".into(), "127.0.0.1:0".into()],
        &[],
        &[],
    )
    .await;
    let mut a = spawn_replica(&agent.url(), &redis.url()).await;
    let b = spawn_replica(&agent.url(), &redis.url()).await;

    // `Last-Event-ID: 0` reads the thread from its beginning, so no subscriber can miss the
    // run's first events however the subscription and the run race (the thread is new).
    let mut control = subscribe(&b.url(), "assistant", "rolling", Some("0")).await;
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(subscribe(&a.url(), "assistant", "rolling", Some("0")).await);
    }
    let run_id = start_run(&b.url(), "assistant", "rolling", RUN).await;

    // Every client is mid-run on A...
    let mut seen: Vec<Vec<SseEvent>> = Vec::new();
    for client in &mut clients {
        let mut first = Vec::new();
        while first.len() < 5 {
            let event = tokio::time::timeout(PATIENCE, client.next())
                .await
                .expect("an event in time")
                .expect("the subscription is open");
            assert!(!is_stream_error(&event), "{event:?}");
            first.push(event);
        }
        seen.push(first);
    }

    // ...when A is told to stop.
    a.terminate();
    let terminated = Instant::now();

    // Each client reads A to the end: the run's events, then the drain's stream_error with
    // a retry hint, then the connection closes.
    let mut readers = Vec::new();
    for (mut client, mut events) in clients.into_iter().zip(seen) {
        readers.push(tokio::spawn(async move {
            loop {
                let next = tokio::time::timeout(PATIENCE, client.next())
                    .await
                    .expect("A ends every subscription within the patience");
                let event =
                    next.expect("A's subscription ends with stream_error, not a bare close");
                if is_stream_error(&event) {
                    assert_eq!(event.data["code"], "UNAVAILABLE", "{event:?}");
                    assert_eq!(event.retry, Some(RETRY_HINT), "a reconnect hint: {event:?}");
                    assert!(
                        tokio::time::timeout(PATIENCE, client.next())
                            .await
                            .expect("A closes the subscription")
                            .is_none(),
                        "nothing follows stream_error"
                    );
                    return events;
                }
                assert!(
                    !matches!(
                        event.data["type"].as_str(),
                        Some("run_completed" | "run_error")
                    ),
                    "the run ended on A before the drain: make RUN longer ({event:?})"
                );
                events.push(event);
            }
        }));
    }
    let mut before_drain = Vec::new();
    for reader in readers {
        before_drain.push(reader.await.expect("client on A"));
    }

    // A exits by itself, successfully, within its drain time.
    let status = a
        .exit_within(DRAIN_TIMEOUT.saturating_sub(terminated.elapsed()))
        .await
        .unwrap_or_else(|| panic!("A still runs {DRAIN_TIMEOUT:?} after SIGTERM"));
    assert!(status.success(), "A exited with {status}");

    // Each client resumes on B after the last event it saw, as an EventSource does.
    let whole = until_run_ends(&mut control).await;
    assert_eq!(whole.last().unwrap().data["type"], "run_completed");
    assert_eq!(
        whole.len(),
        203,
        "run_started, 200 deltas, message, run_completed"
    );
    assert!(whole.iter().all(|e| e.data["run_id"] == run_id.as_str()));
    let expected: Vec<(&str, &serde_json::Value)> =
        whole.iter().map(|e| (e.id.as_str(), &e.data)).collect();
    for (i, mut events) in before_drain.into_iter().enumerate() {
        let last_event_id = events.last().unwrap().id.clone();
        let mut resumed = subscribe(&b.url(), "assistant", "rolling", Some(&last_event_id)).await;
        events.extend(until_run_ends(&mut resumed).await);
        let got: Vec<(&str, &serde_json::Value)> =
            events.iter().map(|e| (e.id.as_str(), &e.data)).collect();
        assert_eq!(
            got, expected,
            "client {i}: its events on A and then B are exactly the run's"
        );
    }
}
