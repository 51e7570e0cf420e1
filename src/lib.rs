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
//! - [`LeanCodec`]: the codec every generated client and server uses (small starting buffers).
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

/// The contract's gRPC codec: prost, as tonic's own `ProstCodec`, but each call's buffers
/// start at [`LeanCodec::BUFFER`] bytes instead of tonic's 8 KiB and grow when a message
/// needs more. A streaming call keeps its buffer for its whole life: the bridge's decode
/// buffer and the agent's encode buffer are held by every open run, most of them idle and
/// their events a few hundred bytes.
#[derive(Debug, Clone, Copy)]
pub struct LeanCodec<T, U>(std::marker::PhantomData<(T, U)>);

impl<T, U> LeanCodec<T, U> {
    /// Where a call's encode and decode buffers start.
    pub const BUFFER: usize = 512;

    fn settings() -> tonic::codec::BufferSettings {
        // The yield threshold stays tonic's default (32 KiB).
        tonic::codec::BufferSettings::new(Self::BUFFER, 32 * 1024)
    }
}

impl<T, U> Default for LeanCodec<T, U> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for LeanCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = tonic_prost::ProstEncoder<T>;
    type Decoder = SliceDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::new(Self::settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        SliceDecoder(std::marker::PhantomData)
    }
}

/// [`LeanCodec`]'s decoder: prost, reading a message from its bytes as one slice. tonic hands
/// the decoder a `DecodeBuf` over its `BytesMut`, and advancing a `BytesMut` (once per field
/// prost reads) costs several times advancing a slice: about 900 instructions per 256-byte
/// event in the bridge (BENCHMARKS.md, CPU per event). A message split across chunks is
/// decoded from the `DecodeBuf` as tonic's own decoder does.
#[derive(Debug)]
pub struct SliceDecoder<U>(std::marker::PhantomData<U>);

impl<U: prost::Message + Default> tonic::codec::Decoder for SliceDecoder<U> {
    type Item = U;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        buf: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<U>, tonic::Status> {
        use prost::bytes::Buf as _;
        let len = buf.remaining();
        let decoded = match buf.chunk().get(..len) {
            Some(message) => {
                let decoded = U::decode(message);
                buf.advance(len);
                decoded
            }
            None => U::decode(&mut *buf),
        };
        // As tonic's decoder: a message that does not parse is INTERNAL.
        decoded
            .map(Some)
            .map_err(|error| tonic::Status::internal(error.to_string()))
    }

    fn buffer_settings(&self) -> tonic::codec::BufferSettings {
        LeanCodec::<(), U>::settings()
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
