//! Server-Sent Events: one agent event becomes one SSE event (`id:` the run's sequence,
//! `event:` the kind, `data:` one line of JSON), after a `retry:` hint, with comment
//! heartbeats while the agent is silent.
//!
//! The body is written here rather than with axum's `Sse` for one measured reason: events
//! that are already waiting are encoded into one buffer and written together, which cuts
//! task wake-ups and writes per event (see BENCHMARKS.md). The framing follows the
//! WHATWG `text/event-stream` format; JSON never contains a raw newline, and `id`/`event`
//! values are digits and fixed names, so client input cannot break a frame.

use std::{
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    body::Body,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use bytes::{BufMut as _, Bytes, BytesMut};
use futures_util::{Stream, StreamExt as _, stream::ReadyChunks};
use tokio::{
    sync::mpsc,
    time::{Instant, Sleep},
};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::{
    run::{Emitted, Run},
    wire,
};

/// Most events coalesced into one write.
const BATCH: usize = 32;

/// How SSE responses are framed.
#[derive(Debug, Clone, Copy)]
pub struct SseSettings {
    /// A comment is sent after this much silence, so proxies and clients keep the stream.
    pub heartbeat: Duration,
    /// The reconnection delay suggested to clients.
    pub retry_hint: Duration,
}

/// The SSE response for a started run.
pub fn response(run: Run, settings: SseSettings) -> Response {
    let retry = settings.retry_hint;
    // The stream owns the run's admission permit: the slot frees when the client's stream
    // ends.
    // It also owns the open-stream gauge's guard, and shows the trace id on `run_started`.
    let permit = run.permit;
    let open_stream = run.open_stream;
    let trace_id = run.trace_id;
    stream(run.events, settings, move |buf, emitted: &Emitted| {
        let _held = (&permit, &open_stream);
        encode(buf, emitted, retry, trace_id.as_deref())
    })
}

/// An SSE response whose frames `encode` writes from the items of `items`.
pub fn stream<T, E>(items: mpsc::Receiver<T>, settings: SseSettings, encode: E) -> Response
where
    T: Send + 'static,
    E: Fn(&mut BytesMut, &T) + Send + Unpin + 'static,
{
    stream_until(items, settings, encode, None)
}

/// Like [`stream`], but when `closing`'s token is cancelled (the bridge drains), the stream
/// ends with `closing`'s frame. For streams nothing else ends on shutdown (thread
/// subscriptions); a run's stream gets its final event from the run itself.
pub fn stream_until<T, E>(
    items: mpsc::Receiver<T>,
    settings: SseSettings,
    encode: E,
    closing: Option<(CancellationToken, Bytes)>,
) -> Response
where
    T: Send + 'static,
    E: Fn(&mut BytesMut, &T) + Send + Unpin + 'static,
{
    let body = SseBody {
        items: ReceiverStream::new(items).ready_chunks(BATCH),
        encode,
        heartbeat: Box::pin(tokio::time::sleep(settings.heartbeat)),
        settings,
        opened: false,
        closing: closing.map(|(token, frame)| (Box::pin(token.cancelled_owned()), frame)),
        closed: false,
    };
    let mut response = Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx (and ingress-nginx) buffer responses unless told not to.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// The byte stream of one SSE response.
struct SseBody<T, E> {
    items: ReadyChunks<ReceiverStream<T>>,
    encode: E,
    /// Fires after `settings.heartbeat` without a frame; reset by every frame.
    heartbeat: Pin<Box<Sleep>>,
    settings: SseSettings,
    opened: bool,
    /// Resolves when the bridge drains; then the frame is sent and the stream ends.
    closing: Option<(Pin<Box<WaitForCancellationFutureOwned>>, Bytes)>,
    closed: bool,
}

impl<T, E> Stream for SseBody<T, E>
where
    E: Fn(&mut BytesMut, &T) + Unpin,
{
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Every field is Unpin (the timer is boxed), so the body is too.
        let this = self.get_mut();
        if !this.opened {
            this.opened = true;
            let mut buf = BytesMut::with_capacity(16);
            put_retry(&mut buf, this.settings.retry_hint);
            buf.put_u8(b'\n');
            return Poll::Ready(Some(Ok(buf.freeze())));
        }
        if this.closed {
            return Poll::Ready(None);
        }
        if let Some((draining, _)) = &mut this.closing
            && draining.as_mut().poll(cx).is_ready()
        {
            this.closed = true;
            let frame = this
                .closing
                .take()
                .map(|(_, frame)| frame)
                .unwrap_or_default();
            return Poll::Ready(Some(Ok(frame)));
        }
        match this.items.poll_next_unpin(cx) {
            Poll::Ready(Some(batch)) => {
                this.heartbeat
                    .as_mut()
                    .reset(Instant::now() + this.settings.heartbeat);
                let mut buf = BytesMut::with_capacity(batch.len() * 256);
                for item in &batch {
                    (this.encode)(&mut buf, item);
                }
                Poll::Ready(Some(Ok(buf.freeze())))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.heartbeat.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.heartbeat
                        .as_mut()
                        .reset(Instant::now() + this.settings.heartbeat);
                    Poll::Ready(Some(Ok(Bytes::from_static(b": heartbeat\n\n"))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// Appends one event frame.
fn encode(buf: &mut BytesMut, emitted: &Emitted, retry: Duration, trace_id: Option<&str>) {
    let event = &emitted.event;
    buf.put_slice(b"id: ");
    buf.put_slice(event.sequence.to_string().as_bytes());
    buf.put_slice(b"\nevent: ");
    buf.put_slice(wire::kind(event).as_bytes());
    buf.put_slice(b"\ndata: ");
    wire::write_json(&mut buf.writer(), event, trace_id);
    buf.put_u8(b'\n');
    if emitted.reconnect {
        put_retry(buf, retry);
    }
    buf.put_u8(b'\n');
}

pub fn put_retry(buf: &mut BytesMut, retry: Duration) {
    buf.put_slice(b"retry: ");
    buf.put_slice(retry.as_millis().to_string().as_bytes());
    buf.put_u8(b'\n');
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
        encode(
            &mut buf,
            &Emitted {
                event: event.clone(),
                reconnect: false,
            },
            Duration::from_secs(2),
            None,
        );
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
        encode(
            &mut buf,
            &Emitted {
                event,
                reconnect: true,
            },
            Duration::from_millis(1500),
            None,
        );
        assert!(
            std::str::from_utf8(&buf)
                .unwrap()
                .ends_with("\nretry: 1500\n\n")
        );
    }
}
