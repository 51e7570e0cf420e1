//! A subscriber's feed, shared by both backends: the replay, then live events, skipping what
//! the replay already delivered; after falling too far behind the live feed (or finding a
//! gap in it), a catch-up from the log.
//!
//! The subscriber's own stream polls it: no task and no channel of its own between the
//! thread's live queue ([`fanout::Tail`]) and the client, so an idle subscription holds its
//! queue, this state and nothing else (BENCHMARKS.md, Scale).

use std::{
    collections::VecDeque,
    future::{Future, poll_fn},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use super::{Delivery, Entry, FeedItem, HubError, fanout};

/// The backend's side of one subscription.
pub(crate) trait Backlog: Send + Sync + 'static {
    /// The log's deliveries after event number `after`, for a subscriber that fell behind:
    /// a truncation notice first when the log no longer holds them all.
    fn catch_up(&self, after: u64) -> CatchUp;

    /// The subscriber left (its subscription dropped).
    fn left(&self) {}
}

/// A catch-up in flight.
pub(crate) type CatchUp = Pin<Box<dyn Future<Output = Result<Vec<Delivery>, HubError>> + Send>>;

/// Replayed events, then live ones; see the module documentation.
pub(crate) struct Subscription {
    /// Deliveries ready to hand out, in order (the replay, a catch-up's result).
    ready: VecDeque<Delivery>,
    live: fanout::Tail,
    /// The number of the last event handed out (0: none yet, or a new epoch).
    last_n: u64,
    /// A catch-up in progress, and the live entry that revealed a gap (handed out after it).
    catching_up: Option<(CatchUp, Option<Arc<Entry>>)>,
    backlog: Box<dyn Backlog>,
    /// After a failure, nothing more.
    ended: bool,
    /// Set by [`Subscription::only_run`].
    only: Option<Box<OnlyRun>>,
}

/// One run's deliveries: events of `run_id` after sequence `after`, to its terminal event.
struct OnlyRun {
    run_id: String,
    after: u64,
}

impl Subscription {
    pub(crate) fn new(
        replay: Vec<Delivery>,
        live: fanout::Tail,
        last_n: u64,
        backlog: Box<dyn Backlog>,
    ) -> Self {
        Self {
            ready: replay.into(),
            live,
            last_n,
            catching_up: None,
            backlog,
            ended: false,
            only: None,
        }
    }

    /// Narrows the feed to one run: its events after sequence `after` (others' are
    /// skipped), ending after its terminal event; notices still pass.
    pub(crate) fn only_run(mut self, run_id: String, after: u64) -> Self {
        self.only = Some(Box::new(OnlyRun { run_id, after }));
        self
    }

    /// The next delivery; `None` once the feed ended (after [`Delivery::Failed`], or a
    /// narrowed run's terminal event). Cancel-safe: a catch-up in progress is kept.
    pub(crate) async fn recv(&mut self) -> Option<Delivery> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Deliveries that can be handed out without waiting, at least (a batch's size hint).
    pub(crate) fn waiting(&self) -> usize {
        self.ready.len() + self.live.len()
    }

    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        loop {
            let Some(delivery) = ready!(self.poll_feed(cx)) else {
                return Poll::Ready(None);
            };
            let Some(only) = &self.only else {
                return Poll::Ready(Some(delivery));
            };
            match &delivery {
                Delivery::Event(entry) if entry.run_id == only.run_id => {
                    let wanted = entry.sequence > only.after;
                    if entry.terminal {
                        self.end();
                    }
                    if wanted {
                        return Poll::Ready(Some(delivery));
                    }
                }
                Delivery::Event(_) => {}
                Delivery::Truncated { .. } | Delivery::Failed => {
                    return Poll::Ready(Some(delivery));
                }
            }
        }
    }

    fn end(&mut self) {
        self.ended = true;
        self.ready = VecDeque::new();
        self.catching_up = None;
    }

    /// The whole feed, in order, without duplicates.
    fn poll_feed(&mut self, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        loop {
            if let Some(delivery) = self.ready.pop_front() {
                if self.ready.is_empty() {
                    // A replay's or catch-up's buffer goes once handed out.
                    self.ready = VecDeque::new();
                }
                match &delivery {
                    Delivery::Event(e) if e.n <= self.last_n => continue,
                    Delivery::Event(e) => self.last_n = e.n,
                    // What follows is everything retained, maybe of a new epoch.
                    Delivery::Truncated { .. } => self.last_n = 0,
                    Delivery::Failed => self.end(),
                }
                return Poll::Ready(Some(delivery));
            }
            if self.ended {
                return Poll::Ready(None);
            }
            if let Some((catch_up, _)) = &mut self.catching_up {
                let missed = ready!(catch_up.as_mut().poll(cx));
                let (_, revealed) = self.catching_up.take().expect("polled above");
                self.ready = match missed {
                    Ok(mut missed) => {
                        missed.extend(revealed.map(Delivery::Event));
                        missed.into()
                    }
                    Err(_) => VecDeque::from([Delivery::Failed]),
                };
                continue;
            }
            match ready!(self.live.poll_recv(cx)) {
                Some(FeedItem::Entry(entry)) if entry.n <= self.last_n => {}
                // The next event: the usual case.
                Some(FeedItem::Entry(entry)) if entry.n == self.last_n + 1 => {
                    self.last_n = entry.n;
                    return Poll::Ready(Some(Delivery::Event(entry)));
                }
                // A gap: the log dropped events before this bridge read them (a Redis stream
                // trimmed under a slow reader). The catch-up reports the loss.
                Some(FeedItem::Entry(entry)) => {
                    let catch_up = self.backlog.catch_up(self.last_n);
                    self.catching_up = Some((catch_up, Some(entry)));
                }
                // The log was deleted or restarted: what follows is a new epoch.
                Some(FeedItem::Reset) => self.last_n = 0,
                Some(FeedItem::Failed) | None => self.ready.push_back(Delivery::Failed),
                // Too far behind the run: what was skipped comes from the log.
                Some(FeedItem::Lagged) => {
                    let catch_up = self.backlog.catch_up(self.last_n);
                    self.catching_up = Some((catch_up, None));
                }
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // Closed first, so the backend sees this subscriber gone.
        self.live.close();
        self.backlog.left();
    }
}
