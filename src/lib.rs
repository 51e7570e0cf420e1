//! The wire contract between the bridge and agents, generated from `proto/agent/v1/agent.proto`.
//!
//! Both sides depend on this crate: the bridge uses the client, agents (such as the reference
//! `agent-stub`) implement the server trait.
//!
//! # Layout
//! - [`v1`]: messages, the `Agent` client and server for package `agent.v1`.
//! - [`a2a::v1`]: the A2A protocol's messages and `A2AService` client (package `lf.a2a.v1`,
//!   vendored in `proto/vendor/a2a/`), for agents that speak A2A rather than `agent.v1`.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors, for gRPC server reflection.
//! - [`code_name`] / [`parse_code`]: the gRPC code names `RunError.code` carries.
#![forbid(unsafe_code)]

/// Package `agent.v1`.
#[allow(clippy::doc_lazy_continuation, clippy::doc_overindented_list_items)]
pub mod v1 {
    tonic::include_proto!("agent.v1");
}

/// The Agent2Agent (A2A) protocol, v1.0: its canonical gRPC binding.
pub mod a2a {
    /// Package `lf.a2a.v1`: messages and the `A2AService` client.
    #[allow(
        clippy::doc_lazy_continuation,
        clippy::doc_overindented_list_items,
        clippy::large_enum_variant
    )]
    pub mod v1 {
        tonic::include_proto!("lf.a2a.v1");
    }
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

use tonic::Code;

/// The gRPC codes by canonical name, as they appear in `RunError.code`.
const CODE_NAMES: [(Code, &str); 17] = [
    (Code::Ok, "OK"),
    (Code::Cancelled, "CANCELLED"),
    (Code::Unknown, "UNKNOWN"),
    (Code::InvalidArgument, "INVALID_ARGUMENT"),
    (Code::DeadlineExceeded, "DEADLINE_EXCEEDED"),
    (Code::NotFound, "NOT_FOUND"),
    (Code::AlreadyExists, "ALREADY_EXISTS"),
    (Code::PermissionDenied, "PERMISSION_DENIED"),
    (Code::ResourceExhausted, "RESOURCE_EXHAUSTED"),
    (Code::FailedPrecondition, "FAILED_PRECONDITION"),
    (Code::Aborted, "ABORTED"),
    (Code::OutOfRange, "OUT_OF_RANGE"),
    (Code::Unimplemented, "UNIMPLEMENTED"),
    (Code::Internal, "INTERNAL"),
    (Code::Unavailable, "UNAVAILABLE"),
    (Code::DataLoss, "DATA_LOSS"),
    (Code::Unauthenticated, "UNAUTHENTICATED"),
];

/// The canonical name of a gRPC code (`UNAVAILABLE`).
pub fn code_name(code: Code) -> &'static str {
    CODE_NAMES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("UNKNOWN", |(_, n)| n)
}

/// The code with this canonical name (case-insensitive), if any.
pub fn parse_code(name: &str) -> Option<Code> {
    CODE_NAMES
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(name))
        .map(|(c, _)| *c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_names_round_trip() {
        for (code, name) in CODE_NAMES {
            assert_eq!(code_name(code), name);
            assert_eq!(parse_code(name), Some(code));
        }
        assert_eq!(parse_code("unavailable"), Some(Code::Unavailable));
        assert_eq!(parse_code("NOPE"), None);
    }
}
