//! Seed 004's vocabulary, for `EventSource.onmessage` clients of `GET /agents/{agent}/sse`:
//! unnamed events whose JSON is `{"agent_id", "thread_id", "message", …}`, so that the seed's
//! `console.log(data.message)` prints what the agent says.
//!
//! Every event keeps the bridge's own JSON (`type`, `content`, `run_id`, `sequence`, …, as
//! on `/v1/.../events`) and its `id:` (so the browser's own reconnection resumes where it
//! stopped), with two fields added: `agent_id` (the agent's route name) and `message`, the
//! text of the event: a thought, `Calling: TOOL` for a tool call, the tool's output, a text
//! delta, the assistant's message, the final answer on `run_completed`, the error on
//! `run_error` (empty on `run_started`). No event leaves `data.message` undefined.

use std::time::Duration;

use agent_bridge_proto::v1::{ChatEvent, chat_event::Payload};
use bytes::BytesMut;
use serde_json::{Value, json};

use super::{Encoder, Frame, Notice};
use crate::{event, sse::put_frame};

/// Seed 004's `{"agent_id", "thread_id", "message", …}` events.
#[derive(Debug)]
pub(crate) struct AgentMessages {
    /// The agent's route name (the seed's `agent_id`).
    agent_id: String,
}

impl AgentMessages {
    pub(crate) fn new(agent_id: impl Into<String>) -> Self {
        Self {
            agent_id: agent_id.into(),
        }
    }
}

/// The text of an event, as `data.message`.
fn text(event: &ChatEvent) -> String {
    match &event.payload {
        Some(Payload::Thought(t)) => t.content.clone(),
        Some(Payload::ToolCall(c)) => format!("Calling: {}", c.tool_name),
        Some(Payload::ToolResult(r)) => r.content.clone(),
        Some(Payload::TextDelta(d)) => d.delta.clone(),
        Some(Payload::Message(m)) => m.content.clone(),
        Some(Payload::RunCompleted(done)) => done
            .final_message
            .as_ref()
            .map(|m| m.content.clone())
            .unwrap_or_default(),
        Some(Payload::RunError(e)) => e.message.clone(),
        Some(Payload::RunStarted(_)) | None => String::new(),
    }
}

impl Encoder for AgentMessages {
    fn event(&mut self, out: &mut BytesMut, frame: &Frame<'_>) {
        let mut json = Vec::with_capacity(256);
        event::write_json(&mut json, frame.event, frame.trace_id);
        let mut value: Value = serde_json::from_slice(&json).unwrap_or_else(|_| json!({}));
        value["agent_id"] = json!(self.agent_id);
        value["message"] = json!(text(frame.event));
        put_frame(
            out,
            Some(frame.id),
            None,
            value.to_string().as_bytes(),
            frame.retry,
        );
    }
    fn notice(&mut self, out: &mut BytesMut, notice: Notice<'_>, retry: Duration) {
        let (kind, message) = match notice {
            Notice::Truncated { .. } => (
                "history_truncated",
                "some earlier messages are no longer available",
            ),
            Notice::LogUnavailable | Notice::Draining => (
                "stream_error",
                "the stream was interrupted; reconnecting resumes it",
            ),
        };
        let value = json!({ "agent_id": self.agent_id, "type": kind, "message": message });
        let retry = (kind == "stream_error").then_some(retry);
        put_frame(out, None, None, value.to_string().as_bytes(), retry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::transcript::sample;

    #[test]
    fn every_event_has_agent_id_thread_id_and_a_message() {
        let text = sample::encode(AgentMessages::new("assistant"), &sample::run());
        let data = sample::data(&text);
        assert_eq!(data.len(), 8);
        for d in &data {
            assert_eq!(d["agent_id"], "assistant");
            assert_eq!(d["thread_id"], "t1");
            assert!(d["message"].is_string(), "{d}");
            assert!(d["type"].is_string(), "{d}");
        }
        let messages: Vec<&str> = data
            .iter()
            .map(|d| d["message"].as_str().unwrap())
            .collect();
        assert_eq!(
            messages,
            [
                "",
                "read first",
                "Calling: read_file",
                "line\nnext",
                "Hello ",
                "world",
                "Hello world",
                "Hello world"
            ]
        );
        assert!(!text.contains("event:"), "unnamed, for onmessage");
        assert_eq!(text.matches("id: ").count(), 8);
    }
}
