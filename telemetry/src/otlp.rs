//! The tracer provider, from the standard `OTEL_*` variables only.
//!
//! The SDK reads `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER(_ARG)`,
//! `OTEL_BSP_*` and, in the exporter, `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT`, `_HEADERS`,
//! `_TIMEOUT`; this module decides whether to export at all and the default service name.

use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};

/// A provider that always assigns ids and exports over OTLP/gRPC only when an endpoint is
/// configured; plus notes to log once logging is up.
pub(crate) fn provider(default_service: &'static str) -> (SdkTracerProvider, Vec<String>) {
    let mut notes = Vec::new();
    let mut resource = Resource::builder().build();
    let unnamed = resource
        .get(&opentelemetry::Key::from_static_str("service.name"))
        .is_none_or(|name| name.as_str().starts_with("unknown_service"));
    if unnamed {
        resource = Resource::builder()
            .with_service_name(default_service)
            .build();
    }
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if let Some(note) = export_disabled() {
        if let Some(note) = note {
            notes.push(note);
        }
    } else {
        match opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
        {
            Ok(exporter) => builder = builder.with_batch_exporter(exporter),
            Err(error) => notes.push(format!(
                "OTLP exporter not started ({error}); check OTEL_EXPORTER_OTLP_ENDPOINT"
            )),
        }
    }
    (builder.build(), notes)
}

/// `Some` when spans are not to be exported, with a note when that may surprise.
fn export_disabled() -> Option<Option<String>> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"))
    {
        return Some(None);
    }
    if var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))
        .is_none()
    {
        return Some(None);
    }
    let protocol = var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_else(|| "grpc".into());
    if protocol != "grpc" {
        // http/protobuf would add an HTTP client stack for one exporter; collectors accept
        // gRPC on 4317 by default.
        return Some(Some(format!(
            "OTEL_EXPORTER_OTLP_PROTOCOL={protocol} is not supported (only grpc); spans are not exported"
        )));
    }
    None
}
