//! The behaviour every hub must have: each test runs once per backend.

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::{
    is_default_script, kinds, n_of, post_message, start_run, subscribe,
    support::{
        Agent, Bridge, PATIENCE, SseEvent, next_frame, problem, redis::RedisServer, send,
        send_message_frame, spawn_agent, spawn_bridge, sse_events,
    },
    take, until_run_ends,
};

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Memory,
    Redis,
}

pub struct Setup {
    pub agent: Agent,
    pub bridge: Bridge,
    /// Kept alive for the test's duration.
    pub _redis: Option<RedisServer>,
}

pub async fn setup(backend: Backend, flags: &[&str]) -> Setup {
    let agent = spawn_agent().await;
    let redis = match backend {
        Backend::Memory => None,
        Backend::Redis => Some(RedisServer::start().await),
    };
    let mut all: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
    if let Some(redis) = &redis {
        all.extend(["--hub".into(), redis.url()]);
    }
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let bridge = spawn_bridge(&[("assistant", &agent.url)], &all).await;
    Setup {
        agent,
        bridge,
        _redis: redis,
    }
}

/// Declares `name::memory` and `name::redis` for a test body `name(Backend)`.
macro_rules! on_both_hubs {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn memory() {
                super::$name(super::Backend::Memory).await
            }
            #[tokio::test]
            async fn redis() {
                super::$name(super::Backend::Redis).await
            }
        }
    )*};
}

on_both_hubs!(
    every_subscriber_gets_the_run_in_order,
    resuming_replays_exactly_the_missing_events,
    lost_history_is_signalled,
    a_second_message_during_a_run_is_409,
    history_and_delete_round_trip_through_the_agent,
    websocket_carries_the_same_events_as_sse,
    seed_004_flow_works_as_written,
    a_streamed_chat_on_a_thread_is_recorded,
    a_burst_longer_than_retention_reaches_every_subscriber,
    a_subscriber_slower_than_the_run_is_told_what_it_lost,
    resuming_at_the_last_event_continues_with_the_next_run,
);

async fn every_subscriber_gets_the_run_in_order(backend: Backend) {
    let s = setup(backend, &[]).await;
    let base = &s.bridge.base;
    let mut first = subscribe(base, "assistant", "t1", None).await;
    let mut second = subscribe(base, "assistant", "t1", None).await;

    let run_id = start_run(base, "assistant", "t1", "Add a dark mode toggle").await;
    let a = until_run_ends(&mut first).await;
    let b = until_run_ends(&mut second).await;

    assert!(is_default_script(&kinds(&a)), "{:?}", kinds(&a));
    let ids: Vec<&str> = a.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids,
        b.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        "same ids for everyone"
    );
    let ns: Vec<u64> = ids.iter().map(|id| n_of(id)).collect();
    assert_eq!(
        ns,
        (1..=ns.len() as u64).collect::<Vec<_>>(),
        "positions count up without gaps"
    );
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.data, y.data);
        assert_eq!(x.event, x.data["type"].as_str().unwrap(), "named events");
        assert_eq!(x.data["run_id"], run_id.as_str());
        assert_eq!(x.data["thread_id"], "t1");
    }
}

async fn resuming_replays_exactly_the_missing_events(backend: Backend) {
    let s = setup(backend, &[]).await;
    let base = &s.bridge.base;
    let mut watcher = subscribe(base, "assistant", "t1", None).await;
    let mut early = subscribe(base, "assistant", "t1", None).await;
    start_run(base, "assistant", "t1", "hello").await;
    let whole = until_run_ends(&mut watcher).await;

    // A client that saw 5 events and dropped reconnects with the 5th id.
    let seen = take(&mut early, 5).await;
    drop(early);
    let mut resumed = subscribe(base, "assistant", "t1", Some(&seen[4].id)).await;
    let rest = until_run_ends(&mut resumed).await;
    let mut joined: Vec<Value> = seen.iter().map(|e| e.data.clone()).collect();
    joined.extend(rest.iter().map(|e| e.data.clone()));
    assert_eq!(
        joined,
        whole.iter().map(|e| e.data.clone()).collect::<Vec<_>>(),
        "nothing lost, nothing repeated"
    );

    // `0` (or `?last_event_id=0` on a first connect) replays everything retained.
    let response = reqwest::get(format!(
        "{base}/v1/agents/assistant/threads/t1/events?last_event_id=0"
    ))
    .await
    .unwrap();
    let mut from_start = Box::pin(sse_events(response));
    let replayed = until_run_ends(&mut from_start).await;
    assert_eq!(replayed.len(), whole.len());
    assert_eq!(replayed[0].id, whole[0].id);

    // Then live: the next run arrives on the same connection.
    start_run(base, "assistant", "t1", "again").await;
    let next = until_run_ends(&mut from_start).await;
    assert_eq!(n_of(&next[0].id), n_of(&whole.last().unwrap().id) + 1);
}

async fn lost_history_is_signalled(backend: Backend) {
    let s = setup(backend, &["--hub-max-events", "5"]).await;
    let base = &s.bridge.base;
    let mut watcher = subscribe(base, "assistant", "t1", None).await;
    start_run(base, "assistant", "t1", "hello").await;
    let whole = until_run_ends(&mut watcher).await;
    assert!(whole.len() > 10);

    let mut resumed = subscribe(base, "assistant", "t1", Some(&whole[1].id)).await;
    let notice = take(&mut resumed, 1).await.remove(0);
    assert_eq!(notice.event, "history_truncated");
    assert_eq!(notice.data["requested"], whole[1].id.as_str());
    assert!(
        notice.id.is_empty(),
        "a notice has no id, so Last-Event-ID keeps naming an event"
    );
    let kept = take(&mut resumed, 5).await;
    let expected: Vec<&str> = whole[whole.len() - 5..]
        .iter()
        .map(|e| e.id.as_str())
        .collect();
    assert_eq!(
        kept.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        expected
    );

    // A position from another life of the log (another epoch) is also truncated history.
    let mut stale = subscribe(base, "assistant", "t1", Some("0123456789ab-3")).await;
    assert_eq!(take(&mut stale, 1).await[0].event, "history_truncated");
}

async fn a_second_message_during_a_run_is_409(backend: Backend) {
    let s = setup(backend, &[]).await;
    let base = &s.bridge.base;
    let run_id = start_run(base, "assistant", "t1", "stub: hang").await;
    let (status, body) = problem(post_message(base, "assistant", "t1", "me too").await).await;
    assert_eq!(status, 409);
    assert_eq!(body["run_id"], run_id.as_str(), "names the active run");
    assert_eq!(body["type"], "urn:agent-bridge:problem:run-active");
    // Deleting the thread is refused too while its run is active.
    let response = s.bridge.delete_thread("assistant", "t1").await;
    assert_eq!(problem(response).await.0, 409);
    // Another thread is free.
    start_run(base, "assistant", "t2", "hello").await;
}

async fn history_and_delete_round_trip_through_the_agent(backend: Backend) {
    let s = setup(backend, &[]).await;
    let (base, bridge) = (&s.bridge.base, &s.bridge);
    let mut watcher = subscribe(base, "assistant", "notes", None).await;
    start_run(base, "assistant", "notes", "remember the milk").await;
    let run = until_run_ends(&mut watcher).await;
    let answer = run.last().unwrap().data["final_message"]["content"].clone();

    let threads = bridge.get_json("/v1/agents/assistant/threads").await;
    let listed = threads["threads"].as_array().unwrap();
    assert!(
        listed
            .iter()
            .any(|t| t["thread_id"] == "notes" && t["message_count"] == 2),
        "{threads}"
    );

    let messages = "/v1/agents/assistant/threads/notes/messages";
    let page = bridge.get_json(&format!("{messages}?page_size=1")).await;
    assert_eq!(page["messages"][0]["role"], "user");
    assert_eq!(page["messages"][0]["content"], "remember the milk");
    let token = page["next_page_token"].as_str().unwrap();
    let next = bridge
        .get_json(&format!("{messages}?page_size=1&page_token={token}"))
        .await;
    assert_eq!(next["messages"][0]["role"], "assistant");
    assert_eq!(next["messages"][0]["content"], answer);

    let deleted = bridge.delete_thread("assistant", "notes").await;
    assert_eq!(deleted.status(), 200);
    assert_eq!(
        deleted.json::<Value>().await.unwrap()["deleted_messages"],
        2
    );
    let gone = bridge.list_messages("assistant", "notes").await;
    assert_eq!(problem(gone).await.0, 404);
    // The bridge's log went too: a resume finds nothing of it.
    let mut resumed = subscribe(base, "assistant", "notes", Some(&run[2].id)).await;
    assert_eq!(take(&mut resumed, 1).await[0].event, "history_truncated");
}

async fn websocket_carries_the_same_events_as_sse(backend: Backend) {
    let s = setup(backend, &[]).await;
    let base = &s.bridge.base;
    let mut sse = subscribe(base, "assistant", "t1", None).await;
    let ws_url = format!(
        "{}/v1/agents/assistant/threads/t1/ws",
        base.replace("http://", "ws://")
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url)
        .await
        .expect("websocket");

    send_message_frame(&mut socket, "over the socket").await;
    let mut frames = Vec::new();
    let mut accepted = None;
    while frames
        .last()
        .is_none_or(|f: &Value| f["type"] != "run_completed")
    {
        let frame = next_frame(&mut socket).await;
        if frame["type"] == "accepted" {
            accepted = Some(frame["run_id"].clone());
        } else {
            frames.push(frame);
        }
    }
    let events = until_run_ends(&mut sse).await;
    assert_eq!(accepted.as_ref(), Some(&events[0].data["run_id"]));
    assert_eq!(frames.len(), events.len());
    for (frame, event) in frames.iter().zip(&events) {
        let mut without_id = frame.clone();
        let id = without_id.as_object_mut().unwrap().remove("id").unwrap();
        assert_eq!(id, event.id.as_str());
        assert_eq!(without_id, event.data);
    }

    // A bad frame gets a problem back, and the socket stays usable.
    socket.send(Message::text("not json")).await.unwrap();
    let reply = next_frame(&mut socket).await;
    assert_eq!(reply["type"], "error");
    assert_eq!(reply["problem"]["status"], 400);
}

async fn seed_004_flow_works_as_written(backend: Backend) {
    let s = setup(backend, &[]).await;
    let base = &s.bridge.base;
    // const eventSource = new EventSource(`/agents/${agentId}/sse?thread_id=${threadId}`);
    let response = reqwest::Client::new()
        .get(format!("{base}/agents/agent_123/sse?thread_id=thread_456"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    // No agent named agent_123 here: the seed's names are examples. Use the real one.
    assert_eq!(problem(response).await.0, 404);
    let response = reqwest::get(format!("{base}/agents/assistant/sse?thread_id=thread_456"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut events = Box::pin(sse_events(response));

    // fetch(`/agents/${agentId}/messages`, { method: "POST", body: JSON.stringify({ thread_id, message }) })
    let sent = reqwest::Client::new()
        .post(format!("{base}/agents/assistant/messages"))
        .json(&serde_json::json!({ "thread_id": "thread_456", "message": "Привет, агент!" }))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    assert_eq!(
        sent.json::<Value>().await.unwrap(),
        serde_json::json!({ "status": "success", "message": "Message sent to agent." })
    );

    // eventSource.onmessage = (event) => { const data = JSON.parse(event.data); ... }
    let run = until_run_ends(&mut events).await;
    assert!(
        run.iter().all(|e| e.event == "message"),
        "unnamed events reach onmessage"
    );
    assert!(is_default_script(&kinds(&run)));
    assert!(
        run[1].data["content"]
            .as_str()
            .unwrap()
            .contains("Привет, агент!")
    );
}

async fn a_streamed_chat_on_a_thread_is_recorded(backend: Backend) {
    let s = setup(backend, &[]).await;
    let base = &s.bridge.base;
    let mut watcher = subscribe(base, "assistant", "t1", None).await;
    // `POST .../chat` streaming a run on thread t1.
    let chat = |message: &str| {
        let body = serde_json::json!({ "message": message, "thread_id": "t1" });
        let request = s
            .bridge
            .http
            .post(s.bridge.url("/v1/agents/assistant/chat"));
        send(request.header("accept", "text/event-stream").json(&body))
    };
    let mut streamed = Box::pin(sse_events(chat("hi").await));
    let direct = until_run_ends(&mut streamed).await;
    let watched = until_run_ends(&mut watcher).await;
    assert_eq!(
        direct.iter().map(|e| e.data.clone()).collect::<Vec<_>>(),
        watched.iter().map(|e| e.data.clone()).collect::<Vec<_>>()
    );

    // A chat client that leaves mid-run cancels the run, and the thread says so.
    let mut streamed = Box::pin(sse_events(chat("stub: hang").await));
    take(&mut streamed, 1).await;
    drop(streamed);
    let ended = until_run_ends(&mut watcher).await;
    let last = ended.last().unwrap();
    assert_eq!(last.data["type"], "run_error");
    assert_eq!(last.data["code"], "CANCELLED");
    tokio::time::timeout(PATIENCE, s.agent.stats.wait_for_cancellations(1))
        .await
        .unwrap();
}

/// A run's burst is longer than the log keeps (and than any shared ring): subscribers that
/// keep reading get every event anyway; retention is for late subscribers only.
async fn a_burst_longer_than_retention_reaches_every_subscriber(backend: Backend) {
    const SUBSCRIBERS: usize = 100;
    const BURST: usize = 2000;
    let s = setup(backend, &["--hub-max-events", "50"]).await;
    let base = &s.bridge.base;
    let mut streams = Vec::new();
    for _ in 0..SUBSCRIBERS {
        streams.push(subscribe(base, "assistant", "burst", None).await);
    }
    let run_id = start_run(base, "assistant", "burst", &format!("stub: burst={BURST}")).await;
    let readers = streams.into_iter().map(|mut events| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let event = tokio::time::timeout(PATIENCE, events.next())
                    .await
                    .expect("next event in time")
                    .expect("stream open until the run ends");
                let done = event.event == "run_completed";
                got.push((event.id, event.event, event.data["run_id"].clone()));
                if done {
                    return got;
                }
            }
        })
    });
    for got in futures_util::future::join_all(readers).await {
        let got = got.unwrap();
        assert_eq!(got.len(), BURST + 3, "every event, nothing else");
        let ns: Vec<u64> = got.iter().map(|(id, ..)| n_of(id)).collect();
        assert_eq!(ns, (1..=ns.len() as u64).collect::<Vec<_>>(), "no gap");
        assert!(got.iter().all(|(.., run)| *run == run_id.as_str()));
        assert_eq!(got[0].1, "run_started");
        assert!(
            got[1..=BURST]
                .iter()
                .all(|(_, kind, _)| kind == "text_delta")
        );
    }
}

/// A subscriber that stops reading while the run writes far more than its buffer is cut,
/// told so when it reads again, and then follows the run to its end from what the log kept.
async fn a_subscriber_slower_than_the_run_is_told_what_it_lost(backend: Backend) {
    let s = setup(backend, &["--hub-max-events", "5"]).await;
    let base = &s.bridge.base;
    let mut slow = subscribe(base, "assistant", "slow", None).await;
    // 1,000 events of 64 KiB: far beyond what sockets and a subscriber's buffer hold.
    start_run(base, "assistant", "slow", "stub: burst=1000 size=65536").await;
    // The run is over once a subscriber from the beginning sees it end.
    let mut late = subscribe(base, "assistant", "slow", Some("0")).await;
    let seen = until_run_ends(&mut late).await;
    assert_eq!(seen.last().unwrap().event, "run_completed");

    let got = until_run_ends(&mut slow).await;
    // Each notice names the last event received before it; between notices the events
    // follow each other without gap. (On Redis, the bridge's reader of a stream trimmed to 5
    // entries may itself fall behind: that loss is announced the same way.)
    let mut notices = 0;
    let mut previous: Option<&SseEvent> = None;
    let mut told = false;
    for event in &got {
        if event.event == "history_truncated" {
            notices += 1;
            told = true;
            assert_eq!(
                event.data["requested"].as_str(),
                previous.map(|e| e.id.as_str())
            );
            continue;
        }
        if let Some(p) = previous {
            let (p, n) = (n_of(&p.id), n_of(&event.id));
            assert!(n == p + 1 || (told && n > p), "{p} then {n}");
        }
        told = false;
        previous = Some(event);
    }
    assert!(notices > 0, "the slow subscriber is told it lost events");
    let last: Vec<u64> = got[got.len() - 5..].iter().map(|e| n_of(&e.id)).collect();
    assert_eq!(last, (999..=1003).collect::<Vec<_>>(), "then the run's end");
}

/// Resuming at the log's last event replays nothing; the next run's events follow it, and
/// nothing earlier comes again.
async fn resuming_at_the_last_event_continues_with_the_next_run(backend: Backend) {
    let s = setup(backend, &[]).await;
    let base = &s.bridge.base;
    let mut first = subscribe(base, "assistant", "t1", None).await;
    start_run(base, "assistant", "t1", "hello").await;
    let whole = until_run_ends(&mut first).await;
    let last = whole.last().unwrap().id.clone();

    let mut resumed = subscribe(base, "assistant", "t1", Some(&last)).await;
    start_run(base, "assistant", "t1", "again").await;
    let next = until_run_ends(&mut resumed).await;
    let ns: Vec<u64> = next.iter().map(|e| n_of(&e.id)).collect();
    let from = n_of(&last) + 1;
    assert_eq!(ns, (from..from + ns.len() as u64).collect::<Vec<_>>());
    assert_eq!(next[0].event, "run_started");
}
