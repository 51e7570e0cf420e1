//! The scale harness (issue 14): idle streams, memory given back, Redis connections per
//! replica, fan-out without loss, CPU per event. The bridge, the agent stub and
//! `redis-server` run as separate processes (so each one's RSS and CPU time is its own,
//! read from `/proc/PID/status` and `/proc/PID/stat`); this process is the clients.
//!
//! ```sh
//! cargo build --workspace --bins && cargo bench --profile dev --bench scale -- --streams 2000
//! ```
//!
//! `--streams N` idle streams of each kind (default 2000), `--threads N` Redis-subscribed
//! threads (default = streams), `--subscribers S` for the fan-out (default 500),
//! `--cycles C` load/unload cycles (default 3), `--bin DIR` where the binaries are
//! (default `target/debug`). The open-file limit applies to this process and to the
//! bridge alike (each holds one descriptor per stream): the harness raises its soft limit to
//! the hard one with `prlimit` (children inherit it) and prints both. Clients connect from
//! several loopback source addresses (127.0.0.2, .3, ...), 10,000 streams each.

use std::{
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use eventsource_stream::Eventsource as _;
use futures_util::{FutureExt as _, StreamExt as _, stream};
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
        let mut child = Command::new(bin.join(name))
            .args(args)
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
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

/// HTTP clients from 127.0.0.2, .3, ...: one per 10,000 streams.
fn clients(n: usize) -> Vec<reqwest::Client> {
    (0..n.div_ceil(10_000).max(1))
        .map(|i| {
            reqwest::Client::builder()
                .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i as u8)))
                .pool_max_idle_per_host(0)
                .build()
                .unwrap()
        })
        .collect()
}

/// Opens `n` streams with `open(client, i)`, each kept until the returned vector drops.
async fn open_streams<F, Fut>(n: usize, open: F) -> Vec<reqwest::Response>
where
    F: Fn(reqwest::Client, usize) -> Fut,
    Fut: std::future::Future<Output = reqwest::Response>,
{
    let clients = clients(n);
    stream::iter(0..n)
        .map(|i| {
            let response = open(clients[i / 10_000].clone(), i);
            async move {
                let r = response.await;
                assert_eq!(r.status(), 200, "stream {i}");
                r
            }
        })
        .buffer_unordered(64)
        .collect()
        .await
}

fn kib(bytes: f64) -> String {
    format!("{:.1} KiB", bytes / 1024.0)
}

fn bridge_args(agent: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--allow-anonymous",
        "--rate-limit-chat",
        "off",
        "--rate-limit-read",
        "off",
        "--max-streams-per-identity",
        "1000000",
        "--max-streams",
        "1000000",
        "--max-connections",
        "1000000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push("--agent".into());
    args.push(format!("bench={agent}"));
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Let the processes settle (allocators return memory lazily, tasks finish closing).
async fn settle() {
    tokio::time::sleep(Duration::from_secs(2)).await;
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args();
    let (soft, hard) = raise_open_files();
    println!("# scale harness: open-file limit {soft} (soft) / {hard} (hard), per process");
    println!(
        "# {} streams of each kind, {} Redis threads, {} fan-out subscribers, {} cycles\n",
        args.streams, args.threads, args.subscribers, args.cycles
    );
    let stub = Proc::start(
        &args.bin,
        "agent-stub",
        &[
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--pace".into(),
            "0s".into(),
        ],
    )
    .await?;
    let agent = stub.url.clone();
    let mut rows: Vec<(String, String)> = Vec::new();

    // Each kind of idle stream on a fresh bridge (memory hub): a bridge that already served
    // streams reuses the memory its allocator kept, which would hide the cost per stream.
    for kind in [Kind::Subscription, Kind::Run] {
        let bridge = Proc::start(&args.bin, "bridge", &bridge_args(&agent, &[])).await?;
        let base = bridge.url.clone();
        let idle = bridge.rss();
        let mut after_close = Vec::new();
        for cycle in 0..args.cycles {
            let (before, stub_before) = (bridge.rss(), stub.rss());
            let streams = open_streams(args.streams, |c, i| match kind {
                Kind::Subscription => c
                    .get(format!(
                        "{base}/v1/agents/bench/threads/c{cycle}-{i}/events"
                    ))
                    .header("accept", "text/event-stream")
                    .send()
                    .map(Result::unwrap),
                Kind::Run => c
                    .post(format!("{base}/v1/agents/bench/chat"))
                    .header("accept", "text/event-stream")
                    .json(&serde_json::json!({ "message": "stub: hang" }))
                    .send()
                    .map(Result::unwrap),
            })
            .await;
            settle().await;
            if cycle == 0 {
                let per = |grown: u64| kib(grown as f64 / args.streams as f64);
                rows.push((
                    format!("{}, bridge RSS per stream", kind.name()),
                    per(bridge.rss().saturating_sub(before)),
                ));
                if kind == Kind::Run {
                    rows.push((
                        format!("{}, stub RSS per stream", kind.name()),
                        per(stub.rss().saturating_sub(stub_before)),
                    ));
                }
            }
            drop(streams);
            settle().await;
            after_close.push(bridge.rss());
        }
        rows.push((
            format!("{}: bridge RSS idle / after each close", kind.name()),
            format!(
                "{} MiB / {}",
                idle >> 20,
                after_close
                    .iter()
                    .map(|r| format!("{} MiB", r >> 20))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let bridge = Proc::start(&args.bin, "bridge", &bridge_args(&agent, &[])).await?;
    let base = bridge.url.clone();

    // Fan-out: S subscribers of one thread, one burst longer than the log's retention.
    let burst = 2000;
    let subs = open_streams(args.subscribers, |c, _| {
        c.get(format!("{base}/v1/agents/bench/threads/fan/events"))
            .header("accept", "text/event-stream")
            .send()
            .map(Result::unwrap)
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
    // Per subscriber: events received, whether in order, whether told of a loss, and how
    // its stream ended (None: with `run_completed`).
    let counts: Vec<(usize, bool, bool, Option<String>)> = stream::iter(subs)
        .map(|r| async move {
            let mut events = r.bytes_stream().eventsource();
            let (mut n, mut expected, mut in_order, mut told) = (0, 1u64, true, false);
            let ended = loop {
                let e = match events.next().await {
                    Some(Ok(e)) => e,
                    Some(Err(e)) => break Some(e.to_string()),
                    None => break Some("end of stream".to_owned()),
                };
                if e.event == "history_truncated" {
                    told = true;
                    continue;
                }
                let pos: u64 =
                    e.id.rsplit_once('-')
                        .and_then(|(_, n)| n.parse().ok())
                        .unwrap_or(0);
                in_order &= pos == expected;
                expected = pos + 1;
                n += 1;
                if e.event == "run_completed" {
                    break None;
                }
            };
            (n, in_order, told, ended)
        })
        .buffer_unordered(usize::MAX)
        .collect()
        .await;
    let told = counts.iter().filter(|c| c.2).count();
    let silent = counts
        .iter()
        .filter(|c| !c.2 && (c.0 != burst + 3 || !c.1))
        .count();
    if let Some(c) = counts.iter().find(|c| c.0 != burst + 3 || !c.1) {
        eprintln!("an incomplete subscriber: {c:?}");
    }
    let took = started.elapsed();
    let cpu = bridge.cpu_us() - cpu_before;
    let delivered: usize = counts.iter().map(|c| c.0).sum();
    let complete = counts.iter().filter(|c| c.0 == burst + 3 && c.1).count();
    rows.push((
        format!(
            "fan-out, {} subscribers x {} events",
            args.subscribers,
            burst + 3
        ),
        format!(
            "{complete}/{} complete, {told} told of a loss, {silent} lost events untold; {delivered} delivered in {:.1} s",
            args.subscribers,
            took.as_secs_f64()
        ),
    ));
    rows.push((
        "bridge CPU per delivered event (fan-out)".into(),
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
    rows.push((
        "bridge CPU per event (one stream, 256 B)".into(),
        format!(
            "{:.2} µs",
            (bridge.cpu_us() - cpu_before) as f64 / events as f64
        ),
    ));
    drop(bridge);

    // Redis: threads subscribed on one replica, connections it holds.
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
    let mut con = loop {
        if let Ok(con) = client.get_multiplexed_async_connection().await {
            break con;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let bridge = Proc::start(
        &args.bin,
        "bridge",
        &bridge_args(&agent, &["--hub", &redis_url]),
    )
    .await?;
    let base = bridge.url.clone();
    let subs = open_streams(args.threads, |c, i| {
        c.get(format!("{base}/v1/agents/bench/threads/r{i}/events"))
            .header("accept", "text/event-stream")
            .send()
            .map(Result::unwrap)
    })
    .await;
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut con)
        .await?;
    rows.push((
        format!("Redis connections, {} subscribed threads", args.threads),
        format!("{}", list.lines().count() - 1),
    ));
    drop(subs);
    drop(bridge);
    let _ = redis.kill().await;
    let _ = std::fs::remove_dir_all(&dir);

    println!("| measure | value |\n|---|---|");
    for (k, v) in rows {
        println!("| {k} | {v} |");
    }
    Ok(())
}
