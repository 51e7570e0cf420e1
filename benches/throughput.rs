//! Throughput and added latency of the bridge, against a direct tonic client of the same
//! agent stream (the ceiling). Both paths run in one process, one after the other, so the
//! ratios hold on a noisy shared machine even when absolute numbers drift.
//!
//! `cargo bench --bench throughput` (add `-- --events 200000 --size 256` to change the load).

mod support;

use std::time::{Duration, Instant, SystemTime};

use agent_bridge_proto::v1::{ChatEvent, ChatRequest, agent_client::AgentClient};
use eventsource_stream::{Event, EventStreamError, Eventsource as _};
use futures_util::StreamExt as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

struct Load {
    events: u64,
    size: usize,
    rounds: usize,
    latency_runs: usize,
}

fn parse_args() -> Load {
    let mut load = Load {
        events: 100_000,
        size: 256,
        rounds: 3,
        latency_runs: 40,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--events" => load.events = value.parse().expect("--events N"),
            "--size" => load.size = value.parse().expect("--size BYTES"),
            "--rounds" => load.rounds = value.parse().expect("--rounds N"),
            "--latency-runs" => load.latency_runs = value.parse().expect("--latency-runs N"),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    load
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let load = parse_args();
    let shutdown = CancellationToken::new();

    let agent_listener = TcpListener::bind("127.0.0.1:0").await?;
    let agent_url = format!("http://{}", agent_listener.local_addr()?);
    let stub = agent_stub::Stub::new(agent_stub::Config::default());
    tokio::spawn(agent_stub::serve(agent_listener, stub, shutdown.clone()));

    let bridge_listener = TcpListener::bind("127.0.0.1:0").await?;
    let bridge_url = format!("http://{}", bridge_listener.local_addr()?);
    let flags = support::unlimited_bridge_flags(&agent_url);
    let config = bridge::Config::from_args(std::iter::once("bridge".to_owned()).chain(flags))?;
    tokio::spawn(bridge::serve(bridge_listener, config, shutdown.clone()));

    let mut grpc = AgentClient::connect(agent_url.clone()).await?;
    let http = reqwest::Client::new();
    let chat_url = format!("{bridge_url}/v1/agents/bench/chat");
    let burst = format!("stub: burst={} size={}", load.events, load.size);

    println!(
        "# throughput: {} events of {} B per run, best of {} rounds",
        load.events, load.size, load.rounds
    );
    let mut direct_best = 0f64;
    let mut bridge_best = 0f64;
    for _ in 0..load.rounds {
        direct_best = direct_best.max(direct_rate(&mut grpc, &burst).await?);
        bridge_best = bridge_best.max(bridge_rate(&http, &chat_url, &burst).await?);
    }
    println!("direct gRPC client : {:>10.0} events/s", direct_best);
    println!("through the bridge : {:>10.0} events/s", bridge_best);
    println!("bridge / direct    : {:>10.2}", bridge_best / direct_best);

    println!(
        "\n# latency: agent timestamp -> client receipt, paced default script, {} runs",
        load.latency_runs
    );
    let paced = "stub: pace=2ms";
    let mut direct_lat = Vec::new();
    let mut bridge_lat = Vec::new();
    for _ in 0..load.latency_runs {
        direct_latencies(&mut grpc, paced, &mut direct_lat).await?;
        bridge_latencies(&http, &chat_url, paced, &mut bridge_lat).await?;
    }
    let (d50, d99) = percentiles(&mut direct_lat);
    let (b50, b99) = percentiles(&mut bridge_lat);
    println!(
        "direct gRPC client : p50 {:>7.1} µs  p99 {:>7.1} µs  ({} events)",
        d50,
        d99,
        direct_lat.len()
    );
    println!(
        "through the bridge : p50 {:>7.1} µs  p99 {:>7.1} µs  ({} events)",
        b50,
        b99,
        bridge_lat.len()
    );
    println!(
        "added by the bridge: p50 {:>7.1} µs  (p99s differ by {:+.1} µs; tails are noise-dominated)",
        b50 - d50,
        b99 - d99
    );

    fan_out(&http, &bridge_url, &load).await?;
    idle_memory(&http, &bridge_url).await?;

    shutdown.cancel();
    Ok(())
}

/// One run on a thread, read by many subscribers at once (memory hub): every event is
/// encoded once and its bytes shared, so deliveries per second should grow with subscribers
/// while the agent's event rate stays the same.
async fn fan_out(http: &reqwest::Client, base: &str, load: &Load) -> anyhow::Result<()> {
    let events = load.events / 5;
    println!(
        "\n# fan-out: one run of {events} events of {} B on a thread",
        load.size
    );
    for subscribers in [1usize, 10, 50] {
        let thread = format!("fan-{subscribers}");
        let url = format!("{base}/v1/agents/bench/threads/{thread}/events");
        let mut readers = Vec::new();
        for _ in 0..subscribers {
            let response = http.get(&url).send().await?;
            anyhow::ensure!(response.status() == 200, "subscribe: {}", response.status());
            readers.push(response.bytes_stream().eventsource());
        }
        let started = Instant::now();
        let posted = http
            .post(format!("{base}/v1/agents/bench/threads/{thread}/messages"))
            .json(&serde_json::json!({ "message": format!("stub: burst={events} size={}", load.size) }))
            .send()
            .await?;
        anyhow::ensure!(posted.status() == 202, "post: {}", posted.status());
        let counts = futures_util::future::join_all(readers.into_iter().map(|mut r| async move {
            let mut n = 0u64;
            while let Some(Ok(event)) = r.next().await {
                n += 1;
                if event.event == "run_completed" {
                    break;
                }
            }
            n
        }))
        .await;
        let delivered: u64 = counts.iter().sum();
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{subscribers:>3} subscribers: {:>10.0} deliveries/s ({:>8.0} events/s per subscriber)",
            delivered as f64 / secs,
            delivered as f64 / secs / subscribers as f64
        );
    }
    Ok(())
}

/// Resident memory per open, idle SSE subscription. Client and bridge share this process,
/// so the figure includes the client's side of each connection: an upper bound.
async fn idle_memory(http: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    const STREAMS: usize = 1000;
    let before = rss_kib();
    let mut open = Vec::with_capacity(STREAMS);
    for i in 0..STREAMS {
        let url = format!("{base}/v1/agents/bench/threads/idle-{i}/events");
        let response = http.get(&url).send().await?;
        anyhow::ensure!(response.status() == 200, "subscribe: {}", response.status());
        open.push(response);
    }
    let after = rss_kib();
    println!(
        "\n# memory: {STREAMS} idle thread subscriptions: {:.1} KiB resident per stream (client side included)",
        (after.saturating_sub(before)) as f64 / STREAMS as f64
    );
    drop(open);
    Ok(())
}

/// This process's resident set (Linux), in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// A run straight from the agent: its gRPC event stream.
async fn direct_run(
    grpc: &mut AgentClient<tonic::transport::Channel>,
    message: &str,
) -> anyhow::Result<tonic::Streaming<ChatEvent>> {
    let request = ChatRequest {
        message: message.into(),
        ..Default::default()
    };
    Ok(grpc.chat(request).await?.into_inner())
}

/// A run through the bridge: its SSE events.
async fn bridge_run(
    http: &reqwest::Client,
    url: &str,
    message: &str,
) -> anyhow::Result<impl futures_util::Stream<Item = Result<Event, EventStreamError<reqwest::Error>>>>
{
    let body = serde_json::json!({ "message": message });
    let request = http.post(url).header("accept", "text/event-stream");
    let response = request.json(&body).send().await?;
    anyhow::ensure!(
        response.status() == 200,
        "bridge answered {}",
        response.status()
    );
    Ok(response.bytes_stream().eventsource())
}

async fn direct_rate(
    grpc: &mut AgentClient<tonic::transport::Channel>,
    message: &str,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut stream = direct_run(grpc, message).await?;
    let mut n = 0u64;
    while stream.message().await?.is_some() {
        n += 1;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

async fn bridge_rate(http: &reqwest::Client, url: &str, message: &str) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut events = Box::pin(bridge_run(http, url, message).await?);
    let mut n = 0u64;
    while let Some(event) = events.next().await {
        event?;
        n += 1;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

fn micros_since(timestamp: SystemTime) -> f64 {
    SystemTime::now()
        .duration_since(timestamp)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
        * 1e6
}

async fn direct_latencies(
    grpc: &mut AgentClient<tonic::transport::Channel>,
    message: &str,
    out: &mut Vec<f64>,
) -> anyhow::Result<()> {
    let mut stream = direct_run(grpc, message).await?;
    while let Some(event) = stream.message().await? {
        let ts = event
            .timestamp
            .ok_or_else(|| anyhow::anyhow!("no timestamp"))?;
        out.push(micros_since(SystemTime::try_from(ts)?));
    }
    Ok(())
}

async fn bridge_latencies(
    http: &reqwest::Client,
    url: &str,
    message: &str,
    out: &mut Vec<f64>,
) -> anyhow::Result<()> {
    let mut events = Box::pin(bridge_run(http, url, message).await?);
    while let Some(event) = events.next().await {
        let event = event?;
        if event.data.is_empty() {
            continue;
        }
        let data: serde_json::Value = serde_json::from_str(&event.data)?;
        let ts = data["timestamp"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no timestamp"))?;
        out.push(micros_since(humantime::parse_rfc3339(ts)?));
    }
    Ok(())
}

fn percentiles(samples: &mut [f64]) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (at(0.50), at(0.99))
}
