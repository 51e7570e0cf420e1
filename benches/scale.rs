//! The scale harness (issue 14): idle streams, memory given back, Redis connections per
//! replica, fan-out without loss, CPU per event. The bridge, the agent stub and
//! `redis-server` run as separate processes (so each one's RSS and CPU time is its own,
//! read from `/proc/PID/status` and `/proc/PID/stat`); this process is the clients.
//!
//! ```sh
//! cargo build --workspace --bins && cargo bench --profile dev --bench scale -- --streams 2000
//! ```
//!
//! Issue 14's whole table, on release binaries (the figures in BENCHMARKS.md):
//!
//! ```sh
//! cargo build --release -p bridge -p agent-stub --bins
//! cargo bench --profile dev --bench scale -- --bin target/release --streams 19900 \
//!   --threads 10000 --subscribers 5000 --cycles 3
//! ```
//!
//! It prints one table, each measure beside the figure issue 14 started from. After each
//! close it reads, beside RSS, the bridge's allocator figures (`bridge_allocator_bytes` on
//! `/metrics`: live data, the pages holding it, what jemalloc keeps resident), so what RSS
//! keeps is split into data still held, fragmentation and memory not given back.
//!
//! `--streams N` idle streams of each kind (default 2000), `--threads N` Redis-subscribed
//! threads (default = streams), `--subscribers S` for the fan-out (default 500),
//! `--cycles C` load/unload cycles (default 3), `--bin DIR` where the binaries are
//! (default `target/debug`), `--only idle|fanout|redis` one part. The open-file limit applies to this process and to the
//! bridge alike (each holds one descriptor per stream): the harness raises its soft limit to
//! the hard one with `prlimit` (children inherit it) and prints both. Clients connect from
//! several loopback source addresses (127.0.0.2, .3, ...), 10,000 streams each.

mod support;

use std::{
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
    process::Stdio,
    sync::atomic::{AtomicU8, Ordering},
    time::{Duration, Instant},
};

use eventsource_stream::Eventsource as _;
use futures_util::{StreamExt as _, stream};
use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    process::{Child, Command},
};

struct Args {
    streams: usize,
    threads: usize,
    subscribers: usize,
    cycles: usize,
    bin: PathBuf,
    /// `--only idle|fanout|redis`: one part of the run (all of them without it).
    only: Option<String>,
}

impl Args {
    fn runs(&self, part: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == part)
    }
}

fn parse_args() -> Args {
    // `--name value` pairs; anything else (cargo's `--bench`) is ignored.
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let get = |name: &str| {
        argv.iter()
            .position(|a| a == name)
            .and_then(|i| argv.get(i + 1))
            .map(|v| v.parse::<usize>().unwrap_or_else(|_| panic!("{name} N")))
    };
    let streams = get("--streams").unwrap_or(2000);
    Args {
        streams,
        threads: get("--threads").unwrap_or(streams),
        subscribers: get("--subscribers").unwrap_or(500),
        cycles: get("--cycles").unwrap_or(3),
        bin: argv
            .iter()
            .position(|a| a == "--bin")
            .and_then(|i| argv.get(i + 1))
            .map_or_else(|| PathBuf::from("target/debug"), PathBuf::from),
        only: argv
            .iter()
            .position(|a| a == "--only")
            .and_then(|i| argv.get(i + 1))
            .cloned(),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// `GET .../threads/{id}/events` on a distinct thread each.
    Subscription,
    /// `POST .../chat` with `stub: hang`: `run_started`, then the agent says nothing.
    Run,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Subscription => "thread subscription",
            Kind::Run => "run waiting on the agent",
        }
    }
}

/// A child process that printed `listening on http://ADDR`.
struct Proc {
    child: Child,
    url: String,
}

impl Proc {
    async fn start(bin: &Path, name: &str, args: &[String]) -> anyhow::Result<Self> {
        // Errors only (`RUST_LOG=error`), and panics: where to look when a row is wrong.
        static STARTED: AtomicU8 = AtomicU8::new(0);
        let path = std::env::temp_dir().join(format!(
            "scale-{}-{name}-{}.log",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let log = std::fs::File::create(&path)?;
        let mut child = Command::new(bin.join(name))
            .args(args)
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let url = loop {
            let line = lines
                .next_line()
                .await?
                .ok_or_else(|| anyhow::anyhow!("{name} exited before listening"))?;
            if let Some(addr) = line.trim().strip_prefix("listening on ") {
                break addr.to_owned();
            }
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { child, url })
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    fn rss(&self) -> u64 {
        rss(self.pid())
    }

    /// User plus system CPU time, in microseconds.
    fn cpu_us(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // Fields after the `(comm)`: utime and stime are the 12th and 13th.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        ticks * 1_000_000 / 100 // USER_HZ is 100 on Linux
    }
}

fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        * 1024
}

/// This process's open-file limit: (soft, hard).
fn open_files() -> (u64, u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (nums[0], nums[1])
}

/// Raises the soft open-file limit to the hard one (children inherit it).
fn raise_open_files() -> (u64, u64) {
    let (_, hard) = open_files();
    let _ = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            &format!("--nofile={hard}:{hard}"),
        ])
        .status();
    open_files()
}

#[derive(Clone, Copy, PartialEq)]
enum Http {
    /// HTTP/1.1: one connection per stream (a browser's EventSource without HTTP/2, or a
    /// proxy that speaks HTTP/1.1 to its upstreams).
    One,
    /// HTTP/2 with prior knowledge (h2c): streams multiplexed, 100 per connection (hyper's
    /// server allows 200 concurrent streams per connection).
    Two,
}

impl Http {
    fn name(self) -> &'static str {
        match self {
            Http::One => "HTTP/1.1",
            Http::Two => "HTTP/2",
        }
    }

    /// Streams one client (one connection pool) carries.
    fn streams_per_client(self) -> usize {
        match self {
            Http::One => 10_000,
            Http::Two => 100,
        }
    }
}

/// HTTP clients for `n` streams. HTTP/1.1: one client per 10,000 streams, from 127.0.0.2,
/// .3, ..., each call on addresses no earlier call used (the ports of closed streams linger
/// in TIME_WAIT for a minute). HTTP/2: one client (one connection) per 100 streams, from
/// 127.0.0.1.
fn clients(n: usize, http: Http) -> Vec<reqwest::Client> {
    static NEXT: AtomicU8 = AtomicU8::new(2);
    let count = n.div_ceil(http.streams_per_client()).max(1);
    let first = match http {
        Http::One => {
            let first = NEXT.fetch_add(count as u8, Ordering::Relaxed);
            assert!(
                first as usize + count < 255,
                "out of loopback source addresses"
            );
            Some(first)
        }
        Http::Two => None,
    };
    (0..count)
        .map(|i| {
            let builder = reqwest::Client::builder();
            match first {
                Some(first) => builder
                    .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, first + i as u8)))
                    .pool_max_idle_per_host(0),
                // Pooled: the client's requests share its one connection.
                None => builder.http2_prior_knowledge(),
            }
            .build()
            .unwrap()
        })
        .collect()
}

/// Opens `n` streams, stream `i` with the request `open(client, i)`, each kept until the
/// returned vector drops.
async fn open_streams<F>(n: usize, http: Http, open: F) -> Vec<reqwest::Response>
where
    F: Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder,
{
    let clients = clients(n, http);
    stream::iter(0..n)
        .map(|i| {
            let response = open(&clients[i / http.streams_per_client()], i).send();
            async move {
                let r = response.await.unwrap();
                assert_eq!(r.status(), 200, "stream {i}");
                r
            }
        })
        .buffer_unordered(64)
        .collect()
        .await
}

/// A subscription to thread `thread` of the agent `bench` (`GET .../threads/{thread}/events`,
/// SSE).
fn subscribe(client: &reqwest::Client, base: &str, thread: &str) -> reqwest::RequestBuilder {
    client
        .get(format!("{base}/v1/agents/bench/threads/{thread}/events"))
        .header("accept", "text/event-stream")
}

fn kib(bytes: f64) -> String {
    format!("{:.1} KiB", bytes / 1024.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / f64::from(1 << 20))
}

/// One line of the table: the measure, issue 14's figure for it, this run's.
struct Row {
    measure: String,
    issue: &'static str,
    now: String,
}

fn row(measure: impl Into<String>, issue: &'static str, now: impl Into<String>) -> Row {
    Row {
        measure: measure.into(),
        issue,
        now: now.into(),
    }
}

/// The bridge's allocator figures (`bridge_allocator_bytes` on `/metrics`: allocated, active,
/// resident), when its allocator reports them (the default jemalloc build).
async fn allocator(base: &str) -> Option<[u64; 3]> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let value = |state: &str| {
        let series = format!("bridge_allocator_bytes{{state=\"{state}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .and_then(|v| v.trim().parse().ok())
    };
    Some([value("allocated")?, value("active")?, value("resident")?])
}

/// `RSS (allocator: live, active, resident)`, MiB.
async fn memory(bridge: &Proc) -> String {
    let rss = bridge.rss();
    match allocator(&bridge.url).await {
        Some([live, active, resident]) => format!(
            "{} ({}, {}, {})",
            mib(rss),
            mib(live),
            mib(active),
            mib(resident)
        ),
        None => mib(rss),
    }
}

fn bridge_args(agent: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["--listen".to_owned(), "127.0.0.1:0".to_owned()];
    args.extend(support::unlimited_bridge_flags(agent));
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Let the processes settle (tasks finish opening or closing).
async fn settle() {
    tokio::time::sleep(Duration::from_secs(2)).await;
}

/// After a close: the bridge's allocator (jemalloc) returns freed pages to the system on a
/// decay curve of 10 s (`dirty_decay_ms`), from its background thread.
async fn settle_after_close() {
    tokio::time::sleep(Duration::from_secs(15)).await;
}

/// A fresh agent stub, streaming without pauses.
async fn start_stub(bin: &Path) -> anyhow::Result<Proc> {
    let args = ["--listen", "127.0.0.1:0", "--pace", "0s"].map(String::from);
    Proc::start(bin, "agent-stub", &args).await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args();
    let (soft, hard) = raise_open_files();
    println!("# scale harness: open-file limit {soft} (soft) / {hard} (hard), per process");
    println!(
        "# {} streams of each kind, {} Redis threads, {} fan-out subscribers, {} cycles; binaries from {}\n",
        args.streams,
        args.threads,
        args.subscribers,
        args.cycles,
        args.bin.display()
    );
    let mut rows: Vec<Row> = Vec::new();

    // Each kind of idle stream, over each HTTP version, on a fresh bridge and stub (memory
    // hub): a process that already served streams reuses the memory its allocator kept,
    // which would hide the cost per stream.
    let passes: Vec<(Kind, Http)> = if args.runs("idle") {
        [Kind::Subscription, Kind::Run]
            .into_iter()
            .flat_map(|kind| [(kind, Http::One), (kind, Http::Two)])
            .collect()
    } else {
        Vec::new()
    };
    for (kind, http) in passes {
        let stub = start_stub(&args.bin).await?;
        let bridge = Proc::start(&args.bin, "bridge", &bridge_args(&stub.url, &[])).await?;
        let base = bridge.url.clone();
        let idle = memory(&bridge).await;
        let name = format!("{}, {}", kind.name(), http.name());
        let mut after_close = Vec::new();
        for cycle in 0..args.cycles {
            let (before, stub_before) = (bridge.rss(), stub.rss());
            let streams = open_streams(args.streams, http, |c, i| match kind {
                Kind::Subscription => subscribe(c, &base, &format!("c{cycle}-{i}")),
                Kind::Run => c
                    .post(format!("{base}/v1/agents/bench/chat"))
                    .header("accept", "text/event-stream")
                    .json(&serde_json::json!({ "message": "stub: hang" })),
            })
            .await;
            settle().await;
            if cycle == 0 {
                let per = |grown: u64| kib(grown as f64 / args.streams as f64);
                rows.push(row(
                    format!("{name}: bridge RSS per stream"),
                    "30-37 KiB",
                    per(bridge.rss().saturating_sub(before)),
                ));
                if kind == Kind::Run {
                    rows.push(row(
                        format!("{name}: stub RSS per stream"),
                        "~20 KiB",
                        per(stub.rss().saturating_sub(stub_before)),
                    ));
                }
            }
            drop(streams);
            settle_after_close().await;
            after_close.push(memory(&bridge).await);
        }
        rows.push(row(
            format!(
                "{name}: bridge MiB idle / after each close: RSS (jemalloc live, active, resident)"
            ),
            "383 MB after 10,000 streams closed; +105 MB per 10,000 more",
            format!("{idle} / {}", after_close.join(", ")),
        ));
    }
    let stub = start_stub(&args.bin).await?;
    let agent = stub.url.clone();
    if args.runs("fanout") {
        fan_out(&args, &agent, &mut rows).await?;
    }
    if args.runs("redis") {
        redis_connections(&args, &agent, &mut rows).await?;
    }
    println!("| measure | issue 14 | now |\n|---|---|---|");
    for Row {
        measure,
        issue,
        now,
    } in rows
    {
        println!("| {measure} | {issue} | {now} |");
    }
    Ok(())
}

/// Fan-out to `--subscribers` of one thread, then CPU per event on one stream.
async fn fan_out(args: &Args, agent: &str, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let bridge = Proc::start(&args.bin, "bridge", &bridge_args(agent, &[])).await?;
    let base = bridge.url.clone();

    // Fan-out: S subscribers of one thread, one burst longer than the log's retention.
    let burst = 2000;
    let subs = open_streams(args.subscribers, Http::One, |c, _| {
        subscribe(c, &base, "fan")
    })
    .await;
    let cpu_before = bridge.cpu_us();
    let started = Instant::now();
    let posted = reqwest::Client::new()
        .post(format!("{base}/v1/agents/bench/threads/fan/messages"))
        .json(&serde_json::json!({ "message": format!("stub: burst={burst} size=256") }))
        .send()
        .await?;
    assert_eq!(posted.status(), 202);
    // Per subscriber: events received, whether in order, whether told of a loss, how its
    // stream ended (None: with `run_completed`), and how many times it resumed.
    let counts: Vec<Fed> = stream::iter(subs)
        .map(|r| follow(r, base.clone()))
        .buffer_unordered(usize::MAX)
        .collect()
        .await;
    let complete = |c: &Fed| c.events == burst + 3 && c.in_order;
    let told = counts.iter().filter(|c| c.told).count();
    let silent = counts.iter().filter(|c| !c.told && !complete(c)).count();
    let resumed = counts.iter().filter(|c| c.resumed > 0).count();
    if let Some(c) = counts.iter().find(|c| !complete(c)) {
        eprintln!("an incomplete subscriber: {c:?}");
    }
    if let Some(c) = counts.iter().find(|c| c.resumed > 0) {
        eprintln!("a resumed subscriber: {c:?}");
    }
    let took = started.elapsed();
    let cpu = bridge.cpu_us() - cpu_before;
    let delivered: usize = counts.iter().map(|c| c.events).sum();
    let complete = counts.iter().filter(|c| complete(c)).count();
    rows.push(row(
        format!(
            "fan-out, {} subscribers x {} events",
            args.subscribers,
            burst + 3
        ),
        "(no figure)",
        format!(
            "{complete}/{} complete, {told} told of a loss, {silent} lost events untold, {resumed} resumed after a broken connection; {delivered} delivered in {:.1} s",
            args.subscribers,
            took.as_secs_f64()
        ),
    ));
    rows.push(row(
        "bridge CPU per delivered event (fan-out)",
        "(no figure)",
        format!("{:.2} µs", cpu as f64 / delivered as f64),
    ));

    // CPU per event on one stream (a run's SSE, 256 B events).
    let events = 100_000u64;
    let cpu_before = bridge.cpu_us();
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/agents/bench/chat"))
        .header("accept", "text/event-stream")
        .json(&serde_json::json!({ "message": format!("stub: burst={events} size=256") }))
        .send()
        .await?;
    let mut body = response.bytes_stream();
    while body.next().await.is_some() {}
    rows.push(row(
        "bridge CPU per event (one stream, 256 B)",
        "3.3 µs (release build)",
        format!(
            "{:.2} µs",
            (bridge.cpu_us() - cpu_before) as f64 / events as f64
        ),
    ));
    drop(bridge);
    Ok(())
}

/// What one fan-out subscriber received.
#[derive(Debug)]
struct Fed {
    events: usize,
    in_order: bool,
    /// Told of a loss (`history_truncated`).
    told: bool,
    /// `None`: ended with `run_completed`.
    ended: Option<String>,
    /// Times it resumed with `Last-Event-ID` after its connection broke.
    resumed: usize,
}

/// Reads one subscriber's stream to the run's end. A broken connection is resumed as
/// EventSource does, with `Last-Event-ID` (up to 3 times): on this machine, 5,000 slow
/// readers on loopback put the kernel under TCP memory pressure, and it aborts a few
/// connections (`TCPAbortOnTimeout` in /proc/net/netstat; the client sees ETIMEDOUT).
async fn follow(response: reqwest::Response, base: String) -> Fed {
    let mut events = response.bytes_stream().eventsource().boxed();
    let mut fed = Fed {
        events: 0,
        in_order: true,
        told: false,
        ended: None,
        resumed: 0,
    };
    let (mut expected, mut last_id) = (1u64, String::new());
    loop {
        let e = match events.next().await {
            Some(Ok(e)) => e,
            Some(Err(e)) if fed.resumed < 3 && !last_id.is_empty() => {
                fed.resumed += 1;
                let again = subscribe(&reqwest::Client::new(), &base, "fan")
                    .header("last-event-id", &last_id)
                    .send()
                    .await;
                match again {
                    Ok(r) if r.status() == 200 => {
                        events = r.bytes_stream().eventsource().boxed();
                        continue;
                    }
                    other => {
                        fed.ended = Some(format!("{e:?}; resuming: {other:?}"));
                        return fed;
                    }
                }
            }
            // With its causes: which side broke the connection.
            Some(Err(e)) => {
                fed.ended = Some(format!("{e:?}"));
                return fed;
            }
            None => {
                fed.ended = Some("end of stream".to_owned());
                return fed;
            }
        };
        if e.event == "history_truncated" {
            fed.told = true;
            continue;
        }
        let pos: u64 =
            e.id.rsplit_once('-')
                .and_then(|(_, n)| n.parse().ok())
                .unwrap_or(0);
        fed.in_order &= pos == expected;
        expected = pos + 1;
        last_id = e.id;
        fed.events += 1;
        if e.event == "run_completed" {
            return fed;
        }
    }
}

/// Redis: `--threads` subscribed on one replica, and the connections it holds.
async fn redis_connections(args: &Args, agent: &str, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let dir = std::env::temp_dir().join(format!("scale-redis-{port}"));
    std::fs::create_dir_all(&dir)?;
    let mut redis = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let redis_url = format!("redis://127.0.0.1:{port}");
    let client = redis::Client::open(redis_url.as_str())?;
    let waited = Instant::now();
    let mut con = loop {
        if let Ok(con) = client.get_multiplexed_async_connection().await {
            break con;
        }
        if let Some(status) = redis.try_wait()? {
            anyhow::bail!("redis-server exited before serving: {status}");
        }
        anyhow::ensure!(
            waited.elapsed() < Duration::from_secs(20),
            "redis-server did not answer on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let bridge = Proc::start(
        &args.bin,
        "bridge",
        &bridge_args(agent, &["--hub", &redis_url]),
    )
    .await?;
    let base = bridge.url.clone();
    let subs = open_streams(args.threads, Http::One, |c, i| {
        subscribe(c, &base, &format!("r{i}"))
    })
    .await;
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut con)
        .await?;
    rows.push(row(
        format!("Redis connections, {} subscribed threads", args.threads),
        "one per thread, plus one",
        format!("{}", list.lines().count() - 1),
    ));
    drop(subs);
    drop(bridge);
    let _ = redis.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
