//! Server-Sent Events: the transport every SSE dialect shares. A response opens with a
//! `retry:` hint, then carries the frames an [`Encoder`] (a dialect) writes for each event, with
//! comment heartbeats while the agent is silent; it owns the stream's guard (admission slot,
//! open-stream gauge), so both are released exactly when the client's stream ends.
//!
//! The body is written here rather than with axum's `Sse` for one measured reason: events
//! that are already waiting are encoded into one buffer and written together, which cuts
//! task wake-ups and writes per event (see BENCHMARKS.md). The framing follows the
//! WHATWG `text/event-stream` format; [`put_frame`] is the one place a frame is laid out.

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
use futures_util::Stream;
use tokio::{
    sync::mpsc,
    time::{Instant, Sleep},
};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use agent_bridge_proto::v1::ChatEvent;
use axum::http::HeaderMap;

use crate::{
    hub::{Delivery, Subscription},
    ratelimit::StreamGuard,
    run::{Emitted, Run},
    telemetry,
};

/// One event, as an encoder receives it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame<'a> {
    /// Where a client resumes after this event: the run's sequence for a run streamed
    /// directly, the thread log's position (`EPOCH-N`) for a thread subscription. Dialects
    /// on SSE write it as the `id:` line.
    pub id: &'a str,
    pub event: &'a ChatEvent,
    /// The W3C trace id of the request that started the run, when known.
    pub trace_id: Option<&'a str>,
    /// Set when the bridge is going away, not the run: the client should reconnect (after
    /// this delay) and resume. SSE dialects write it as the frame's `retry:` field.
    pub retry: Option<Duration>,
}

/// Something a subscriber is told that is not an agent event.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Notice<'a> {
    /// The requested position is no longer retained; replay resumes at the oldest event.
    Truncated { requested: &'a str },
    /// The thread's event log failed; reconnecting resumes once it is back.
    LogUnavailable,
    /// This bridge is draining; reconnect (to another replica) and resume.
    Draining,
}

/// How a run's events become bytes for one kind of client. One encoder serves one response,
/// so it may keep state (an open text message, tool calls in flight).
pub(crate) trait Encoder: Send + 'static {
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
    /// Appends the frames of an event read back from a thread's log, where it is stored as
    /// the bridge's own JSON (`json`, of kind `kind`) at position `id`. By default it is
    /// decoded and written like a live event; the native dialect writes the stored bytes.
    fn logged(&mut self, out: &mut BytesMut, id: &str, kind: &str, json: &[u8]) {
        let _ = kind;
        if let Some((event, trace_id)) = crate::event::from_json(json) {
            self.event(
                out,
                &Frame {
                    id,
                    event: &event,
                    trace_id: trace_id.as_deref(),
                    retry: None,
                },
            );
        }
    }
    /// Appends a notice (subscriptions only). Every notice ends the stream or warns of a
    /// gap, so it carries the reconnection delay `retry` for SSE dialects' `retry:` field.
    fn notice(&mut self, out: &mut BytesMut, notice: Notice<'_>, retry: Duration);
    /// Bytes after the stream's last event (for example `data: [DONE]`).
    fn close(&mut self, out: &mut BytesMut) {
        let _ = out;
    }
}

/// Most events coalesced into one write.
const BATCH: usize = 32;

/// Room per item beyond the last batch's average, for events a little larger than those.
const ITEM_SLACK: usize = 64;

/// How SSE responses are framed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SseSettings {
    /// A comment is sent after this much silence, so proxies and clients keep the stream.
    pub heartbeat: Duration,
    /// The reconnection delay suggested to clients.
    pub retry_hint: Duration,
}

/// What a stream carries: the events of one run, or a thread subscription's deliveries.
pub(crate) trait Item: Send + 'static {
    fn write<E: Encoder>(&self, encoder: &mut E, out: &mut BytesMut, origin: &Origin);
}

/// Where a stream's items are read from: a run's channel, or a thread subscription.
pub(crate) trait Source: Send + Unpin + 'static {
    type Item: Item;
    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Self::Item>>;
    /// Items available without waiting, at least: sizes a batch's buffer.
    fn waiting(&self) -> usize;
}

impl<T: Item> Source for mpsc::Receiver<T> {
    type Item = T;
    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.poll_recv(cx)
    }
    fn waiting(&self) -> usize {
        self.len()
    }
}

impl Source for Subscription {
    type Item = Delivery;
    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        self.poll_recv(cx)
    }
    fn waiting(&self) -> usize {
        Subscription::waiting(self)
    }
}

/// Where a stream's items come from, for what the frames say about it.
pub(crate) struct Origin {
    /// A run's stream: the trace of the request that started the run, shown on
    /// `run_started`.
    trace_id: Option<String>,
    /// A subscription: the subscribing request's span, to which each delivered run's trace
    /// is linked (whichever replica started it).
    span: Option<tracing::Span>,
    /// The reconnection delay to suggest.
    retry: Duration,
}

impl Item for Emitted {
    fn write<E: Encoder>(&self, encoder: &mut E, out: &mut BytesMut, origin: &Origin) {
        // Formatted on the stack: this runs once per event.
        let mut id = itoa::Buffer::new();
        let frame = Frame {
            id: id.format(self.event.sequence),
            event: &self.event,
            trace_id: origin.trace_id.as_deref(),
            retry: self.reconnect.then_some(origin.retry),
        };
        encoder.event(out, &frame);
    }
}

impl Item for Delivery {
    fn write<E: Encoder>(&self, encoder: &mut E, out: &mut BytesMut, origin: &Origin) {
        match self {
            Delivery::Event(entry) => {
                if let (Some(span), Some(link)) = (&origin.span, &entry.link) {
                    telemetry::link_delivery(span, &entry.run_id, link);
                }
                encoder.logged(out, &entry.id, &entry.kind, &entry.json);
            }
            Delivery::Truncated { requested } => encoder.notice(
                out,
                Notice::Truncated {
                    requested: &requested[..],
                },
                origin.retry,
            ),
            Delivery::Failed => encoder.notice(out, Notice::LogUnavailable, origin.retry),
        }
    }
}

/// The SSE response for a started run, in `encoder`'s dialect.
pub(crate) fn run<E: Encoder + Unpin>(mut run: Run, encoder: E, settings: SseSettings) -> Response {
    let origin = Origin {
        trace_id: run.trace_id.take(),
        span: None,
        retry: settings.retry_hint,
    };
    let guard = run.guard.take();
    let mut extra = HeaderMap::new();
    encoder.headers(&mut extra);
    let mut response = Body::from_stream(SseBody::new(
        run.events, encoder, settings, guard, origin, None,
    ))
    .into_response()
    .with_event_stream_headers();
    response.headers_mut().extend(extra);
    response
}

/// The SSE response for a thread subscription, in `encoder`'s dialect. When `draining` is
/// cancelled (the bridge shuts down), the stream ends with a [`Notice::Draining`]: nothing
/// else ends a subscription, while a run's stream gets its final event from the run itself.
pub(crate) fn subscription<E: Encoder + Unpin>(
    subscription: Subscription,
    encoder: E,
    settings: SseSettings,
    guard: StreamGuard,
    draining: CancellationToken,
) -> Response {
    let origin = Origin {
        trace_id: None,
        span: Some(tracing::Span::current()),
        retry: settings.retry_hint,
    };
    let mut extra = HeaderMap::new();
    encoder.headers(&mut extra);
    let mut response = Body::from_stream(SseBody::new(
        subscription,
        encoder,
        settings,
        Some(guard),
        origin,
        Some(draining),
    ))
    .into_response()
    .with_event_stream_headers();
    response.headers_mut().extend(extra);
    response
}

trait EventStreamHeaders {
    fn with_event_stream_headers(self) -> Self;
}

impl EventStreamHeaders for Response {
    fn with_event_stream_headers(mut self) -> Self {
        let headers = self.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        // nginx (and ingress-nginx) buffer responses unless told not to.
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        self
    }
}

/// Lays out one SSE frame: `id:` (when given), `event:` (when given), one `data:` line,
/// `retry:` (when given), the blank line. `data` must hold no raw newline (JSON from serde
/// never does) and `id`/`event` are digits, positions and fixed names, so client input
/// cannot break a frame.
pub(crate) fn put_frame(
    out: &mut BytesMut,
    id: Option<&str>,
    event: Option<&str>,
    data: &[u8],
    retry: Option<Duration>,
) {
    put_frame_with(out, id, event, retry, |out| out.put_slice(data));
}

/// [`put_frame`], with the `data:` value written by `data` straight into the buffer (no
/// intermediate copy: the per-event path of a run).
pub(crate) fn put_frame_with(
    out: &mut BytesMut,
    id: Option<&str>,
    event: Option<&str>,
    retry: Option<Duration>,
    data: impl FnOnce(&mut BytesMut),
) {
    if let Some(id) = id {
        out.put_slice(b"id: ");
        out.put_slice(id.as_bytes());
        out.put_u8(b'\n');
    }
    if let Some(event) = event {
        out.put_slice(b"event: ");
        out.put_slice(event.as_bytes());
        out.put_u8(b'\n');
    }
    out.put_slice(b"data: ");
    data(out);
    out.put_u8(b'\n');
    if let Some(retry) = retry {
        put_retry_field(out, retry);
    }
    out.put_u8(b'\n');
}

/// `io::Write` into a frame's buffer, for serializers (`serde_json::to_writer`): each write
/// is one `extend_from_slice`. bytes' own `BufMut::writer` goes through the generic
/// `BufMut::put`, several times the instructions per write, and a JSON event is dozens of
/// small writes (BENCHMARKS.md, CPU per event).
pub(crate) struct FrameWriter<'a>(pub &'a mut BytesMut);

impl std::io::Write for FrameWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.extend_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A `retry:` field: the reconnection delay a client should use.
fn put_retry_field(out: &mut BytesMut, retry: Duration) {
    out.put_slice(b"retry: ");
    out.put_slice(retry.as_millis().to_string().as_bytes());
    out.put_u8(b'\n');
}

/// The byte stream of one SSE response.
struct SseBody<S, E> {
    /// Read in batches: the items already waiting when one arrives join its write (no
    /// batch vector: each stream would hold one, `BATCH` slots, for its whole life).
    items: S,
    encoder: E,
    /// Fires after `settings.heartbeat` without a frame; reset by every frame.
    heartbeat: Pin<Box<Sleep>>,
    settings: SseSettings,
    opened: bool,
    /// Resolves when the bridge drains; then a draining notice is sent and the stream ends.
    draining: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    closed: bool,
    /// Bytes to reserve per item of the next batch: the last batch's average, plus slack.
    item_bytes: usize,
    /// Released when the body drops: the client's stream is over.
    _guard: Option<StreamGuard>,
    origin: Origin,
}

impl<S: Source, E: Encoder> SseBody<S, E> {
    fn new(
        items: S,
        encoder: E,
        settings: SseSettings,
        guard: Option<StreamGuard>,
        origin: Origin,
        draining: Option<CancellationToken>,
    ) -> Self {
        Self {
            items,
            encoder,
            heartbeat: Box::pin(tokio::time::sleep(settings.heartbeat)),
            settings,
            opened: false,
            draining: draining.map(|token| Box::pin(token.cancelled_owned())),
            closed: false,
            item_bytes: 512,
            _guard: guard,
            origin,
        }
    }
}

impl<S: Source, E: Encoder + Unpin> Stream for SseBody<S, E> {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Every field is Unpin (the timers are boxed), so the body is too.
        let this = self.get_mut();
        if !this.opened {
            this.opened = true;
            let mut buf = BytesMut::with_capacity(16);
            put_retry_field(&mut buf, this.settings.retry_hint);
            buf.put_u8(b'\n');
            this.encoder.open(&mut buf);
            return Poll::Ready(Some(Ok(buf.freeze())));
        }
        if this.closed {
            return Poll::Ready(None);
        }
        if let Some(draining) = &mut this.draining
            && draining.as_mut().poll(cx).is_ready()
        {
            this.closed = true;
            let mut buf = BytesMut::new();
            this.encoder
                .notice(&mut buf, Notice::Draining, this.settings.retry_hint);
            return Poll::Ready(Some(Ok(buf.freeze())));
        }
        match this.items.poll_item(cx) {
            Poll::Ready(Some(first)) => {
                this.heartbeat
                    .as_mut()
                    .reset(Instant::now() + this.settings.heartbeat);
                // Sized from the previous batch, so a batch is written into one allocation
                // rather than grown (and copied) several times.
                let batch = 1 + this.items.waiting().min(BATCH - 1);
                let mut buf = BytesMut::with_capacity(batch * this.item_bytes);
                first.write(&mut this.encoder, &mut buf, &this.origin);
                let mut written = 1;
                while written < batch {
                    // Pending registers this task's waker, as the first poll did.
                    let Poll::Ready(Some(item)) = this.items.poll_item(cx) else {
                        break;
                    };
                    item.write(&mut this.encoder, &mut buf, &this.origin);
                    written += 1;
                }
                this.item_bytes = buf.len() / written + ITEM_SLACK;
                Poll::Ready(Some(Ok(buf.freeze())))
            }
            Poll::Ready(None) => {
                this.closed = true;
                let mut buf = BytesMut::new();
                this.encoder.close(&mut buf);
                if buf.is_empty() {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Ok(buf.freeze())))
                }
            }
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
