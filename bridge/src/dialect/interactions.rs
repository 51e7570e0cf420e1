//! Seed 001's vocabulary, for front ends written against it: every frame is
//! `data: {"type", "data"}` (no `event:` line: its client reads `data:` lines and switches on
//! `type`):
//!
//! - `start`: `{session_id, user_message_id, run_id}` (the session is the thread);
//! - `agent_interaction`: `{agent_name, message_type, content, tool_name, tool_arguments,
//!   timestamp}` with `message_type` `thought`, `tool_call` (content `Calling: NAME`, the
//!   arguments as JSON) or `tool_response` (content the tool's output);
//! - `complete`: `{session_id, message: {id, session_id, role, content, agent_name,
//!   created_at}, code_changes: []}`;
//! - `error`: `{message, code}`.
//!
//! Text deltas have no word in this vocabulary: the answer arrives whole in `complete`.

use std::time::Duration;

use agent_bridge_proto::v1::{ChatEvent, chat_event::Payload};
use bytes::BytesMut;
use serde_json::{Value, json};

use super::{Encoder, Frame, Notice, transcript::arguments};
use crate::sse::put_frame;

/// Seed 001's `start / agent_interaction / complete / error` events.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Interactions;

fn timestamp(event: &ChatEvent) -> Value {
    event
        .timestamp
        .as_ref()
        .map_or(Value::Null, |t| json!(t.to_string()))
}

fn interaction(event: &ChatEvent) -> Option<Value> {
    let (message_type, content, tool_name, tool_arguments) = match &event.payload {
        Some(Payload::Thought(t)) => ("thought", t.content.clone(), Value::Null, Value::Null),
        Some(Payload::ToolCall(c)) => (
            "tool_call",
            format!("Calling: {}", c.tool_name),
            json!(c.tool_name),
            arguments(&c.arguments_json),
        ),
        Some(Payload::ToolResult(r)) => (
            "tool_response",
            r.content.clone(),
            json!(r.tool_name),
            Value::Null,
        ),
        _ => return None,
    };
    Some(json!({
        "agent_name": event.agent,
        "message_type": message_type,
        "content": content,
        "tool_name": tool_name,
        "tool_arguments": tool_arguments,
        "timestamp": timestamp(event),
    }))
}

/// The `{"type", "data"}` value of an event, if the vocabulary has a word for it.
pub(crate) fn to_value(event: &ChatEvent) -> Option<Value> {
    let (kind, data) = match &event.payload {
        Some(Payload::RunStarted(started)) => (
            "start",
            json!({
                "session_id": event.thread_id,
                "user_message_id": started.user_message_id,
                "run_id": event.run_id,
            }),
        ),
        Some(Payload::Thought(_) | Payload::ToolCall(_) | Payload::ToolResult(_)) => {
            ("agent_interaction", interaction(event)?)
        }
        Some(Payload::RunCompleted(done)) => {
            let message = done.final_message.clone().unwrap_or_default();
            (
                "complete",
                json!({
                    "session_id": event.thread_id,
                    "message": {
                        "id": message.message_id,
                        "session_id": event.thread_id,
                        "role": "assistant",
                        "content": message.content,
                        "agent_name": event.agent,
                        "created_at": timestamp(event),
                    },
                    "code_changes": [],
                }),
            )
        }
        Some(Payload::RunError(e)) => ("error", json!({ "message": e.message, "code": e.code })),
        _ => return None,
    };
    Some(json!({ "type": kind, "data": data }))
}

impl Encoder for Interactions {
    fn event(&mut self, out: &mut BytesMut, frame: &Frame<'_>) {
        if let Some(value) = to_value(frame.event) {
            put_frame(out, None, None, value.to_string().as_bytes(), frame.retry);
        }
    }

    fn notice(&mut self, out: &mut BytesMut, notice: Notice<'_>, retry: Duration) {
        if !matches!(notice, Notice::Truncated { .. }) {
            let value = json!({ "type": "error", "data": {
                "message": "the stream was interrupted; reconnect to resume",
                "code": "UNAVAILABLE",
            }});
            put_frame(out, None, None, value.to_string().as_bytes(), Some(retry));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::transcript::sample;

    #[test]
    fn the_seeds_events_in_its_shape() {
        let text = sample::encode(Interactions, &sample::run());
        assert!(!text.contains("event:") && !text.contains("id:"), "{text}");
        let data = sample::data(&text);
        let types: Vec<&str> = data.iter().map(|d| d["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            [
                "start",
                "agent_interaction",
                "agent_interaction",
                "agent_interaction",
                "complete"
            ]
        );
        assert_eq!(data[0]["data"]["session_id"], "t1");
        let call = &data[2]["data"];
        assert_eq!(call["message_type"], "tool_call");
        assert_eq!(call["content"], "Calling: read_file");
        assert_eq!(call["tool_arguments"], json!({ "path": "a.txt" }));
        assert_eq!(data[1]["data"]["tool_name"], Value::Null);
        assert_eq!(data[3]["data"]["message_type"], "tool_response");
        assert_eq!(data[4]["data"]["message"]["content"], "Hello world");
        assert_eq!(data[4]["data"]["code_changes"], json!([]));

        let failed = sample::data(&sample::encode(Interactions, &sample::failed_run()));
        assert_eq!(
            failed.last().unwrap(),
            &json!({ "type": "error", "data": { "message": "tool crashed", "code": "INTERNAL" } })
        );
    }
}
