//! The in-memory hub: the embedded default, for one bridge process.
//!
//! Bounded three ways: events per thread, age (a thread's log goes `ttl` after its last
//! event), and bytes across all threads. The byte budget covers everything the hub holds,
//! as [`Entry::cost`], [`LOG_OVERHEAD`] and [`SUBSCRIBER_OVERHEAD`] count it: events, logs
//! and their keys, subscribers' bookkeeping. Beyond it the least recently updated logs give
//! up their oldest events first, and a log left with no event, no run and no subscriber is
//! dropped; so is one whose last subscriber leaves. Reading or subscribing to a thread that
//! was never written leaves nothing behind once the subscriber is gone. (Events a slow
//! subscriber has queued but the log no longer holds are bounded per subscriber, by
//! [`super::fanout::SUBSCRIBER_MAX_BYTES`], not by this budget.)

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use prometheus_client::metrics::gauge::Gauge;

use super::{
    CatchUp, Delivery, Entry, FeedItem, HubError, NewEntry, ReplayFrom, Retention, Start,
    Subscription, ThreadKey,
    fanout::{Fanout, SUBSCRIBER_OVERHEAD},
    new_epoch, position, replay_from,
};

/// What a log costs besides its events and key strings: the map slot, the `Log` itself,
/// its epoch and the allocator's rounding.
pub(crate) const LOG_OVERHEAD: usize = 384;

/// How often expired logs are looked for (on the next operation after this long).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

pub(crate) struct MemoryHub {
    retention: Retention,
    state: Mutex<State>,
    /// `State::bytes` and the number of logs, readable without the lock.
    bytes: AtomicUsize,
    logs: AtomicUsize,
    /// The same two, as metrics (set after every change, subscribers leaving included).
    gauges: OnceLock<(Gauge, Gauge)>,
}

#[derive(Default)]
struct State {
    logs: HashMap<ThreadKey, Log>,
    /// Everything accounted: logs, events, subscribers.
    bytes: usize,
    last_sweep: Option<Instant>,
}

struct Log {
    epoch: String,
    entries: VecDeque<Arc<Entry>>,
    last_n: u64,
    live: Fanout,
    active_run: Option<String>,
    updated: Instant,
}

fn key_cost(key: &ThreadKey) -> usize {
    LOG_OVERHEAD + key.agent.len() + key.tenant.len() + key.subject.len() + key.thread.len()
}

impl Log {
    fn new(now: Instant) -> Self {
        Self {
            epoch: new_epoch(),
            entries: VecDeque::new(),
            last_n: 0,
            live: Fanout::default(),
            active_run: None,
            updated: now,
        }
    }

    fn oldest(&self) -> Option<u64> {
        self.entries.front().map(|e| e.n)
    }

    /// Nothing would be lost by forgetting it (a later subscriber holding an old position is
    /// told its history was truncated, as the epoch is gone).
    fn unused(&self) -> bool {
        self.entries.is_empty() && self.active_run.is_none() && self.live.is_empty()
    }

    fn events_cost(&self) -> usize {
        self.entries.iter().map(|e| e.cost()).sum()
    }

    /// Retained events after `n`, or a truncation notice first when some were lost.
    /// Also returns the position the replay starts after (live events continue from there).
    fn replay(&self, start: &Start) -> (Vec<Delivery>, u64) {
        let (after, mut out) = match replay_from(start, &self.epoch, self.oldest(), self.last_n) {
            ReplayFrom::After(n) => (n, Vec::new()),
            ReplayFrom::Truncated(requested) => (
                0,
                vec![Delivery::Truncated {
                    requested: requested.into(),
                }],
            ),
        };
        out.extend(
            self.entries
                .iter()
                .filter(|e| e.n > after)
                .map(|e| Delivery::Event(e.clone())),
        );
        (out, after)
    }
}

impl State {
    /// The thread's log, created (and accounted) if needed.
    fn log(&mut self, key: &ThreadKey, now: Instant) -> &mut Log {
        if !self.logs.contains_key(key) {
            self.bytes += key_cost(key);
        }
        self.logs
            .entry(key.clone())
            .or_insert_with(|| Log::new(now))
    }

    /// A map keeps the capacity of its peak: once the logs are down to a quarter of it (the
    /// streams of a peak have closed), the table shrinks. Rehashing the remaining quarter is
    /// paid for by the removals that led there. BENCHMARKS.md: memory after close.
    fn give_back_capacity(&mut self) {
        const KEEP: usize = 1024;
        let (len, capacity) = (self.logs.len(), self.logs.capacity());
        if capacity > KEEP && len < capacity / 4 {
            self.logs.shrink_to((len * 2).max(KEEP));
        }
    }

    /// Forgets subscribers that left, and the log if nothing is left in it.
    fn tidy(&mut self, key: &ThreadKey) {
        let Some(log) = self.logs.get_mut(key) else {
            return;
        };
        self.bytes -= log.live.prune() * SUBSCRIBER_OVERHEAD;
        if log.unused() {
            self.logs.remove(key);
            self.bytes -= key_cost(key);
        }
    }
}

impl MemoryHub {
    pub(crate) fn new(retention: Retention) -> Self {
        Self {
            retention,
            state: Mutex::new(State::default()),
            bytes: AtomicUsize::new(0),
            logs: AtomicUsize::new(0),
            gauges: OnceLock::new(),
        }
    }

    /// Keeps `bytes` (everything accounted) and `logs` (thread logs held) up to date.
    pub(crate) fn report_to(&self, bytes: Gauge, logs: Gauge) {
        let _ = self.gauges.set((bytes, logs));
    }

    /// Bytes the hub accounts for (logs, events, subscribers) and thread logs it holds.
    #[cfg(test)]
    pub(crate) fn size(&self) -> (usize, usize) {
        (
            self.bytes.load(Ordering::Relaxed),
            self.logs.load(Ordering::Relaxed),
        )
    }

    /// Runs `f` on the state, then enforces the bounds and publishes the byte count.
    fn with<T>(&self, f: impl FnOnce(&mut State, Instant) -> T) -> T {
        let now = Instant::now();
        let mut state = self
            .state
            .lock()
            // A panic while holding the lock cannot leave the maps half-updated in a way
            // that matters more than losing the hub; keep serving.
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let out = f(&mut state, now);
        self.sweep(&mut state, now);
        self.shed(&mut state);
        state.give_back_capacity();
        self.bytes.store(state.bytes, Ordering::Relaxed);
        self.logs.store(state.logs.len(), Ordering::Relaxed);
        if let Some((bytes, logs)) = self.gauges.get() {
            bytes.set(state.bytes as i64);
            logs.set(state.logs.len() as i64);
        }
        out
    }

    pub(crate) fn begin_run(&self, key: &ThreadKey, run_id: &str) -> Result<(), HubError> {
        self.with(|state, now| {
            let log = state.log(key, now);
            match &log.active_run {
                Some(active) => Err(HubError::RunActive(active.clone())),
                None => {
                    log.active_run = Some(run_id.to_owned());
                    Ok(())
                }
            }
        })
    }

    /// The thread's active run, if any.
    pub(crate) fn active_run(&self, key: &ThreadKey) -> Option<String> {
        self.with(|state, _| state.logs.get(key).and_then(|log| log.active_run.clone()))
    }

    pub(crate) fn end_run(&self, key: &ThreadKey, run_id: &str) {
        self.with(|state, _| {
            if let Some(log) = state.logs.get_mut(key)
                && log.active_run.as_deref() == Some(run_id)
            {
                log.active_run = None;
                state.tidy(key);
            }
        })
    }

    pub(crate) fn append(&self, key: &ThreadKey, new: NewEntry) -> String {
        self.with(|state, now| {
            let log = state.log(key, now);
            log.last_n += 1;
            let id = position(&log.epoch, log.last_n);
            let entry = Arc::new(Entry {
                id: id.clone(),
                n: log.last_n,
                kind: new.kind.to_owned(),
                run_id: new.run_id,
                sequence: new.sequence,
                terminal: new.terminal,
                json: new.json,
                link: new.link,
            });
            let mut added = entry.cost();
            log.entries.push_back(entry.clone());
            log.updated = now;
            let mut freed = 0;
            while log.entries.len() > self.retention.max_events {
                if let Some(e) = log.entries.pop_front() {
                    freed += e.cost();
                }
            }
            // Nobody listening is fine: the log keeps it for later subscribers.
            let left = log.live.send(&FeedItem::Entry(entry));
            freed += left * SUBSCRIBER_OVERHEAD;
            added = state.bytes + added - freed;
            state.bytes = added;
            id
        })
    }

    /// Ends expired logs: a log nobody follows goes; one with subscribers starts a new
    /// epoch (they are told) and stays as long as they do.
    fn sweep(&self, state: &mut State, now: Instant) {
        if state
            .last_sweep
            .is_some_and(|t| now.duration_since(t) < SWEEP_EVERY)
        {
            return;
        }
        state.last_sweep = Some(now);
        let ttl = self.retention.ttl;
        let mut freed = 0;
        state.logs.retain(|key, log| {
            freed += log.live.prune() * SUBSCRIBER_OVERHEAD;
            let expired = now.duration_since(log.updated) > ttl && log.active_run.is_none();
            if expired && !log.entries.is_empty() {
                freed += log.events_cost();
                log.entries.clear();
                log.epoch = new_epoch();
                log.last_n = 0;
                log.updated = now;
                log.live.send(&FeedItem::Reset);
            }
            if log.unused() {
                freed += key_cost(key);
                false
            } else {
                true
            }
        });
        state.bytes -= freed;
    }

    /// Beyond the byte budget: the least recently updated logs give up their oldest events
    /// (and go, once unused), down to 15/16 of the budget so that one sort serves many
    /// appends.
    fn shed(&self, state: &mut State) {
        let max = self.retention.max_bytes;
        if state.bytes <= max {
            return;
        }
        let target = max - max / 16;
        let mut order: Vec<(Instant, ThreadKey)> = state
            .logs
            .iter()
            .map(|(k, l)| (l.updated, k.clone()))
            .collect();
        order.sort_unstable_by_key(|(updated, _)| *updated);
        for (_, key) in order {
            if state.bytes <= target {
                break;
            }
            let Some(log) = state.logs.get_mut(&key) else {
                continue;
            };
            while state.bytes > target {
                let Some(e) = log.entries.pop_front() else {
                    break;
                };
                state.bytes -= e.cost();
            }
            state.tidy(&key);
        }
    }

    pub(crate) fn subscribe(self: &Arc<Self>, key: &ThreadKey, start: Start) -> Subscription {
        let (first, live, last_n) = self.with(|state, now| {
            state.bytes += SUBSCRIBER_OVERHEAD;
            let log = state.log(key, now);
            let (first, last_n) = log.replay(&start);
            (first, log.live.subscribe(), last_n)
        });
        let backlog = Box::new(Backlog {
            hub: self.clone(),
            key: key.clone(),
        });
        Subscription::new(first, live, last_n, backlog)
    }

    pub(crate) fn delete(&self, key: &ThreadKey) -> Result<(), HubError> {
        self.with(|state, _| {
            let Some(log) = state.logs.get_mut(key) else {
                return Ok(());
            };
            if let Some(active) = &log.active_run {
                return Err(HubError::RunActive(active.clone()));
            }
            let freed = log.events_cost();
            log.entries.clear();
            log.epoch = new_epoch();
            log.last_n = 0;
            log.live.send(&FeedItem::Reset);
            state.bytes -= freed;
            state.tidy(key);
            Ok(())
        })
    }
}

/// One subscription's way back into its log.
struct Backlog {
    hub: Arc<MemoryHub>,
    key: ThreadKey,
}

impl super::Backlog for Backlog {
    fn catch_up(&self, after: u64) -> CatchUp {
        let missed = self.hub.with(|state, _| match state.logs.get(&self.key) {
            Some(log) => log.replay(&Start::After(position(&log.epoch, after))).0,
            None => vec![Delivery::Failed],
        });
        Box::pin(std::future::ready(Ok(missed)))
    }

    /// The log goes if nothing else holds it.
    fn left(&self) {
        self.hub.with(|state, _| state.tidy(&self.key));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;

    fn hub(max_bytes: usize) -> Arc<MemoryHub> {
        Arc::new(MemoryHub::new(Retention {
            max_events: 1000,
            ttl: Duration::from_secs(3600),
            max_bytes,
            run_lease: Duration::from_secs(10),
        }))
    }

    fn key(thread: &str) -> ThreadKey {
        ThreadKey {
            agent: "a".into(),
            tenant: "t".into(),
            subject: "s".into(),
            thread: thread.into(),
        }
    }

    fn entry(size: usize) -> NewEntry {
        NewEntry {
            kind: "text_delta",
            run_id: "r".into(),
            sequence: 1,
            terminal: false,
            json: Bytes::from(vec![b'x'; size]),
            link: None,
        }
    }

    /// A subscriber that left is forgotten when its subscription drops (no task to notice
    /// it later): the hub holds nothing once every subscription is gone.
    fn assert_empty(hub: &MemoryHub) {
        assert_eq!(hub.size(), (0, 0));
    }

    #[tokio::test]
    async fn subscribing_to_unused_threads_leaves_nothing() {
        let hub = hub(1 << 30);
        for i in 0..100 {
            let sub = hub.subscribe(&key(&i.to_string()), Start::Beginning);
            drop(sub);
        }
        assert_empty(&hub);
    }

    #[test]
    fn the_budget_covers_logs_and_events() {
        let max = 1 << 20;
        let hub = hub(max);
        for i in 0..20_000 {
            hub.append(&key(&i.to_string()), entry(100));
            assert!(hub.size().0 <= max, "{} > {max}", hub.size().0);
        }
        assert!(hub.size().1 < 20_000, "old logs went");
        // Deleting what is left gives every byte back.
        for i in 0..20_000 {
            hub.delete(&key(&i.to_string())).unwrap();
        }
        assert_eq!(hub.size(), (0, 0));
    }

    #[tokio::test]
    async fn the_table_gives_back_the_capacity_of_a_peak() {
        let hub = hub(1 << 30);
        let capacity = || hub.with(|state, _| state.logs.capacity());
        let subs: Vec<_> = (0..20_000)
            .map(|i| hub.subscribe(&key(&i.to_string()), Start::Beginning))
            .collect();
        let peak = capacity();
        assert!(peak >= 20_000, "{peak}");
        drop(subs);
        assert_empty(&hub);
        assert!(capacity() <= 2048, "{} of {peak} kept", capacity());
    }
}
