//! Logs and traces.
//!
//! Logs: `RUST_LOG` filters (default `info`); `--log-format json` writes one JSON object per
//! line carrying the `trace_id` and `span_id` of the current span.
//!
//! Traces: OpenTelemetry through `tracing` (tracing-opentelemetry). Every request gets a
//! server span whose parent is the caller's W3C `traceparent` (a new trace when absent); every
//! agent call gets a client span whose context travels in the gRPC metadata. Export is
//! configured only by the standard `OTEL_*` variables: without `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) spans still get ids, for logs and the
//! `traceresponse` header, but nothing is exported.
//!
//! Nothing here is global state the library needs: [`crate::serve`] works the same without
//! [`init`] (the in-process tests run that way), only without trace ids.
//!
//! The OTLP export decision, the `Telemetry` guard and the gRPC-metadata propagator are the
//! ones the agent stub uses too (`agent_bridge_telemetry`).
//!
//! # Layout
//! - [`http`]: the request span and the `traceresponse` header.
//! - [`propagation`]: W3C trace context and baggage in from headers, out into gRPC metadata.
//! - `json`: the JSON log line with trace ids.

pub mod http;
mod json;
pub mod propagation;

pub use agent_bridge_telemetry::Telemetry;
use opentelemetry::trace::{SpanContext, TraceContextExt as _};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::{Layer as _, filter::Targets, fmt};

use crate::config::LogFormat;

/// Installs the process's logger and tracer (once; later calls only return a no-op guard).
pub fn init(format: LogFormat) -> Telemetry {
    init_service(format, "bridge")
}

/// [`init`] with another default service name (the bridge's demo, other binaries): `service`
/// names the process when `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` do not.
pub fn init_service(format: LogFormat, service: &'static str) -> Telemetry {
    let logs = match format {
        LogFormat::Text => fmt::layer().with_target(false).boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_target(false)
            .map_event_format(json::WithTraceIds)
            .boxed(),
    };
    // Our own spans: the bridge's, and the embedded agent stub's (`--agent stub`).
    let traced = Targets::new()
        .with_target("bridge", tracing::Level::INFO)
        .with_target("agent_stub", tracing::Level::INFO);
    agent_bridge_telemetry::install(logs, service, traced)
}

/// The OpenTelemetry identity of the current span, when tracing is installed.
pub fn current_span_context() -> Option<SpanContext> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context.is_valid().then(|| span_context.clone())
}

/// The current trace id as 32 lowercase hex digits, when tracing is installed.
pub fn current_trace_id() -> Option<String> {
    current_span_context().map(|c| c.trace_id().to_string())
}

/// The W3C `traceparent` of `span`, when tracing is installed: how a thread's log remembers
/// the run that wrote it, so subscribers elsewhere can link to it.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let otel = context.span();
    let c = otel.span_context();
    c.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            c.trace_id(),
            c.span_id(),
            c.trace_flags().to_u8()
        )
    })
}

/// Records, under `parent`, that a run (known by its `traceparent`) was delivered to a
/// subscriber: a short consumer span linked to the run's trace.
pub fn link_delivery(parent: &tracing::Span, run_id: &str, traceparent: &str) {
    let Some(linked) = parse_traceparent(traceparent) else {
        return;
    };
    let span = tracing::info_span!(
        parent: parent,
        "thread run delivered",
        otel.kind = "consumer",
        run_id = %run_id,
    );
    span.add_link(linked);
}

fn parse_traceparent(value: &str) -> Option<SpanContext> {
    let mut parts = value.split('-');
    let (_version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let context = SpanContext::new(
        opentelemetry::trace::TraceId::from_hex(trace).ok()?,
        opentelemetry::trace::SpanId::from_hex(span).ok()?,
        opentelemetry::trace::TraceFlags::new(u8::from_str_radix(flags, 16).ok()?),
        true,
        Default::default(),
    );
    context.is_valid().then_some(context)
}
