//! W3C trace context (`traceparent`, `tracestate`) and `baggage`, read from HTTP headers and
//! written into gRPC metadata. The propagator is ours rather than OpenTelemetry's global, so
//! the library needs no global initialisation.

use std::sync::LazyLock;

use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapCompositePropagator, TextMapPropagator as _},
};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

static PROPAGATOR: LazyLock<TextMapCompositePropagator> = LazyLock::new(|| {
    TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ])
});

/// The caller's context from request headers; empty (a new trace) when absent or malformed.
pub fn extract(headers: &http::HeaderMap) -> Context {
    PROPAGATOR.extract(&HeaderExtractor(headers))
}

/// Writes `context` into outgoing gRPC metadata.
pub fn inject(context: &Context, metadata: &mut tonic::metadata::MetadataMap) {
    PROPAGATOR.inject_context(context, &mut MetadataInjector(metadata));
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            value.parse(),
        ) {
            self.0.insert(key, value);
        }
    }
}
