//! Seed 004's vocabulary, for `EventSource.onmessage` clients of `GET /agents/{agent}/sse`:
//! unnamed events whose JSON is `{"agent_id", "thread_id", "message", …}`, so that the seed's
//! `console.log(data.message)` prints what the agent says.
//!
//! `message` is the text of the event: a thought, `Calling: TOOL` for a tool call, the tool's
//! output, the assistant's message, the error. Text deltas are not sent (`message` would be a
//! fragment); the answer arrives once, as `message` (or with `run_completed` when the agent
//! sent no `message` event). Each frame keeps its `id:`, so the browser's own reconnection
//! resumes where it stopped; `type`, `agent`, `run_id` and `sequence` say the rest.

use std::{collections::HashSet, time::Duration};

use agent_bridge_proto::v1::{ChatEvent, chat_event::Payload};
use bytes::BytesMut;
use serde_json::json;

use super::{Encoder, Frame, Notice};
use crate::{event, sse::put_frame};

/// Seed 004's `{"agent_id", "thread_id", "message"}` events.
#[derive(Debug)]
pub struct AgentMessages {
    /// The agent's route name (the seed's `agent_id`).
    agent_id: String,
    /// Messages already sent, so the final message is not repeated at `run_completed`.
    sent: HashSet<String>,
}

impl AgentMessages {
    pub fn new(agent_id: impl Into<String>) -> Self {
        Self {
            agent_id: agent_id.into(),
            sent: HashSet::new(),
        }
    }

    fn text(&mut self, event: &ChatEvent) -> Option<String> {
        Some(match &event.payload {
            Some(Payload::Thought(t)) => t.content.clone(),
            Some(Payload::ToolCall(c)) => format!("Calling: {}", c.tool_name),
            Some(Payload::ToolResult(r)) => r.content.clone(),
            Some(Payload::Message(m)) if m.role != "user" => {
                self.sent.insert(m.message_id.clone());
                m.content.clone()
            }
            Some(Payload::RunCompleted(done)) => {
                let m = done.final_message.as_ref()?;
                if !self.sent.insert(m.message_id.clone()) {
                    return None;
                }
                m.content.clone()
            }
            Some(Payload::RunError(e)) => e.message.clone(),
            _ => return None,
        })
    }
}

impl Encoder for AgentMessages {
    fn event(&mut self, out: &mut BytesMut, frame: &Frame<'_>) {
        let e = frame.event;
        let Some(message) = self.text(e) else { return };
        let value = json!({
            "agent_id": self.agent_id,
            "thread_id": e.thread_id,
            "message": message,
            "type": event::kind(e),
            "agent": e.agent,
            "run_id": e.run_id,
            "sequence": e.sequence,
        });
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
