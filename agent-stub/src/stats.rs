//! Counters that tests and benchmarks read to see what the agent did.

use std::sync::Arc;

use prometheus_client::{metrics::counter::Counter, registry::Registry};
use tokio::sync::watch;

/// What a [`Stub`](crate::Stub) has done so far, across all its runs. Clones share the same
/// counters.
#[derive(Clone)]
pub struct Stats {
    inner: Arc<Inner>,
}

/// Prometheus counters (shared atomics), so that `metrics::router` exports the same numbers.
struct Inner {
    runs_started: Counter,
    events_sent: Counter,
    cancellations_total: Counter,
    /// A watch as well, so that tests can await a cancellation instead of polling.
    cancellations: watch::Sender<u64>,
}

impl Stats {
    pub(crate) fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                runs_started: Counter::default(),
                events_sent: Counter::default(),
                cancellations_total: Counter::default(),
                cancellations: watch::Sender::new(0),
            }),
        }
    }

    /// Chat calls whose message parsed (including `fail-before` runs).
    pub fn runs_started(&self) -> u64 {
        self.inner.runs_started.get()
    }

    /// Events handed to a response stream, over all runs.
    pub fn events_sent(&self) -> u64 {
        self.inner.events_sent.get()
    }

    /// Runs that ended because the caller cancelled or went away before the run finished.
    pub fn cancellations(&self) -> u64 {
        *self.inner.cancellations.borrow()
    }

    /// Resolves once [`cancellations`](Self::cancellations) reaches `n`.
    pub async fn wait_for_cancellations(&self, n: u64) {
        let mut cancellations = self.inner.cancellations.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = cancellations.wait_for(|&count| count >= n).await;
    }

    /// Registers the counters (names end in `_total` on the wire) in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        let inner = &self.inner;
        registry.register(
            "agent_stub_runs_started",
            "Chat calls whose message parsed (including fail-before runs)",
            inner.runs_started.clone(),
        );
        registry.register(
            "agent_stub_events_sent",
            "Events handed to response streams",
            inner.events_sent.clone(),
        );
        registry.register(
            "agent_stub_cancellations",
            "Runs ended because the caller cancelled or went away",
            inner.cancellations_total.clone(),
        );
    }

    pub(crate) fn run_started(&self) {
        self.inner.runs_started.inc();
    }

    pub(crate) fn event_sent(&self) {
        self.inner.events_sent.inc();
    }

    pub(crate) fn run_cancelled(&self) {
        self.inner.cancellations.send_modify(|count| *count += 1);
        self.inner.cancellations_total.inc();
    }
}
