//! The in-memory hub: the embedded default, for one bridge process.
//!
//! Bounded three ways: events per thread, age (a thread's log goes `ttl` after its last
//! event), and bytes of event JSON across all threads (the least recently updated logs
//! give up their oldest events first).

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::Instant,
};

use tokio::sync::{broadcast, mpsc};

use super::{
    Delivery, Entry, FEED_CAPACITY, FeedItem, HubError, NewEntry, ReplayFrom, Retention,
    SUBSCRIBER_BUFFER, Start, Subscription, ThreadKey, feed_subscriber, new_epoch, position,
    replay_from,
};

pub struct MemoryHub {
    retention: Retention,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    logs: HashMap<ThreadKey, Log>,
    bytes: usize,
    last_sweep: Option<Instant>,
}

struct Log {
    epoch: String,
    entries: VecDeque<(Instant, Arc<Entry>)>,
    last_n: u64,
    live: broadcast::Sender<FeedItem>,
    active_run: Option<String>,
    updated: Instant,
}

impl Log {
    fn new() -> Self {
        Self {
            epoch: new_epoch(),
            entries: VecDeque::new(),
            last_n: 0,
            live: broadcast::channel(FEED_CAPACITY).0,
            active_run: None,
            updated: Instant::now(),
        }
    }

    fn oldest(&self) -> Option<u64> {
        self.entries.front().map(|(_, e)| e.n)
    }

    /// Retained events after `n`, or a truncation notice first when some were lost.
    fn replay(&self, start: &Start) -> Vec<Delivery> {
        let (after, mut out) = match replay_from(start, &self.epoch, self.oldest(), self.last_n) {
            ReplayFrom::After(n) => (n, Vec::new()),
            ReplayFrom::Truncated(requested) => (0, vec![Delivery::Truncated { requested }]),
        };
        out.extend(
            self.entries
                .iter()
                .filter(|(_, e)| e.n > after)
                .map(|(_, e)| Delivery::Event(e.clone())),
        );
        out
    }
}

impl MemoryHub {
    pub fn new(retention: Retention) -> Self {
        Self {
            retention,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than losing the hub; keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn begin_run(&self, key: &ThreadKey, run_id: &str) -> Result<(), HubError> {
        let mut state = self.lock();
        let log = state.logs.entry(key.clone()).or_insert_with(Log::new);
        match &log.active_run {
            Some(active) => Err(HubError::RunActive(active.clone())),
            None => {
                log.active_run = Some(run_id.to_owned());
                Ok(())
            }
        }
    }

    /// The thread's active run, if any.
    pub fn active_run(&self, key: &ThreadKey) -> Option<String> {
        self.lock()
            .logs
            .get(key)
            .and_then(|log| log.active_run.clone())
    }

    pub fn end_run(&self, key: &ThreadKey, run_id: &str) {
        let mut state = self.lock();
        if let Some(log) = state.logs.get_mut(key)
            && log.active_run.as_deref() == Some(run_id)
        {
            log.active_run = None;
        }
    }

    pub fn append(&self, key: &ThreadKey, new: NewEntry) -> String {
        let now = Instant::now();
        let mut state = self.lock();
        let size = new.json.len();
        let log = state.logs.entry(key.clone()).or_insert_with(Log::new);
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
        log.entries.push_back((now, entry.clone()));
        log.updated = now;
        let mut freed = 0;
        while log.entries.len() > self.retention.max_events {
            if let Some((_, e)) = log.entries.pop_front() {
                freed += e.json.len();
            }
        }
        // Nobody listening is fine: the log keeps it for later subscribers.
        let _ = log.live.send(FeedItem::Entry(entry));
        state.bytes = state.bytes + size - freed;
        self.enforce_bounds(&mut state, now);
        id
    }

    /// Drops expired logs and, beyond the byte budget, the oldest events of the least
    /// recently updated logs.
    fn enforce_bounds(&self, state: &mut State, now: Instant) {
        let sweep_due = state
            .last_sweep
            .is_none_or(|t| now.duration_since(t) > std::time::Duration::from_secs(1));
        if sweep_due {
            state.last_sweep = Some(now);
            let ttl = self.retention.ttl;
            let mut freed = 0;
            state.logs.retain(|_, log| {
                let expired = now.duration_since(log.updated) > ttl && log.active_run.is_none();
                let idle = log.entries.is_empty()
                    && log.active_run.is_none()
                    && log.live.receiver_count() == 0;
                if expired || idle {
                    freed += log.entries.iter().map(|(_, e)| e.json.len()).sum::<usize>();
                    if expired {
                        let _ = log.live.send(FeedItem::Reset);
                    }
                    false
                } else {
                    true
                }
            });
            state.bytes -= freed;
        }
        while state.bytes > self.retention.max_bytes {
            let Some(log) = state
                .logs
                .values_mut()
                .filter(|l| !l.entries.is_empty())
                .min_by_key(|l| l.updated)
            else {
                break;
            };
            if let Some((_, e)) = log.entries.pop_front() {
                state.bytes -= e.json.len();
            }
        }
    }

    pub fn subscribe(self: &Arc<Self>, key: &ThreadKey, start: Start) -> Subscription {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        let (first, live, last_n) = {
            let mut state = self.lock();
            let log = state.logs.entry(key.clone()).or_insert_with(Log::new);
            let first = log.replay(&start);
            let last_n = match start {
                Start::Live => log.last_n,
                _ => 0,
            };
            (first, log.live.subscribe(), last_n)
        };
        let hub = self.clone();
        let key = key.clone();
        tokio::spawn(feed_subscriber(tx, first, live, last_n, move |after| {
            let hub = hub.clone();
            let key = key.clone();
            async move {
                let state = hub.lock();
                Ok(match state.logs.get(&key) {
                    Some(log) => {
                        let requested = position(&log.epoch, after);
                        log.replay(&Start::After(requested))
                    }
                    None => vec![Delivery::Failed],
                })
            }
        }));
        rx
    }

    pub fn delete(&self, key: &ThreadKey) -> Result<(), HubError> {
        let mut state = self.lock();
        let Some(log) = state.logs.get_mut(key) else {
            return Ok(());
        };
        if let Some(active) = &log.active_run {
            return Err(HubError::RunActive(active.clone()));
        }
        let freed: usize = log.entries.iter().map(|(_, e)| e.json.len()).sum();
        log.entries.clear();
        log.epoch = new_epoch();
        log.last_n = 0;
        let _ = log.live.send(FeedItem::Reset);
        state.bytes -= freed;
        Ok(())
    }
}
