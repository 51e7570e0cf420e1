//! The workspace's binaries as separate processes, as they run in production.
//!
//! `scripts/test.sh` builds them (`cargo build --bins`) before `cargo test`; they sit next to
//! the test executable's `deps/` folder. Each is started with `--listen 127.0.0.1:0` and
//! prints `listening on http://ADDR` once bound, which is how a test learns its address
//! without sleeping or racing for a port. Dropping a [`Process`] sends SIGTERM (a graceful
//! shutdown, spans flushed); [`Process::stop`] also waits for the exit.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex},
};

use tokio::{
    io::{AsyncBufReadExt as _, BufReader, Lines},
    process::{Child, ChildStdout, Command},
};

use super::PATIENCE;

/// `target/<profile>/<name>`, beside the running test binary (`target/<profile>/deps/..`).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (scripts/test.sh runs `cargo build --workspace --bins`)",
        path.display()
    );
    path
}

/// A running binary.
pub struct Process {
    pub name: &'static str,
    /// Its main listen address.
    pub addr: SocketAddr,
    /// Further `... listening on http://ADDR` lines asked for, in order.
    pub extra: Vec<SocketAddr>,
    /// Everything it wrote (stdout, where logs go, and stderr), up to 1 MiB.
    output: Arc<Mutex<String>>,
    child: Child,
}

/// Appends a line to a bounded capture.
fn keep(buffer: &Mutex<String>, line: &str) {
    let mut kept = buffer.lock().unwrap();
    if kept.len() < 1024 * 1024 {
        kept.push_str(line);
        kept.push('\n');
    }
}

/// Reads `lines` to their end into each of `into` (and to stderr with `TEST_LOG`).
async fn capture<R: tokio::io::AsyncBufRead + Unpin>(
    name: &str,
    mut lines: Lines<R>,
    into: Vec<Arc<Mutex<String>>>,
) {
    while let Ok(Some(line)) = lines.next_line().await {
        if std::env::var_os("TEST_LOG").is_some() {
            eprintln!("[{name}] {line}");
        }
        for buffer in &into {
            keep(buffer, &line);
        }
    }
}

/// Starts `name` with `args` and `envs` (inherited `OTEL_*` variables are removed first, so
/// only what the test sets applies), and waits until it printed `listening on http://ADDR`
/// and then each prefix of `also` (e.g. `metrics listening on http://`).
pub async fn spawn(
    name: &'static str,
    args: &[String],
    envs: &[(String, String)],
    also: &[&str],
) -> Process {
    super::init_logs();
    let mut command = Command::new(binary(name));
    command.args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("OTEL_") {
            command.env_remove(&key);
        }
    }
    command.env(
        "RUST_LOG",
        std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into()),
    );
    command.envs(envs.iter().map(|(k, v)| (k, v)));
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A safety net only: Drop sends SIGTERM first, and tests that care call `stop`.
        .kill_on_drop(false);
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("starting {name}: {e}"));
    // Stderr is kept (and shown with TEST_LOG), so a failed start says why.
    let stderr = Arc::new(Mutex::new(String::new()));
    let output = Arc::new(Mutex::new(String::new()));
    let errors = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
    tokio::spawn(capture(
        name,
        errors,
        vec![Arc::clone(&stderr), Arc::clone(&output)],
    ));
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut extra = Vec::new();
    let mut addr = None;
    for prefix in std::iter::once("listening on http://").chain(also.iter().copied()) {
        let read = tokio::time::timeout(PATIENCE, read_addr(&mut lines, prefix)).await;
        match read {
            Ok(Some(read)) if addr.is_none() => addr = Some(read),
            Ok(Some(read)) => extra.push(read),
            _ => {
                let _ = child.start_kill();
                panic!(
                    "{name} did not print `{prefix}ADDR` (a binary from another build?); stderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
        }
    }
    let addr = addr.expect("the main address");
    // Keep reading, so a chatty process never blocks on a full pipe.
    tokio::spawn(capture(name, lines, vec![Arc::clone(&output)]));
    Process {
        name,
        addr,
        extra,
        output,
        child,
    }
}

/// The bridge as a process on a free loopback port, with the agent `assistant` at
/// `agent_url` and then `flags`; `envs` and `also` as for [`spawn`].
pub async fn spawn_bridge(
    agent_url: &str,
    flags: &[&str],
    envs: &[(String, String)],
    also: &[&str],
) -> Process {
    let assistant = format!("assistant={agent_url}");
    let mut args = ["--listen", "127.0.0.1:0", "--agent", &assistant]
        .map(String::from)
        .to_vec();
    args.extend(flags.iter().map(|flag| flag.to_string()));
    spawn("bridge", &args, envs, also).await
}

/// The reference agent as a process on loopback, answering without pacing, with `envs`.
pub async fn spawn_agent_stub(envs: &[(String, String)]) -> Process {
    let args = ["--listen", "127.0.0.1:0", "--pace", "0s"].map(String::from);
    spawn("agent-stub", &args, envs, &[]).await
}

/// The address on the next line starting with `prefix`; `None` if the process exits first.
async fn read_addr(lines: &mut Lines<BufReader<ChildStdout>>, prefix: &str) -> Option<SocketAddr> {
    loop {
        let line = lines.next_line().await.ok()??;
        if let Some(addr) = line.trim().strip_prefix(prefix) {
            return Some(addr.parse().expect("a socket address"));
        }
        if std::env::var_os("TEST_LOG").is_some() {
            eprintln!("{line}");
        }
    }
}

impl Process {
    /// What the process wrote so far (its logs), after it started listening.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its resident memory (`VmRSS` in `/proc/PID/status`), in bytes.
    pub fn rss(&self) -> u64 {
        let pid = self.child.id().expect("the process is running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS in kB")
            * 1024
    }

    /// Sends SIGTERM (what Kubernetes sends): the process drains and exits by itself.
    pub fn terminate(&self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }

    /// SIGKILL: the process dies at once, as when its node is lost or it is OOM-killed.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Waits up to `limit` for the process to exit by itself (after [`Process::terminate`]);
    /// `None` if it is still running then.
    pub async fn exit_within(
        &mut self,
        limit: std::time::Duration,
    ) -> Option<std::process::ExitStatus> {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .ok()
            .map(|status| status.expect("waiting for the child"))
    }

    /// SIGTERM, then waits for the exit; returns whether it exited successfully.
    pub async fn stop(&mut self) -> bool {
        self.terminate();
        match tokio::time::timeout(PATIENCE, self.child.wait()).await {
            Ok(status) => status.is_ok_and(|s| s.success()),
            Err(_) => {
                let _ = self.child.start_kill();
                panic!("{} did not exit after SIGTERM", self.name);
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.terminate();
        }
    }
}
