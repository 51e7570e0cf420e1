//! W3C trace context (`traceparent`, `tracestate`) and `baggage`, read from HTTP headers and
//! written into gRPC metadata (the propagator shared with agents: `agent_bridge_telemetry`).

use opentelemetry::{
    Context,
    propagation::{Extractor, TextMapPropagator as _},
};

pub use agent_bridge_telemetry::propagation::inject;

/// The caller's context from request headers; empty (a new trace) when absent or malformed.
pub fn extract(headers: &http::HeaderMap) -> Context {
    agent_bridge_telemetry::propagation::propagator().extract(&HeaderExtractor(headers))
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
