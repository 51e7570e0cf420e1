//! The non-streaming answer (seed 001's backward-compatible endpoint): the same run, read to
//! its end and returned as one JSON document.

use agent_bridge_proto::v1::{ChatEvent, chat_event::Payload};
use serde::Serialize;
use serde_json::Value;

use crate::{error::ApiError, event::WireEvent, run::Run};

/// The document returned to clients that do not ask for `text/event-stream`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Answer {
    pub run_id: String,
    pub thread_id: String,
    /// The final assistant message (`message_id`, `role`, `content`).
    #[schema(value_type = Object)]
    pub message: Value,
    /// Thoughts, tool calls and tool results in the order they happened, each exactly as the
    /// stream carries it.
    #[schema(value_type = Vec<Object>)]
    pub interactions: Vec<Value>,
    /// `input_tokens`, `output_tokens`, `tool_calls`.
    #[schema(value_type = Object)]
    pub usage: Value,
}

/// Reads the run to its end. A run that ends with `run_error` becomes a problem document.
pub(crate) async fn collect(mut run: Run) -> Result<Answer, ApiError> {
    let mut answer = Answer {
        run_id: run.run_id.clone(),
        thread_id: run.thread_id.clone(),
        message: Value::Null,
        interactions: Vec::new(),
        usage: Value::Null,
    };
    while let Some(emitted) = run.events.recv().await {
        let event: &ChatEvent = &emitted.event;
        match &event.payload {
            Some(Payload::Thought(_) | Payload::ToolCall(_) | Payload::ToolResult(_)) => {
                answer.interactions.push(to_value(&WireEvent::from(event)));
            }
            Some(Payload::RunCompleted(done)) => {
                if let Some(message) = &done.final_message {
                    answer.message = to_value(&crate::event::WireMessage::from(message));
                }
                if let Some(usage) = &done.usage {
                    answer.usage = to_value(&crate::event::WireUsage::from(usage));
                }
                return Ok(answer);
            }
            Some(Payload::RunError(error)) => {
                return Err(ApiError::RunFailed {
                    run_id: event.run_id.clone(),
                    code: error.code.clone(),
                    message: error.message.clone(),
                });
            }
            _ => {}
        }
    }
    // The pump always sends a terminal event unless the bridge is going away.
    Err(ApiError::ShuttingDown)
}

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}
