//! Logs and traces of the agent binary, set up as the bridge's are (`agent_bridge_telemetry`):
//! `RUST_LOG` filters logs; spans become OpenTelemetry spans exported over OTLP/gRPC only when
//! the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set;
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` and `OTEL_BSP_*` are
//! read by the SDK. The library itself needs no initialisation: without [`init`], a run still
//! reads its caller's trace context but no span is exported.

pub use agent_bridge_telemetry::Telemetry;
use tracing_subscriber::{Layer as _, filter::Targets, fmt};

/// Installs text logs and the tracer for the `agent-stub` binary: only the stub's own spans
/// are traced.
pub fn init() -> Telemetry {
    let traced = Targets::new().with_target("agent_stub", tracing::Level::INFO);
    agent_bridge_telemetry::install(fmt::layer().boxed(), "agent-stub", traced)
}
