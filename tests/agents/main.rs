//! Agents suite: agents written outside this workspace, as real processes behind the bridge.
//!
//! - the Python example agent (`examples/python-agent/`, grpcio, our `agent.v1` contract);
//! - a scripted A2A agent hosted by the official A2A Python SDK's gRPC server
//!   (`tests/agents/a2a_agent.py`), reached with `--agent NAME=a2a+grpc://...`.
//!
//! Both run from the project's `.venv` (`scripts/test.sh` installs
//! `tests/agents/requirements.txt` into it).

#[path = "../support/mod.rs"]
mod support;

mod a2a;
mod python;
mod python_agent;

use serde_json::Value;
use support::{Bridge, SseEvent, collect_events};

/// One run's events, each as `sequence kind detail` (the way a reader of the stream sees it),
/// after checking the SSE id is the event's sequence.
pub fn describe(events: &[SseEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            assert_eq!(
                e.id,
                e.data["sequence"].to_string(),
                "SSE id is the sequence"
            );
            let d = &e.data;
            let text = |key: &str| d[key].as_str().unwrap_or_default().to_owned();
            let detail = match e.event.as_str() {
                "thought" => text("content"),
                "tool_call" => format!("{} {}", text("tool_name"), d["arguments"]),
                "tool_result" => format!("{} {}", text("tool_name"), text("content")),
                "text_delta" => text("delta"),
                "message" => format!("{} {}", text("role"), text("content")),
                "run_completed" => d["final_message"]["content"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                "run_error" => format!("{} {}", text("code"), text("message")),
                _ => String::new(),
            };
            if detail.is_empty() {
                format!("{} {}", e.id, e.event)
            } else {
                format!("{} {} {detail}", e.id, e.event)
            }
        })
        .collect()
}

/// Sends `message` to `agent` as an SSE chat and reads the whole run.
pub async fn chat(bridge: &Bridge, agent: &str, message: &str) -> Vec<SseEvent> {
    let response = bridge.chat_stream(agent, message).await;
    assert_eq!(response.status(), 200);
    collect_events(response).await
}

/// `GET path`, which must answer 200 with JSON.
pub async fn get_json(bridge: &Bridge, path: &str) -> Value {
    let response = bridge.get(path).await;
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

/// Runs `message` on a new thread of `agent`, then checks what the bridge reads back from the
/// agent: the thread, titled by the message, and its history, the message and `answer`.
/// Returns the thread's id.
pub async fn a_new_thread_reads_back(
    bridge: &Bridge,
    agent: &str,
    message: &str,
    answer: &str,
) -> String {
    let events = chat(bridge, agent, message).await;
    let thread_id = events[0].data["thread_id"].as_str().unwrap().to_owned();

    let threads = get_json(bridge, &format!("/v1/agents/{agent}/threads")).await;
    assert_eq!(
        pairs(&threads, "threads", "thread_id", "title"),
        [(thread_id.clone(), message.to_owned())]
    );
    let history = format!("/v1/agents/{agent}/threads/{thread_id}/messages");
    let history = get_json(bridge, &history).await;
    assert_eq!(
        pairs(&history, "messages", "role", "content"),
        [
            ("user".to_owned(), message.to_owned()),
            ("assistant".to_owned(), answer.to_owned()),
        ]
    );
    thread_id
}

/// Two string fields of each item of `document[list]`.
fn pairs(document: &Value, list: &str, a: &str, b: &str) -> Vec<(String, String)> {
    document[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list} in {document}"))
        .iter()
        .map(|item| {
            let field = |key: &str| item[key].as_str().unwrap_or_default().to_owned();
            (field(a), field(b))
        })
        .collect()
}
