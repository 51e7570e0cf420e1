//! W3C trace context (`traceparent`, `tracestate`) and `baggage` across the gRPC hop: the
//! bridge writes its client span's context into the call's metadata, the agent reads it back
//! as its server span's parent.

use std::sync::LazyLock;

use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapCompositePropagator, TextMapPropagator},
};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use tonic::metadata::{KeyRef, MetadataKey, MetadataMap};

static PROPAGATOR: LazyLock<TextMapCompositePropagator> = LazyLock::new(|| {
    TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ])
});

/// The propagator every hop uses: W3C trace context, then baggage.
pub fn propagator() -> &'static impl TextMapPropagator {
    &*PROPAGATOR
}

/// Writes `context` into outgoing gRPC metadata.
pub fn inject(context: &Context, metadata: &mut MetadataMap) {
    PROPAGATOR.inject_context(context, &mut MetadataInjector(metadata));
}

/// The caller's context from incoming gRPC metadata; empty (a new trace) when absent or
/// malformed.
pub fn extract(metadata: &MetadataMap) -> Context {
    PROPAGATOR.extract(&MetadataExtractor(metadata))
}

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (MetadataKey::from_bytes(key.as_bytes()), value.parse()) {
            self.0.insert(key, value);
        }
    }
}

struct MetadataExtractor<'a>(&'a MetadataMap);

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                KeyRef::Ascii(k) => Some(k.as_str()),
                KeyRef::Binary(_) => None,
            })
            .collect()
    }
}
