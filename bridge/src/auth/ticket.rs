//! Stream tickets: EventSource cannot send an `Authorization` header, so an authenticated
//! `POST /v1/tickets` issues a short-lived ticket bound to the caller, one agent and one
//! thread, which a `GET` stream endpoint accepts as `?ticket=`.
//!
//! A ticket is `v1.<payload>.<mac>`: the payload is URL-safe base64 JSON, the MAC is
//! HMAC-SHA256 over it. It opens one stream: only a thread's stream endpoints, only for its
//! agent and thread (checked before it is used up), and only once across every replica that
//! shares the hub ([`super::ledger`]), so a ticket seen in a log or a browser history cannot
//! open a second stream.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{Identity, Origin, Via, ledger::Ledger};
use crate::{
    error::{ApiError, AuthFailure},
    secret::Secret,
};

/// What a ticket says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TicketClaims {
    pub sub: String,
    pub tenant: String,
    /// The issuing identity's origin: a ticket acts as the identity that asked for it.
    pub origin: Origin,
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
    used: Ledger,
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
            used: Ledger::Memory(Default::default()),
        }
    }

    /// Remembers used tickets in `ledger` (shared by replicas when the hub is).
    pub(super) fn with_ledger(mut self, ledger: Ledger) -> Self {
        self.used = ledger;
        self
    }

    /// A ticket for `identity` on `agent`/`thread`, and its expiry (Unix seconds).
    pub fn issue(&self, identity: &Identity, agent: &str, thread: &str) -> (String, u64) {
        let exp = now() + self.ttl.as_secs();
        let claims = TicketClaims {
            sub: identity.subject.clone(),
            tenant: identity.tenant.clone(),
            origin: identity.origin.clone(),
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

    /// Verifies a ticket presented on the stream endpoint of `stream` (agent, thread; `None`
    /// on any other route) and marks it used. A ticket refused for its route is not used up.
    pub async fn redeem(
        &self,
        ticket: &str,
        stream: Option<(&str, &str)>,
    ) -> Result<Identity, ApiError> {
        let refuse = |failure| ApiError::Unauthenticated(failure);
        let mut parts = ticket.split('.');
        let (Some("v1"), Some(payload), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(refuse(AuthFailure::TicketMalformed));
        };
        let mac = B64
            .decode(mac)
            .map_err(|_| refuse(AuthFailure::TicketMalformed))?;
        // `verify_slice` compares in constant time.
        self.mac(payload.as_bytes())
            .verify_slice(&mac)
            .map_err(|_| refuse(AuthFailure::TicketForged))?;
        let claims: TicketClaims = B64
            .decode(payload)
            .ok()
            .and_then(|p| serde_json::from_slice(&p).ok())
            .ok_or(refuse(AuthFailure::TicketMalformed))?;
        if claims.exp <= now() {
            return Err(refuse(AuthFailure::TicketExpired));
        }
        match stream {
            None => return Err(refuse(AuthFailure::TicketNotForThisRoute)),
            Some((agent, thread)) if agent != claims.agent || thread != claims.thread => {
                return Err(refuse(AuthFailure::TicketWrongStream));
            }
            Some(_) => {}
        }
        if !self.used.first_use(&claims.jti, claims.exp).await? {
            return Err(refuse(AuthFailure::TicketReused));
        }
        Ok(Identity {
            subject: claims.sub,
            tenant: claims.tenant,
            scopes: claims.scopes,
            origin: claims.origin,
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
            origin: Origin::ApiKey,
            via: Via::Credential,
        }
    }

    #[tokio::test]
    async fn tickets_are_single_use_and_signed() {
        let tickets = Tickets::new(None, Duration::from_secs(60));
        let (ticket, _) = tickets.issue(&identity(), "a", "t1");
        let stream = Some(("a", "t1"));
        assert!(tickets.redeem(&ticket, None).await.is_err(), "not a stream");
        let id = tickets.redeem(&ticket, stream).await.unwrap();
        assert_eq!(
            id.via,
            Via::Ticket {
                agent: "a".into(),
                thread: "t1".into()
            }
        );
        assert_eq!(id.origin, Origin::ApiKey);
        assert!(tickets.redeem(&ticket, stream).await.is_err(), "reused");

        let (ticket, _) = tickets.issue(&identity(), "a", "t1");
        let other = Tickets::new(None, Duration::from_secs(60));
        assert!(other.redeem(&ticket, stream).await.is_err(), "another key");
        for bad in ["", "v1", "v1.a.b", "v1.%%.b.c", "v2.a.b"] {
            assert!(tickets.redeem(bad, stream).await.is_err(), "{bad}");
        }
    }
}
