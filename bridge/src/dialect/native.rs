//! The bridge's own vocabulary: `id:` the event's position, `event:` its kind (unless the
//! client asked for unnamed events, for `EventSource.onmessage`), `data:` the event's JSON
//! as [`crate::event`] writes it; notices as `history_truncated` and `stream_error`.

use std::time::Duration;

use bytes::BytesMut;
use serde_json::{Value, json};

use super::{Encoder, Frame, Notice};
use crate::{
    event,
    sse::{FrameWriter, put_frame, put_frame_with},
};

/// Our own SSE events.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Native {
    /// Whether frames carry an `event:` line (the kind is in the JSON `type` either way).
    pub named: bool,
}

impl Native {
    pub(crate) const NAMED: Self = Self { named: true };

    fn name<'a>(&self, kind: &'a str) -> Option<&'a str> {
        self.named.then_some(kind)
    }
}

impl Encoder for Native {
    fn event(&mut self, out: &mut BytesMut, frame: &Frame<'_>) {
        let kind = self.name(event::kind(frame.event));
        put_frame_with(out, Some(frame.id), kind, frame.retry, |out| {
            event::write_json(&mut FrameWriter(out), frame.event, frame.trace_id);
        });
    }

    fn logged(&mut self, out: &mut BytesMut, id: &str, kind: &str, json: &[u8]) {
        put_frame(out, Some(id), self.name(event_name(kind)), json, None);
    }

    fn notice(&mut self, out: &mut BytesMut, notice: Notice<'_>, retry: Duration) {
        let value = notice_json(notice);
        let kind = value["type"].as_str().unwrap_or("notice");
        // A truncated history is a warning, the rest end the stream: reconnect then.
        let retry = (!matches!(notice, Notice::Truncated { .. })).then_some(retry);
        // Notices have no `id:`, so a client's `Last-Event-ID` always names an event.
        put_frame(
            out,
            None,
            self.name(kind),
            value.to_string().as_bytes(),
            retry,
        );
    }
}

/// The JSON of a notice, shared with the WebSocket transport.
pub(crate) fn notice_json(notice: Notice<'_>) -> Value {
    match notice {
        Notice::Truncated { requested } => json!({
            "type": "history_truncated",
            "requested": requested,
            "message": "events after the requested position are no longer retained; replaying what is",
        }),
        Notice::LogUnavailable => json!({
            "type": "stream_error",
            "code": "UNAVAILABLE",
            "message": "the event log is unavailable; reconnect to resume",
        }),
        Notice::Draining => json!({
            "type": "stream_error",
            "code": "UNAVAILABLE",
            "message": "this bridge is restarting; reconnect to resume",
        }),
    }
}

/// Event kinds come from the log; only plain names go on an `event:` line.
fn event_name(kind: &str) -> &str {
    if !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        kind
    } else {
        "unknown"
    }
}

#[cfg(test)]
mod tests {
    use agent_bridge_proto::v1::{ChatEvent, Thought, chat_event::Payload};

    use super::*;

    #[test]
    fn frames_follow_the_event_stream_format() {
        let event = ChatEvent {
            run_id: "r".into(),
            thread_id: "t".into(),
            agent: "Planner".into(),
            sequence: 7,
            timestamp: None,
            payload: Some(Payload::Thought(Thought {
                content: "line one\nline two".into(),
            })),
        };
        let mut buf = BytesMut::new();
        let frame = Frame {
            id: "7",
            event: &event,
            trace_id: None,
            retry: None,
        };
        Native { named: true }.event(&mut buf, &frame);
        let text = std::str::from_utf8(&buf).unwrap();
        assert!(
            text.starts_with("id: 7\nevent: thought\ndata: {\"type\":\"thought\""),
            "{text}"
        );
        assert!(text.ends_with("}\n\n"), "{text}");
        assert_eq!(
            text.matches('\n').count(),
            4,
            "exactly one data line: {text}"
        );

        let mut buf = BytesMut::new();
        let frame = Frame {
            retry: Some(Duration::from_millis(1500)),
            ..frame
        };
        Native { named: false }.event(&mut buf, &frame);
        let text = std::str::from_utf8(&buf).unwrap();
        assert!(text.starts_with("id: 7\ndata: "), "{text}");
        assert!(text.ends_with("}\nretry: 1500\n\n"), "{text}");
    }

    #[test]
    fn logged_kinds_cannot_break_a_frame() {
        let mut buf = BytesMut::new();
        Native { named: true }.logged(&mut buf, "E-1", "x\ndata: evil", b"{}");
        assert_eq!(&buf[..], b"id: E-1\nevent: unknown\ndata: {}\n\n");
    }
}
