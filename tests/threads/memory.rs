//! The memory hub's footprint, measured on the real binary: what it accounts for
//! (`bridge_hub_memory_bytes`, `bridge_hub_threads`) and what the process really holds
//! (`VmRSS`), after many distinct thread ids were read, subscribed to and written.

use futures_util::{StreamExt as _, stream};

use crate::{
    support::{Client, eventually, open_flags, process, send, spawn_agent, sse_events},
    until_run_ends,
};

const IDS: usize = 20_000;
/// Every `RUN_EVERY`th id also gets a run (the default script).
const RUN_EVERY: usize = 4;
const MAX_BYTES: u64 = 4 << 20;
/// Far above what the hub may hold (`MAX_BYTES`) plus the allocator's slack, far below
/// what it held before (~16 KiB per id: 320 MB for 20,000 ids).
const RSS_GROWTH_CEILING: u64 = 96 << 20;

/// A gauge's value in the metrics text.
fn gauge(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in /metrics"))
}

#[tokio::test]
async fn twenty_thousand_thread_ids_stay_within_the_hub_budget() {
    let agent = spawn_agent().await;
    let max_bytes = MAX_BYTES.to_string();
    let flags = open_flags(&["--rate-limit-read", "off", "--hub-max-bytes", &max_bytes]);
    let bridge = process::spawn_bridge(&agent.url, &flags, &[], &[]).await;
    let base = bridge.url();
    let client = Client::new(&base);
    let metrics = || async {
        let text = client.get_text("/metrics").await;
        (
            gauge(&text, "bridge_hub_memory_bytes"),
            gauge(&text, "bridge_hub_threads"),
        )
    };
    let visit = |i: usize| {
        let client = client.clone();
        async move {
            let thread = format!("id-{i}");
            let path = format!("/v1/agents/assistant/threads/{thread}/events");
            let request = client.http.get(client.url(&path));
            let events = send(request.header("accept", "text/event-stream")).await;
            assert_eq!(events.status(), 200, "{:?}", events.headers());
            if i.is_multiple_of(RUN_EVERY) {
                let mut events = Box::pin(sse_events(events));
                let posted = client.post_message("assistant", &thread, "hello").await;
                assert_eq!(posted.status(), 202);
                let run = until_run_ends(&mut events).await;
                assert_eq!(run.last().unwrap().event, "run_completed");
            }
        }
    };
    // Warm up (allocator arenas, connection pools), then measure from there.
    stream::iter(0..200)
        .for_each_concurrent(16, |i| visit(IDS + i))
        .await;
    let before = bridge.rss();

    stream::iter(0..IDS).for_each_concurrent(16, visit).await;

    // Subscribers that left are forgotten (each when its stream notices the close).
    let runs = (IDS / RUN_EVERY) as u64;
    eventually("only logs with events are left", || async {
        metrics().await.1 <= runs + 200 / RUN_EVERY as u64
    })
    .await;
    let (bytes, threads) = metrics().await;
    assert!(bytes <= MAX_BYTES, "accounted {bytes} > {MAX_BYTES}");
    assert!(threads > 0, "recent runs are kept");
    let growth = bridge.rss().saturating_sub(before);
    assert!(
        growth <= RSS_GROWTH_CEILING,
        "RSS grew {growth} bytes over {IDS} ids (ceiling {RSS_GROWTH_CEILING}); hub accounts {bytes} bytes in {threads} logs"
    );
    // The allocator's own figures (jemalloc, the binary's default): live data within the
    // pages holding it, within what is resident, within RSS (jemalloc's resident is an upper
    // bound, but RSS also holds the binary and the stacks, megabytes more).
    let text = client.get_text("/metrics").await;
    let allocator = |state: &str| {
        gauge(
            &text,
            &format!("bridge_allocator_bytes{{state=\"{state}\"}}"),
        )
    };
    let (allocated, active, resident) = (
        allocator("allocated"),
        allocator("active"),
        allocator("resident"),
    );
    assert!(
        allocated > bytes,
        "live data {allocated} B holds the hub's {bytes} B"
    );
    assert!(
        allocated <= active && active <= resident,
        "{allocated} / {active} / {resident}"
    );
    assert!(
        resident <= bridge.rss(),
        "jemalloc resident {resident} B within RSS"
    );
    eprintln!(
        "{IDS} ids: RSS +{growth} B, hub {bytes} B in {threads} logs; allocator {allocated} / {active} / {resident} B"
    );
}
