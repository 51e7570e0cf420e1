//! The hub: each thread's event log, shared by every subscriber of the thread.
//!
//! A run on a thread appends its events to the thread's log; subscribers replay the log
//! after their last position, then receive new events live, with no gap and no duplicate
//! across the switch. Two backends share this interface and one behavioural test suite:
//! [`memory`] (the embedded default, bounded in count, age and bytes) and [`redis`] (Redis
//! Streams, so any replica serves any subscriber, Redis Cluster included).
//!
//! Positions are `EPOCH-N`: `N` counts the thread's events from 1, `EPOCH` names one life of
//! the log. A log that was lost (expired, deleted, Redis restarted empty) starts a new epoch,
//! so a client holding an old position is told its history was truncated rather than being
//! silently resumed at the wrong place. Each event is encoded once, when appended; its bytes
//! are shared by every subscriber. Within a bridge, live events reach each subscriber
//! through a queue of its own, bounded in bytes ([`fanout`]): retention limits what a late
//! subscriber can replay, never what a subscriber keeping up receives.

pub(crate) mod fanout;
pub(crate) mod memory;
pub(crate) mod redis;
mod subscription;

pub(crate) use subscription::{Backlog, CatchUp, Subscription};

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use tokio::time::Instant;

use crate::{error::ApiError, metrics::Metrics};

/// Identifies one thread's log: threads are namespaced by agent, tenant and owner, so
/// knowing another user's thread id is not enough to read it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ThreadKey {
    pub agent: String,
    pub tenant: String,
    pub subject: String,
    pub thread: String,
}

impl ThreadKey {
    /// A stable string form, safe as (part of) a Redis key: components are percent-escaped
    /// so that no choice of ids can make two keys collide.
    pub(crate) fn encoded(&self) -> String {
        let mut out = String::new();
        for (i, part) in [&self.agent, &self.tenant, &self.subject, &self.thread]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                out.push('/');
            }
            for b in part.bytes() {
                if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':') {
                    out.push(b as char);
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        }
        out
    }
}

/// An event as stored in a log and delivered to subscribers.
#[derive(Debug)]
pub(crate) struct Entry {
    /// Its position in the thread's log (`EPOCH-N`), the SSE `id`.
    pub id: String,
    pub n: u64,
    pub kind: String,
    pub run_id: String,
    /// The event's sequence in its run (to continue a run the bridge must end itself).
    pub sequence: u64,
    pub terminal: bool,
    /// The event's JSON, encoded once.
    pub json: Bytes,
    /// On `run_started`: the run's `traceparent`, for subscribers' span links.
    pub link: Option<String>,
}

impl Entry {
    /// What the entry costs in memory, roughly: its JSON and strings, plus
    /// [`ENTRY_OVERHEAD`] for the struct, its `Arc` and the slots that point at it.
    pub(crate) fn cost(&self) -> usize {
        self.json.len()
            + self.id.len()
            + self.kind.len()
            + self.run_id.len()
            + self.link.as_ref().map_or(0, String::len)
            + ENTRY_OVERHEAD
    }
}

/// See [`Entry::cost`]: `size_of::<Entry>()` is 152 bytes, plus the `Arc` counts, a queue
/// slot and the allocator's rounding of four small allocations.
pub(crate) const ENTRY_OVERHEAD: usize = 256;

/// What a run appends.
#[derive(Debug, Clone)]
pub(crate) struct NewEntry {
    pub kind: &'static str,
    pub run_id: String,
    pub sequence: u64,
    pub terminal: bool,
    pub json: Bytes,
    pub link: Option<String>,
}

/// Where a subscription starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Start {
    /// Only events appended from now on.
    Live,
    /// Everything retained.
    Beginning,
    /// After this position (a `Last-Event-ID`).
    After(String),
}

impl Start {
    /// From `Last-Event-ID` / `?last_event_id=`: `0` means the beginning.
    pub(crate) fn from_last_event_id(id: Option<&str>) -> Self {
        match id.map(str::trim) {
            None | Some("") => Start::Live,
            Some("0") => Start::Beginning,
            Some(id) => Start::After(id.to_owned()),
        }
    }
}

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub(crate) enum Delivery {
    Event(Arc<Entry>),
    /// The requested position is no longer in the log: the subscriber resumes at the oldest
    /// retained event instead (events between were lost to retention or a lost log).
    Truncated {
        /// Boxed: a subscription queues deliveries (a replay, a catch-up), 16 bytes each
        /// rather than 24.
        requested: Box<str>,
    },
    /// The hub failed; the subscription ends. Reconnecting resumes once it is back.
    Failed,
}

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("run {0} is active on this thread")]
    RunActive(String),
    #[error("the event log is unavailable: {0}")]
    Unavailable(String),
}

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        match e {
            HubError::RunActive(run_id) => ApiError::RunActive { run_id },
            HubError::Unavailable(detail) => ApiError::HubUnavailable(detail),
        }
    }
}

/// Retention and timing of a hub.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retention {
    /// Events kept per thread.
    pub max_events: usize,
    /// A thread's log is dropped this long after its last event.
    pub ttl: Duration,
    /// Memory hub only: all logs together stay below this many bytes of event JSON.
    pub max_bytes: usize,
    /// A run's lease: if its bridge stops renewing it (the replica died), subscribers are
    /// told the run failed within about this long.
    pub run_lease: Duration,
}

/// The configured hub, timing every operation for the metrics.
#[derive(Clone)]
pub(crate) struct Hub {
    backend: Backend,
    metrics: Metrics,
}

#[derive(Clone)]
pub(crate) enum Backend {
    Memory(Arc<memory::MemoryHub>),
    Redis(Arc<redis::RedisHub>),
}

impl Hub {
    pub(crate) fn new(backend: Backend, metrics: Metrics) -> Self {
        if let Backend::Memory(h) = &backend {
            h.report_to(metrics.hub_memory.clone(), metrics.hub_threads.clone());
        }
        Self { backend, metrics }
    }

    /// Runs one operation and records how long it took, or that it failed.
    async fn timed<T>(
        &self,
        op: &'static str,
        work: impl std::future::Future<Output = Result<T, HubError>>,
    ) -> Result<T, HubError> {
        let started = Instant::now();
        let result = work.await;
        // A refused run (another is active) is an answer, not a hub failure.
        let ok = !matches!(result, Err(HubError::Unavailable(_)));
        self.metrics
            .hub_operation(self.backend(), op, started.elapsed(), ok);
        result
    }

    /// Marks a run active on a thread; refused while another run is active.
    pub(crate) async fn begin_run(&self, key: &ThreadKey, run_id: &str) -> Result<(), HubError> {
        self.timed("begin_run", async {
            match &self.backend {
                Backend::Memory(h) => h.begin_run(key, run_id),
                Backend::Redis(h) => h.begin_run(key, run_id).await,
            }
        })
        .await
    }

    /// The run active on a thread, if any (for clients that resume "the current run").
    pub(crate) async fn active_run(&self, key: &ThreadKey) -> Result<Option<String>, HubError> {
        self.timed("active_run", async {
            match &self.backend {
                Backend::Memory(h) => Ok(h.active_run(key)),
                Backend::Redis(h) => h.active_run(key).await,
            }
        })
        .await
    }

    /// Renews a run's lease (the run's bridge is alive).
    pub(crate) async fn renew_run(&self, key: &ThreadKey, run_id: &str) -> Result<(), HubError> {
        self.timed("renew_run", async {
            match &self.backend {
                Backend::Memory(_) => Ok(()),
                Backend::Redis(h) => h.renew_run(key, run_id).await,
            }
        })
        .await
    }

    /// Ends a run (after its terminal event was appended, or when it could not start).
    pub(crate) async fn end_run(&self, key: &ThreadKey, run_id: &str) -> Result<(), HubError> {
        self.timed("end_run", async {
            match &self.backend {
                Backend::Memory(h) => {
                    h.end_run(key, run_id);
                    Ok(())
                }
                Backend::Redis(h) => h.end_run(key, run_id).await,
            }
        })
        .await
    }

    /// Appends an event; returns its position.
    pub(crate) async fn append(
        &self,
        key: &ThreadKey,
        entry: NewEntry,
    ) -> Result<String, HubError> {
        self.timed("append", async {
            match &self.backend {
                Backend::Memory(h) => Ok(h.append(key, entry)),
                Backend::Redis(h) => h.append(key, entry).await,
            }
        })
        .await
    }

    pub(crate) async fn subscribe(
        &self,
        key: &ThreadKey,
        start: Start,
    ) -> Result<Subscription, HubError> {
        self.timed("subscribe", async {
            match &self.backend {
                Backend::Memory(h) => Ok(h.subscribe(key, start)),
                Backend::Redis(h) => h.subscribe(key, start).await,
            }
        })
        .await
    }

    /// Drops a thread's log. Refused while a run is active.
    pub(crate) async fn delete(&self, key: &ThreadKey) -> Result<(), HubError> {
        self.timed("delete", async {
            match &self.backend {
                Backend::Memory(h) => h.delete(key),
                Backend::Redis(h) => h.delete(key).await,
            }
        })
        .await
    }

    /// Whether the hub can serve (for `/readyz`).
    pub(crate) async fn check(&self) -> Result<(), HubError> {
        self.timed("check", async {
            match &self.backend {
                Backend::Memory(_) => Ok(()),
                Backend::Redis(h) => h.check().await,
            }
        })
        .await
    }

    pub(crate) fn backend(&self) -> &'static str {
        match &self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
        }
    }
}

/// A position `EPOCH-N`.
pub(crate) fn parse_position(id: &str) -> Option<(&str, u64)> {
    let (epoch, n) = id.rsplit_once('-')?;
    let n = n.parse().ok()?;
    (!epoch.is_empty()).then_some((epoch, n))
}

pub(crate) fn position(epoch: &str, n: u64) -> String {
    format!("{epoch}-{n}")
}

/// A fresh epoch: 12 hex characters.
pub(crate) fn new_epoch() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// Where a replay starts, given the log's epoch and oldest retained `n`.
pub(crate) enum ReplayFrom {
    /// Replay events with n greater than this.
    After(u64),
    /// The requested position is lost: say so, then replay everything retained.
    Truncated(String),
}

/// Decides where to replay from. `oldest` is the smallest retained `n` (None: empty log),
/// `last` the largest ever appended in this epoch.
pub(crate) fn replay_from(
    start: &Start,
    epoch: &str,
    oldest: Option<u64>,
    last: u64,
) -> ReplayFrom {
    match start {
        Start::Live => ReplayFrom::After(last),
        Start::Beginning => ReplayFrom::After(0),
        Start::After(id) => match parse_position(id) {
            Some((e, n)) if e == epoch && n <= last => {
                // Lost when the next wanted event is older than what is retained.
                match oldest {
                    Some(oldest) if n + 1 < oldest => ReplayFrom::Truncated(id.clone()),
                    None if n < last => ReplayFrom::Truncated(id.clone()),
                    _ => ReplayFrom::After(n),
                }
            }
            _ => ReplayFrom::Truncated(id.clone()),
        },
    }
}

/// What a thread's live feed carries within one bridge.
#[derive(Debug, Clone)]
pub(crate) enum FeedItem {
    Entry(Arc<Entry>),
    /// The log started a new epoch.
    Reset,
    Failed,
    /// This subscriber fell too far behind: entries were skipped from here (see [`fanout`]).
    Lagged,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip() {
        assert_eq!(parse_position("ab12-7"), Some(("ab12", 7)));
        assert_eq!(parse_position(&position("e", 42)), Some(("e", 42)));
        for bad in ["", "7", "-7", "ab-x", "ab-"] {
            assert_eq!(parse_position(bad), None, "{bad}");
        }
    }

    #[test]
    fn replay_positions() {
        let after = |start: Start, oldest, last| match replay_from(&start, "e", oldest, last) {
            ReplayFrom::After(n) => Some(n),
            ReplayFrom::Truncated(_) => None,
        };
        assert_eq!(after(Start::Live, Some(1), 9), Some(9));
        assert_eq!(after(Start::Beginning, Some(5), 9), Some(0));
        assert_eq!(
            after(Start::After("e-4".into()), Some(5), 9),
            Some(4),
            "next wanted is retained"
        );
        assert_eq!(
            after(Start::After("e-3".into()), Some(5), 9),
            None,
            "event 4 was trimmed"
        );
        assert_eq!(after(Start::After("e-9".into()), Some(5), 9), Some(9));
        assert_eq!(
            after(Start::After("old-4".into()), Some(1), 9),
            None,
            "another epoch"
        );
        assert_eq!(
            after(Start::After("e-12".into()), Some(1), 9),
            None,
            "from the future"
        );
        assert_eq!(after(Start::After("garbage".into()), Some(1), 9), None);
    }

    #[test]
    fn keys_cannot_collide() {
        let a = ThreadKey {
            agent: "a".into(),
            tenant: "t/x".into(),
            subject: "s".into(),
            thread: "th".into(),
        };
        let b = ThreadKey {
            agent: "a".into(),
            tenant: "t".into(),
            subject: "x/s".into(),
            thread: "th".into(),
        };
        assert_ne!(a.encoded(), b.encoded());
        assert_eq!(a.encoded(), "a/t%2Fx/s/th");
    }
}
