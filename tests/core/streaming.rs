//! A scripted run, streamed and answered as JSON.

use futures_util::StreamExt as _;
use serde_json::Value;

use crate::support::{collect_events, spawn_assistant};

const MESSAGE: &str = "Add a dark mode toggle";

fn expected_kinds(deltas: usize) -> Vec<&'static str> {
    agent_stub::default_kinds(deltas)
}

#[tokio::test]
async fn scripted_run_streams_every_event_in_order_with_ids() {
    let (_agent, bridge) = spawn_assistant(&[]).await;

    let response = bridge.chat_stream("assistant", MESSAGE).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(headers["x-accel-buffering"], "no");
    assert!(
        headers.get("content-encoding").is_none(),
        "SSE must never be compressed"
    );

    let events = collect_events(response).await;
    let deltas = events.iter().filter(|e| e.event == "text_delta").count();
    assert!(deltas > 3, "the answer streams token by token");
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds, expected_kinds(deltas));

    let run_id = events[0].data["run_id"].as_str().unwrap().to_owned();
    let thread_id = events[0].data["thread_id"].as_str().unwrap().to_owned();
    assert!(!run_id.is_empty() && !thread_id.is_empty());
    for (i, e) in events.iter().enumerate() {
        let sequence = i as u64 + 1;
        assert_eq!(e.id, sequence.to_string(), "SSE id is the run's sequence");
        assert_eq!(e.data["type"], e.event, "data carries the type");
        assert_eq!(e.data["sequence"], sequence);
        assert_eq!(e.data["run_id"], run_id.as_str());
        assert_eq!(e.data["thread_id"], thread_id.as_str());
        assert!(
            e.data["timestamp"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z')),
            "{}",
            e.data
        );
    }

    assert_eq!(events[1].data["agent"], "Planner");
    assert!(
        events[1].data["content"]
            .as_str()
            .unwrap()
            .contains(MESSAGE)
    );
    let call = &events[2].data;
    assert_eq!(call["agent"], "Coder");
    assert_eq!(call["tool_name"], "read_file");
    assert_eq!(
        call["arguments"],
        serde_json::json!({ "path": "src/App.tsx" }),
        "JSON arguments stay JSON"
    );
    let result = &events[3].data;
    assert_eq!(result["call_id"], call["call_id"]);
    assert_eq!(result["is_error"], false);
    assert!(
        result["content"].as_str().unwrap().contains('\n'),
        "multi-line content survives framing"
    );

    let streamed: String = events
        .iter()
        .filter(|e| e.event == "text_delta")
        .map(|e| e.data["delta"].as_str().unwrap())
        .collect();
    let message = &events[events.len() - 2].data;
    assert_eq!(message["content"], streamed.as_str());
    assert_eq!(message["role"], "assistant");
    let done = &events[events.len() - 1].data;
    assert_eq!(done["final_message"]["content"], streamed.as_str());
    assert_eq!(done["usage"]["output_tokens"], deltas as u64);
    assert_eq!(done["usage"]["tool_calls"], 1);
}

#[tokio::test]
async fn the_stream_opens_with_a_retry_hint() {
    let (_agent, bridge) = spawn_assistant(&["--retry-hint", "3s"]).await;
    let response = bridge.chat_stream("assistant", MESSAGE).await;
    let mut body = response.bytes_stream();
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = crate::support::next(&mut body)
            .await
            .expect("bytes")
            .expect("chunk");
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(text.starts_with("retry: 3000\n\n"), "{text:?}");
}

#[tokio::test]
async fn json_answer_equals_what_the_stream_carried() {
    let (_agent, bridge) = spawn_assistant(&[]).await;

    let events = collect_events(bridge.chat_stream("assistant", MESSAGE).await).await;
    let response = bridge
        .chat_json("assistant", serde_json::json!({ "message": MESSAGE }))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let answer: Value = response.json().await.unwrap();

    // Runs differ in ids and times; everything else must be equal.
    fn strip(mut v: Value) -> Value {
        for key in ["run_id", "thread_id", "timestamp"] {
            v.as_object_mut().unwrap().remove(key);
        }
        v
    }
    let streamed: Vec<Value> = events
        .iter()
        .filter(|e| matches!(e.event.as_str(), "thought" | "tool_call" | "tool_result"))
        .map(|e| strip(e.data.clone()))
        .collect();
    let answered: Vec<Value> = answer["interactions"]
        .as_array()
        .unwrap()
        .iter()
        .cloned()
        .map(strip)
        .collect();
    assert_eq!(answered, streamed);

    let done = &events.last().unwrap().data;
    let mut final_message = done["final_message"].clone();
    let mut answered_message = answer["message"].clone();
    final_message.as_object_mut().unwrap().remove("message_id");
    answered_message
        .as_object_mut()
        .unwrap()
        .remove("message_id");
    assert_eq!(answered_message, final_message);
    assert_eq!(answer["usage"], done["usage"]);
    assert!(answer["run_id"].as_str().is_some_and(|id| !id.is_empty()));
}

#[tokio::test]
async fn a_thread_id_is_kept_and_runs_get_distinct_ids() {
    let (_agent, bridge) = spawn_assistant(&[]).await;
    let body = serde_json::json!({ "message": "hi", "thread_id": "thread-42", "metadata": { "locale": "en" } });
    let a: Value = bridge
        .chat_json("assistant", body.clone())
        .await
        .json()
        .await
        .unwrap();
    let b: Value = bridge
        .chat_json("assistant", body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(a["thread_id"], "thread-42");
    assert_eq!(b["thread_id"], "thread-42");
    assert_ne!(a["run_id"], b["run_id"]);
}

#[tokio::test]
async fn many_concurrent_streams_each_get_their_whole_run() {
    let (_agent, bridge) = spawn_assistant(&[]).await;
    let runs = futures_util::stream::iter(0..20)
        .map(|i| {
            let bridge = &bridge;
            async move {
                collect_events(bridge.chat_stream("assistant", &format!("run {i}")).await).await
            }
        })
        .buffer_unordered(20)
        .collect::<Vec<_>>()
        .await;
    for events in runs {
        assert_eq!(events.first().unwrap().event, "run_started");
        assert_eq!(events.last().unwrap().event, "run_completed");
        let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        let expected: Vec<String> = (1..=events.len()).map(|i| i.to_string()).collect();
        assert_eq!(ids, expected);
    }
}
