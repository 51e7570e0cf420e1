//! Settings of the agent library.

use std::time::Duration;

/// How the stub behaves. `Config::default()` is what tests want: no pacing.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The delay between two events of the default script, so that a demo streams visibly.
    /// Zero (the default) sends events back to back; a `pace=` trigger overrides it per run.
    pub pace: Duration,
}
