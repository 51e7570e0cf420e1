//! Stream tickets: EventSource cannot send an `Authorization` header, so an authenticated
//! `POST /v1/tickets` issues a short-lived ticket bound to the caller, one agent and one
//! thread, which a `GET` stream endpoint accepts as `?ticket=`.
//!
//! A ticket is `v1.<payload>.<mac>`: the payload is URL-safe base64 JSON, the MAC is
//! HMAC-SHA256 over it. It is single-use: its id is remembered until it expires, so a ticket
//! seen in a log or a browser history cannot open a second stream.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{Identity, Via};
use crate::{error::ApiError, secret::Secret};

/// What a ticket says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TicketClaims {
    pub sub: String,
    pub tenant: String,
    pub scopes: Vec<String>,
    pub agent: String,
    pub thread: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Unique id, remembered once redeemed.
    pub jti: String,
}

pub struct Tickets {
    key: Secret,
    ttl: Duration,
    redeemed: Mutex<HashMap<String, u64>>,
}

impl Tickets {
    /// Tickets signed with `key`, or with a random per-process key.
    pub fn new(key: Option<Secret>, ttl: Duration) -> Self {
        let key = key.unwrap_or_else(|| {
            Secret::new(format!("{}{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4()))
        });
        Self {
            key,
            ttl,
            redeemed: Mutex::default(),
        }
    }

    /// A ticket for `identity` on `agent`/`thread`, and its expiry (Unix seconds).
    pub fn issue(&self, identity: &Identity, agent: &str, thread: &str) -> (String, u64) {
        let exp = now() + self.ttl.as_secs();
        let claims = TicketClaims {
            sub: identity.subject.clone(),
            tenant: identity.tenant.clone(),
            scopes: identity.scopes.clone(),
            agent: agent.to_owned(),
            thread: thread.to_owned(),
            exp,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        (self.mint(&claims), exp)
    }

    /// Signs arbitrary claims (tests use it to make expired tickets).
    pub fn mint(&self, claims: &TicketClaims) -> String {
        let payload = B64.encode(serde_json::to_vec(claims).unwrap_or_default());
        let mac = B64.encode(self.mac(payload.as_bytes()).finalize().into_bytes());
        format!("v1.{payload}.{mac}")
    }

    /// Verifies a ticket and marks it used.
    pub fn redeem(&self, ticket: &str) -> Result<Identity, ApiError> {
        let refuse = |detail: &str| ApiError::TicketRefused(detail.to_owned());
        let mut parts = ticket.split('.');
        let (Some("v1"), Some(payload), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(refuse("the ticket is malformed"));
        };
        let mac = B64
            .decode(mac)
            .map_err(|_| refuse("the ticket is malformed"))?;
        // `verify_slice` compares in constant time.
        self.mac(payload.as_bytes())
            .verify_slice(&mac)
            .map_err(|_| refuse("the ticket's signature is invalid"))?;
        let claims: TicketClaims = B64
            .decode(payload)
            .ok()
            .and_then(|p| serde_json::from_slice(&p).ok())
            .ok_or_else(|| refuse("the ticket is malformed"))?;
        let now = now();
        if claims.exp <= now {
            return Err(refuse("the ticket has expired; request a new one"));
        }
        {
            let mut redeemed = self.redeemed.lock().unwrap_or_else(|e| e.into_inner());
            redeemed.retain(|_, exp| *exp > now);
            if redeemed.insert(claims.jti.clone(), claims.exp).is_some() {
                return Err(refuse("the ticket was already used; request a new one"));
            }
        }
        Ok(Identity {
            subject: claims.sub,
            tenant: claims.tenant,
            scopes: claims.scopes,
            via: Via::Ticket {
                agent: claims.agent,
                thread: claims.thread,
            },
        })
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.expose().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(payload);
        mac
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            subject: "alice".into(),
            tenant: "acme".into(),
            scopes: vec!["agent:*".into()],
            via: Via::Jwt,
        }
    }

    #[test]
    fn tickets_are_single_use_and_signed() {
        let tickets = Tickets::new(None, Duration::from_secs(60));
        let (ticket, _) = tickets.issue(&identity(), "a", "t1");
        let id = tickets.redeem(&ticket).unwrap();
        assert_eq!(
            id.via,
            Via::Ticket {
                agent: "a".into(),
                thread: "t1".into()
            }
        );
        assert!(tickets.redeem(&ticket).is_err(), "reused");

        let (ticket, _) = tickets.issue(&identity(), "a", "t1");
        let other = Tickets::new(None, Duration::from_secs(60));
        assert!(other.redeem(&ticket).is_err(), "another key");
        for bad in ["", "v1", "v1.a.b", "v1.%%.b.c", "v2.a.b"] {
            assert!(tickets.redeem(bad).is_err(), "{bad}");
        }
    }
}
