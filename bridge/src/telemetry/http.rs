//! The server span of each HTTP request, and the `traceresponse` header.
//!
//! The span records the method, the route template and the path, never headers or the query
//! string: `authorization`, cookies and tokens in URLs stay out of traces.

use std::time::Duration;

use axum::{
    body::Body,
    extract::MatchedPath,
    http::{HeaderValue, Request, Response},
};
use tower_http::{
    classify::{ServerErrorsAsFailures, SharedClassifier},
    trace::{DefaultOnRequest, TraceLayer},
};
use tracing::{Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The response header carrying the server span's trace context (W3C Trace Context level 2).
pub const TRACERESPONSE: &str = "traceresponse";

pub type HttpTraceLayer = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    fn(&Request<Body>) -> Span,
    DefaultOnRequest,
    fn(&Response<Body>, Duration, &Span),
>;

/// One server span per request, child of the caller's `traceparent`. The span lives until
/// the response body ends, so it covers a whole SSE stream.
pub fn trace_layer() -> HttpTraceLayer {
    TraceLayer::new_for_http()
        .make_span_with(request_span as fn(&Request<Body>) -> Span)
        .on_response(record_response as fn(&Response<Body>, Duration, &Span))
}

fn request_span(request: &Request<Body>) -> Span {
    let method = request.method().as_str();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let span = tracing::info_span!(
        "http request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = %route,
        url.path = %request.uri().path(),
        http.response.status_code = Empty,
    );
    // Unsampled or malformed parents simply give a new root; nothing to report.
    let _ = span.set_parent(super::propagation::extract(request.headers()));
    span
}

fn record_response(response: &Response<Body>, latency: Duration, span: &Span) {
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    tracing::debug!(status = status.as_u16(), ?latency, "response");
}

/// Adds `traceresponse: 00-<trace id>-<server span id>-<flags>`, so a client can find its
/// request's trace. Runs inside the request span.
pub async fn traceresponse(mut response: Response<Body>) -> Response<Body> {
    if let Some(context) = super::current_span_context() {
        let value = format!(
            "00-{}-{}-{:02x}",
            context.trace_id(),
            context.span_id(),
            context.trace_flags().to_u8()
        );
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(TRACERESPONSE, value);
        }
    }
    response
}
