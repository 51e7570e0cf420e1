//! Threads suite: post a message, fan the run out to subscribers, resume with
//! `Last-Event-ID`, history, WebSocket, seed 004's API. One behavioural suite runs against
//! both hubs (`memory` and a real `redis-server`); scale-out tests use two bridges on one
//! Redis, a killed bridge, a restarted Redis and a three-node Redis Cluster; the rolling-update
//! simulation runs the real binaries as processes and SIGTERMs one replica mid-run; on a
//! Redis Cluster, hundreds of threads share one reader connection per bucket, and a bucket
//! whose slot moves to another shard keeps its subscribers.

#[path = "../support/mod.rs"]
mod support;

mod behaviour;
mod cluster;
mod memory;
mod rolling;
mod scale_out;

use futures_util::{Stream, StreamExt as _};
use serde_json::Value;
use support::{PATIENCE, SseEvent, sse_events};

/// The default script's event kinds for `deltas` text deltas.
pub fn is_default_script(kinds: &[&str]) -> bool {
    let deltas = kinds.iter().filter(|k| **k == "text_delta").count();
    deltas > 0 && kinds == agent_stub::default_kinds(deltas).as_slice()
}

/// `GET .../threads/{thread}/events`, optionally resuming after `last_event_id`.
pub async fn subscribe(
    base: &str,
    agent: &str,
    thread: &str,
    last_event_id: Option<&str>,
) -> std::pin::Pin<Box<dyn Stream<Item = SseEvent> + Send>> {
    let mut request = reqwest::Client::new()
        .get(format!("{base}/v1/agents/{agent}/threads/{thread}/events"))
        .header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = request.send().await.expect("subscribe");
    assert_eq!(
        response.status(),
        200,
        "subscribe: {:?}",
        response.text().await
    );
    Box::pin(sse_events(response))
}

pub async fn post_message(
    base: &str,
    agent: &str,
    thread: &str,
    message: &str,
) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!(
            "{base}/v1/agents/{agent}/threads/{thread}/messages"
        ))
        .json(&serde_json::json!({ "message": message }))
        .send()
        .await
        .expect("post message")
}

/// Posts and expects 202; returns the run id.
pub async fn start_run(base: &str, agent: &str, thread: &str, message: &str) -> String {
    let response = post_message(base, agent, thread, message).await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    body["run_id"].as_str().unwrap().to_owned()
}

/// Reads events until one ends a run (or the stream ends).
pub async fn until_run_ends<S: Stream<Item = SseEvent> + Unpin>(events: &mut S) -> Vec<SseEvent> {
    let mut out = Vec::new();
    loop {
        let next = tokio::time::timeout(PATIENCE, events.next())
            .await
            .expect("next event in time");
        let Some(event) = next else { return out };
        let done = matches!(
            event.data["type"].as_str(),
            Some("run_completed" | "run_error")
        );
        out.push(event);
        if done {
            return out;
        }
    }
}

/// Reads exactly `n` events.
pub async fn take<S: Stream<Item = SseEvent> + Unpin>(events: &mut S, n: usize) -> Vec<SseEvent> {
    let mut out = Vec::new();
    while out.len() < n {
        let next = tokio::time::timeout(PATIENCE, events.next())
            .await
            .expect("next event in time");
        out.push(next.expect("stream still open"));
    }
    out
}

/// The position number of an event id `EPOCH-N`.
pub fn n_of(id: &str) -> u64 {
    id.rsplit_once('-')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or_else(|| panic!("not a position: {id}"))
}

pub fn kinds(events: &[SseEvent]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e.data["type"].as_str().unwrap())
        .collect()
}
