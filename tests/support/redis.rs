//! Real `redis-server` processes on free loopback ports, one per test (or a small cluster).
//! A missing `redis-server` fails the test: the threads suite is not optional.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

fn free_port() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // A cluster node also needs port + 10000 for its bus.
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

fn redis_server() -> &'static str {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "redis-server is not installed: run scripts/test.sh (it installs it) or apt-get install redis-server"
    );
    "redis-server"
}

pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    cluster: bool,
}

impl RedisServer {
    pub async fn start() -> Self {
        Self::start_on(free_port(), false).await
    }

    async fn start_on(port: u16, cluster: bool) -> Self {
        let dir =
            std::env::temp_dir().join(format!("agent-bridge-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Self {
            port,
            dir,
            child: None,
            cluster,
        };
        server.spawn();
        server.wait_ready().await;
        server
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(redis_server());
        cmd.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(&self.dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        if self.cluster {
            cmd.args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
            ]);
        }
        self.child = Some(cmd.spawn().expect("start redis-server"));
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Waits until the server answers PING (bounded).
    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let client = redis::Client::open(self.url()).unwrap();
        loop {
            if let Ok(mut con) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut con)
                    .await
                    .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on {} did not come up",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the server (its data is gone: it keeps nothing on disk).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn();
        self.wait_ready().await;
    }

    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        let client = redis::Client::open(self.url()).unwrap();
        let mut con = client.get_multiplexed_async_connection().await.unwrap();
        cmd.query_async(&mut con).await.unwrap()
    }
}

impl RedisServer {
    /// Clients connected now (`CLIENT LIST`), not counting the connection that asks.
    pub async fn clients(&self) -> usize {
        let list: String = self.query(redis::cmd("CLIENT").arg("LIST")).await;
        list.lines().count() - 1
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of three masters on loopback, slots spread by `redis-cli --cluster create`.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub async fn start() -> Self {
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(RedisServer::start_on(free_port(), true).await);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli (package redis-tools) is needed for the cluster test");
        assert!(status.success(), "redis-cli --cluster create failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &nodes {
            loop {
                let info: String = node.query(redis::cmd("CLUSTER").arg("INFO")).await;
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "the cluster did not converge");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Self { nodes }
    }

    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }
}

impl RedisCluster {
    /// Moves `slot` and its keys (there must be some) to another node, as resharding does.
    pub async fn move_slot(&self, slot: u16) {
        let mut owner = None;
        for (i, node) in self.nodes.iter().enumerate() {
            let keys: i64 = node
                .query(redis::cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(slot))
                .await;
            if keys > 0 {
                owner = Some(i);
            }
        }
        let owner = owner.expect("a node holds the slot's keys");
        let (from, to) = (
            &self.nodes[owner],
            &self.nodes[(owner + 1) % self.nodes.len()],
        );
        let to_id: String = to.query(redis::cmd("CLUSTER").arg("MYID")).await;
        let from_id: String = from.query(redis::cmd("CLUSTER").arg("MYID")).await;
        let setslot = |state: &str, node_id: &str| {
            let mut cmd = redis::cmd("CLUSTER");
            cmd.arg("SETSLOT").arg(slot).arg(state).arg(node_id);
            cmd
        };
        let () = to.query(&setslot("IMPORTING", &from_id)).await;
        let () = from.query(&setslot("MIGRATING", &to_id)).await;
        loop {
            let keys: Vec<String> = from
                .query(
                    redis::cmd("CLUSTER")
                        .arg("GETKEYSINSLOT")
                        .arg(slot)
                        .arg(100),
                )
                .await;
            if keys.is_empty() {
                break;
            }
            let mut migrate = redis::cmd("MIGRATE");
            migrate
                .arg("127.0.0.1")
                .arg(to.port)
                .arg("")
                .arg(0)
                .arg(5000);
            let () = from.query(migrate.arg("KEYS").arg(&keys)).await;
        }
        // The new owner first, then the old one, then the rest.
        for node in [to, from].into_iter().chain(&self.nodes) {
            let () = node.query(&setslot("NODE", &to_id)).await;
        }
    }
}
