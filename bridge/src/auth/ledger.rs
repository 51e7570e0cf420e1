//! Which stream tickets were used: a ticket opens one stream in the whole system. With the
//! memory hub the system is this process; with a Redis hub every replica asks the same Redis,
//! where a ticket's id is claimed by an atomic `SET NX` that expires with the ticket.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use redis::{
    aio::{ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClient,
    cluster_async::ClusterConnection,
};
use tokio::sync::OnceCell;

use crate::{config::HubUrl, error::ApiError};

/// Where used tickets are remembered until they expire.
pub(super) enum Ledger {
    /// In this process (the memory hub: one process is the whole system).
    Memory(Mutex<HashMap<String, u64>>),
    /// In the hub's Redis, shared by every replica.
    Redis(RedisLedger),
}

pub(super) struct RedisLedger {
    target: Target,
    /// Connected on first use (so the bridge starts while Redis is down).
    con: OnceCell<Conn>,
}

enum Target {
    Single(redis::Client),
    Cluster(Box<ClusterClient>),
}

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Ledger {
    /// The ledger that matches the hub: shared exactly when the hub is.
    pub(super) fn for_hub(hub: &HubUrl) -> Result<Self, String> {
        let url = match hub {
            HubUrl::Memory => return Ok(Self::Memory(Mutex::default())),
            HubUrl::Redis(url) => url,
        };
        let target = match url.strip_prefix("redis+cluster://") {
            Some(nodes) => Target::Cluster(Box::new(
                ClusterClient::builder(nodes.split(',').map(|n| format!("redis://{}", n.trim())))
                    .connection_timeout(Duration::from_secs(2))
                    .response_timeout(Duration::from_secs(2))
                    .build()
                    .map_err(|e| format!("--hub: invalid Redis Cluster URL: {e}"))?,
            )),
            None => Target::Single(
                redis::Client::open(url.as_str())
                    .map_err(|e| format!("--hub: invalid Redis URL: {e}"))?,
            ),
        };
        Ok(Self::Redis(RedisLedger {
            target,
            con: OnceCell::new(),
        }))
    }

    /// Records the use of ticket `jti`, valid until `exp` (Unix seconds). True the first
    /// time, false ever after (until it expires, when it is refused as expired anyway).
    pub(super) async fn first_use(&self, jti: &str, exp: u64) -> Result<bool, ApiError> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        match self {
            Self::Memory(used) => {
                let now = u64::try_from(now_ms / 1000).unwrap_or(u64::MAX);
                let mut used = used.lock().unwrap_or_else(|e| e.into_inner());
                used.retain(|_, until| *until > now);
                Ok(used.insert(jti.to_owned(), exp).is_none())
            }
            Self::Redis(ledger) => {
                let remaining = u128::from(exp) * 1000 - now_ms.min(u128::from(exp) * 1000);
                let ttl_ms = u64::try_from(remaining.max(1)).unwrap_or(u64::MAX);
                let mut cmd = redis::cmd("SET");
                cmd.arg(format!("ab:ticket:{jti}"))
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms);
                let set: Option<String> = match ledger.con().await? {
                    Conn::Single(mut con) => cmd.query_async(&mut con).await,
                    Conn::Cluster(mut con) => cmd.query_async(&mut con).await,
                }
                .map_err(unavailable)?;
                Ok(set.is_some())
            }
        }
    }
}

impl RedisLedger {
    async fn con(&self) -> Result<Conn, ApiError> {
        self.con
            .get_or_try_init(|| async {
                match &self.target {
                    Target::Single(client) => {
                        let config = ConnectionManagerConfig::new()
                            .set_connection_timeout(Some(Duration::from_secs(2)))
                            .set_response_timeout(Some(Duration::from_secs(2)))
                            .set_number_of_retries(2);
                        client
                            .get_connection_manager_with_config(config)
                            .await
                            .map(Conn::Single)
                    }
                    Target::Cluster(client) => {
                        client.get_async_connection().await.map(Conn::Cluster)
                    }
                }
            })
            .await
            .cloned()
            .map_err(unavailable)
    }
}

/// Redis is the hub's: when it is down, so are the threads, and the client is told so.
fn unavailable(e: redis::RedisError) -> ApiError {
    ApiError::HubUnavailable(format!("ticket ledger: {e}"))
}
