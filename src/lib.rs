//! The wire contract between the bridge and agents, generated from `proto/agent/v1/agent.proto`.
//!
//! Both sides depend on this crate: the bridge uses the client, agents (such as the reference
//! `agent-stub`) implement the server trait.
//!
//! # Layout
//! - [`v1`]: messages, the `Agent` client and server for package `agent.v1`.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors, for gRPC server reflection.
#![forbid(unsafe_code)]

/// Package `agent.v1`.
#[allow(clippy::doc_lazy_continuation, clippy::doc_overindented_list_items)]
pub mod v1 {
    tonic::include_proto!("agent.v1");
}

/// The encoded `FileDescriptorSet` of the contract, for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/agent_descriptor.bin"));

impl v1::chat_event::Payload {
    /// The event's name on the wire (SSE `event:` and the JSON `"type"`).
    pub fn kind(&self) -> &'static str {
        use v1::chat_event::Payload;
        match self {
            Payload::RunStarted(_) => "run_started",
            Payload::Thought(_) => "thought",
            Payload::ToolCall(_) => "tool_call",
            Payload::ToolResult(_) => "tool_result",
            Payload::TextDelta(_) => "text_delta",
            Payload::Message(_) => "message",
            Payload::RunCompleted(_) => "run_completed",
            Payload::RunError(_) => "run_error",
        }
    }

    /// True for the two payloads that end a run.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            v1::chat_event::Payload::RunCompleted(_) | v1::chat_event::Payload::RunError(_)
        )
    }
}
