//! The assistant text of a run, as the message-based dialects (AI SDK, AG-UI, A2A, OpenAI)
//! need it: which message is open, which were already streamed, which tool calls were
//! announced. The event model streams text as `text_delta` then repeats it whole in `message`
//! and `run_completed`; these dialects want each message exactly once, opened and closed, so
//! the decisions are made here once and each dialect only spells the steps.

use std::collections::HashSet;

use agent_bridge_proto::v1::Message;
use serde_json::Value;

/// One step of a text message, in a dialect-neutral form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Text<'a> {
    Start { id: &'a str },
    Delta { id: &'a str, delta: &'a str },
    End { id: &'a str },
}

/// The per-response state; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Transcript {
    open: Option<String>,
    started: HashSet<String>,
    tool_calls: HashSet<String>,
}

impl Transcript {
    /// A `text_delta`: ends another open message, opens this one the first time.
    pub(crate) fn delta(&mut self, id: &str, delta: &str, emit: &mut impl FnMut(Text<'_>)) {
        if self.open.as_deref() != Some(id) {
            self.close(emit);
            if self.started.insert(id.to_owned()) {
                emit(Text::Start { id });
            }
            self.open = Some(id.to_owned());
        }
        if !delta.is_empty() {
            emit(Text::Delta { id, delta });
        }
    }

    /// A complete assistant message (`message`, or `run_completed`'s final message): ends
    /// it if it is the open one, writes it whole if it was never streamed, else nothing.
    /// User messages are the client's own and are not repeated.
    pub(crate) fn message(&mut self, message: &Message, emit: &mut impl FnMut(Text<'_>)) {
        if message.role == "user" {
            return;
        }
        let id = message.message_id.as_str();
        if self.open.as_deref() == Some(id) {
            self.open = None;
            emit(Text::End { id });
        } else if self.started.insert(id.to_owned()) {
            self.close(emit);
            emit(Text::Start { id });
            if !message.content.is_empty() {
                emit(Text::Delta {
                    id,
                    delta: &message.content,
                });
            }
            emit(Text::End { id });
        }
    }

    /// Ends the open message, if any (before the run's last event).
    pub(crate) fn close(&mut self, emit: &mut impl FnMut(Text<'_>)) {
        if let Some(id) = self.open.take() {
            emit(Text::End { id: &id });
        }
    }

    /// Remembers a tool call.
    pub(crate) fn tool_called(&mut self, call_id: &str) {
        self.tool_calls.insert(call_id.to_owned());
    }

    /// Whether a tool call was announced (a result for an unknown call needs one first).
    pub(crate) fn knows_tool_call(&self, call_id: &str) -> bool {
        self.tool_calls.contains(call_id)
    }
}

/// Tool arguments as JSON: valid JSON passes through, anything else as a string.
pub(crate) fn arguments(json: &str) -> Value {
    serde_json::from_str(json).unwrap_or_else(|_| Value::String(json.to_owned()))
}

/// An event's time in Unix milliseconds, when the agent gave one.
pub(crate) fn millis(timestamp: Option<&prost_types::Timestamp>) -> Option<i64> {
    timestamp.map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

/// The text of the last `user` message of an OpenAI-style message list (AG-UI uses the same
/// shape): string content, or its `text` parts joined.
pub(crate) fn last_user_text(messages: &[Value]) -> Option<String> {
    let last = messages.iter().rev().find(|m| m["role"] == "user")?;
    let text = match &last["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p["type"] == "text")
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    };
    (!text.is_empty()).then_some(text)
}

/// A run like the reference agent's, and a way to read what an encoder makes of it: the
/// dialects' unit tests share them.
#[cfg(test)]
pub(crate) mod sample {
    use agent_bridge_proto::v1::{
        ChatEvent, Message, RunCompleted, RunError, RunStarted, TextDelta, Thought, ToolCall,
        ToolResult, Usage, chat_event::Payload,
    };
    use bytes::BytesMut;
    use serde_json::Value;

    use crate::dialect::{Encoder, Frame};

    fn event(sequence: u64, payload: Payload) -> ChatEvent {
        ChatEvent {
            run_id: "r1".into(),
            thread_id: "t1".into(),
            agent: "Coder".into(),
            sequence,
            timestamp: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 5_000_000,
            }),
            payload: Some(payload),
        }
    }

    /// run_started, thought, tool_call, tool_result, two deltas, message, run_completed.
    pub(crate) fn run() -> Vec<ChatEvent> {
        let answer = Message {
            message_id: "m2".into(),
            role: "assistant".into(),
            content: "Hello world".into(),
        };
        vec![
            event(
                1,
                Payload::RunStarted(RunStarted {
                    user_message_id: "m1".into(),
                }),
            ),
            event(
                2,
                Payload::Thought(Thought {
                    content: "read first".into(),
                }),
            ),
            event(
                3,
                Payload::ToolCall(ToolCall {
                    call_id: "c1".into(),
                    tool_name: "read_file".into(),
                    arguments_json: r#"{"path":"a.txt"}"#.into(),
                }),
            ),
            event(
                4,
                Payload::ToolResult(ToolResult {
                    call_id: "c1".into(),
                    content: "line\nnext".into(),
                    is_error: false,
                    tool_name: "read_file".into(),
                }),
            ),
            event(
                5,
                Payload::TextDelta(TextDelta {
                    message_id: "m2".into(),
                    delta: "Hello ".into(),
                }),
            ),
            event(
                6,
                Payload::TextDelta(TextDelta {
                    message_id: "m2".into(),
                    delta: "world".into(),
                }),
            ),
            event(7, Payload::Message(answer.clone())),
            event(
                8,
                Payload::RunCompleted(RunCompleted {
                    final_message: Some(answer),
                    usage: Some(Usage {
                        input_tokens: 3,
                        output_tokens: 2,
                        tool_calls: 1,
                    }),
                }),
            ),
        ]
    }

    /// The same run failing after its tool call.
    pub(crate) fn failed_run() -> Vec<ChatEvent> {
        let mut events: Vec<_> = run().into_iter().take(3).collect();
        events.push(event(
            4,
            Payload::RunError(RunError {
                code: "INTERNAL".into(),
                message: "tool crashed".into(),
            }),
        ));
        events
    }

    /// Encodes `events` (then the stream's end) and returns the raw text.
    pub(crate) fn encode<E: Encoder>(mut encoder: E, events: &[ChatEvent]) -> String {
        let mut out = BytesMut::new();
        encoder.open(&mut out);
        for event in events {
            let id = event.sequence.to_string();
            encoder.event(
                &mut out,
                &Frame {
                    id: &id,
                    event,
                    trace_id: None,
                    retry: None,
                },
            );
        }
        encoder.close(&mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    /// The `data:` payloads of a stream, as JSON (`[DONE]` as the string "[DONE]").
    pub(crate) fn data(text: &str) -> Vec<Value> {
        text.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).unwrap_or_else(|_| Value::String(d.to_owned())))
            .collect()
    }

    /// The `type` of each `data:` payload.
    pub(crate) fn types(text: &str) -> Vec<String> {
        data(text)
            .iter()
            .map(|v| v["type"].as_str().unwrap_or("-").to_owned())
            .collect()
    }
}
