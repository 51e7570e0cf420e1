//! Following threads' logs: how one bridge learns of new events in Redis.
//!
//! A few multiplexed readers each follow up to [`THREADS_PER_READER`] threads of one
//! bucket with one blocking `XREAD` over all their streams, on a connection of its own (a
//! blocked connection serves nothing else). On one Redis every thread is in bucket 0:
//! 10,000 followed threads take three reader connections besides the command connection.
//! On a Redis Cluster one `XREAD` can only name keys of one slot, so threads are grouped in
//! buckets sharing a slot ([`super::layout`]) and each bucket with followed threads has its
//! reader, connected to the node serving its slot: at most `--hub-cluster-buckets` reader
//! connections per replica, however many threads. As a bucket is one slot, it moves as a
//! whole when resharded: its reader's read fails with `MOVED`, naming the new node, and the
//! reader reconnects there and reads on from the same positions, so subscribers see at most
//! a delay. While the slot is being migrated (`TRYAGAIN`, `ASK`), it retries. Failures it
//! cannot get past (a node gone, as in a failover) end the feeds: subscribers get
//! `stream_error` and resume with their `Last-Event-ID`, once the cluster serves the slot.
//!
//! A thread joins its reader at once: the reader's pending `XREAD` is cut short with
//! `CLIENT UNBLOCK` and issued again with it. (If the unblock reaches Redis before the read
//! it was meant for, the new thread's first events wait for the read's timeout, [`BLOCK`];
//! they are delayed, never lost, as reading starts from the position taken when the thread
//! was joined.)
//!
//! Every [`BLOCK`], a reader also checks each thread for a new epoch (the log was deleted,
//! expired or lost) and for a run whose bridge died (its lease expired with its last event
//! not terminal), and ends that run with a `run_error`; the Lua check makes that happen
//! once, whichever replica notices first.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use redis::{
    ErrorKind, RedisError, ServerErrorKind,
    streams::{StreamId, StreamReadReply},
};
use tokio::sync::mpsc;

use super::{BLOCK, Conn, Keys, Node, PAGE, RedisHub, parse_entry, unavailable};
use crate::{
    event,
    hub::{Entry, FeedItem, HubError, ThreadKey},
};

/// Threads one multiplexed reader follows; its `XREAD` names each thread's stream.
pub(super) const THREADS_PER_READER: usize = 4096;

/// The name of reader connections in `CLIENT LIST`.
const READER_NAME: &str = "agent-bridge-reader";

/// Failed reads in a row a reader gets past (a slot moving, or being migrated) before it
/// gives up, and the pause before reading again while a slot is migrated.
const RETRIES: u32 = 20;
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// What this bridge knows of one thread it follows.
pub(super) struct Watch {
    key: ThreadKey,
    keys: Keys,
    epoch: String,
    /// The last event seen: reading continues after it.
    last_n: u64,
    /// The last entry seen, to notice a run whose bridge died.
    last: Option<Arc<Entry>>,
}

impl Watch {
    /// Following `key` (whose keys are `keys`) from its position `last_n` in `epoch`
    /// (empty: no log yet).
    pub(super) fn new(key: &ThreadKey, keys: Keys, epoch: String, last_n: u64) -> Self {
        Self {
            key: key.clone(),
            keys,
            epoch,
            last_n,
            last: None,
        }
    }

    /// Entries read from the thread's stream: fan them out.
    async fn deliver(
        &mut self,
        hub: &RedisHub,
        con: &mut Conn,
        ids: Vec<StreamId>,
    ) -> Result<(), HubError> {
        if ids.is_empty() {
            return Ok(());
        }
        // Entries are numbered per epoch: learn the epoch of a log created since the feed
        // started, and notice one that was deleted and started again.
        let epoch = hub
            .meta(con, &self.keys)
            .await?
            .map(|(e, _)| e)
            .unwrap_or_default();
        if epoch != self.epoch {
            let restarted = !self.epoch.is_empty();
            self.epoch = epoch;
            if restarted {
                self.restart(hub);
                return Ok(());
            }
        }
        for id in &ids {
            if let Some(entry) = parse_entry(&self.epoch, id) {
                let entry = Arc::new(entry);
                self.last_n = entry.n;
                self.last = Some(entry.clone());
                hub.fan_out(&self.key, &FeedItem::Entry(entry));
            }
        }
        Ok(())
    }

    /// The log started a new epoch: subscribers are told, reading starts over.
    fn restart(&mut self, hub: &RedisHub) {
        self.last_n = 0;
        self.last = None;
        hub.fan_out(&self.key, &FeedItem::Reset);
    }

    /// Checks for a new epoch (the log's now is `epoch`, empty if none) and for an orphaned
    /// run.
    async fn check(
        &mut self,
        hub: &RedisHub,
        con: &mut Conn,
        epoch: String,
    ) -> Result<(), HubError> {
        if epoch != self.epoch {
            // The log was deleted, expired or lost and (maybe) started again.
            self.epoch = epoch;
            self.restart(hub);
            return Ok(());
        }
        let Some(last) = self.last.clone().filter(|l| !l.terminal) else {
            return Ok(());
        };
        let event = event::bridge_error(
            &last.run_id,
            &self.key.thread,
            last.sequence,
            tonic::Code::Unavailable,
            "the bridge running this run stopped; send the message again",
        );
        let ended: i64 = hub
            .fail_orphan
            .key(&self.keys.meta)
            .key(&self.keys.log)
            .key(&self.keys.run)
            .arg(&last.run_id)
            .arg(hub.retention.max_events)
            .arg(hub.retention.ttl.as_millis() as u64)
            .arg(event::to_json(&event))
            .arg(last.sequence)
            .arg(last.sequence + 1)
            .invoke_async(con)
            .await
            .map_err(unavailable)?;
        if ended > 0 {
            tracing::warn!(thread = %self.key.thread, run_id = %last.run_id, "ended a run whose bridge stopped");
        }
        Ok(())
    }
}

/// One blocking `XREAD` over the watched threads' streams: entries by stream key.
async fn xread<'a>(
    con: &mut Conn,
    watches: impl Iterator<Item = &'a Watch> + Clone,
) -> Result<Vec<(String, Vec<StreamId>)>, RedisError> {
    let mut cmd = redis::cmd("XREAD");
    cmd.arg("COUNT")
        .arg(PAGE)
        .arg("BLOCK")
        .arg(BLOCK.as_millis() as u64)
        .arg("STREAMS");
    for w in watches.clone() {
        cmd.arg(&w.keys.log);
    }
    for w in watches {
        cmd.arg(format!("{}-0", w.last_n));
    }
    let reply: Option<StreamReadReply> = cmd.query_async(con).await?;
    Ok(reply
        .map(|r| r.keys.into_iter().map(|k| (k.key, k.ids)).collect())
        .unwrap_or_default())
}

/// This bridge's way to hand a thread to a multiplexed reader.
pub(super) struct ReaderHandle {
    tx: mpsc::UnboundedSender<Watch>,
    /// Threads it follows (or was handed).
    load: Arc<AtomicUsize>,
    /// The bucket whose threads it follows.
    bucket: usize,
}

/// Hands the thread to a reader of its bucket with room, starting one if none has.
pub(super) async fn join(hub: &Arc<RedisHub>, watch: Watch) -> Result<(), HubError> {
    // Held while a reader starts, so that concurrent first subscriptions share it.
    let mut readers = hub.readers.lock().await;
    readers.retain(|r| !r.tx.is_closed());
    let bucket = watch.keys.bucket;
    let chosen = readers
        .iter()
        .find(|r| r.bucket == bucket && r.load.load(Ordering::SeqCst) < THREADS_PER_READER);
    let chosen = match chosen {
        Some(chosen) => chosen,
        None => {
            readers.push(start_reader(hub, bucket).await?);
            readers.last().expect("just pushed")
        }
    };
    chosen.load.fetch_add(1, Ordering::SeqCst);
    chosen
        .tx
        .send(watch)
        .map_err(|_| HubError::Unavailable("the thread reader stopped".into()))
}

/// A reader's blocking connection (to `node` of a cluster) and its id, for `CLIENT UNBLOCK`.
async fn connect(hub: &RedisHub, node: Option<&Node>) -> Result<(Conn, i64), HubError> {
    let mut con = hub.reader_con(node).await?;
    // Named, so that operators can tell readers apart in `CLIENT LIST`.
    let (_, client_id): (String, i64) = redis::pipe()
        .cmd("CLIENT")
        .arg("SETNAME")
        .arg(READER_NAME)
        .cmd("CLIENT")
        .arg("ID")
        .query_async(&mut con)
        .await
        .map_err(unavailable)?;
    Ok((con, client_id))
}

async fn start_reader(hub: &Arc<RedisHub>, bucket: usize) -> Result<ReaderHandle, HubError> {
    let node = hub.node_of(bucket).await?;
    let (con, client_id) = connect(hub, node.as_ref()).await?;
    let commands = hub.con().await?;
    let (tx, rx) = mpsc::unbounded_channel();
    let load = Arc::new(AtomicUsize::new(0));
    let reader = Multiplexed {
        hub: hub.clone(),
        con,
        client_id,
        node,
        commands,
        joining: rx,
        load: load.clone(),
        watches: HashMap::new(),
        checked: Instant::now(),
        failures: 0,
    };
    tokio::spawn(reader.run());
    Ok(ReaderHandle { tx, load, bucket })
}

/// Follows many threads of one bucket with one blocking connection.
struct Multiplexed {
    hub: Arc<RedisHub>,
    /// Blocked in `XREAD` most of the time.
    con: Conn,
    /// `con`'s id, for `CLIENT UNBLOCK`.
    client_id: i64,
    /// On a cluster: the node `con` is connected to, where `CLIENT UNBLOCK` goes.
    node: Option<Node>,
    /// For everything else (epochs, orphaned runs, unblocking).
    commands: Conn,
    joining: mpsc::UnboundedReceiver<Watch>,
    load: Arc<AtomicUsize>,
    /// By stream key.
    watches: HashMap<String, Watch>,
    /// When the threads were last checked for new epochs and orphaned runs.
    checked: Instant,
    /// Reads that failed in a row.
    failures: u32,
}

impl Multiplexed {
    async fn run(mut self) {
        loop {
            while let Ok(watch) = self.joining.try_recv() {
                self.add(watch);
            }
            self.forget_unfollowed();
            if self.watches.is_empty() {
                match self.joining.recv().await {
                    Some(watch) => {
                        self.add(watch);
                        continue;
                    }
                    None => return,
                }
            }
            let (read, joined) = self.read().await;
            for watch in joined {
                self.add(watch);
            }
            let read = match read {
                Ok(read) => {
                    self.failures = 0;
                    read
                }
                Err(e) if self.get_past(&e).await => continue,
                Err(e) => {
                    tracing::warn!(error = %e, threads = self.watches.len(), "thread reader failed");
                    // Subscribers are told; their next subscription starts a new reader.
                    self.joining.close();
                    for (_, watch) in self.watches.drain() {
                        self.hub.fail_feed(&watch.key);
                    }
                    return;
                }
            };
            let mut failed = Vec::new();
            for (stream, ids) in read {
                if let Some(watch) = self.watches.get_mut(&stream)
                    && let Err(e) = watch.deliver(&self.hub, &mut self.commands, ids).await
                {
                    tracing::warn!(thread = %watch.key.thread, error = %e, "thread feed failed");
                    failed.push(stream);
                }
            }
            if self.checked.elapsed() >= BLOCK {
                self.checked = Instant::now();
                failed.extend(self.check_all().await);
            }
            for stream in failed {
                if let Some(watch) = self.watches.remove(&stream) {
                    self.load.fetch_sub(1, Ordering::SeqCst);
                    self.hub.fail_feed(&watch.key);
                }
            }
        }
    }

    /// After a failed read: whether the reader got past it (it follows its slot to a new
    /// node, or waits while the slot is migrated).
    async fn get_past(&mut self, e: &RedisError) -> bool {
        self.failures += 1;
        if self.failures > RETRIES {
            return false;
        }
        if let Some(node) = Node::moved_to(e) {
            let Ok((con, client_id)) = connect(&self.hub, Some(&node)).await else {
                return false;
            };
            tracing::info!(
                ?node,
                threads = self.watches.len(),
                "thread reader follows its slot"
            );
            (self.con, self.client_id, self.node) = (con, client_id, Some(node));
            return true;
        }
        let migrating = matches!(
            e.kind(),
            ErrorKind::Server(ServerErrorKind::TryAgain | ServerErrorKind::Ask)
        );
        if migrating {
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        migrating
    }

    fn add(&mut self, watch: Watch) {
        // A thread dropped and followed again before this reader noticed replaces itself.
        if self.watches.insert(watch.keys.log.clone(), watch).is_some() {
            self.load.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Stops following threads this bridge no longer has subscribers for.
    fn forget_unfollowed(&mut self) {
        let before = self.watches.len();
        self.watches.retain(|_, w| self.hub.still_followed(&w.key));
        self.load
            .fetch_sub(before - self.watches.len(), Ordering::SeqCst);
    }

    /// Reads, and takes the threads that join meanwhile (cutting the read short for them).
    async fn read(&mut self) -> (Result<Vec<(String, Vec<StreamId>)>, RedisError>, Vec<Watch>) {
        let mut joined = Vec::new();
        let read = xread(&mut self.con, self.watches.values());
        tokio::pin!(read);
        let mut woken = false;
        let result = loop {
            tokio::select! {
                result = &mut read => break result,
                watch = self.joining.recv(), if !woken => {
                    woken = true;
                    if let Some(watch) = watch {
                        joined.push(watch);
                        // Returns the read at once, as if it had timed out.
                        let mut unblock = redis::cmd("CLIENT");
                        unblock.arg("UNBLOCK").arg(self.client_id);
                        let _ = self.commands.on_node(unblock, self.node.as_ref()).await;
                    }
                }
            }
        };
        (result, joined)
    }

    /// Checks every thread; returns the streams of those whose check failed. Their epochs
    /// are read in one pipeline (one round trip: on a cluster, a bucket's keys are on one
    /// node), then the few threads with a run to check are checked concurrently.
    async fn check_all(&mut self) -> Vec<String> {
        let mut pipe = redis::pipe();
        for watch in self.watches.values() {
            pipe.cmd("HGET").arg(&watch.keys.meta).arg("epoch");
        }
        let epochs: Vec<Option<String>> = match pipe.query_async(&mut self.commands).await {
            Ok(epochs) => epochs,
            Err(e) => {
                tracing::warn!(error = %e, threads = self.watches.len(), "thread check failed");
                return self.watches.keys().cloned().collect();
            }
        };
        let hub = &self.hub;
        let commands = &self.commands;
        // The map is unchanged since the pipeline: it iterates in the same order.
        let checks = self
            .watches
            .iter_mut()
            .zip(epochs)
            .map(|((stream, watch), epoch)| {
                let mut con = commands.clone();
                async move {
                    match watch.check(hub, &mut con, epoch.unwrap_or_default()).await {
                        Ok(()) => None,
                        Err(e) => {
                            tracing::warn!(thread = %watch.key.thread, error = %e, "thread feed failed");
                            Some(stream.clone())
                        }
                    }
                }
            });
        futures_util::future::join_all(checks)
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}
