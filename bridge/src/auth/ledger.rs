//! Which stream tickets were used: a ticket opens one stream in the whole system. With the
//! memory hub the system is this process; with a Redis hub every replica asks the same Redis,
//! where a ticket's id is claimed by an atomic `SET NX` that expires with the ticket.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{SystemTime, UNIX_EPOCH},
};

use crate::{config::HubUrl, error::ApiError, hub::redis::Commands};

/// Where used tickets are remembered until they expire.
pub(super) enum Ledger {
    /// In this process (the memory hub: one process is the whole system).
    Memory(Mutex<HashMap<String, u64>>),
    /// In the hub's Redis, shared by every replica. A ticket's key is its own (a single-key
    /// `SET`), so it works on a Redis Cluster too.
    Redis(Box<Commands>),
}

impl Ledger {
    /// The ledger that matches the hub: shared exactly when the hub is.
    pub(super) fn for_hub(hub: &HubUrl) -> Result<Self, String> {
        match hub {
            HubUrl::Memory => Ok(Self::Memory(Mutex::default())),
            HubUrl::Redis(url) => Commands::new(url).map(|c| Self::Redis(Box::new(c))),
        }
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
                let mut con = ledger.con().await.map_err(unavailable)?;
                let set: Option<String> = cmd.query_async(&mut con).await.map_err(unavailable)?;
                Ok(set.is_some())
            }
        }
    }
}

/// Redis is the hub's: when it is down, so are the threads, and the client is told so.
fn unavailable(e: redis::RedisError) -> ApiError {
    ApiError::HubUnavailable(format!("ticket ledger: {e}"))
}
