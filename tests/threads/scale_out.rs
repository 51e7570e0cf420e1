//! Several bridges sharing Redis, as replicas in Kubernetes do.

use std::time::Duration;

use futures_util::StreamExt as _;

use crate::{
    is_default_script, kinds, n_of, post_message, start_run, subscribe,
    support::{
        Agent, Bridge, PATIENCE, problem,
        redis::{RedisCluster, RedisServer},
        spawn_agent, spawn_bridge, spawn_killable_bridge,
    },
    take, until_run_ends,
};

/// An agent behind two bridge replicas that share the hub at `hub`.
async fn two_replicas(hub: &str) -> (Agent, Bridge, Bridge) {
    let agent = spawn_agent().await;
    let flags = ["--hub", hub];
    let a = spawn_bridge(&[("assistant", &agent.url)], &flags).await;
    let b = spawn_bridge(&[("assistant", &agent.url)], &flags).await;
    (agent, a, b)
}

#[tokio::test]
async fn a_message_posted_on_one_bridge_reaches_subscribers_on_both() {
    let redis = RedisServer::start().await;
    let (_agent, a, b) = two_replicas(&redis.url()).await;

    let mut on_a = subscribe(&a.base, "assistant", "shared", None).await;
    let mut on_b = subscribe(&b.base, "assistant", "shared", None).await;
    start_run(&a.base, "assistant", "shared", "hello from a").await;
    let seen_a = until_run_ends(&mut on_a).await;
    let seen_b = until_run_ends(&mut on_b).await;
    assert!(is_default_script(&kinds(&seen_b)));
    assert_eq!(
        seen_a.iter().map(|e| (&e.id, &e.data)).collect::<Vec<_>>(),
        seen_b.iter().map(|e| (&e.id, &e.data)).collect::<Vec<_>>()
    );

    // The thread's one active run is known to every replica.
    start_run(&b.base, "assistant", "shared", "stub: hang").await;
    assert_eq!(
        problem(post_message(&a.base, "assistant", "shared", "me too").await)
            .await
            .0,
        409
    );
}

#[tokio::test]
async fn a_subscriber_whose_bridge_dies_resumes_on_the_other_exactly() {
    let redis = RedisServer::start().await;
    let agent = spawn_agent().await;
    let flags = ["--hub", &redis.url()];
    let owner = spawn_bridge(&[("assistant", &agent.url)], &flags).await;
    let mut doomed = spawn_killable_bridge(&[("assistant", &agent.url)], &flags);

    let mut watcher = subscribe(&owner.base, "assistant", "t1", None).await;
    let mut subscriber = subscribe(&doomed.base, "assistant", "t1", None).await;
    start_run(&owner.base, "assistant", "t1", "stub: pace=30ms").await;
    let seen = take(&mut subscriber, 4).await;
    doomed.kill();
    // The dead bridge's stream ends without a terminal event...
    while let Ok(Some(event)) =
        tokio::time::timeout(PATIENCE, futures_util::StreamExt::next(&mut subscriber)).await
    {
        assert!(
            !matches!(event.event.as_str(), "run_completed" | "run_error"),
            "{event:?}"
        );
    }
    // ...and the client reconnects to the other replica with its Last-Event-ID.
    // The id a real EventSource resends: the last event it received.
    let last_seen = seen.last().unwrap().id.clone();
    let mut resumed = subscribe(&owner.base, "assistant", "t1", Some(&last_seen)).await;
    let rest = until_run_ends(&mut resumed).await;
    let whole = until_run_ends(&mut watcher).await;
    assert_eq!(rest.last().unwrap().event, "run_completed");
    let got: Vec<u64> = rest.iter().map(|e| n_of(&e.id)).collect();
    let missing: Vec<u64> = whole
        .iter()
        .map(|e| n_of(&e.id))
        .filter(|n| *n > n_of(&last_seen))
        .collect();
    assert_eq!(got, missing, "exactly the events after the last one seen");
}

#[tokio::test]
async fn a_run_whose_bridge_dies_ends_with_run_error_for_its_subscribers() {
    let redis = RedisServer::start().await;
    let agent = spawn_agent().await;
    let flags = ["--hub", &redis.url(), "--run-lease", "1s"];
    let mut owner = spawn_killable_bridge(&[("assistant", &agent.url)], &flags);
    let survivor = spawn_bridge(&[("assistant", &agent.url)], &flags).await;

    let mut subscriber = subscribe(&survivor.base, "assistant", "t1", None).await;
    let response = post_message(&owner.base, "assistant", "t1", "stub: hang-after=3").await;
    assert_eq!(response.status(), 202);
    let started = take(&mut subscriber, 3).await;
    owner.kill();

    let rest = until_run_ends(&mut subscriber).await;
    let last = rest.last().unwrap();
    assert_eq!(last.event, "run_error", "{rest:?}");
    assert_eq!(last.data["code"], "UNAVAILABLE");
    assert_eq!(last.data["run_id"], started[0].data["run_id"]);
    assert_eq!(last.data["sequence"], 4, "the run's sequence continues");
    // The thread is free again.
    start_run(&survivor.base, "assistant", "t1", "hello").await;
}

#[tokio::test]
async fn redis_going_away_is_503_and_the_bridge_recovers_by_itself() {
    let mut redis = RedisServer::start().await;
    let agent = spawn_agent().await;
    let bridge = spawn_bridge(
        &[("assistant", &agent.url)],
        &["--hub", &redis.url(), "--readiness-cache", "50ms"],
    )
    .await;
    let base = &bridge.base;
    let readyz = || async { reqwest::get(format!("{base}/readyz")).await.unwrap() };
    assert_eq!(readyz().await.status(), 200);

    let mut subscriber = subscribe(base, "assistant", "t1", None).await;
    start_run(base, "assistant", "t1", "stub: hang-after=2").await;
    take(&mut subscriber, 2).await;

    redis.stop();
    // Open streams end with an error event that tells the client to reconnect later.
    let mut last = None;
    while let Ok(Some(event)) =
        tokio::time::timeout(PATIENCE, futures_util::StreamExt::next(&mut subscriber)).await
    {
        last = Some(event);
    }
    let last = last.expect("an error event before the stream closed");
    assert_eq!(last.event, "stream_error");
    assert_eq!(last.data["code"], "UNAVAILABLE");
    assert!(last.retry.is_some());

    // New runs and subscriptions are refused with 503.
    let (status, body) = problem(post_message(base, "assistant", "t2", "hello").await).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["type"], "urn:agent-bridge:problem:hub-unavailable");
    let response = reqwest::get(format!("{base}/v1/agents/assistant/threads/t2/events"))
        .await
        .unwrap();
    assert_eq!(problem(response).await.0, 503);
    // And the load balancer is told (after the readiness cache's 50ms).
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let response = readyz().await;
        if response.status() == 503 {
            let (_, body) = problem(response).await;
            assert_eq!(body["type"], "urn:agent-bridge:problem:hub-unavailable");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/readyz stayed 200 without Redis"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Redis comes back (empty): the bridge serves again without a restart.
    redis.restart().await;
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let response = post_message(base, "assistant", "t3", "hello again").await;
        if response.status() == 202 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the bridge did not recover"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(readyz().await.status(), 200);
    let mut again = subscribe(base, "assistant", "t3", Some("0")).await;
    assert!(is_default_script(&kinds(&until_run_ends(&mut again).await)));
}

#[tokio::test]
async fn redis_cluster_serves_threads_across_shards() {
    let cluster = RedisCluster::start().await;
    let (_agent, a, b) = two_replicas(&cluster.url()).await;

    // Several threads, so their logs land on different shards.
    for thread in ["alpha", "bravo", "charlie", "delta"] {
        let mut on_b = subscribe(&b.base, "assistant", thread, None).await;
        start_run(&a.base, "assistant", thread, "hello").await;
        let run = until_run_ends(&mut on_b).await;
        assert!(is_default_script(&kinds(&run)), "{thread}");
        let mut resumed = subscribe(&a.base, "assistant", thread, Some(&run[3].id)).await;
        let rest = until_run_ends(&mut resumed).await;
        assert_eq!(rest.len(), run.len() - 4, "{thread}");
    }
    let mut keys_per_node = Vec::new();
    for node in &cluster.nodes {
        let keys: Vec<String> = node.query(redis::cmd("KEYS").arg("ab:*")).await;
        keys_per_node.push(keys.len());
    }
    assert!(
        keys_per_node.iter().filter(|n| **n > 0).count() >= 2,
        "threads spread over shards: {keys_per_node:?}"
    );
}

#[tokio::test]
async fn draining_ends_subscriptions_with_a_reconnect_hint() {
    let agent = spawn_agent().await;
    let mut bridge = spawn_bridge(
        &[("assistant", &agent.url)],
        &["--drain-timeout", "5s", "--retry-hint", "1500ms"],
    )
    .await;
    let mut subscriber = subscribe(&bridge.base, "assistant", "t1", None).await;
    start_run(&bridge.base, "assistant", "t1", "hello").await;
    until_run_ends(&mut subscriber).await;

    let token = bridge.shutdown.clone();
    let task = bridge.task.take().unwrap();
    token.cancel();
    let last = take(&mut subscriber, 1).await.remove(0);
    assert_eq!(last.event, "stream_error");
    assert_eq!(last.retry, Some(Duration::from_millis(1500)));
    assert!(
        futures_util::StreamExt::next(&mut subscriber)
            .await
            .is_none(),
        "the subscription closes"
    );
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the bridge exits within its drain time")
        .unwrap()
        .unwrap();
}

/// A replica follows all its subscribed threads with a handful of Redis connections (not one
/// blocking reader each), and every one of them still gets its runs.
#[tokio::test]
async fn a_thousand_subscribed_threads_share_a_few_redis_connections() {
    const THREADS: usize = 1000;
    let redis = RedisServer::start().await;
    let agent = spawn_agent().await;
    let url = redis.url();
    let flags = ["--hub", &url, "--rate-limit-read", "off"];
    let bridge = spawn_bridge(&[("assistant", &agent.url)], &flags).await;
    let base = &bridge.base;
    let subscriptions = futures_util::stream::iter(0..THREADS)
        .map(|i| async move { subscribe(base, "assistant", &format!("t{i}"), None).await })
        .buffered(32)
        .collect::<Vec<_>>()
        .await;
    let connections = redis.clients().await;
    assert!(
        connections <= 4,
        "{connections} Redis connections for {THREADS} threads"
    );

    // Runs on threads that joined first, in the middle and last all reach their subscribers.
    let mut subscriptions = subscriptions;
    for i in [0, THREADS / 2, THREADS - 1] {
        let thread = format!("t{i}");
        let run_id = start_run(base, "assistant", &thread, "hello").await;
        let seen = until_run_ends(&mut subscriptions[i]).await;
        assert!(is_default_script(&kinds(&seen)), "{:?}", kinds(&seen));
        assert!(seen.iter().all(|e| e.data["run_id"] == run_id.as_str()));
        assert_eq!(n_of(&seen[0].id), 1);
    }
    // And a thread followed from now on joins the same readers.
    let mut late = subscribe(base, "assistant", "late", None).await;
    start_run(base, "assistant", "late", "hello").await;
    assert!(is_default_script(&kinds(&until_run_ends(&mut late).await)));
    assert_eq!(redis.clients().await, connections);
}
