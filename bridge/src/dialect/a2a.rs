//! A2A (Agent2Agent, protocol 1.0) over JSON-RPC: the agent card and the streaming methods
//! `SendStreamingMessage` (v0.3 name `message/stream`) and `SubscribeToTask`
//! (`tasks/resubscribe`). Each SSE `data:` is a JSON-RPC response whose `result` is a
//! `StreamResponse` (`task`, `statusUpdate` or `artifactUpdate`), in A2A 1.0's JSON form.
//!
//! A run is one task: its id is `{thread}:{run}` (so a subscription finds the thread), its
//! `contextId` the thread. `run_started` opens the task (`TASK_STATE_WORKING`); thoughts,
//! tool calls and tool results are `statusUpdate`s whose agent message has a `text` part (a
//! thought) or a `data` part (the call or result), with `metadata.kind` saying which; the
//! answer streams as an `artifactUpdate` per delta (artifact id = the message id); the run
//! ends with `TASK_STATE_COMPLETED` (the final message as the status message) or
//! `TASK_STATE_FAILED`.

use std::time::Duration;

use agent_bridge_proto::v1::{ChatEvent, chat_event::Payload};
use bytes::BytesMut;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Encoder, Frame, Notice,
    transcript::{Text, Transcript, arguments},
};
use crate::sse::put_frame;

/// JSON-RPC error codes (the JSON-RPC 2.0 ones and A2A's own).
pub(crate) mod codes {
    pub(crate) const INVALID_REQUEST: i64 = -32600;
    pub(crate) const METHOD_NOT_FOUND: i64 = -32601;
    pub(crate) const INVALID_PARAMS: i64 = -32602;
    pub(crate) const INTERNAL: i64 = -32603;
    pub(crate) const TASK_NOT_FOUND: i64 = -32001;
}

/// One streamed JSON-RPC answer.
#[derive(Debug)]
pub(crate) struct A2a {
    /// The request's JSON-RPC `id`, repeated on every response.
    rpc_id: Value,
    transcript: Transcript,
    /// The reconnection delay of the event being written, when the bridge is going away.
    retry: Option<Duration>,
}

impl A2a {
    pub(crate) fn new(rpc_id: Value) -> Self {
        Self {
            rpc_id,
            transcript: Transcript::default(),
            retry: None,
        }
    }

    fn result(&self, out: &mut BytesMut, id: Option<&str>, result: Value) {
        let value = json!({ "jsonrpc": "2.0", "id": self.rpc_id, "result": result });
        put_frame(out, id, None, value.to_string().as_bytes(), self.retry);
    }

    /// A step of the working task (a thought, a tool call or result): a status update whose
    /// message carries the step's `parts`; `(step, kind)` name it in its id and metadata.
    fn working(
        &self,
        out: &mut BytesMut,
        id: Option<&str>,
        event: &ChatEvent,
        (step, kind): (&str, &str),
        parts: Value,
    ) {
        let message = agent_message(event, step_id(event, step), parts, kind);
        let update = status_update(event, "TASK_STATE_WORKING", Some(message));
        self.result(out, id, update);
    }
}

/// The task id of a run: `{thread}:{run}`. Run ids never contain `:`.
pub(crate) fn task_id(thread_id: &str, run_id: &str) -> String {
    format!("{thread_id}:{run_id}")
}

/// The thread and run of a task id.
pub(crate) fn parse_task_id(task_id: &str) -> Option<(&str, &str)> {
    let (thread, run) = task_id.rsplit_once(':')?;
    (!thread.is_empty() && !run.is_empty()).then_some((thread, run))
}

fn status(event: &ChatEvent, state: &str, message: Option<Value>) -> Value {
    let mut status = json!({ "state": state });
    if let Some(message) = message {
        status["message"] = message;
    }
    if let Some(t) = &event.timestamp {
        status["timestamp"] = json!(t.to_string());
    }
    status
}

/// The id of the message a step of a run becomes: `{run}-{step}-{sequence}`.
fn step_id(event: &ChatEvent, step: &str) -> String {
    format!("{}-{}-{}", event.run_id, step, event.sequence)
}

/// Structured content as A2A parts: one JSON data part.
fn data_parts(data: Value) -> Value {
    json!([{ "data": data, "mediaType": "application/json" }])
}

fn agent_message(event: &ChatEvent, id: String, parts: Value, kind: &str) -> Value {
    json!({
        "messageId": id,
        "contextId": event.thread_id,
        "taskId": task_id(&event.thread_id, &event.run_id),
        "role": "ROLE_AGENT",
        "parts": parts,
        "metadata": { "kind": kind, "agent": event.agent },
    })
}

fn status_update(event: &ChatEvent, state: &str, message: Option<Value>) -> Value {
    json!({ "statusUpdate": {
        "taskId": task_id(&event.thread_id, &event.run_id),
        "contextId": event.thread_id,
        "status": status(event, state, message),
    }})
}

impl Encoder for A2a {
    fn event(&mut self, out: &mut BytesMut, frame: &Frame<'_>) {
        let event = frame.event;
        let id = Some(frame.id);
        self.retry = frame.retry;
        match &event.payload {
            None => {}
            Some(Payload::RunStarted(_)) => self.result(
                out,
                id,
                json!({ "task": {
                    "id": task_id(&event.thread_id, &event.run_id),
                    "contextId": event.thread_id,
                    "status": status(event, "TASK_STATE_WORKING", None),
                }}),
            ),
            Some(Payload::Thought(thought)) => {
                let parts = json!([{ "text": thought.content }]);
                self.working(out, id, event, ("thought", "thought"), parts);
            }
            Some(Payload::ToolCall(call)) => {
                let data = json!({
                    "callId": call.call_id,
                    "toolName": call.tool_name,
                    "arguments": arguments(&call.arguments_json),
                });
                self.working(out, id, event, ("tool-call", "tool_call"), data_parts(data));
            }
            Some(Payload::ToolResult(result)) => {
                let data = json!({
                    "callId": result.call_id,
                    "toolName": result.tool_name,
                    "content": result.content,
                    "isError": result.is_error,
                });
                let kind = ("tool-result", "tool_result");
                self.working(out, id, event, kind, data_parts(data));
            }
            Some(Payload::TextDelta(delta)) => {
                let mut updates = Vec::new();
                self.transcript
                    .delta(&delta.message_id, &delta.delta, &mut |t| {
                        updates.extend(artifact_update(event, t))
                    });
                for update in updates {
                    self.result(out, id, update);
                }
            }
            Some(Payload::Message(message)) => {
                let mut updates = Vec::new();
                self.transcript
                    .message(message, &mut |t| updates.extend(artifact_update(event, t)));
                for update in updates {
                    self.result(out, id, update);
                }
            }
            Some(Payload::RunCompleted(done)) => {
                let mut updates = Vec::new();
                if let Some(message) = &done.final_message {
                    self.transcript
                        .message(message, &mut |t| updates.extend(artifact_update(event, t)));
                }
                self.transcript
                    .close(&mut |t| updates.extend(artifact_update(event, t)));
                let message = done.final_message.as_ref().map(|m| {
                    agent_message(
                        event,
                        m.message_id.clone(),
                        json!([{ "text": m.content }]),
                        "answer",
                    )
                });
                updates.push(status_update(event, "TASK_STATE_COMPLETED", message));
                for update in updates {
                    self.result(out, id, update);
                }
            }
            Some(Payload::RunError(error)) => {
                let parts = json!([{ "text": error.message }]);
                let mut message = agent_message(event, step_id(event, "error"), parts, "error");
                message["metadata"]["code"] = json!(error.code);
                self.result(
                    out,
                    id,
                    status_update(event, "TASK_STATE_FAILED", Some(message)),
                );
            }
        }
    }

    fn notice(&mut self, out: &mut BytesMut, notice: Notice<'_>, retry: Duration) {
        if !matches!(notice, Notice::Truncated { .. }) {
            let value = json!({ "jsonrpc": "2.0", "id": self.rpc_id, "error": {
                "code": codes::INTERNAL,
                "message": "the stream was interrupted; resubscribe to the task to resume",
            }});
            put_frame(out, None, None, value.to_string().as_bytes(), Some(retry));
        }
    }
}

/// The artifact chunk of one text step: the answer's text, appended chunk by chunk; its end
/// is an empty `lastChunk`.
fn artifact_update(event: &ChatEvent, text: Text<'_>) -> Option<Value> {
    let (id, parts, append, last) = match text {
        Text::Start { .. } => return None,
        Text::Delta { id, delta } => (id, json!([{ "text": delta }]), true, false),
        Text::End { id } => (id, json!([]), true, true),
    };
    Some(json!({ "artifactUpdate": {
        "taskId": task_id(&event.thread_id, &event.run_id),
        "contextId": event.thread_id,
        "artifact": { "artifactId": id, "name": "answer", "parts": parts },
        "append": append,
        "lastChunk": last,
    }}))
}

/// A JSON-RPC request.
#[derive(Debug, Deserialize)]
pub(crate) struct RpcRequest {
    pub jsonrpc: String,
    #[serde(default)]
    pub id: Value,
    pub method: String,
    #[serde(default)]
    pub params: Value,
}

/// What a request asks of the bridge.
#[derive(Debug)]
pub(crate) enum Call {
    /// A message to stream a run for: its text and (optional) context, the bridge thread.
    Stream {
        text: String,
        context_id: Option<String>,
    },
    /// Follow a task (a run of a thread).
    Subscribe { task_id: String },
}

/// A JSON-RPC error answer (code, message).
pub(crate) type RpcError = (i64, String);

impl RpcRequest {
    /// Decodes the method and its params.
    pub(crate) fn call(&self) -> Result<Call, RpcError> {
        if self.jsonrpc != "2.0" {
            return Err((codes::INVALID_REQUEST, "`jsonrpc` must be \"2.0\"".into()));
        }
        match self.method.as_str() {
            "SendStreamingMessage" | "message/stream" => {
                let message = &self.params["message"];
                let text = message["parts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    // 1.0 parts carry `text`; 0.3 parts are `{kind: "text", text}`.
                    .filter_map(|p| p["text"].as_str())
                    .collect::<Vec<_>>()
                    .join("\n");
                if text.is_empty() {
                    return Err((
                        codes::INVALID_PARAMS,
                        "`params.message.parts` must hold at least one text part".into(),
                    ));
                }
                let context_id = message["contextId"].as_str().map(str::to_owned);
                Ok(Call::Stream { text, context_id })
            }
            "SubscribeToTask" | "tasks/resubscribe" => match self.params["id"].as_str() {
                Some(id) => Ok(Call::Subscribe {
                    task_id: id.to_owned(),
                }),
                None => Err((codes::INVALID_PARAMS, "`params.id` names the task".into())),
            },
            other => Err((
                codes::METHOD_NOT_FOUND,
                format!(
                    "method {other:?} is not served: use SendStreamingMessage or SubscribeToTask"
                ),
            )),
        }
    }
}

/// A JSON-RPC error response.
pub(crate) fn error_response(id: &Value, (code, message): RpcError) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
}

/// The agent card of one agent route, whose JSON-RPC endpoint is `endpoint`.
pub(crate) fn agent_card(agent: &str, endpoint: &str) -> Value {
    json!({
        "name": agent,
        "description": format!("The {agent} agent, through agent-bridge: it answers a text message, reporting its thoughts and tool calls as it works."),
        "version": env!("CARGO_PKG_VERSION"),
        "supportedInterfaces": [{
            "url": endpoint,
            "protocolBinding": "JSONRPC",
            "protocolVersion": "1.0",
        }],
        "capabilities": { "streaming": true, "pushNotifications": false },
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain", "application/json"],
        "skills": [{
            "id": "chat",
            "name": "Chat",
            "description": "Answers a message; thoughts, tool calls and results arrive as status updates, the answer as an artifact.",
            "tags": ["chat"],
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::transcript::sample;

    #[test]
    fn a_run_is_a_task_with_status_and_artifact_updates() {
        let text = sample::encode(A2a::new(json!(7)), &sample::run());
        let data = sample::data(&text);
        for response in &data {
            assert_eq!(response["jsonrpc"], "2.0");
            assert_eq!(response["id"], 7);
        }
        let results: Vec<&Value> = data.iter().map(|d| &d["result"]).collect();
        assert_eq!(results[0]["task"]["id"], "t1:r1");
        assert_eq!(results[0]["task"]["contextId"], "t1");
        assert_eq!(results[0]["task"]["status"]["state"], "TASK_STATE_WORKING");
        assert_eq!(
            results[1]["statusUpdate"]["status"]["message"]["metadata"]["kind"],
            "thought"
        );
        assert_eq!(
            results[2]["statusUpdate"]["status"]["message"]["parts"][0]["data"]["arguments"]["path"],
            "a.txt"
        );
        let answer: String = results
            .iter()
            .filter_map(|r| r["artifactUpdate"]["artifact"]["parts"].as_array())
            .flatten()
            .filter_map(|p| p["text"].as_str())
            .collect();
        assert_eq!(answer, "Hello world");
        let last = results.last().unwrap();
        assert_eq!(
            last["statusUpdate"]["status"]["state"],
            "TASK_STATE_COMPLETED"
        );
        assert_eq!(
            last["statusUpdate"]["status"]["message"]["parts"][0]["text"],
            "Hello world"
        );
        assert_eq!(
            results[results.len() - 2]["artifactUpdate"]["lastChunk"],
            true
        );
    }

    #[test]
    fn task_ids_name_the_thread() {
        assert_eq!(parse_task_id(&task_id("a:b", "run")), Some(("a:b", "run")));
        assert_eq!(parse_task_id("no-run"), None);
        assert_eq!(parse_task_id(":r"), None);
    }

    #[test]
    fn requests_decode_both_protocol_versions() {
        let request = |method: &str, params: Value| -> RpcRequest {
            serde_json::from_value(
                json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params }),
            )
            .unwrap()
        };
        let v1 = request(
            "SendStreamingMessage",
            json!({ "message": { "role": "ROLE_USER", "parts": [{ "text": "hi" }], "contextId": "t1" } }),
        );
        assert!(
            matches!(v1.call(), Ok(Call::Stream { text, context_id: Some(c) }) if text == "hi" && c == "t1")
        );
        let v03 = request(
            "message/stream",
            json!({ "message": { "role": "user", "parts": [{ "kind": "text", "text": "hi" }] } }),
        );
        assert!(matches!(
            v03.call(),
            Ok(Call::Stream {
                context_id: None,
                ..
            })
        ));
        let unknown = request("tasks/get", json!({}));
        assert!(matches!(unknown.call(), Err((codes::METHOD_NOT_FOUND, _))));
    }
}
