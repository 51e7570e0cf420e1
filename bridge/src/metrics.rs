//! Prometheus metrics, served as text on `GET /metrics`.
//!
//! `prometheus-client` (the Prometheus project's own Rust client) rather than `prometheus`:
//! no global registry (each bridge, including the in-process test ones, has its own), typed
//! label sets, and OpenMetrics text out of the box.
//!
//! [`Metrics`] is the one place metrics are defined. A feature that needs metrics adds its
//! family here, registered in [`Metrics::new`], and only once its code path exists.

use std::{sync::Arc, time::Duration};

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Metric, Registry, Unit},
};
use tokio::time::Instant;
use tonic::Code;

use crate::error::{Refusal, code_name};

/// How a client receives a run.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)] // Label values are lowercase on the wire.
pub(crate) enum Transport {
    sse,
    json,
    /// A thread subscription over WebSocket.
    websocket,
    /// SSE in another wire dialect (`dialect::*`): the Vercel AI SDK's UI message stream,
    /// AG-UI, A2A, OpenAI chunks (and `openai_json`, its non-streaming answer), seed 001's
    /// interactions.
    ai_sdk,
    ag_ui,
    a2a,
    openai,
    openai_json,
    interactions,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AgentLabels {
    pub agent: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StreamLabels {
    pub agent: String,
    pub transport: Transport,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct EventLabels {
    pub agent: String,
    /// The event kind, as in SSE `event:` (`run_started`, `text_delta`, …).
    pub r#type: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ErrorLabels {
    pub agent: String,
    /// The gRPC code name (`UNAVAILABLE`, `INTERNAL`, …).
    pub code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RefusalLabels {
    /// The problem type (`unauthenticated`, `forbidden`, `rate-limited`, `overloaded`, ...).
    pub r#type: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AuthLabels {
    /// [`crate::error::AuthFailure::label`] (`missing`, `expired`, `wrong_issuer`,
    /// `ticket_reused`, `ticket_wrong_route`, ...: a fixed set), or `forbidden`.
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct HubLabels {
    /// `memory` or `redis`.
    pub backend: &'static str,
    /// `append`, `subscribe`, `begin_run`, `renew_run`, `end_run`, `delete`, `check`.
    pub op: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The bridge's metrics. Clones share the same series.
#[derive(Clone)]
pub(crate) struct Metrics {
    registry: Arc<Registry>,
    /// Streams (SSE) and answers (JSON) in progress: the load signal to autoscale on.
    pub open_streams: Family<StreamLabels, Gauge>,
    pub events_forwarded: Family<EventLabels, Counter>,
    pub time_to_first_event: HistogramFamily<AgentLabels>,
    pub stream_duration: HistogramFamily<AgentLabels>,
    pub upstream_errors: Family<ErrorLabels, Counter>,
    pub drain_in_progress: Gauge,
    /// Requests refused with a problem document, by type: authentication failures
    /// (`unauthenticated`, `ticket-refused`, `forbidden`), rate limits (`rate-limited`,
    /// `too-many-streams`), shedding (`overloaded`), and every other refusal.
    pub refusals: Family<RefusalLabels, Counter>,
    /// Authentication and authorization failures, by reason.
    pub auth_failures: Family<AuthLabels, Counter>,
    pub hub_latency: HistogramFamily<HubLabels>,
    pub hub_errors: Family<HubLabels, Counter>,
    /// Memory hub: bytes it accounts for (logs, events, subscribers), held under
    /// `--hub-max-bytes`.
    pub hub_memory: Gauge,
    /// Memory hub: thread logs it holds.
    pub hub_threads: Gauge,
    /// 1 while an agent's last gRPC health answer was SERVING (see [`crate::readiness`]).
    pub agent_serving: Family<AgentLabels, Gauge>,
    /// The allocator's figures, read at each scrape ([`crate::allocator`]).
    allocator: Family<AllocatorLabels, Gauge>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AllocatorLabels {
    /// `allocated` (live data), `active` (pages holding it), `resident` (all the allocator
    /// keeps in memory): see [`crate::allocator::Figures`].
    pub state: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// `bridge_events_forwarded` for one agent, with each event kind's counter looked up once:
/// a run counts every event it forwards, and building the labels (an owned agent name) and
/// finding the series cost more per event than the increment itself. It also counts the
/// agent's failures mid-run, so a run's task holds this rather than all of [`Metrics`].
pub(crate) struct Forwarded {
    family: Family<EventLabels, Counter>,
    upstream_errors: Family<ErrorLabels, Counter>,
    agent: String,
    by_kind: Vec<(&'static str, Counter)>,
}

impl Forwarded {
    pub(crate) fn inc(&mut self, kind: &'static str) {
        if let Some((_, counter)) = self.by_kind.iter().find(|(k, _)| *k == kind) {
            counter.inc();
            return;
        }
        let labels = EventLabels {
            agent: self.agent.clone(),
            r#type: kind,
        };
        let counter = self.family.get_or_create(&labels).clone();
        counter.inc();
        self.by_kind.push((kind, counter));
    }

    /// See [`Metrics::upstream_error`].
    pub(crate) fn upstream_error(&self, code: Code) {
        upstream_error(&self.upstream_errors, &self.agent, code);
    }
}

fn upstream_error(family: &Family<ErrorLabels, Counter>, agent: &str, code: Code) {
    family
        .get_or_create(&ErrorLabels {
            agent: agent.to_owned(),
            code: code_name(code),
        })
        .inc();
}

/// Registers `metric` under `name` (with its unit, if any) and hands it back for the struct.
fn registered<M: Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    metric: M,
) -> M {
    match unit {
        Some(unit) => registry.register_with_unit(name, help, unit, metric.clone()),
        None => registry.register(name, help, metric.clone()),
    }
    metric
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::default();
        Self {
            open_streams: registered(
                &mut registry,
                "bridge_open_streams",
                "Client streams (SSE) and JSON answers currently open",
                None,
                Family::<StreamLabels, Gauge>::default(),
            ),
            events_forwarded: registered(
                &mut registry,
                "bridge_events_forwarded",
                "Agent events handed to client streams, including those the bridge writes itself",
                None,
                Family::<EventLabels, Counter>::default(),
            ),
            time_to_first_event: registered(
                &mut registry,
                "bridge_time_to_first_event",
                "From calling the agent to its first event (connect included)",
                Some(Unit::Seconds),
                Family::new_with_constructor(first_event_buckets),
            ),
            stream_duration: registered(
                &mut registry,
                "bridge_stream_duration",
                "From the first event to the end of the client's stream or answer",
                Some(Unit::Seconds),
                Family::new_with_constructor(duration_buckets),
            ),
            upstream_errors: registered(
                &mut registry,
                "bridge_upstream_errors",
                "Agent calls that failed with a gRPC status, before or after the first event",
                None,
                Family::<ErrorLabels, Counter>::default(),
            ),
            drain_in_progress: registered(
                &mut registry,
                "bridge_drain_in_progress",
                "1 while this instance drains after SIGTERM",
                None,
                Gauge::default(),
            ),
            refusals: registered(
                &mut registry,
                "bridge_refusals",
                "Requests refused with a problem document, by problem type",
                None,
                Family::<RefusalLabels, Counter>::default(),
            ),
            auth_failures: registered(
                &mut registry,
                "bridge_auth_failures",
                "Requests refused by authentication or authorization, by reason",
                None,
                Family::<AuthLabels, Counter>::default(),
            ),
            hub_latency: registered(
                &mut registry,
                "bridge_hub_operation",
                "Time taken by hub operations (thread log appends, subscriptions, leases)",
                Some(Unit::Seconds),
                Family::new_with_constructor(hub_buckets),
            ),
            hub_errors: registered(
                &mut registry,
                "bridge_hub_errors",
                "Hub operations that failed (Redis unreachable, ...)",
                None,
                Family::<HubLabels, Counter>::default(),
            ),
            hub_memory: registered(
                &mut registry,
                "bridge_hub_memory",
                "Bytes the memory hub accounts for: logs, events, subscribers (under --hub-max-bytes)",
                Some(Unit::Bytes),
                Gauge::default(),
            ),
            hub_threads: registered(
                &mut registry,
                "bridge_hub_threads",
                "Thread logs the memory hub holds",
                None,
                Gauge::default(),
            ),
            agent_serving: registered(
                &mut registry,
                "bridge_agent_serving",
                "1 while the agent's last gRPC health check answered SERVING, else 0",
                None,
                Family::<AgentLabels, Gauge>::default(),
            ),
            allocator: registered(
                &mut registry,
                "bridge_allocator",
                "The allocator's bytes: in live allocations (allocated), in the pages holding them (active), resident in memory (resident); absent without jemalloc",
                Some(Unit::Bytes),
                Family::<AllocatorLabels, Gauge>::default(),
            ),
            registry: Arc::new(registry),
        }
    }

    /// The OpenMetrics text exposition of every series.
    pub(crate) fn encode(&self) -> String {
        if let Some(figures) = crate::allocator::figures() {
            for (state, bytes) in [
                ("allocated", figures.allocated),
                ("active", figures.active),
                ("resident", figures.resident),
            ] {
                let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
                self.allocator
                    .get_or_create(&AllocatorLabels { state })
                    .set(bytes);
            }
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// Records one hub operation's duration, or its failure.
    pub(crate) fn hub_operation(
        &self,
        backend: &'static str,
        op: &'static str,
        took: Duration,
        ok: bool,
    ) {
        let labels = HubLabels { backend, op };
        if ok {
            self.hub_latency
                .get_or_create(&labels)
                .observe(took.as_secs_f64());
        } else {
            self.hub_errors.get_or_create(&labels).inc();
        }
    }

    /// `bridge_events_forwarded` for `agent`, for a run's pump to count each event with.
    pub(crate) fn forwarded(&self, agent: &str) -> Forwarded {
        Forwarded {
            family: self.events_forwarded.clone(),
            upstream_errors: self.upstream_errors.clone(),
            agent: agent.to_owned(),
            by_kind: Vec::new(),
        }
    }

    pub(crate) fn event_forwarded(&self, agent: &str, kind: &'static str) {
        self.events_forwarded
            .get_or_create(&EventLabels {
                agent: agent.to_owned(),
                r#type: kind,
            })
            .inc();
    }

    pub(crate) fn upstream_error(&self, agent: &str, code: Code) {
        upstream_error(&self.upstream_errors, agent, code);
    }

    pub(crate) fn first_event(&self, agent: &str, waited: Duration) {
        self.time_to_first_event
            .get_or_create(&AgentLabels {
                agent: agent.to_owned(),
            })
            .observe(waited.as_secs_f64());
    }

    /// Counts a refused request by problem type (and authentication failures by reason).
    pub(crate) fn refused(&self, refusal: &Refusal) {
        self.refusals
            .get_or_create(&RefusalLabels {
                r#type: refusal.kind.clone(),
            })
            .inc();
        if let Some(reason) = refusal.auth_reason {
            self.auth_failures
                .get_or_create(&AuthLabels { reason })
                .inc();
        }
    }

    /// Exports every agent's series that a scaler or an alert reads at their starting value
    /// (open streams 0, not serving until checked), so a fresh instance is not missing them
    /// until its first stream: an autoscaler on `bridge_open_streams` can then scale idle
    /// pods down.
    pub(crate) fn agents_configured<'a>(&self, agents: impl IntoIterator<Item = &'a str>) {
        for agent in agents {
            for transport in [Transport::sse, Transport::json, Transport::websocket] {
                let _ = self.open_streams.get_or_create(&StreamLabels {
                    agent: agent.to_owned(),
                    transport,
                });
            }
            self.agent_serving(agent);
        }
    }

    /// The agent's `bridge_agent_serving` gauge.
    pub(crate) fn agent_serving(&self, agent: &str) -> Gauge {
        self.agent_serving
            .get_or_create(&AgentLabels {
                agent: agent.to_owned(),
            })
            .clone()
    }

    /// Counts a stream as open until the returned guard drops, then records its duration.
    pub(crate) fn stream_opened(&self, agent: &str, transport: Transport) -> OpenStream {
        let gauge = self
            .open_streams
            .get_or_create(&StreamLabels {
                agent: agent.to_owned(),
                transport,
            })
            .clone();
        gauge.inc();
        let duration = self
            .stream_duration
            .get_or_create(&AgentLabels {
                agent: agent.to_owned(),
            })
            .clone();
        OpenStream {
            gauge,
            duration,
            opened: Instant::now(),
        }
    }
}

/// An open client stream; dropping it (the stream ended, or the client left) closes it.
pub(crate) struct OpenStream {
    gauge: Gauge,
    duration: Histogram,
    opened: Instant,
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.gauge.dec();
        self.duration.observe(self.opened.elapsed().as_secs_f64());
    }
}

/// Hub operations take tens of microseconds (memory) to milliseconds (Redis).
fn hub_buckets() -> Histogram {
    Histogram::new([
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    ])
}

/// Agents answer their first event in milliseconds to tens of seconds.
fn first_event_buckets() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ])
}

/// Runs last from under a second to the 30-minute default limit.
fn duration_buckets() -> Histogram {
    Histogram::new([
        0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
    ])
}
