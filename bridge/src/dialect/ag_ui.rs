//! AG-UI (the Agent User Interaction protocol, 1.0): what `@ag-ui/client`'s `HttpAgent` (and
//! CopilotKit on top of it) reads. The client posts a `RunAgentInput`; the answer is SSE with
//! one AG-UI event per `data:` line.
//!
//! `RUN_STARTED` (the client's `threadId` and `runId`), a reasoning span per thought
//! (`REASONING_START`, `REASONING_MESSAGE_START/CONTENT/END`, `REASONING_END`),
//! `TOOL_CALL_START/ARGS/END` then `TOOL_CALL_RESULT` per tool call,
//! `TEXT_MESSAGE_START/CONTENT/END` per assistant message, and `RUN_FINISHED` (outcome
//! `success`, token usage) or `RUN_ERROR` (`code` is the gRPC code name).
//!
//! Our addition: each agent event's last frame carries an SSE `id:` (the event's position),
//! so a client that lost the connection can resume with `Last-Event-ID` where AG-UI itself
//! has no resume. Clients that do not know it ignore `id:` lines, as SSE says.

use std::time::Duration;

use agent_bridge_proto::v1::{ChatEvent, chat_event::Payload};
use bytes::BytesMut;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Encoder, Frame, Notice,
    transcript::{Text, Transcript, last_user_text, millis},
};
use crate::sse::put_frame;

/// One AG-UI response.
#[derive(Debug, Default)]
pub(crate) struct AgUi {
    /// The ids the client chose (echoed on `RUN_STARTED` / `RUN_FINISHED`); when absent (a
    /// resumed stream) the run's own.
    thread_id: Option<String>,
    run_id: Option<String>,
    transcript: Transcript,
    /// Frames of the current event, written when it is complete (the last one gets `id:`).
    pending: Vec<Value>,
}

impl AgUi {
    /// An encoder echoing the client's `threadId` and `runId`.
    pub(crate) fn new(thread_id: Option<String>, run_id: Option<String>) -> Self {
        Self {
            thread_id,
            run_id,
            ..Self::default()
        }
    }

    fn ids<'a>(&'a self, event: &'a ChatEvent) -> (&'a str, &'a str) {
        (
            self.thread_id.as_deref().unwrap_or(&event.thread_id),
            self.run_id.as_deref().unwrap_or(&event.run_id),
        )
    }

    fn text(text: Text<'_>, name: &str) -> Value {
        match text {
            Text::Start { id } => json!({
                "type": "TEXT_MESSAGE_START", "messageId": id, "role": "assistant", "name": name,
            }),
            Text::Delta { id, delta } => {
                json!({ "type": "TEXT_MESSAGE_CONTENT", "messageId": id, "delta": delta })
            }
            Text::End { id } => json!({ "type": "TEXT_MESSAGE_END", "messageId": id }),
        }
    }

    /// The frames of one agent event, in order.
    fn frames(&mut self, event: &ChatEvent) {
        let name = event.agent.as_str();
        match &event.payload {
            None => {}
            Some(Payload::RunStarted(_)) => {
                let (thread_id, run_id) = self.ids(event);
                let mut started =
                    json!({ "type": "RUN_STARTED", "threadId": thread_id, "runId": run_id });
                if run_id != event.run_id {
                    // The bridge's own run id, under which the thread's history records it.
                    started["metadata"] = json!({ "agentBridge": { "runId": event.run_id } });
                }
                self.pending.push(started);
            }
            Some(Payload::Thought(thought)) => {
                let id = format!("{}-reasoning-{}", event.run_id, event.sequence);
                self.pending.extend([
                    json!({ "type": "REASONING_START", "messageId": id }),
                    json!({ "type": "REASONING_MESSAGE_START", "messageId": id, "role": "reasoning" }),
                ]);
                if !thought.content.is_empty() {
                    self.pending.push(json!({
                        "type": "REASONING_MESSAGE_CONTENT", "messageId": id, "delta": thought.content,
                    }));
                }
                self.pending.extend([
                    json!({ "type": "REASONING_MESSAGE_END", "messageId": id }),
                    json!({ "type": "REASONING_END", "messageId": id }),
                ]);
            }
            Some(Payload::ToolCall(call)) => {
                self.transcript.tool_called(&call.call_id);
                self.pending.push(json!({
                    "type": "TOOL_CALL_START", "toolCallId": call.call_id, "toolCallName": call.tool_name,
                }));
                if !call.arguments_json.is_empty() {
                    self.pending.push(json!({
                        "type": "TOOL_CALL_ARGS", "toolCallId": call.call_id, "delta": call.arguments_json,
                    }));
                }
                self.pending
                    .push(json!({ "type": "TOOL_CALL_END", "toolCallId": call.call_id }));
            }
            Some(Payload::ToolResult(result)) => {
                let mut frame = json!({
                    "type": "TOOL_CALL_RESULT",
                    "messageId": format!("{}-result-{}", event.run_id, result.call_id),
                    "toolCallId": result.call_id,
                    "content": result.content,
                    "role": "tool",
                });
                if result.is_error {
                    frame["metadata"] = json!({ "agentBridge": { "isError": true } });
                }
                self.pending.push(frame);
            }
            Some(Payload::TextDelta(delta)) => {
                self.transcript
                    .delta(&delta.message_id, &delta.delta, &mut |t| {
                        self.pending.push(Self::text(t, name))
                    });
            }
            Some(Payload::Message(message)) => {
                self.transcript
                    .message(message, &mut |t| self.pending.push(Self::text(t, name)));
            }
            Some(Payload::RunCompleted(done)) => {
                if let Some(message) = &done.final_message {
                    self.transcript
                        .message(message, &mut |t| self.pending.push(Self::text(t, name)));
                }
                self.transcript
                    .close(&mut |t| self.pending.push(Self::text(t, name)));
                let (thread_id, run_id) = self.ids(event);
                let mut finished = json!({
                    "type": "RUN_FINISHED",
                    "threadId": thread_id,
                    "runId": run_id,
                    "outcome": { "type": "success" },
                });
                if let Some(message) = &done.final_message {
                    finished["result"] =
                        json!({ "messageId": message.message_id, "content": message.content });
                }
                if let Some(usage) = &done.usage {
                    finished["usage"] = json!([{
                        "inputTokens": usage.input_tokens,
                        "outputTokens": usage.output_tokens,
                        "totalTokens": u64::from(usage.input_tokens) + u64::from(usage.output_tokens),
                    }]);
                }
                self.pending.push(finished);
            }
            Some(Payload::RunError(error)) => {
                self.transcript
                    .close(&mut |t| self.pending.push(Self::text(t, name)));
                self.pending.push(
                    json!({ "type": "RUN_ERROR", "message": error.message, "code": error.code }),
                );
            }
        }
        if let Some(ms) = millis(event.timestamp.as_ref()) {
            for frame in &mut self.pending {
                frame["timestamp"] = json!(ms);
            }
        }
    }
}

impl Encoder for AgUi {
    fn event(&mut self, out: &mut BytesMut, frame: &Frame<'_>) {
        self.frames(frame.event);
        let last = self.pending.len().saturating_sub(1);
        for (i, value) in self.pending.drain(..).enumerate() {
            // Only the last frame of an event names its position: a connection lost in the
            // middle of an event resumes with the whole event again, never with half of it.
            let (id, retry) = if i == last {
                (Some(frame.id), frame.retry)
            } else {
                (None, None)
            };
            put_frame(out, id, None, value.to_string().as_bytes(), retry);
        }
    }

    fn notice(&mut self, out: &mut BytesMut, notice: Notice<'_>, retry: Duration) {
        let value = match notice {
            Notice::Truncated { requested } => json!({
                "type": "CUSTOM",
                "name": "agentBridge.historyTruncated",
                "value": { "requested": requested },
            }),
            Notice::LogUnavailable | Notice::Draining => json!({
                "type": "RUN_ERROR",
                "code": "UNAVAILABLE",
                "message": "the stream was interrupted; reconnect with Last-Event-ID to resume",
            }),
        };
        let retry = (!matches!(notice, Notice::Truncated { .. })).then_some(retry);
        put_frame(out, None, None, value.to_string().as_bytes(), retry);
    }
}

/// The `RunAgentInput` a client posts. Only what the bridge uses is read; the rest (tools,
/// state, context, forwarded props) is the client's and is not passed to agents.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RunAgentInput {
    pub thread_id: String,
    pub run_id: String,
    #[serde(default)]
    pub messages: Vec<Value>,
}

impl RunAgentInput {
    /// The text of the last user message.
    pub(crate) fn user_text(&self) -> Option<String> {
        last_user_text(&self.messages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::transcript::sample;

    #[test]
    fn events_follow_the_protocol_and_only_an_events_last_frame_has_its_id() {
        let encoder = AgUi::new(Some("client-thread".into()), Some("client-run".into()));
        let text = sample::encode(encoder, &sample::run());
        assert_eq!(
            sample::types(&text),
            [
                "RUN_STARTED",
                "REASONING_START",
                "REASONING_MESSAGE_START",
                "REASONING_MESSAGE_CONTENT",
                "REASONING_MESSAGE_END",
                "REASONING_END",
                "TOOL_CALL_START",
                "TOOL_CALL_ARGS",
                "TOOL_CALL_END",
                "TOOL_CALL_RESULT",
                "TEXT_MESSAGE_START",
                "TEXT_MESSAGE_CONTENT",
                "TEXT_MESSAGE_CONTENT",
                "TEXT_MESSAGE_END",
                "RUN_FINISHED",
            ]
        );
        let ids: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("id: "))
            .collect();
        assert_eq!(ids, ["1", "2", "3", "4", "5", "6", "7", "8"]);
        let data = sample::data(&text);
        assert_eq!(data[0]["threadId"], "client-thread");
        assert_eq!(data[0]["runId"], "client-run");
        assert_eq!(data[0]["metadata"]["agentBridge"]["runId"], "r1");
        assert_eq!(data[7]["delta"], r#"{"path":"a.txt"}"#);
        assert_eq!(data[14]["outcome"]["type"], "success");
        assert_eq!(data[14]["usage"][0]["totalTokens"], 5);
        assert_eq!(data[0]["timestamp"], 1_700_000_000_005_i64);
    }

    #[test]
    fn a_failure_is_run_error_with_the_code() {
        let text = sample::encode(AgUi::new(None, None), &sample::failed_run());
        let data = sample::data(&text);
        let last = data.last().unwrap();
        assert_eq!(last["type"], "RUN_ERROR");
        assert_eq!(last["code"], "INTERNAL");
        assert_eq!(
            data[0]["runId"], "r1",
            "without the client's ids, the run's own"
        );
    }
}
