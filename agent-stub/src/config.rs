//! Settings of the agent library.

use std::time::Duration;

/// How the stub behaves. `Config::default()` is what tests want: no pacing.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The delay between two events of the default script, so that a demo streams visibly.
    /// Zero (the default) sends events back to back; a `pace=` trigger overrides it per run.
    pub pace: Duration,
    /// When set, every `agent.v1.Agent` call must carry `authorization: Bearer <token>` (the
    /// bridge's credential); others are refused with `UNAUTHENTICATED`. Health and reflection
    /// stay open, as probes and tooling expect.
    pub require_token: Option<String>,
    /// When set, the stub serves gRPC over TLS with this certificate chain and key (PEM),
    /// as an agent behind a private CA would.
    pub tls: Option<TlsIdentity>,
}

/// A server certificate chain and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct TlsIdentity {
    pub cert_pem: String,
    pub key_pem: String,
}
