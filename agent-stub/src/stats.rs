//! Counters that tests and benchmarks read to see what the agent did.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use prometheus_client::{metrics::counter::Counter, registry::Registry};
use tokio::sync::watch;

/// What a [`Stub`](crate::Stub) has done so far, across all its runs. Clones share the same
/// counters.
#[derive(Clone)]
pub struct Stats {
    inner: Arc<Inner>,
}

struct Inner {
    runs_started: AtomicU64,
    events_sent: AtomicU64,
    /// The same three counts, for Prometheus (`metrics::router`).
    exported: Exported,
    /// A watch rather than an atomic so that tests can await a cancellation instead of polling.
    cancellations: watch::Sender<u64>,
}

impl Stats {
    pub(crate) fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                runs_started: AtomicU64::new(0),
                events_sent: AtomicU64::new(0),
                cancellations: watch::Sender::new(0),
                exported: Exported::default(),
            }),
        }
    }

    /// Chat calls whose message parsed (including `fail-before` runs).
    pub fn runs_started(&self) -> u64 {
        self.inner.runs_started.load(Ordering::Relaxed)
    }

    /// Events handed to a response stream, over all runs.
    pub fn events_sent(&self) -> u64 {
        self.inner.events_sent.load(Ordering::Relaxed)
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
        let exported = &self.inner.exported;
        registry.register(
            "agent_stub_runs_started",
            "Chat calls whose message parsed (including fail-before runs)",
            exported.runs_started.clone(),
        );
        registry.register(
            "agent_stub_events_sent",
            "Events handed to response streams",
            exported.events_sent.clone(),
        );
        registry.register(
            "agent_stub_cancellations",
            "Runs ended because the caller cancelled or went away",
            exported.cancellations.clone(),
        );
    }

    pub(crate) fn run_started(&self) {
        self.inner.runs_started.fetch_add(1, Ordering::Relaxed);
        self.inner.exported.runs_started.inc();
    }

    pub(crate) fn event_sent(&self) {
        self.inner.events_sent.fetch_add(1, Ordering::Relaxed);
        self.inner.exported.events_sent.inc();
    }

    pub(crate) fn run_cancelled(&self) {
        self.inner.cancellations.send_modify(|count| *count += 1);
        self.inner.exported.cancellations.inc();
    }
}

#[derive(Default)]
struct Exported {
    runs_started: Counter,
    events_sent: Counter,
    cancellations: Counter,
}
