//! Where a thread's keys live in Redis.
//!
//! Every key of a thread carries the same hash tag, so that its Lua scripts (append, end an
//! orphaned run) and its `DEL` touch one slot, as Redis Cluster requires:
//!
//! - one Redis: `ab:{K}:log`, `ab:{K}:meta`, `ab:{K}:run`, where `K` is the thread's
//!   [`ThreadKey::encoded`] form;
//! - a Redis Cluster: `ab:{T}:K:log`, `ab:{T}:K:meta`, `ab:{T}:K:run`, where `T` is the tag
//!   of the thread's *bucket*: a stable hash of `K` modulo `--hub-cluster-buckets` (`B`).
//!
//! Why buckets. A bridge learns of new events with blocking `XREAD`s, and a blocked
//! connection serves nothing else. A Cluster refuses an `XREAD` whose streams lie in
//! different slots (`CROSSSLOT`), so with one tag per thread each followed thread would need
//! a blocked connection of its own (10,000 subscribed threads, 10,000 connections per
//! replica). With `B` buckets all the streams of a bucket share a slot, and one `XREAD` per
//! bucket follows all of a replica's threads in it: a replica holds at most `B` reader
//! connections (one more per 4,096 threads of a bucket) whatever the number of threads.
//! The price: a bucket's threads all live on the shard owning its slot, so `B` bounds how
//! many shards share the load, and it should be a few times the number of shards. The
//! default, 16, suits clusters of up to a handful of shards; its reader connections cost
//! little. Bucket `i`'s tag is chosen so that its slot lies in the `i`-th of `B` equal slot
//! ranges: a cluster that splits its slots evenly (as `redis-cli --cluster create` does)
//! gets an even share of buckets on each shard, rather than a hash's chance.
//!
//! Every replica must use the same `B`, and changing it (or upgrading from the layout
//! without buckets, one tag per thread) moves every thread to new keys: like a Redis
//! restarted empty, threads' history in flight is dropped (clients resuming with an old
//! `Last-Event-ID` are told it was truncated) and the run leases of running runs are
//! forgotten. Change it with all replicas at once, between runs.

use crate::hub::ThreadKey;

/// The most buckets: each may hold a blocked connection per replica, and choosing the tags
/// costs `B²` hashes at start.
pub(crate) const MAX_BUCKETS: usize = 1024;

/// Slots of a Redis Cluster.
const SLOTS: u16 = 16384;

/// A thread's keys (one hash tag) and the bucket whose reader follows it.
pub(super) struct Keys {
    /// Always 0 on one Redis: any keys can share an `XREAD` there.
    pub bucket: usize,
    pub log: String,
    pub meta: String,
    pub run: String,
}

/// How threads map to keys.
pub(super) enum Layout {
    Single,
    /// The hash tags of the buckets, by bucket.
    Cluster(Vec<String>),
}

impl Layout {
    /// A cluster's layout with `buckets` buckets (at least 1, at most [`MAX_BUCKETS`]).
    pub(super) fn cluster(buckets: usize) -> Self {
        let buckets = buckets.clamp(1, MAX_BUCKETS);
        Self::Cluster((0..buckets).map(|i| bucket_tag(i, buckets)).collect())
    }

    pub(super) fn keys(&self, key: &ThreadKey) -> Keys {
        let k = key.encoded();
        let (bucket, prefix) = match self {
            Self::Single => (0, format!("ab:{{{k}}}")),
            Self::Cluster(tags) => {
                let bucket = (fnv1a(k.as_bytes()) % tags.len() as u64) as usize;
                (bucket, format!("ab:{{{}}}:{k}", tags[bucket]))
            }
        };
        Keys {
            bucket,
            log: format!("{prefix}:log"),
            meta: format!("{prefix}:meta"),
            run: format!("{prefix}:run"),
        }
    }

    /// The Cluster slot of a bucket's keys (None on one Redis).
    pub(super) fn slot(&self, bucket: usize) -> Option<u16> {
        match self {
            Self::Single => None,
            Self::Cluster(tags) => tags.get(bucket).map(|t| slot(t.as_bytes())),
        }
    }
}

/// The first tag `b{i}.{j}` whose slot lies in the `i`-th of `buckets` equal slot ranges.
fn bucket_tag(i: usize, buckets: usize) -> String {
    let slots = usize::from(SLOTS);
    let range = (i * slots / buckets)..((i + 1) * slots / buckets);
    (0u32..)
        .map(|j| format!("b{i}.{j}"))
        .find(|tag| range.contains(&usize::from(slot(tag.as_bytes()))))
        .expect("every range holds a slot, and CRC16 reaches them all")
}

/// The Cluster slot of a hash tag: CRC16 (XMODEM) modulo 16384, as Redis computes it.
fn slot(tag: &[u8]) -> u16 {
    let mut crc = 0u16;
    for &b in tag {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % SLOTS
}

/// FNV-1a: a hash that every replica and every version computes alike (unlike std's).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use redis::cluster_routing::{Route, SlotAddr};

    use super::*;

    fn thread(i: usize) -> ThreadKey {
        ThreadKey {
            agent: "assistant".into(),
            tenant: "acme".into(),
            subject: "ann".into(),
            thread: format!("t{i}"),
        }
    }

    fn route(slot: u16) -> Route {
        Route::new(slot, SlotAddr::Master)
    }

    #[test]
    fn slots_are_the_ones_redis_computes() {
        // The reference value of Redis's cluster specification.
        assert_eq!(slot(b"123456789"), 0x31C3);
        let layout = Layout::cluster(16);
        for i in 0..100 {
            let k = layout.keys(&thread(i));
            let slot = layout.slot(k.bucket).unwrap();
            for key in [&k.log, &k.meta, &k.run] {
                assert_eq!(Route::with_key(key, SlotAddr::Master), route(slot), "{key}");
            }
        }
    }

    #[test]
    fn buckets_spread_evenly_over_the_slots_and_threads_over_the_buckets() {
        for buckets in [1, 3, 16, 100] {
            let layout = Layout::cluster(buckets);
            for bucket in 0..buckets {
                let slot = usize::from(layout.slot(bucket).unwrap());
                assert_eq!(slot * buckets / 16384, bucket, "{buckets} buckets");
            }
        }
        let layout = Layout::cluster(16);
        let mut per_bucket = [0; 16];
        for i in 0..1600 {
            per_bucket[layout.keys(&thread(i)).bucket] += 1;
        }
        assert!(per_bucket.iter().all(|n| *n > 50), "{per_bucket:?}");
    }

    #[test]
    fn one_redis_keeps_one_tag_per_thread() {
        let k = Layout::Single.keys(&thread(1));
        assert_eq!(k.log, "ab:{assistant/acme/ann/t1}:log");
        assert_eq!(k.bucket, 0);
        assert_eq!(Layout::Single.slot(0), None);
    }
}
