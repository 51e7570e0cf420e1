//! OpenAI Chat Completions: `POST /v1/chat/completions` with `model` naming the agent, for
//! the `openai` package and every OpenAI-compatible client. With `stream: true` each event
//! becomes a `chat.completion.chunk` (`data: {chunk}`, then `data: [DONE]`); without it,
//! one `chat.completion` ([`Completion`]).
//!
//! Where the rest of a run goes, so that no client breaks:
//! - the answer is `delta.content` (the first chunk carries `role: "assistant"`);
//! - thoughts are `delta.reasoning_content`, the field OpenAI-compatible servers use for
//!   reasoning (clients that do not know it ignore it);
//! - tool activity is *not* `delta.tool_calls`: those are calls the client must execute,
//!   while the agent already ran its tools. Each tool call and result is an extra chunk with
//!   an empty delta and an `agent_bridge` object (`{"type":"tool_call"|"tool_result", …}`),
//!   which typed clients pass through untouched;
//! - a failure after the stream started is `data: {"error": {message, type, code}}`, which
//!   the `openai` package raises as an `APIError`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agent_bridge_proto::v1::{ChatEvent, chat_event::Payload};
use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    Encoder, Frame, Notice,
    transcript::{Text, Transcript, arguments, last_user_text},
};
use crate::sse::put_frame;

/// One streamed completion.
#[derive(Debug)]
pub(crate) struct OpenAi {
    model: String,
    created: u64,
    include_usage: bool,
    transcript: Transcript,
    id: Option<String>,
}

impl OpenAi {
    pub(crate) fn new(model: String, include_usage: bool) -> Self {
        Self {
            model,
            created: now(),
            include_usage,
            transcript: Transcript::default(),
            id: None,
        }
    }

    fn chunk(&self, out: &mut BytesMut, delta: Value, finish: Option<&str>, extra: Option<Value>) {
        let mut value = json!({
            "id": self.id.as_deref().unwrap_or_default(),
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
        });
        if let Some(extra) = extra {
            value["agent_bridge"] = extra;
        }
        put_frame(out, None, None, value.to_string().as_bytes(), None);
    }

    fn text(&self, out: &mut BytesMut, text: Text<'_>) {
        if let Text::Delta { delta, .. } = text {
            self.chunk(out, json!({ "content": delta }), None, None);
        }
    }
}

impl Encoder for OpenAi {
    fn event(&mut self, out: &mut BytesMut, frame: &Frame<'_>) {
        let event = frame.event;
        if self.id.is_none() {
            self.id = Some(completion_id(&event.run_id));
        }
        let mut transcript = std::mem::take(&mut self.transcript);
        match &event.payload {
            None => {}
            Some(Payload::RunStarted(_)) => self.chunk(
                out,
                json!({ "role": "assistant", "content": "" }),
                None,
                Some(json!({ "type": "run_started", "run_id": event.run_id, "thread_id": event.thread_id })),
            ),
            Some(Payload::Thought(thought)) => self.chunk(
                out,
                json!({ "reasoning_content": thought.content }),
                None,
                None,
            ),
            Some(Payload::ToolCall(_) | Payload::ToolResult(_)) => {
                self.chunk(out, json!({}), None, Some(activity(event)))
            }
            Some(Payload::TextDelta(delta)) => {
                transcript.delta(&delta.message_id, &delta.delta, &mut |t| self.text(out, t))
            }
            Some(Payload::Message(message)) => {
                transcript.message(message, &mut |t| self.text(out, t))
            }
            Some(Payload::RunCompleted(done)) => {
                if let Some(message) = &done.final_message {
                    transcript.message(message, &mut |t| self.text(out, t));
                }
                self.chunk(out, json!({}), Some("stop"), None);
                if self.include_usage {
                    let usage = done.usage.unwrap_or_default();
                    let value = json!({
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "choices": [],
                        "usage": usage_json(usage.input_tokens, usage.output_tokens),
                    });
                    put_frame(out, None, None, value.to_string().as_bytes(), None);
                }
            }
            Some(Payload::RunError(error)) => {
                let value = json!({ "error": {
                    "message": error.message,
                    "type": "agent_error",
                    "code": error.code,
                }});
                put_frame(out, None, None, value.to_string().as_bytes(), frame.retry);
            }
        }
        self.transcript = transcript;
    }

    fn notice(&mut self, out: &mut BytesMut, notice: Notice<'_>, retry: Duration) {
        if !matches!(notice, Notice::Truncated { .. }) {
            let value = json!({ "error": {
                "message": "the stream was interrupted",
                "type": "server_error",
                "code": "UNAVAILABLE",
            }});
            put_frame(out, None, None, value.to_string().as_bytes(), Some(retry));
        }
    }

    fn close(&mut self, out: &mut BytesMut) {
        put_frame(out, None, None, b"[DONE]", None);
    }
}

/// A tool call or result, as the `agent_bridge` extension object.
fn activity(event: &ChatEvent) -> Value {
    match &event.payload {
        Some(Payload::ToolCall(call)) => json!({
            "type": "tool_call",
            "agent": event.agent,
            "call_id": call.call_id,
            "tool_name": call.tool_name,
            "arguments": arguments(&call.arguments_json),
        }),
        Some(Payload::ToolResult(result)) => json!({
            "type": "tool_result",
            "agent": event.agent,
            "call_id": result.call_id,
            "tool_name": result.tool_name,
            "content": result.content,
            "is_error": result.is_error,
        }),
        _ => Value::Null,
    }
}

fn usage_json(input: u32, output: u32) -> Value {
    json!({
        "prompt_tokens": input,
        "completion_tokens": output,
        "total_tokens": u64::from(input) + u64::from(output),
    })
}

fn completion_id(run_id: &str) -> String {
    format!("chatcmpl-{run_id}")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The request body. Sampling parameters and the like are accepted and ignored: the agent
/// decides how it answers.
#[derive(Debug, Deserialize)]
pub(crate) struct CompletionRequest {
    /// The agent's route name.
    pub model: String,
    pub messages: Vec<Value>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// OpenAI's string map; `thread_id` here selects the bridge thread, the rest is passed
    /// to the agent as metadata.
    #[serde(default)]
    pub metadata: std::collections::HashMap<String, String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

impl CompletionRequest {
    /// The text of the last user message.
    pub(crate) fn user_text(&self) -> Option<String> {
        last_user_text(&self.messages)
    }
}

/// The non-streaming answer: a `chat.completion`.
#[derive(Debug, Serialize)]
pub(crate) struct Completion {
    id: String,
    object: &'static str,
    created: u64,
    model: String,
    choices: Vec<Value>,
    usage: Value,
}

/// Builds the non-streaming answer as the run's events arrive.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    reasoning: Vec<String>,
    activity: Vec<Value>,
}

/// How a collected run ended.
#[derive(Debug)]
pub(crate) enum Collected {
    Completed(Completion),
    /// `run_error`: code and message.
    Failed {
        code: String,
        message: String,
    },
}

impl Collector {
    /// Takes one event; returns the answer at the run's last event.
    pub(crate) fn push(&mut self, model: &str, event: &ChatEvent) -> Option<Collected> {
        match &event.payload {
            Some(Payload::Thought(t)) => self.reasoning.push(t.content.clone()),
            Some(Payload::ToolCall(_) | Payload::ToolResult(_)) => {
                self.activity.push(activity(event))
            }
            Some(Payload::RunCompleted(done)) => {
                let content = done
                    .final_message
                    .as_ref()
                    .map(|m| m.content.clone())
                    .unwrap_or_default();
                let usage = done.usage.unwrap_or_default();
                let mut message = json!({ "role": "assistant", "content": content });
                if !self.reasoning.is_empty() {
                    message["reasoning_content"] = json!(self.reasoning.join("\n\n"));
                }
                let mut choice = json!({ "index": 0, "message": message, "finish_reason": "stop" });
                choice["agent_bridge"] = json!({
                    "run_id": event.run_id,
                    "thread_id": event.thread_id,
                    "activity": std::mem::take(&mut self.activity),
                });
                return Some(Collected::Completed(Completion {
                    id: completion_id(&event.run_id),
                    object: "chat.completion",
                    created: now(),
                    model: model.to_owned(),
                    choices: vec![choice],
                    usage: usage_json(usage.input_tokens, usage.output_tokens),
                }));
            }
            Some(Payload::RunError(e)) => {
                return Some(Collected::Failed {
                    code: e.code.clone(),
                    message: e.message.clone(),
                });
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::transcript::sample;

    #[test]
    fn chunks_carry_text_reasoning_and_tool_activity_apart() {
        let text = sample::encode(OpenAi::new("assistant".into(), true), &sample::run());
        let data = sample::data(&text);
        assert_eq!(data.last().unwrap(), "[DONE]");
        let chunks = &data[..data.len() - 1];
        for chunk in chunks {
            assert_eq!(chunk["object"], "chat.completion.chunk");
            assert_eq!(chunk["id"], "chatcmpl-r1");
            assert_eq!(chunk["model"], "assistant");
        }
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(
            chunks[1]["choices"][0]["delta"]["reasoning_content"],
            "read first"
        );
        assert_eq!(chunks[2]["agent_bridge"]["type"], "tool_call");
        assert_eq!(chunks[2]["choices"][0]["delta"], json!({}));
        assert_eq!(chunks[3]["agent_bridge"]["type"], "tool_result");
        let content: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(content, "Hello world");
        assert_eq!(chunks[6]["choices"][0]["finish_reason"], "stop");
        assert_eq!(chunks[7]["choices"], json!([]));
        assert_eq!(chunks[7]["usage"]["total_tokens"], 5);
    }

    #[test]
    fn a_failure_is_an_error_object_then_done() {
        let text = sample::encode(
            OpenAi::new("assistant".into(), false),
            &sample::failed_run(),
        );
        let data = sample::data(&text);
        assert_eq!(data[data.len() - 2]["error"]["code"], "INTERNAL");
        assert_eq!(data[data.len() - 1], "[DONE]");
    }

    #[test]
    fn the_collected_answer_is_a_chat_completion() {
        let mut collector = Collector::default();
        let mut answer = None;
        for event in sample::run() {
            answer = collector.push("assistant", &event).or(answer);
        }
        let Some(Collected::Completed(completion)) = answer else {
            panic!("completed")
        };
        let v = serde_json::to_value(completion).unwrap();
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["choices"][0]["message"]["content"], "Hello world");
        assert_eq!(
            v["choices"][0]["message"]["reasoning_content"],
            "read first"
        );
        assert_eq!(
            v["choices"][0]["agent_bridge"]["activity"][1]["type"],
            "tool_result"
        );
    }
}
