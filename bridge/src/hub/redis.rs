//! The Redis Streams hub: any replica serves any subscriber.
//!
//! Per thread, three keys share one hash tag (so a thread lives on one Redis Cluster shard;
//! [`layout`] says which keys, and why a Cluster groups threads in buckets): the `log` (a
//! stream; entry ids are `N-0`, `N` the thread's event number), the `meta` hash (`epoch`,
//! `seq`) and the `run` key (the active run's lease). Appends run as one Lua script, so
//! numbering, capping (`MAXLEN`) and expiry are atomic.
//!
//! Within one bridge, readers ([`readers`]) follow the threads it has subscribers for and
//! fan each event out, as shared bytes, to them: a few multiplexed readers with a connection
//! each (on a Redis Cluster, one per bucket with followed threads). When a reader sees a
//! run's events stop while the run's lease has expired (its bridge died), it ends the run
//! with a `run_error`, once, whichever replica notices first.

mod conn;
mod layout;
mod readers;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use redis::{
    Script,
    streams::{StreamId, StreamRangeReply},
};

use self::{
    conn::Node,
    layout::{Keys, Layout},
};
pub(crate) use self::{
    conn::{Commands, Conn},
    layout::MAX_BUCKETS,
};
use super::{
    CatchUp, Delivery, Entry, FeedItem, HubError, NewEntry, ReplayFrom, Retention, Start,
    Subscription, ThreadKey,
    fanout::{Fanout, Tail},
    new_epoch, position, replay_from,
};

/// How long one blocking read waits; also how often a reader checks for dead runs and a
/// new epoch.
const BLOCK: Duration = Duration::from_millis(1000);
/// Entries per read.
const PAGE: usize = 500;

const APPEND: &str = r"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
  redis.call('DEL', KEYS[2])
end
local n = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], n .. '-0',
  'k', ARGV[4], 'r', ARGV[5], 's', ARGV[6], 't', ARGV[7], 'd', ARGV[8], 'p', ARGV[9])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return {epoch, n}
";

/// Ends a run whose lease expired, if its last event is still the one the caller saw.
const FAIL_ORPHAN: &str = r"
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
if not redis.call('HGET', KEYS[1], 'epoch') then return 0 end
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if #last == 0 then return 0 end
local f = last[1][2]
local h = {}
for i = 1, #f, 2 do h[f[i]] = f[i + 1] end
if h['r'] ~= ARGV[1] or h['t'] == '1' or h['s'] ~= ARGV[5] then return 0 end
local n = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], n .. '-0',
  'k', 'run_error', 'r', ARGV[1], 's', ARGV[6], 't', '1', 'd', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return n
";

const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

pub(crate) struct RedisHub {
    /// Connected on first use (so the bridge starts while Redis is down); reconnects by
    /// itself afterwards.
    commands: Commands,
    layout: Layout,
    retention: Retention,
    feeds: Mutex<HashMap<ThreadKey, Fanout>>,
    /// The multiplexed readers following this bridge's threads.
    readers: tokio::sync::Mutex<Vec<readers::ReaderHandle>>,
    append: Script,
    fail_orphan: Script,
    renew: Script,
    release: Script,
}

fn unavailable(e: impl std::fmt::Display) -> HubError {
    HubError::Unavailable(e.to_string())
}

impl RedisHub {
    /// `redis://host:port[/db]` for one Redis, `redis+cluster://host:port,host:port` for a
    /// cluster (any reachable nodes; the rest are discovered), whose threads are spread over
    /// `cluster_buckets` buckets (see [`layout`]).
    pub(crate) fn new(
        url: &str,
        retention: Retention,
        cluster_buckets: usize,
    ) -> Result<Self, String> {
        let commands = Commands::new(url)?;
        let layout = if commands.target().is_cluster() {
            Layout::cluster(cluster_buckets)
        } else {
            Layout::Single
        };
        Ok(Self {
            commands,
            layout,
            retention,
            feeds: Mutex::new(HashMap::new()),
            readers: tokio::sync::Mutex::new(Vec::new()),
            append: Script::new(APPEND),
            fail_orphan: Script::new(FAIL_ORPHAN),
            renew: Script::new(RENEW),
            release: Script::new(RELEASE),
        })
    }

    async fn con(&self) -> Result<Conn, HubError> {
        self.commands.con().await.map_err(unavailable)
    }

    fn keys(&self, key: &ThreadKey) -> Keys {
        self.layout.keys(key)
    }

    /// On a cluster, the node serving a bucket's slot.
    async fn node_of(&self, bucket: usize) -> Result<Option<Node>, HubError> {
        let Some(slot) = self.layout.slot(bucket) else {
            return Ok(None);
        };
        let node = self.con().await?.master_of(slot).await;
        node.map(Some).map_err(unavailable)
    }

    /// A connection of its own for blocking reads (on a cluster, to `node`).
    async fn reader_con(&self, node: Option<&Node>) -> Result<Conn, HubError> {
        self.commands
            .target()
            .blocking(node, BLOCK + Duration::from_secs(3))
            .await
            .map_err(unavailable)
    }

    pub(crate) async fn check(&self) -> Result<(), HubError> {
        let mut con = self.con().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut con)
            .await
            .map(drop)
            .map_err(unavailable)
    }

    pub(crate) async fn begin_run(&self, key: &ThreadKey, run_id: &str) -> Result<(), HubError> {
        let mut con = self.con().await?;
        let k = self.keys(key);
        let set: Option<String> = redis::cmd("SET")
            .arg(&k.run)
            .arg(run_id)
            .arg("NX")
            .arg("PX")
            .arg(self.retention.run_lease.as_millis() as u64)
            .query_async(&mut con)
            .await
            .map_err(unavailable)?;
        if set.is_some() {
            return Ok(());
        }
        let active = Self::lease(&mut con, &k).await?;
        Err(HubError::RunActive(active.unwrap_or_default()))
    }

    /// The thread's active run (its lease is held), if any.
    pub(crate) async fn active_run(&self, key: &ThreadKey) -> Result<Option<String>, HubError> {
        Self::lease(&mut self.con().await?, &self.keys(key)).await
    }

    /// Who holds the thread's run lease.
    async fn lease(con: &mut Conn, k: &Keys) -> Result<Option<String>, HubError> {
        redis::cmd("GET")
            .arg(&k.run)
            .query_async(con)
            .await
            .map_err(unavailable)
    }

    pub(crate) async fn renew_run(&self, key: &ThreadKey, run_id: &str) -> Result<(), HubError> {
        self.on_lease(&self.renew, key, run_id).await
    }

    pub(crate) async fn end_run(&self, key: &ThreadKey, run_id: &str) -> Result<(), HubError> {
        self.on_lease(&self.release, key, run_id).await
    }

    /// Runs a lease script (`RENEW`, `RELEASE`): it acts only while `run_id` holds the lease.
    /// Both take the lease's length as `ARGV[2]`; `RELEASE` ignores it.
    async fn on_lease(
        &self,
        script: &Script,
        key: &ThreadKey,
        run_id: &str,
    ) -> Result<(), HubError> {
        let mut con = self.con().await?;
        script
            .key(self.keys(key).run)
            .arg(run_id)
            .arg(self.retention.run_lease.as_millis() as u64)
            .invoke_async::<i64>(&mut con)
            .await
            .map(drop)
            .map_err(unavailable)
    }

    pub(crate) async fn append(&self, key: &ThreadKey, new: NewEntry) -> Result<String, HubError> {
        let mut con = self.con().await?;
        let k = self.keys(key);
        let (epoch, n): (String, u64) = self
            .append
            .key(&k.meta)
            .key(&k.log)
            .arg(new_epoch())
            .arg(self.retention.max_events)
            .arg(self.retention.ttl.as_millis() as u64)
            .arg(new.kind)
            .arg(&new.run_id)
            .arg(new.sequence)
            .arg(if new.terminal { "1" } else { "0" })
            .arg(new.json.as_ref())
            .arg(new.link.as_deref().unwrap_or(""))
            .invoke_async(&mut con)
            .await
            .map_err(unavailable)?;
        Ok(position(&epoch, n))
    }

    pub(crate) async fn delete(&self, key: &ThreadKey) -> Result<(), HubError> {
        let mut con = self.con().await?;
        let k = self.keys(key);
        if let Some(active) = Self::lease(&mut con, &k).await? {
            return Err(HubError::RunActive(active));
        }
        // Same slot (hash tag), so one DEL works on a cluster too.
        redis::cmd("DEL")
            .arg(&k.log)
            .arg(&k.meta)
            .query_async::<i64>(&mut con)
            .await
            .map_err(unavailable)?;
        self.fan_out(key, &FeedItem::Reset);
        Ok(())
    }

    /// The log's epoch and last `n` (None: no log).
    async fn meta(&self, con: &mut Conn, k: &Keys) -> Result<Option<(String, u64)>, HubError> {
        let (epoch, seq): (Option<String>, Option<u64>) = redis::cmd("HMGET")
            .arg(&k.meta)
            .arg("epoch")
            .arg("seq")
            .query_async(con)
            .await
            .map_err(unavailable)?;
        Ok(epoch.map(|e| (e, seq.unwrap_or(0))))
    }

    /// Entries with n > `after`, up to `PAGE`.
    async fn range(
        con: &mut Conn,
        k: &Keys,
        epoch: &str,
        after: u64,
    ) -> Result<Vec<Arc<Entry>>, HubError> {
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(&k.log)
            .arg(format!("{}-0", after + 1))
            .arg("+")
            .arg("COUNT")
            .arg(PAGE)
            .query_async(con)
            .await
            .map_err(unavailable)?;
        Ok(reply
            .ids
            .iter()
            .filter_map(|id| parse_entry(epoch, id))
            .map(Arc::new)
            .collect())
    }

    /// Every retained entry after `after` (all pages).
    async fn range_all(
        con: &mut Conn,
        k: &Keys,
        epoch: &str,
        mut after: u64,
    ) -> Result<Vec<Arc<Entry>>, HubError> {
        let mut all = Vec::new();
        loop {
            let page = Self::range(con, k, epoch, after).await?;
            let full = page.len() == PAGE;
            if let Some(last) = page.last() {
                after = last.n;
            }
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }

    /// The deliveries a subscriber starting at `start` gets from the log.
    async fn replay(
        &self,
        con: &mut Conn,
        k: &Keys,
        start: &Start,
    ) -> Result<(Vec<Delivery>, u64), HubError> {
        let Some((epoch, last)) = self.meta(con, k).await? else {
            // No log (never written, expired or lost): nothing to replay.
            let first = match start {
                Start::After(id) => vec![Delivery::Truncated {
                    requested: id.as_str().into(),
                }],
                _ => Vec::new(),
            };
            return Ok((first, 0));
        };
        let oldest: StreamRangeReply = redis::cmd("XRANGE")
            .arg(&k.log)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async(con)
            .await
            .map_err(unavailable)?;
        let oldest = oldest.ids.first().and_then(|id| stream_n(&id.id));
        let (after, mut out) = match replay_from(start, &epoch, oldest, last) {
            ReplayFrom::After(n) => (n, Vec::new()),
            ReplayFrom::Truncated(requested) => (
                0,
                vec![Delivery::Truncated {
                    requested: requested.into(),
                }],
            ),
        };
        // Live events continue after what was replayed (or skipped, for `Live`).
        let live_from = after;
        out.extend(
            Self::range_all(con, k, &epoch, after)
                .await?
                .into_iter()
                .map(Delivery::Event),
        );
        Ok((out, live_from))
    }

    pub(crate) async fn subscribe(
        self: &Arc<Self>,
        key: &ThreadKey,
        start: Start,
    ) -> Result<Subscription, HubError> {
        let mut con = self.con().await?;
        // Live first, replay second: nothing can fall between the two (duplicates are
        // skipped by number).
        let live = self.feed(key).await?;
        let k = self.keys(key);
        let (first, last_n) = self.replay(&mut con, &k, &start).await?;
        let backlog = Box::new(Backlog {
            hub: self.clone(),
            key: key.clone(),
            con,
        });
        Ok(Subscription::new(first, live, last_n, backlog))
    }

    /// Hands an item to this bridge's subscribers of a thread.
    fn fan_out(&self, key: &ThreadKey, item: &FeedItem) {
        if let Some(feed) = self
            .feeds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(key)
        {
            feed.send(item);
        }
    }

    /// This bridge's live feed of a thread, following the thread if needed.
    async fn feed(self: &Arc<Self>, key: &ThreadKey) -> Result<Tail, HubError> {
        if let Some(feed) = self
            .feeds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(key)
        {
            return Ok(feed.subscribe());
        }
        // Read the reader's starting point before any replay can, so the reader never
        // starts after what a subscriber replays.
        let mut con = self.con().await?;
        let (epoch, last) = self
            .meta(&mut con, &self.keys(key))
            .await?
            .unwrap_or_default();
        let tail = {
            let mut feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(feed) = feeds.get_mut(key) {
                return Ok(feed.subscribe());
            }
            let mut feed = Fanout::default();
            let tail = feed.subscribe();
            feeds.insert(key.clone(), feed);
            tail
        };
        let watch = readers::Watch::new(key, self.keys(key), epoch, last);
        if let Err(e) = readers::join(self, watch).await {
            self.fail_feed(key);
            return Err(e);
        }
        Ok(tail)
    }

    /// Whether this bridge still has subscribers of the thread; forgets its feed if not.
    fn still_followed(&self, key: &ThreadKey) -> bool {
        let mut feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        let followed = feeds.get_mut(key).is_some_and(|feed| {
            feed.prune();
            !feed.is_empty()
        });
        if !followed {
            feeds.remove(key);
        }
        followed
    }

    /// Ends a thread's feed: its subscribers are told, and the next one starts a new feed.
    fn fail_feed(&self, key: &ThreadKey) {
        let feed = self
            .feeds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        if let Some(mut feed) = feed {
            feed.send(&FeedItem::Failed);
        }
    }
}

/// `N` of a stream id `N-0`.
fn stream_n(id: &str) -> Option<u64> {
    id.split_once('-').and_then(|(n, _)| n.parse().ok())
}

fn parse_entry(epoch: &str, id: &StreamId) -> Option<Entry> {
    let n = stream_n(&id.id)?;
    let json: Vec<u8> = id.get("d")?;
    Some(Entry {
        id: position(epoch, n),
        n,
        kind: id.get("k")?,
        run_id: id.get("r")?,
        sequence: id.get::<String>("s")?.parse().ok()?,
        terminal: id.get::<String>("t")?.as_str() == "1",
        json: Bytes::from(json),
        link: id.get::<String>("p").filter(|p| !p.is_empty()),
    })
}

/// One subscription's way back into its log.
struct Backlog {
    hub: Arc<RedisHub>,
    key: ThreadKey,
    con: Conn,
}

impl super::Backlog for Backlog {
    fn catch_up(&self, after: u64) -> CatchUp {
        let hub = self.hub.clone();
        let k = hub.keys(&self.key);
        let mut con = self.con.clone();
        Box::pin(async move {
            let Some((epoch, _)) = hub.meta(&mut con, &k).await? else {
                return Ok(vec![Delivery::Failed]);
            };
            let (missed, _) = hub
                .replay(&mut con, &k, &Start::After(position(&epoch, after)))
                .await?;
            Ok(missed)
        })
    }
}
