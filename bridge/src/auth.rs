//! Who is calling: credentials in, an [`Identity`] out, before any handler runs.
//!
//! Accepted credentials, in the order they are looked for:
//! - `?ticket=` — a short-lived stream ticket ([`ticket`]), on `GET` only (EventSource cannot
//!   send headers); any other long-lived credential in a query string is refused;
//! - `Authorization: Bearer <JWT>` — HS256 with a shared secret, RS256/ES256 from a JWKS
//!   ([`jwt`], [`jwks`]);
//! - `X-API-Key` — service keys from a file, kept hashed ([`apikey`]);
//! - the auth cookie carrying the same JWT (same-site EventSource);
//! - nothing: the `anonymous` identity, only with `--allow-anonymous`.
//!
//! Credentials never reach a log: they are held as [`crate::secret::Secret`] or not kept,
//! and the trace layer records paths without query strings.

pub mod apikey;
pub mod jwks;
pub mod jwt;
pub mod ticket;

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, Method, header},
    middleware::Next,
    response::Response,
};

use crate::{
    config::{AuthSettings, IpNet},
    error::ApiError,
    ratelimit::RateLimits,
    secret::Secret,
};

/// The scope that allows calling every agent; `agent:NAME` allows one.
pub const ALL_AGENTS_SCOPE: &str = "agent:*";

/// Query parameters that look like long-lived credentials; refused outright so they do not
/// end up in proxy logs and browser history.
const CREDENTIAL_QUERY_PARAMS: [&str; 5] = ["access_token", "token", "api_key", "apikey", "jwt"];

/// The caller of a request, as the handlers and the agent see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    pub tenant: String,
    pub scopes: Vec<String>,
    pub via: Via,
}

/// How the identity was established; it decides the rate-limit key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    Jwt,
    ApiKey {
        name: String,
    },
    /// A stream ticket, valid only for this agent and thread.
    Ticket {
        agent: String,
        thread: String,
    },
    Anonymous {
        ip: IpAddr,
    },
}

impl Identity {
    /// True when the scopes allow calling `agent`.
    pub fn may_call(&self, agent: &str) -> bool {
        self.scopes.iter().any(|s| {
            s == ALL_AGENTS_SCOPE || s.strip_prefix("agent:").is_some_and(|name| name == agent)
        })
    }

    /// The key rate limits and stream caps count against: the API key, the subject (within
    /// its tenant), or the client IP when anonymous.
    pub fn rate_key(&self) -> String {
        match &self.via {
            Via::ApiKey { name } => format!("key:{name}"),
            Via::Jwt | Via::Ticket { .. } => format!("sub:{}/{}", self.tenant, self.subject),
            Via::Anonymous { ip } => format!("ip:{ip}"),
        }
    }

    /// Refuses with 403 unless the identity may call `agent` (and, for a ticket, unless the
    /// ticket was issued for this agent and thread).
    pub fn authorize(&self, agent: &str, thread: Option<&str>) -> Result<(), ApiError> {
        if let Via::Ticket {
            agent: bound_agent,
            thread: bound_thread,
        } = &self.via
            && (bound_agent != agent || Some(bound_thread.as_str()) != thread)
        {
            return Err(ApiError::TicketRefused(
                "this ticket was issued for another agent or thread".into(),
            ));
        }
        if self.may_call(agent) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "your credentials do not allow calling agent {agent:?} (scope `agent:{agent}` or `agent:*` needed)"
            )))
        }
    }
}

/// Everything needed to authenticate a request.
pub struct Auth {
    allow_anonymous: bool,
    jwt: Option<jwt::JwtVerifier>,
    api_keys: Option<apikey::ApiKeys>,
    pub tickets: ticket::Tickets,
    cookie: String,
    trusted_proxies: Vec<IpNet>,
}

impl Auth {
    pub fn from_config(config: &AuthSettings) -> Result<Self, String> {
        let hs_secret = config
            .jwt_secret_file
            .as_deref()
            .map(|p| Secret::from_file(p, "--jwt-secret-file/BRIDGE_JWT_SECRET_FILE"))
            .transpose()?;
        let jwks = config
            .jwks_url
            .as_ref()
            .map(|url| jwks::Jwks::new(url.clone(), config.jwks_min_refresh))
            .transpose()?;
        let jwt = (hs_secret.is_some() || jwks.is_some()).then(|| {
            jwt::JwtVerifier::new(jwt::JwtSettings {
                hs_secret,
                jwks,
                issuers: config.jwt_issuers.clone(),
                audiences: config.jwt_audiences.clone(),
                leeway: config.jwt_leeway,
                tenant_claim: config.jwt_tenant_claim.clone(),
            })
        });
        let api_keys = config
            .api_keys_file
            .as_deref()
            .map(apikey::ApiKeys::from_file)
            .transpose()?;
        let ticket_key = config
            .ticket_secret_file
            .as_deref()
            .map(|p| Secret::from_file(p, "--ticket-secret-file/BRIDGE_TICKET_SECRET_FILE"))
            .transpose()?;
        Ok(Self {
            allow_anonymous: config.allow_anonymous,
            jwt,
            api_keys,
            tickets: ticket::Tickets::new(ticket_key, config.ticket_ttl),
            cookie: config.auth_cookie.clone(),
            trusted_proxies: config.trusted_proxies.clone(),
        })
    }

    /// Establishes the identity of one request.
    pub async fn authenticate(
        &self,
        method: &Method,
        query: Option<&str>,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> Result<Identity, ApiError> {
        let mut ticket = None;
        for (key, value) in query_pairs(query.unwrap_or("")) {
            if key == "ticket" {
                ticket = Some(value);
            } else if CREDENTIAL_QUERY_PARAMS.contains(&key.as_str()) {
                return Err(ApiError::Unauthenticated(format!(
                    "credentials are not accepted in the query string (`{key}`): send \
                     `Authorization: Bearer`, or use a stream ticket on GET"
                )));
            }
        }
        if let Some(ticket) = ticket {
            if method != Method::GET {
                return Err(ApiError::TicketRefused(
                    "stream tickets are accepted only on GET stream endpoints; send \
                     `Authorization: Bearer` instead"
                        .into(),
                ));
            }
            return self.tickets.redeem(&ticket);
        }

        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let value = value.to_str().unwrap_or("");
            let token = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .ok_or_else(|| {
                    ApiError::Unauthenticated(
                        "the Authorization header must be `Bearer <token>`".into(),
                    )
                })?;
            return self.verify_jwt(token.trim()).await;
        }
        if let Some(value) = headers.get("x-api-key") {
            let keys = self.api_keys.as_ref().ok_or_else(|| {
                ApiError::Unauthenticated("API keys are not enabled on this bridge".into())
            })?;
            let name = keys
                .verify(value.as_bytes())
                .ok_or_else(|| ApiError::Unauthenticated("unknown API key".into()))?;
            return Ok(Identity {
                subject: name.to_owned(),
                tenant: name.to_owned(),
                scopes: vec![ALL_AGENTS_SCOPE.into()],
                via: Via::ApiKey {
                    name: name.to_owned(),
                },
            });
        }
        if let Some(token) = cookie(headers, &self.cookie) {
            return self.verify_jwt(&token).await;
        }
        if self.allow_anonymous {
            let ip = self.client_ip(peer, headers);
            return Ok(Identity {
                subject: "anonymous".into(),
                tenant: String::new(),
                scopes: vec![ALL_AGENTS_SCOPE.into()],
                via: Via::Anonymous { ip },
            });
        }
        Err(ApiError::Unauthenticated(
            "credentials required: send `Authorization: Bearer <JWT>` or `X-API-Key`".into(),
        ))
    }

    async fn verify_jwt(&self, token: &str) -> Result<Identity, ApiError> {
        let verifier = self.jwt.as_ref().ok_or_else(|| {
            ApiError::Unauthenticated("bearer tokens are not enabled on this bridge".into())
        })?;
        verifier.verify(token).await
    }

    /// The client's address: the socket peer, or, when the peer is a trusted proxy, the
    /// right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> IpAddr {
        let peer = peer.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let trusted = |ip: IpAddr| self.trusted_proxies.iter().any(|n| n.contains(ip));
        if !trusted(peer) {
            return peer;
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !trusted(*ip))
            .unwrap_or(peer)
    }
}

/// The auth middleware: puts the [`Identity`] into the request's extensions, or refuses.
/// Refusals count against the client IP's failure budget.
pub async fn middleware(
    State((auth, limits)): State<(Arc<Auth>, Arc<RateLimits>)>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let identity = match auth
        .authenticate(
            request.method(),
            request.uri().query(),
            request.headers(),
            peer,
        )
        .await
    {
        Ok(identity) => identity,
        Err(ApiError::AuthUnavailable) => return Err(ApiError::AuthUnavailable),
        Err(refusal) => {
            let ip = auth.client_ip(peer, request.headers());
            return Err(limits.auth_failed(ip, refusal));
        }
    };
    request.extensions_mut().insert(identity);
    Ok(next.run(request).await)
}

/// Decoded `key=value` pairs of a query string.
fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k), percent_decode(v))
    })
}

/// Minimal `application/x-www-form-urlencoded` decoding (tickets are URL-safe base64, so
/// this only matters for hostile input, which must not panic).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// The value of cookie `name`, if the request carries it.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_decide_agents() {
        let id = |scopes: &[&str]| Identity {
            subject: "s".into(),
            tenant: "t".into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            via: Via::Jwt,
        };
        assert!(id(&["agent:*"]).may_call("a"));
        assert!(id(&["read", "agent:a"]).may_call("a"));
        assert!(!id(&["agent:b"]).may_call("a"));
        assert!(!id(&[]).may_call("a"));
    }

    #[test]
    fn query_and_cookies_parse_without_panicking() {
        let pairs: Vec<_> = query_pairs("a=1&ticket=x%2Fy&bad=%zz&end=%").collect();
        assert_eq!(pairs[1], ("ticket".into(), "x/y".into()));
        assert_eq!(pairs[2].1, "%zz");
        assert_eq!(pairs[3].1, "%");
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; bridge_token=abc".parse().unwrap());
        assert_eq!(cookie(&h, "bridge_token").as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "nope"), None);
    }
}
