//! Observability suite: one trace across both hops (bridge and agent as separate processes,
//! exporting to a real OTLP receiver), the Prometheus metrics after a known workload, and
//! readiness.

#[path = "../support/mod.rs"]
mod support;

mod collector;
mod logs;
mod metrics;
mod readiness;
mod traces;
