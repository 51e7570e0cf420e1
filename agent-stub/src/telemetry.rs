//! Logs and traces of the agent binary, and the trace context a caller sends.
//!
//! The same scheme as the bridge's: `RUST_LOG` filters logs; spans become OpenTelemetry spans
//! exported over OTLP/gRPC only when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `..._TRACES_ENDPOINT`) is set; `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_TRACES_SAMPLER` and `OTEL_BSP_*` are read by the SDK. The library itself needs no
//! initialisation: without [`init`], [`parent_context`] still parses but no span is exported.

use std::sync::LazyLock;

use opentelemetry::{
    Context,
    propagation::{Extractor, TextMapCompositePropagator, TextMapPropagator as _},
};
use opentelemetry_sdk::{
    Resource,
    propagation::{BaggagePropagator, TraceContextPropagator},
    trace::SdkTracerProvider,
};
use tracing_subscriber::{
    EnvFilter, Layer as _, filter::Targets, layer::SubscriberExt as _, util::SubscriberInitExt as _,
};

static PROPAGATOR: LazyLock<TextMapCompositePropagator> = LazyLock::new(|| {
    TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ])
});

/// The caller's W3C trace context (`traceparent`, `tracestate`, `baggage`) from gRPC metadata.
pub fn parent_context(metadata: &tonic::metadata::MetadataMap) -> Context {
    PROPAGATOR.extract(&MetadataExtractor(metadata))
}

struct MetadataExtractor<'a>(&'a tonic::metadata::MetadataMap);

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                tonic::metadata::KeyRef::Ascii(k) => Some(k.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

/// Flushes buffered spans on [`Telemetry::shutdown`].
#[must_use = "call shutdown() before exiting, or buffered spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        }
    }
}

/// Installs text logs and the tracer for the `agent-stub` binary.
pub fn init() -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let mut notes = Vec::new();
    let mut resource = Resource::builder().build();
    if resource
        .get(&opentelemetry::Key::from_static_str("service.name"))
        .is_none_or(|name| name.as_str().starts_with("unknown_service"))
    {
        resource = Resource::builder().with_service_name("agent-stub").build();
    }
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if exporting(&mut notes) {
        match opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
        {
            Ok(exporter) => builder = builder.with_batch_exporter(exporter),
            Err(error) => notes.push(format!("OTLP exporter not started: {error}")),
        }
    }
    let provider = builder.build();
    // Only the stub's own spans: the exporter's gRPC client must not trace itself.
    let otel_layer = tracing_opentelemetry::layer()
        .with_tracer(opentelemetry::trace::TracerProvider::tracer(
            &provider,
            "agent-stub",
        ))
        .with_filter(Targets::new().with_target("agent_stub", tracing::Level::INFO));
    let installed = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_filter(filter))
        .with(otel_layer)
        .try_init()
        .is_ok();
    for note in notes {
        tracing::warn!("{note}");
    }
    Telemetry {
        provider: installed.then_some(provider),
    }
}

/// Whether the standard variables ask for OTLP/gRPC export.
fn exporting(notes: &mut Vec<String>) -> bool {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"))
        || var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))
            .is_none()
    {
        return false;
    }
    let protocol = var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_else(|| "grpc".into());
    if protocol != "grpc" {
        notes.push(format!(
            "OTEL_EXPORTER_OTLP_PROTOCOL={protocol} is not supported (only grpc); spans are not exported"
        ));
        return false;
    }
    true
}
