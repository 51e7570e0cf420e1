//! A Redis Cluster hub at scale: threads grouped in buckets that share a slot, one reader
//! connection per bucket, and every guarantee kept.

use futures_util::StreamExt as _;

use crate::{
    is_default_script, kinds, n_of, post_message, start_run, subscribe,
    support::{
        redis::{RedisCluster, RedisServer},
        spawn_agent, spawn_bridge, spawn_killable_bridge,
    },
    take, until_run_ends,
};

/// The bridge's connections to a node (`CLIENT LIST`, less the asking one), and how many of
/// them are thread readers.
async fn connections(node: &RedisServer) -> (usize, usize) {
    let list: String = node.query(redis::cmd("CLIENT").arg("LIST")).await;
    let readers = list
        .lines()
        .filter(|l| l.contains(" name=agent-bridge-reader "))
        .count();
    (list.lines().count() - 1, readers)
}

/// A replica follows hundreds of subscribed threads, spread over every shard, with one
/// reader connection per bucket (not one per thread), and each thread still receives its
/// run: every event, in order, numbered from 1.
#[tokio::test]
async fn subscribed_threads_on_a_cluster_share_one_reader_per_bucket() {
    const THREADS: usize = 300;
    const BUCKETS: usize = 6;
    let cluster = RedisCluster::start().await;
    let agent = spawn_agent().await;
    let url = cluster.url();
    let buckets = BUCKETS.to_string();
    let flags = [
        "--hub",
        &url,
        "--hub-cluster-buckets",
        &buckets,
        "--rate-limit-read",
        "off",
    ];
    let bridge = spawn_bridge(&[("assistant", &agent.url)], &flags).await;
    let base = &bridge.base;
    let mut subscriptions = futures_util::stream::iter(0..THREADS)
        .map(|i| async move { subscribe(base, "assistant", &format!("t{i}"), None).await })
        .buffered(32)
        .collect::<Vec<_>>()
        .await;

    let mut per_node = Vec::new();
    for node in &cluster.nodes {
        per_node.push(connections(node).await);
    }
    let total: usize = per_node.iter().map(|(all, _)| all).sum();
    let readers: usize = per_node.iter().map(|(_, readers)| readers).sum();
    assert_eq!(
        readers, BUCKETS,
        "one reader per bucket for {THREADS} threads: {per_node:?}"
    );
    assert!(
        per_node.iter().all(|(_, readers)| *readers > 0),
        "buckets on every shard: {per_node:?}"
    );
    // Besides the readers, one command connection per node.
    assert!(
        total <= BUCKETS + cluster.nodes.len(),
        "{total} connections to the cluster for {THREADS} threads: {per_node:?}"
    );

    let runs = futures_util::stream::iter(0..THREADS)
        .map(|i| async move { start_run(base, "assistant", &format!("t{i}"), "hello").await })
        .buffered(16)
        .collect::<Vec<_>>()
        .await;
    for (i, (subscription, run_id)) in subscriptions.iter_mut().zip(&runs).enumerate() {
        let seen = until_run_ends(subscription).await;
        assert!(is_default_script(&kinds(&seen)), "t{i}: {:?}", kinds(&seen));
        assert!(seen.iter().all(|e| e.data["run_id"] == run_id.as_str()));
        let numbers: Vec<u64> = seen.iter().map(|e| n_of(&e.id)).collect();
        let expected: Vec<u64> = (1..=seen.len() as u64).collect();
        assert_eq!(numbers, expected, "t{i}: every event, in order");
    }
    let mut after = Vec::new();
    for node in &cluster.nodes {
        after.push(connections(node).await);
    }
    assert_eq!(after, per_node, "runs open no connections of their own");
}

/// Runs on threads spread over shards (so over buckets) whose bridge dies: the surviving
/// replica's readers notice their leases expire and end each run with `run_error`, and the
/// threads take new runs.
#[tokio::test]
async fn runs_whose_bridge_dies_end_with_run_error_on_a_cluster() {
    let cluster = RedisCluster::start().await;
    let agent = spawn_agent().await;
    let url = cluster.url();
    let flags = ["--hub", &url, "--run-lease", "1s"];
    let mut owner = spawn_killable_bridge(&[("assistant", &agent.url)], &flags);
    let survivor = spawn_bridge(&[("assistant", &agent.url)], &flags).await;

    let threads = ["alpha", "bravo", "charlie", "delta"];
    let mut watched = Vec::new();
    for thread in threads {
        let mut subscriber = subscribe(&survivor.base, "assistant", thread, None).await;
        let response = post_message(&owner.base, "assistant", thread, "stub: hang-after=2").await;
        assert_eq!(response.status(), 202, "{thread}");
        let started = take(&mut subscriber, 2).await;
        watched.push((thread, subscriber, started));
    }
    let mut nodes_with_keys = 0;
    for node in &cluster.nodes {
        let keys: Vec<String> = node.query(redis::cmd("KEYS").arg("ab:*")).await;
        nodes_with_keys += usize::from(!keys.is_empty());
    }
    assert!(nodes_with_keys >= 2, "the threads spread over shards");
    owner.kill();

    for (thread, mut subscriber, started) in watched {
        let rest = until_run_ends(&mut subscriber).await;
        let last = rest.last().unwrap();
        assert_eq!(last.event, "run_error", "{thread}: {rest:?}");
        assert_eq!(last.data["code"], "UNAVAILABLE");
        assert_eq!(last.data["run_id"], started[0].data["run_id"]);
        assert_eq!(n_of(&last.id), n_of(&started[1].id) + 1, "{thread}");
        start_run(&survivor.base, "assistant", thread, "hello").await;
    }
}

/// Resharding moves a bucket's slot, and its threads' keys, to another shard: the bucket's
/// reader follows it, and its subscribers go on receiving the thread's runs, every event
/// once, in order, as if nothing had happened.
#[tokio::test]
async fn a_bucket_moved_to_another_shard_keeps_its_subscribers() {
    let cluster = RedisCluster::start().await;
    let agent = spawn_agent().await;
    let url = cluster.url();
    let bridge = spawn_bridge(&[("assistant", &agent.url)], &["--hub", &url]).await;
    let base = &bridge.base;
    let mut subscriber = subscribe(base, "assistant", "t1", None).await;
    start_run(base, "assistant", "t1", "hello").await;
    let first = until_run_ends(&mut subscriber).await;

    let mut log = None;
    for node in &cluster.nodes {
        let keys: Vec<String> = node.query(redis::cmd("KEYS").arg("ab:*/t1:log")).await;
        log = log.or(keys.into_iter().next());
    }
    let log = log.expect("the thread's log");
    let slot: u16 = cluster.nodes[0]
        .query(redis::cmd("CLUSTER").arg("KEYSLOT").arg(&log))
        .await;
    cluster.move_slot(slot).await;

    start_run(base, "assistant", "t1", "again").await;
    let second = until_run_ends(&mut subscriber).await;
    assert!(is_default_script(&kinds(&second)), "{:?}", kinds(&second));
    let last_seen = &first.last().unwrap().id;
    let numbers: Vec<u64> = second.iter().map(|e| n_of(&e.id)).collect();
    let expected: Vec<u64> = (1..=second.len() as u64)
        .map(|i| n_of(last_seen) + i)
        .collect();
    assert_eq!(numbers, expected, "the next events, none lost or repeated");
    // The log moved with the slot: resuming from it gives the same events.
    let mut resumed = subscribe(base, "assistant", "t1", Some(last_seen)).await;
    let replayed = until_run_ends(&mut resumed).await;
    assert_eq!(
        replayed
            .iter()
            .map(|e| (&e.id, &e.data))
            .collect::<Vec<_>>(),
        second.iter().map(|e| (&e.id, &e.data)).collect::<Vec<_>>()
    );
}
