//! The Vercel AI SDK's UI message stream (v1, the `ai` package's current major): what
//! `useChat` with its `DefaultChatTransport` (and `readUIMessageStream`) reads.
//!
//! Each frame is `data: {chunk}`; the stream is answered with
//! `x-vercel-ai-ui-message-stream: v1` and ends with `data: [DONE]`. A run becomes one
//! assistant UI message: `start` (its id is the run id, its metadata names the thread and
//! run), a `reasoning-start/-delta/-end` part per thought, `tool-input-available` /
//! `tool-output-available` (or `tool-output-error`) per tool call, dynamic because the
//! tools are the agent's, not declared by the client, `text-start/-delta/-end` per assistant
//! message, then `finish`; a failed run ends with `error` instead.
//!
//! The request is what `DefaultChatTransport` posts: `{id, messages, trigger, messageId}`;
//! the chat `id` is the bridge thread, and the last user message's text is the message.

use agent_bridge_proto::v1::{ChatEvent, chat_event::Payload};
use axum::http::{HeaderMap, HeaderValue};
use bytes::{BufMut as _, BytesMut};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

use super::{
    Encoder, Frame, Notice,
    transcript::{Text, Transcript, arguments},
};
use crate::sse::put_frame;

/// One response in the UI message stream protocol.
#[derive(Debug, Default)]
pub(crate) struct AiSdk {
    transcript: Transcript,
    started: bool,
}

impl AiSdk {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn start(&mut self, out: &mut BytesMut, event: &ChatEvent) {
        if !self.started {
            self.started = true;
            chunk(
                out,
                &json!({
                    "type": "start",
                    "messageId": event.run_id,
                    "messageMetadata": { "threadId": event.thread_id, "runId": event.run_id },
                }),
            );
        }
    }
}

impl Encoder for AiSdk {
    fn headers(&self, headers: &mut HeaderMap) {
        headers.insert(
            "x-vercel-ai-ui-message-stream",
            HeaderValue::from_static("v1"),
        );
    }

    fn event(&mut self, out: &mut BytesMut, frame: &Frame<'_>) {
        let event = frame.event;
        // A replay may begin after the run's first event; the message still opens first.
        self.start(out, event);
        match &event.payload {
            Some(Payload::RunStarted(_)) | None => {}
            Some(Payload::Thought(thought)) => {
                let id = format!("reasoning-{}", event.sequence);
                chunk(out, &json!({ "type": "reasoning-start", "id": id }));
                chunk(
                    out,
                    &json!({ "type": "reasoning-delta", "id": id, "delta": thought.content }),
                );
                chunk(out, &json!({ "type": "reasoning-end", "id": id }));
            }
            Some(Payload::ToolCall(call)) => {
                self.transcript.tool_called(&call.call_id);
                chunk(
                    out,
                    &json!({
                        "type": "tool-input-available",
                        "toolCallId": call.call_id,
                        "toolName": call.tool_name,
                        "input": arguments(&call.arguments_json),
                        "dynamic": true,
                    }),
                );
            }
            Some(Payload::ToolResult(result)) => {
                if !self.transcript.knows_tool_call(&result.call_id) {
                    // A result must follow its call (hidden by policy, or a replay that began
                    // after it): announce the call without input.
                    self.transcript.tool_called(&result.call_id);
                    chunk(
                        out,
                        &json!({
                            "type": "tool-input-available",
                            "toolCallId": result.call_id,
                            "toolName": result.tool_name,
                            "input": {},
                            "dynamic": true,
                        }),
                    );
                }
                let part = if result.is_error {
                    json!({
                        "type": "tool-output-error",
                        "toolCallId": result.call_id,
                        "errorText": result.content,
                        "dynamic": true,
                    })
                } else {
                    json!({
                        "type": "tool-output-available",
                        "toolCallId": result.call_id,
                        "output": result.content,
                        "dynamic": true,
                    })
                };
                chunk(out, &part);
            }
            Some(Payload::TextDelta(delta)) => {
                self.transcript
                    .delta(&delta.message_id, &delta.delta, &mut |t| {
                        chunk(out, &text_chunk(t))
                    });
            }
            Some(Payload::Message(message)) => {
                self.transcript
                    .message(message, &mut |t| chunk(out, &text_chunk(t)));
            }
            Some(Payload::RunCompleted(done)) => {
                if let Some(message) = &done.final_message {
                    self.transcript
                        .message(message, &mut |t| chunk(out, &text_chunk(t)));
                }
                self.transcript.close(&mut |t| chunk(out, &text_chunk(t)));
                let mut finish = json!({ "type": "finish", "finishReason": "stop" });
                if let Some(usage) = &done.usage {
                    finish["messageMetadata"] = json!({
                        "threadId": event.thread_id,
                        "runId": event.run_id,
                        "usage": {
                            "inputTokens": usage.input_tokens,
                            "outputTokens": usage.output_tokens,
                            "toolCalls": usage.tool_calls,
                        },
                    });
                }
                chunk(out, &finish);
            }
            Some(Payload::RunError(error)) => {
                self.transcript.close(&mut |t| chunk(out, &text_chunk(t)));
                chunk(
                    out,
                    &json!({ "type": "error", "errorText": format!("{} ({})", error.message, error.code) }),
                );
            }
        }
        if let Some(retry) = frame.retry {
            put_retry(out, retry);
        }
    }

    fn notice(&mut self, out: &mut BytesMut, notice: Notice<'_>, _retry: Duration) {
        match notice {
            // A resumed stream replays its run from the start; a gap is not the client's
            // concern here.
            Notice::Truncated { .. } => {}
            Notice::LogUnavailable | Notice::Draining => {
                chunk(
                    out,
                    &json!({ "type": "error", "errorText": "the stream was interrupted; reconnect to resume" }),
                );
            }
        }
    }

    fn close(&mut self, out: &mut BytesMut) {
        put_frame(out, None, None, b"[DONE]", None);
    }
}

fn text_chunk(text: Text<'_>) -> Value {
    match text {
        Text::Start { id } => json!({ "type": "text-start", "id": id }),
        Text::Delta { id, delta } => json!({ "type": "text-delta", "id": id, "delta": delta }),
        Text::End { id } => json!({ "type": "text-end", "id": id }),
    }
}

/// One `data:` frame.
fn chunk(out: &mut BytesMut, value: &Value) {
    put_frame(out, None, None, value.to_string().as_bytes(), None);
}

/// A bare `retry:` field: the bridge is going away, reconnect after this long.
fn put_retry(out: &mut BytesMut, retry: Duration) {
    out.put_slice(format!("retry: {}\n\n", retry.as_millis()).as_bytes());
}

/// The body `DefaultChatTransport` posts.
#[derive(Debug, Deserialize)]
pub(crate) struct ChatRequest {
    /// The chat's id: the bridge thread.
    pub id: String,
    pub messages: Vec<UiMessage>,
    // `trigger` (`submit-message`, `regenerate-message`) and `messageId` are sent too; the
    // bridge runs the last user message either way, so they are not read.
}

#[derive(Debug, Deserialize)]
pub(crate) struct UiMessage {
    pub role: String,
    #[serde(default)]
    pub parts: Vec<Value>,
}

impl ChatRequest {
    /// The text of the last user message (its `text` parts, joined), if there is one.
    pub(crate) fn user_text(&self) -> Option<String> {
        let last = self.messages.iter().rev().find(|m| m.role == "user")?;
        let text: String = last
            .parts
            .iter()
            .filter(|p| p["type"] == "text")
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n");
        (!text.is_empty()).then_some(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::transcript::sample;

    #[test]
    fn a_run_is_one_assistant_message() {
        let text = sample::encode(AiSdk::new(), &sample::run());
        assert_eq!(
            sample::types(&text),
            [
                "start",
                "reasoning-start",
                "reasoning-delta",
                "reasoning-end",
                "tool-input-available",
                "tool-output-available",
                "text-start",
                "text-delta",
                "text-delta",
                "text-end",
                "finish",
                "-",
            ]
        );
        let data = sample::data(&text);
        assert_eq!(data[0]["messageId"], "r1");
        assert_eq!(data[4]["input"], json!({ "path": "a.txt" }));
        assert_eq!(data[4]["dynamic"], true);
        assert_eq!(data[5]["output"], "line\nnext");
        assert_eq!(data[6]["id"], "m2");
        assert_eq!(data[11], "[DONE]");
        assert!(text.ends_with("data: [DONE]\n\n"));
        let mut headers = HeaderMap::new();
        AiSdk::new().headers(&mut headers);
        assert_eq!(headers["x-vercel-ai-ui-message-stream"], "v1");
    }

    #[test]
    fn a_failure_closes_the_text_and_is_an_error_chunk() {
        let text = sample::encode(AiSdk::new(), &sample::failed_run());
        let types = sample::types(&text);
        assert_eq!(types[types.len() - 2], "error");
        assert_eq!(
            sample::data(&text)[types.len() - 2]["errorText"],
            "tool crashed (INTERNAL)"
        );
    }

    #[test]
    fn the_last_user_message_is_the_message() {
        let request: ChatRequest = serde_json::from_value(json!({
            "id": "chat-1",
            "trigger": "submit-message",
            "messages": [
                { "id": "1", "role": "user", "parts": [{ "type": "text", "text": "first" }] },
                { "id": "2", "role": "assistant", "parts": [{ "type": "text", "text": "ok" }] },
                { "id": "3", "role": "user", "parts": [{ "type": "step-start" }, { "type": "text", "text": "second" }] },
            ],
        }))
        .unwrap();
        assert_eq!(request.user_text().as_deref(), Some("second"));
    }
}
