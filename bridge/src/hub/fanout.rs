//! A thread's live feed within one bridge: every subscriber has its own queue, bounded in
//! bytes rather than in a count shared by all.
//!
//! A shared ring (a `broadcast` channel) cuts every subscriber that falls a ring's length
//! behind the writer, however briefly: a burst longer than the ring, or than the log's
//! retention, made subscribers that were keeping up lose events. Here a subscriber is cut
//! only when its own queue holds more than [`SUBSCRIBER_MAX_BYTES`] of events it has not
//! taken yet, i.e. when it is really slower than the run. It is then told once
//! ([`FeedItem::Lagged`]), receives nothing more until it has drained its queue, and catches
//! up from the log; if the log no longer holds what it missed, the catch-up says so with a
//! truncation notice. Entries are shared (`Arc`), so a queue costs a pointer per event.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    task::{Context, Poll, ready},
};

use tokio::sync::mpsc;

#[cfg(doc)]
use super::Entry;
use super::FeedItem;

/// How far (in bytes of events, as [`Entry::cost`] counts them) a subscriber may be behind its thread's live feed before it is cut and must catch up from the log.
/// A 2,000-event burst of 256-byte events is about 1.1 MiB.
pub(crate) const SUBSCRIBER_MAX_BYTES: usize = 4 << 20;

/// One subscriber's side of the feed, held by the fan-out.
struct Tap {
    tx: mpsc::UnboundedSender<FeedItem>,
    budget: Arc<Budget>,
}

#[derive(Default)]
struct Budget {
    /// Bytes queued and not yet taken.
    queued: AtomicUsize,
    /// Cut: entries are skipped until the subscriber has seen `Lagged` and caught up.
    lagged: AtomicBool,
}

/// The subscribers of one thread within one bridge.
#[derive(Default)]
pub(crate) struct Fanout {
    taps: Vec<Tap>,
}

/// What one subscriber costs its hub besides its queued events: the tap, its budget, the
/// queue's first block and the subscription's state (see [`super::Subscription`]).
pub(crate) const SUBSCRIBER_OVERHEAD: usize = 1024;

impl Fanout {
    pub(crate) fn subscribe(&mut self) -> Tail {
        let (tx, rx) = mpsc::unbounded_channel();
        let budget = Arc::new(Budget::default());
        self.taps.push(Tap {
            tx,
            budget: budget.clone(),
        });
        Tail { rx, budget }
    }

    /// Hands an item to every subscriber; returns how many subscribers had left (and are
    /// forgotten now).
    pub(crate) fn send(&mut self, item: &FeedItem) -> usize {
        let before = self.taps.len();
        self.taps.retain(|tap| tap.offer(item));
        before - self.taps.len()
    }

    /// Forgets subscribers that left; returns how many.
    pub(crate) fn prune(&mut self) -> usize {
        let before = self.taps.len();
        self.taps.retain(|tap| !tap.tx.is_closed());
        before - self.taps.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.taps.is_empty()
    }
}

impl Tap {
    /// Queues an item unless the subscriber is over its budget; false when it left.
    fn offer(&self, item: &FeedItem) -> bool {
        let FeedItem::Entry(entry) = item else {
            // Control items are few and tiny; they always pass, in order.
            return self.tx.send(item.clone()).is_ok();
        };
        if self.budget.lagged.load(Ordering::SeqCst) {
            return !self.tx.is_closed();
        }
        let size = entry.cost();
        let queued = self.budget.queued.load(Ordering::SeqCst);
        // A first event larger than the budget still goes: the subscriber is not behind.
        if queued > 0 && queued + size > SUBSCRIBER_MAX_BYTES {
            self.budget.lagged.store(true, Ordering::SeqCst);
            return self.tx.send(FeedItem::Lagged).is_ok();
        }
        self.budget.queued.fetch_add(size, Ordering::SeqCst);
        self.tx.send(item.clone()).is_ok()
    }
}

/// A subscriber's end of the feed.
pub(crate) struct Tail {
    rx: mpsc::UnboundedReceiver<FeedItem>,
    budget: Arc<Budget>,
}

impl Tail {
    /// The next item; None once the fan-out is gone.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<FeedItem>> {
        let item = ready!(self.rx.poll_recv(cx));
        match &item {
            Some(FeedItem::Entry(entry)) => {
                self.budget.queued.fetch_sub(entry.cost(), Ordering::SeqCst);
            }
            Some(FeedItem::Lagged) => {
                // Everything queued before the cut has been taken; from here the queue
                // fills again, and the catch-up (which reads the log after this point)
                // covers what was skipped. Duplicates are dropped by number.
                self.budget.lagged.store(false, Ordering::SeqCst);
            }
            _ => {}
        }
        Poll::Ready(item)
    }

    /// Leaves the feed: the fan-out forgets this subscriber at its next send or prune.
    pub(crate) fn close(&mut self) {
        self.rx.close();
    }

    /// Items queued and not taken yet.
    pub(crate) fn len(&self) -> usize {
        self.rx.len()
    }
}
