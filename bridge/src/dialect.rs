//! Dialects: one agent run, encoded in the wire format a client already speaks.
//!
//! The event model (`agent.v1` `ChatEvent`) is the single source. A dialect is an
//! [`Encoder`] (events to bytes, here) plus a request decoder (its route's body, in its own
//! module): a new dialect is one file and its test.
//!
//! The transport (`sse`) owns the byte stream, heartbeats, batching and shutdown; an encoder
//! only says what one event looks like on the wire.

use agent_bridge_proto::v1::ChatEvent;
use axum::http::HeaderMap;
use bytes::BytesMut;

/// One event, as an encoder receives it.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Where a client resumes after this event: the run's sequence for a run streamed
    /// directly, the thread log's position (`EPOCH-N`) for a thread subscription. Dialects
    /// on SSE write it as the `id:` line.
    pub id: &'a str,
    pub event: &'a ChatEvent,
    /// The W3C trace id of the request that started the run, when known.
    pub trace_id: Option<&'a str>,
    /// The bridge is going away, not the run: the client should reconnect and resume.
    pub reconnect: bool,
}

/// Something a subscriber is told that is not an agent event.
#[derive(Debug, Clone, Copy)]
pub enum Notice<'a> {
    /// The requested position is no longer retained; replay resumes at the oldest event.
    Truncated { requested: &'a str },
    /// The thread's event log failed; reconnecting resumes once it is back.
    LogUnavailable,
    /// This bridge is draining; reconnect (to another replica) and resume.
    Draining,
}

/// How a run's events become bytes for one kind of client. One encoder serves one response,
/// so it may keep state (an open text message, tool calls in flight).
pub trait Encoder: Send + 'static {
    /// Response headers beyond `content-type: text/event-stream` and `cache-control`.
    fn headers(&self, headers: &mut HeaderMap) {
        let _ = headers;
    }
    /// Bytes before the first event (for example a `retry:` hint).
    fn open(&mut self, out: &mut BytesMut) {
        let _ = out;
    }
    /// Appends the frames of one event: none (the dialect has no word for it), one, or
    /// several.
    fn event(&mut self, out: &mut BytesMut, frame: &Frame<'_>);
    /// Appends a notice (subscriptions only).
    fn notice(&mut self, out: &mut BytesMut, notice: Notice<'_>);
    /// Bytes after the stream's last event (for example `data: [DONE]`).
    fn close(&mut self, out: &mut BytesMut) {
        let _ = out;
    }
}
