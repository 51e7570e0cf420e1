//! Streams over time: client disconnects, heartbeats, slow clients, shutdown, probes.

use std::time::Duration;

use crate::support::{PATIENCE, eventually, next, spawn_assistant, sse_events};

#[tokio::test]
async fn a_client_disconnect_cancels_the_agent_call() {
    let (agent, bridge) = spawn_assistant(&[]).await;

    let response = bridge.chat_stream("assistant", "stub: hang").await;
    let mut events = Box::pin(sse_events(response));
    assert_eq!(next(&mut events).await.unwrap().event, "run_started");
    assert_eq!(agent.stats.cancellations(), 0);
    drop(events); // the client goes away mid-run

    tokio::time::timeout(PATIENCE, agent.stats.wait_for_cancellations(1))
        .await
        .expect("the agent saw the cancellation");
}

#[tokio::test]
async fn heartbeats_arrive_while_the_agent_is_silent() {
    let (_agent, bridge) = spawn_assistant(&["--heartbeat", "100ms"]).await;

    let response = bridge.chat_stream("assistant", "stub: hang").await;
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let mut heartbeats = 0;
    while heartbeats < 2 {
        let chunk = next(&mut body).await.expect("stream open").expect("chunk");
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        heartbeats = text.matches(": heartbeat\n\n").count();
    }
    assert!(text.contains("event: run_started\n"), "{text}");
    assert!(
        !text.contains("event: run_error"),
        "a silent agent is not an error: {text}"
    );
}

#[tokio::test]
async fn shutdown_ends_open_streams_with_a_final_event_within_the_drain_time() {
    let (agent, mut bridge) =
        spawn_assistant(&["--drain-timeout", "5s", "--retry-hint", "1500ms"]).await;

    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut events = Box::pin(sse_events(
            bridge.chat_stream("assistant", "stub: hang").await,
        ));
        assert_eq!(next(&mut events).await.unwrap().event, "run_started");
        streams.push(events);
    }

    let started = std::time::Instant::now();
    let shut = tokio::spawn({
        let token = bridge.shutdown.clone();
        let task = bridge.task.take().unwrap();
        async move {
            token.cancel();
            task.await
        }
    });
    for mut events in streams {
        let last = next(&mut events).await.expect("a final event");
        assert_eq!(last.event, "run_error");
        assert_eq!(last.data["code"], "UNAVAILABLE");
        assert_eq!(last.id, "2");
        assert_eq!(
            last.retry,
            Some(Duration::from_millis(1500)),
            "clients are told when to reconnect"
        );
        assert!(
            next(&mut events).await.is_none(),
            "the stream closes after the final event"
        );
    }
    tokio::time::timeout(Duration::from_secs(5), shut)
        .await
        .expect("the bridge exits within its drain time")
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    tokio::time::timeout(PATIENCE, agent.stats.wait_for_cancellations(3))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_client_that_never_reads_cannot_hold_the_drain_forever() {
    let (_agent, mut bridge) = spawn_assistant(&["--drain-timeout", "1s"]).await;
    // A huge burst the client never reads: the stream stays blocked on the socket.
    let _response = bridge
        .chat_stream("assistant", "stub: burst=1000000 size=1024")
        .await;
    tokio::time::timeout(PATIENCE, bridge.shut_down())
        .await
        .expect("drain is bounded")
        .unwrap();
}

#[tokio::test]
async fn a_slow_client_slows_the_agent_instead_of_growing_memory() {
    let (agent, bridge) = spawn_assistant(&["--stream-buffer", "16"]).await;
    const TOTAL: u64 = 200_000; // 200 MB of deltas if nothing pushed back
    let response = bridge
        .chat_stream("assistant", &format!("stub: burst={TOTAL} size=1024"))
        .await;
    assert_eq!(response.status(), 200);

    // The client reads nothing. Wait until the agent is blocked by flow control: its sent
    // count stops moving over a window (the sleep is that window, not a wait for an event).
    eventually("the agent stops producing", || async {
        let before = agent.stats.events_sent();
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = agent.stats.events_sent();
        now == before && now > 0
    })
    .await;
    // What is in flight is bounded by socket and HTTP/2 windows plus the bridge's buffer:
    // a few MB, not the 200 MB the agent wanted to send.
    let pulled = agent.stats.events_sent();
    assert!(
        pulled < TOTAL / 10,
        "{pulled} events were pulled for a client that reads nothing"
    );

    // And the client can still read the whole stream, in order, once it starts.
    let mut events = Box::pin(sse_events(response));
    let mut expected = 1u64;
    while let Some(e) = next(&mut events).await {
        assert_eq!(e.id, expected.to_string());
        expected += 1;
        if expected > 1000 {
            break;
        }
    }
    drop(events);
    tokio::time::timeout(PATIENCE, agent.stats.wait_for_cancellations(1))
        .await
        .unwrap();
}

#[tokio::test]
async fn probes_answer() {
    let (_agent, bridge) = spawn_assistant(&[]).await;
    let live = bridge.get("/healthz").await;
    assert_eq!(live.status(), 200);
    let ready = bridge.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<serde_json::Value>().await.unwrap()["status"],
        "ready"
    );
}

#[tokio::test]
async fn readiness_fails_while_draining_and_new_runs_are_refused() {
    let (_agent, mut bridge) =
        spawn_assistant(&["--shutdown-accept", "2s", "--drain-timeout", "2s"]).await;
    assert_eq!(bridge.get("/readyz").await.status(), 200);
    let mut events = Box::pin(sse_events(
        bridge.chat_stream("assistant", "stub: hang").await,
    ));
    assert_eq!(next(&mut events).await.unwrap().event, "run_started");

    let token = bridge.shutdown.clone();
    let task = bridge.task.take().unwrap();
    token.cancel();
    // The open stream is told at once...
    assert_eq!(next(&mut events).await.unwrap().data["code"], "UNAVAILABLE");
    // ...while the listener still answers, saying: not ready, go elsewhere.
    let ready = bridge.get("/readyz").await;
    let (status, body) = crate::support::problem(ready).await;
    assert_eq!(status, 503);
    assert_eq!(body["type"], "urn:agent-bridge:problem:shutting-down");
    let refused = bridge.chat_stream("assistant", "hello").await;
    assert_eq!(crate::support::problem(refused).await.0, 503);
    tokio::time::timeout(PATIENCE, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
