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
}
