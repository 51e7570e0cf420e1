//! Logs and traces, set up the same way in every process of the product (the bridge and the
//! agent stub): what each process shares, so neither decides alone when spans are exported or
//! how trace context crosses the gRPC hop.
//!
//! - [`install`]: the process's log layer and its tracer, once; [`Telemetry`] flushes spans
//!   on shutdown.
//! - Export is configured only by the standard `OTEL_*` variables ([`otlp`]).
//! - [`propagation`]: W3C trace context (`traceparent`, `tracestate`) and `baggage`, written
//!   into and read from gRPC metadata. The propagator is ours rather than OpenTelemetry's
//!   global, so libraries using it need no global initialisation.
#![forbid(unsafe_code)]

mod otlp;
pub mod propagation;

use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::{
    EnvFilter, Layer, Registry, filter::Targets, layer::SubscriberExt as _,
    util::SubscriberInitExt as _,
};

/// What must outlive the server: the span exporter, flushed by [`Telemetry::shutdown`].
#[must_use = "call shutdown() before exiting, or buffered spans are lost"]
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still buffered and stops the exporter. Blocking work, kept off the
    /// async workers.
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(error)) = flushed {
                tracing::warn!(%error, "flushing spans on shutdown failed");
            }
        }
    }
}

/// Installs `logs` (filtered by `RUST_LOG`, default `info`) and a tracer whose spans are those
/// of `traced` only: the exporter's own gRPC client (tonic, hyper, h2) must not trace itself
/// into a feedback loop, and `RUST_LOG=warn` must not silence traces. `service` names the
/// process when `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` do not.
///
/// Once per process: later calls install nothing and return a guard that flushes nothing.
pub fn install(
    logs: Box<dyn Layer<Registry> + Send + Sync>,
    service: &'static str,
    traced: Targets,
) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (provider, notes) = otlp::provider(service);
    let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, service);
    let installed = tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                // Each of these costs every span for its whole life (an idle stream holds two
                // spans) or every poll of its task: the span macro's file and line, the thread
                // it started on, busy/idle timings, and attaching the OpenTelemetry context on
                // each entry (propagation reads the span's context directly; nothing here
                // reads `Context::current()`). BENCHMARKS.md, idle streams and CPU per event.
                .with_location(false)
                .with_threads(false)
                .with_tracked_inactivity(false)
                .with_context_activation(false)
                .with_filter(traced),
        )
        .try_init()
        .is_ok();
    for note in notes {
        tracing::warn!("{note}");
    }
    Telemetry {
        provider: installed.then_some(provider),
    }
}
