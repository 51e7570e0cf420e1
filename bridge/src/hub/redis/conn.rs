//! Connections to the hub's Redis, one Redis or a Cluster: the hub's and the ticket
//! ledger's.

use std::time::Duration;

use redis::{
    Cmd, RedisFuture, RedisResult, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection},
    cluster::ClusterClient,
    cluster_async::ClusterConnection,
    cluster_routing::{RoutingInfo, SingleNodeRoutingInfo},
};
use tokio::sync::OnceCell;

/// How long a command may take to connect, and to answer.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Where Redis is.
pub(super) enum Target {
    Single(redis::Client),
    Cluster {
        client: Box<ClusterClient>,
        /// `user:password@` from the URL (or empty), for connections to one node.
        credentials: String,
    },
}

/// A node of a Redis Cluster.
#[derive(Debug, Clone)]
pub(super) struct Node {
    host: String,
    port: u16,
}

impl Node {
    /// Where a `MOVED` error says its slot is served now.
    pub(super) fn moved_to(e: &redis::RedisError) -> Option<Self> {
        if e.kind() != redis::ErrorKind::Server(redis::ServerErrorKind::Moved) {
            return None;
        }
        let (host, port) = e.redirect_node()?.0.rsplit_once(':')?;
        Some(Self {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: port.parse().ok()?,
        })
    }
}

impl Target {
    /// `redis://host:port[/db]` for one Redis, `redis+cluster://host:port,host:port` for a
    /// cluster (any reachable nodes; the rest are discovered).
    fn parse(url: &str) -> Result<Self, String> {
        let Some(nodes) = url.strip_prefix("redis+cluster://") else {
            return redis::Client::open(url)
                .map(Self::Single)
                .map_err(|e| format!("--hub: invalid Redis URL: {e}"));
        };
        let credentials = nodes
            .split(',')
            .next()
            .and_then(|first| first.rsplit_once('@'))
            .map(|(userinfo, _)| format!("{userinfo}@"))
            .unwrap_or_default();
        let client = ClusterClient::builder(
            nodes
                .split(',')
                .map(|n| format!("redis://{}", n.trim()))
                .collect::<Vec<_>>(),
        )
        .response_timeout(TIMEOUT)
        .connection_timeout(TIMEOUT)
        .build()
        .map_err(|e| format!("--hub: invalid Redis Cluster URL: {e}"))?;
        Ok(Self::Cluster {
            client: Box::new(client),
            credentials,
        })
    }

    pub(super) fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster { .. })
    }

    /// A connection of its own, for blocking reads that may last `timeout`: to the one
    /// Redis, or to `node` of the cluster.
    pub(super) async fn blocking(
        &self,
        node: Option<&Node>,
        timeout: Duration,
    ) -> RedisResult<Conn> {
        let config = redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(timeout))
            .set_connection_timeout(Some(TIMEOUT));
        let client = match (self, node) {
            (Self::Cluster { credentials, .. }, Some(node)) => {
                let host = if node.host.contains(':') {
                    format!("[{}]", node.host)
                } else {
                    node.host.clone()
                };
                &redis::Client::open(format!("redis://{credentials}{host}:{}", node.port))?
            }
            (Self::Single(client), _) => client,
            (Self::Cluster { .. }, None) => {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::Client,
                    "a blocking read on a cluster needs its node",
                )));
            }
        };
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map(Conn::Multiplexed)
    }
}

/// One connection of either kind, usable with any Redis command.
#[derive(Clone)]
pub(crate) enum Conn {
    Manager(ConnectionManager),
    Multiplexed(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Manager(c) => c.req_packed_command(cmd),
            Conn::Multiplexed(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Manager(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Multiplexed(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Manager(c) => c.get_db(),
            Conn::Multiplexed(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

impl Conn {
    /// Sends `cmd` to `node` of a cluster, or (no node) where it would go anyway.
    pub(super) async fn on_node(&mut self, cmd: Cmd, node: Option<&Node>) -> RedisResult<Value> {
        match (self, node) {
            (Conn::Cluster(c), Some(node)) => {
                let at = SingleNodeRoutingInfo::ByAddress {
                    host: node.host.clone(),
                    port: node.port,
                };
                c.route_command(cmd, RoutingInfo::SingleNode(at)).await
            }
            (con, _) => cmd.query_async(con).await,
        }
    }

    /// The master node serving `slot` (`CLUSTER SLOTS`).
    pub(super) async fn master_of(&mut self, slot: u16) -> RedisResult<Node> {
        let ranges: Vec<Vec<Value>> = redis::cmd("CLUSTER").arg("SLOTS").query_async(self).await?;
        let int = |v: Option<&Value>| v.and_then(|v| redis::from_redis_value_ref::<u16>(v).ok());
        ranges
            .iter()
            .find(|r| matches!((int(r.first()), int(r.get(1))), (Some(a), Some(b)) if (a..=b).contains(&slot)))
            .and_then(|r| match r.get(2) {
                Some(Value::Array(master)) => Some(Node {
                    host: master
                        .first()
                        .and_then(|h| redis::from_redis_value_ref::<String>(h).ok())
                        .filter(|h| !h.is_empty() && h != "?")?,
                    port: int(master.get(1))?,
                }),
                _ => None,
            })
            .ok_or_else(|| {
                redis::RedisError::from((
                    redis::ErrorKind::Client,
                    "no reachable master serves the slot",
                    format!("slot {slot}"),
                ))
            })
    }
}

/// Commands on one shared connection, made on first use (so the bridge starts while Redis
/// is down) and reconnecting by itself afterwards.
pub(crate) struct Commands {
    target: Target,
    con: OnceCell<Conn>,
}

impl Commands {
    /// For the `--hub` URL (`redis://...` or `redis+cluster://...`).
    pub(crate) fn new(url: &str) -> Result<Self, String> {
        Ok(Self {
            target: Target::parse(url)?,
            con: OnceCell::new(),
        })
    }

    pub(super) fn target(&self) -> &Target {
        &self.target
    }

    pub(crate) async fn con(&self) -> RedisResult<Conn> {
        self.con
            .get_or_try_init(|| async {
                match &self.target {
                    Target::Single(client) => {
                        let config = ConnectionManagerConfig::new()
                            .set_connection_timeout(Some(TIMEOUT))
                            .set_response_timeout(Some(TIMEOUT))
                            .set_number_of_retries(2);
                        client
                            .get_connection_manager_with_config(config)
                            .await
                            .map(Conn::Manager)
                    }
                    Target::Cluster { client, .. } => {
                        client.get_async_connection().await.map(Conn::Cluster)
                    }
                }
            })
            .await
            .cloned()
    }
}
