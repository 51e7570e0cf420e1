//! Server-Sent Events: one agent event becomes one SSE event (`id:` the run's sequence,
//! `event:` the kind, `data:` one line of JSON), after a `retry:` hint, with comment
//! heartbeats while the agent is silent.

use std::{convert::Infallible, time::Duration};

use axum::{
    http::{HeaderValue, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures_util::{StreamExt as _, stream};
use tokio_stream::wrappers::ReceiverStream;

use crate::{
    run::{Emitted, Run},
    wire,
};

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
    let open = stream::iter([Ok::<_, Infallible>(Event::default().retry(retry))]);
    // The stream owns the open-stream guard: it closes when the client's stream does.
    let open_stream = run.open_stream;
    let trace_id = run.trace_id;
    let events = ReceiverStream::new(run.events).map(move |emitted| {
        let _open = &open_stream;
        Ok(frame(&emitted, retry, trace_id.as_deref()))
    });
    let sse = Sse::new(open.chain(events)).keep_alive(
        KeepAlive::new()
            .interval(settings.heartbeat)
            .text("heartbeat"),
    );
    let mut response = sse.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx (and ingress-nginx) buffer responses unless told not to.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

fn frame(emitted: &Emitted, retry: Duration, trace_id: Option<&str>) -> Event {
    let event = &emitted.event;
    let sse = Event::default()
        .id(event.sequence.to_string())
        .event(wire::kind(event))
        .data(wire::to_json_traced(event, trace_id));
    if emitted.reconnect {
        sse.retry(retry)
    } else {
        sse
    }
}
