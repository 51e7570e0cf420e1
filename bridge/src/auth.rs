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
//! An identity carries its [`Origin`]: API key, JWT of one issuer, or anonymous. Thread logs
//! and rate limits are keyed by it, and agents receive it, so a JWT with `sub=billing` never
//! reads the threads of the API key named `billing`, nor a token of one issuer those of
//! another. (A JWT in the cookie is the same credential as in `Authorization`: same identity.)
//!
//! Credentials never reach a log: they are held as [`crate::secret::Secret`] or not kept,
//! and the trace layer records paths without query strings.

pub(crate) mod apikey;
pub(crate) mod jwks;
pub(crate) mod jwt;
mod ledger;
pub(crate) mod ticket;

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use axum::{
    extract::{ConnectInfo, FromRequestParts, MatchedPath, RawPathParams, Request, State},
    http::{HeaderMap, Method, header, request::Parts},
    middleware::Next,
    response::Response,
};
use serde::{Deserialize, Serialize};

use crate::{
    config::{AuthSettings, HubUrl, IpNet},
    error::{ApiError, AuthFailure},
    ratelimit::RateLimits,
    secret::Secret,
};

/// The scope that allows calling every agent; `agent:NAME` allows one.
pub(crate) const ALL_AGENTS_SCOPE: &str = "agent:*";

/// Query parameters that look like long-lived credentials; refused outright so they do not
/// end up in proxy logs and browser history.
const CREDENTIAL_QUERY_PARAMS: [&str; 5] = ["access_token", "token", "api_key", "apikey", "jwt"];

/// The routes a stream ticket opens (as the router matched them), for the agent and thread
/// it was issued for. On any other route a ticket is refused before it is used up.
const TICKET_ROUTES: [&str; 3] = [
    "/v1/agents/{agent}/threads/{thread}/stream",
    "/v1/agents/{agent}/threads/{thread}/events",
    "/v1/agents/{agent}/threads/{thread}/ws",
];

/// The caller of a request, as the handlers and the agent see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// As the credential names it: the JWT's `sub`, the API key's name, `anonymous`.
    pub subject: String,
    pub tenant: String,
    pub scopes: Vec<String>,
    /// Who vouches for `subject` and `tenant`; part of every key derived from them.
    pub origin: Origin,
    pub via: Via,
}

/// The namespace of an identity: what kind of credential established it, and for JWTs
/// which issuer. Two identities of different origins are different callers, whatever their
/// subject and tenant say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// A key from `--api-keys-file`; subject and tenant are the key's name.
    ApiKey,
    /// A JWT (bearer or cookie); `issuer` is its `iss`, empty when it has none.
    Jwt { issuer: String },
    /// No credential (`--allow-anonymous`): one shared owner, rate limited per client IP.
    Anonymous { ip: IpAddr },
}

impl Origin {
    /// The `x-identity-kind` agents receive.
    pub fn kind(&self) -> &'static str {
        match self {
            Origin::ApiKey => "api-key",
            Origin::Jwt { .. } => "jwt",
            Origin::Anonymous { .. } => "anonymous",
        }
    }

    fn issuer(&self) -> &str {
        match self {
            Origin::Jwt { issuer } => issuer,
            _ => "",
        }
    }
}

/// How the identity reached this request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// Its own credential.
    Credential,
    /// The auth cookie: a credential the browser attaches by itself, whichever page asked.
    Cookie,
    /// A stream ticket, valid only for this agent and thread.
    Ticket { agent: String, thread: String },
}

impl Identity {
    /// True when the scopes allow calling `agent`.
    pub fn may_call(&self, agent: &str) -> bool {
        self.scopes.iter().any(|s| {
            s == ALL_AGENTS_SCOPE || s.strip_prefix("agent:").is_some_and(|name| name == agent)
        })
    }

    /// The tenant within the identity's origin (`KIND:ISSUER:TENANT`, the issuer escaped so
    /// no choice of claims makes two origins meet): threads are keyed by it.
    pub fn qualified_tenant(&self) -> String {
        format!(
            "{}:{}:{}",
            self.origin.kind(),
            escape(self.origin.issuer()),
            self.tenant
        )
    }

    /// The key rate limits and stream caps count against: the identity within its origin,
    /// or the client IP when anonymous.
    pub fn rate_key(&self) -> String {
        match &self.origin {
            Origin::Anonymous { ip } => format!("ip:{ip}"),
            origin => format!(
                "{}:{}:{}:{}",
                origin.kind(),
                escape(origin.issuer()),
                escape(&self.tenant),
                self.subject
            ),
        }
    }

    /// The gRPC metadata that tells an agent who is calling: `x-subject`, `x-tenant`,
    /// `x-identity-kind` (`jwt`, `api-key`, `anonymous`) and, for JWTs with an `iss`,
    /// `x-issuer`. An agent keeps per-user state under all four.
    pub fn agent_metadata(&self) -> Vec<(&'static str, &str)> {
        let mut metadata = vec![
            ("x-subject", self.subject.as_str()),
            ("x-tenant", self.tenant.as_str()),
            ("x-identity-kind", self.origin.kind()),
        ];
        if !self.origin.issuer().is_empty() {
            metadata.push(("x-issuer", self.origin.issuer()));
        }
        metadata
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
            return Err(ApiError::Unauthenticated(AuthFailure::TicketWrongStream));
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
pub(crate) struct Auth {
    allow_anonymous: bool,
    jwt: Option<jwt::JwtVerifier>,
    api_keys: Option<apikey::ApiKeys>,
    pub tickets: ticket::Tickets,
    cookie: String,
    trusted_proxies: Vec<IpNet>,
}

impl Auth {
    /// `hub` decides where used tickets are remembered: with a shared hub, every replica
    /// sees every redemption.
    pub(crate) fn from_config(config: &AuthSettings, hub: &HubUrl) -> Result<Self, String> {
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
            tickets: ticket::Tickets::new(ticket_key, config.ticket_ttl)
                .with_ledger(ledger::Ledger::for_hub(hub)?),
            cookie: config.auth_cookie.clone(),
            trusted_proxies: config.trusted_proxies.clone(),
        })
    }

    /// Establishes the identity of one request; `stream` is the agent and thread of the
    /// route when it is one a ticket may open.
    pub(crate) async fn authenticate(
        &self,
        method: &Method,
        query: Option<&str>,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
        stream: Option<(&str, &str)>,
    ) -> Result<Identity, ApiError> {
        let refuse = |failure| Err(ApiError::Unauthenticated(failure));
        let mut ticket = None;
        for (key, value) in query_pairs(query.unwrap_or("")) {
            if key == "ticket" {
                ticket = Some(value);
            } else if let Some(name) = CREDENTIAL_QUERY_PARAMS.iter().find(|p| **p == key) {
                return refuse(AuthFailure::CredentialsInQuery(name));
            }
        }
        if let Some(ticket) = ticket {
            if method != Method::GET {
                return refuse(AuthFailure::TicketNotOnGet);
            }
            return self.tickets.redeem(&ticket, stream).await;
        }

        if let Some(value) = headers.get(header::AUTHORIZATION) {
            // The scheme is case-insensitive (RFC 9110 11.1).
            let value = value.to_str().unwrap_or("");
            let token = match value.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token,
                _ => return refuse(AuthFailure::NotBearer),
            };
            return self.verify_jwt(token.trim()).await;
        }
        if let Some(value) = headers.get("x-api-key") {
            let Some(keys) = self.api_keys.as_ref() else {
                return refuse(AuthFailure::ApiKeysDisabled);
            };
            let Some(name) = keys.verify(value.as_bytes()) else {
                return refuse(AuthFailure::UnknownApiKey);
            };
            return Ok(Identity {
                subject: name.to_owned(),
                tenant: name.to_owned(),
                scopes: vec![ALL_AGENTS_SCOPE.into()],
                origin: Origin::ApiKey,
                via: Via::Credential,
            });
        }
        if let Some(token) = cookie(headers, &self.cookie) {
            let mut identity = self.verify_jwt(&token).await?;
            identity.via = Via::Cookie;
            return Ok(identity);
        }
        if self.allow_anonymous {
            let ip = self.client_ip(peer, headers);
            return Ok(Identity {
                subject: "anonymous".into(),
                tenant: String::new(),
                scopes: vec![ALL_AGENTS_SCOPE.into()],
                origin: Origin::Anonymous { ip },
                via: Via::Credential,
            });
        }
        refuse(AuthFailure::Missing)
    }

    async fn verify_jwt(&self, token: &str) -> Result<Identity, ApiError> {
        let verifier = self
            .jwt
            .as_ref()
            .ok_or(ApiError::Unauthenticated(AuthFailure::JwtDisabled))?;
        verifier.verify(token).await
    }

    /// The client's address: the socket peer, or, when the peer is a trusted proxy, the
    /// right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
    pub(crate) fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> IpAddr {
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
pub(crate) async fn middleware(
    State((auth, limits)): State<(Arc<Auth>, Arc<RateLimits>)>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let stream = ticket_route(&mut parts).await;
    let identity = match auth
        .authenticate(
            &parts.method,
            parts.uri.query(),
            &parts.headers,
            peer,
            stream.as_ref().map(|(a, t)| (a.as_str(), t.as_str())),
        )
        .await
    {
        Ok(identity) => identity,
        // Our own dependencies failing is no guess at credentials.
        Err(e @ (ApiError::AuthUnavailable | ApiError::HubUnavailable(_))) => return Err(e),
        Err(refusal) => {
            let ip = auth.client_ip(peer, &parts.headers);
            return Err(limits.auth_failed(ip, refusal));
        }
    };
    parts.extensions.insert(identity);
    Ok(next.run(Request::from_parts(parts, body)).await)
}

/// The agent and thread of the request's route, when it is one a ticket opens.
async fn ticket_route(parts: &mut Parts) -> Option<(String, String)> {
    let route = parts.extensions.get::<MatchedPath>()?.as_str();
    if !TICKET_ROUTES.contains(&route) {
        return None;
    }
    let params = RawPathParams::from_request_parts(parts, &()).await.ok()?;
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
    };
    Some((param("agent")?, param("thread")?))
}

/// `%` and `:` percent-escaped, so an escaped part can sit between `:` separators.
fn escape(s: &str) -> String {
    s.replace('%', "%25").replace(':', "%3A")
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
            origin: Origin::Jwt {
                issuer: String::new(),
            },
            via: Via::Credential,
        };
        assert!(id(&["agent:*"]).may_call("a"));
        assert!(id(&["read", "agent:a"]).may_call("a"));
        assert!(!id(&["agent:b"]).may_call("a"));
        assert!(!id(&[]).may_call("a"));
    }

    #[test]
    fn origins_keep_identities_apart() {
        let id = |origin: Origin, tenant: &str, subject: &str| Identity {
            subject: subject.into(),
            tenant: tenant.into(),
            scopes: Vec::new(),
            origin,
            via: Via::Credential,
        };
        let jwt = |issuer: &str| Origin::Jwt {
            issuer: issuer.into(),
        };
        let all = [
            id(Origin::ApiKey, "billing", "billing"),
            id(jwt(""), "billing", "billing"),
            id(jwt("https://a.test"), "billing", "billing"),
            id(jwt("https://b.test"), "billing", "billing"),
            // An issuer and a tenant that try to spell each other's separators.
            id(jwt("https:"), "//a.test:billing", "billing"),
            id(jwt("x"), "y:z", "s"),
            id(jwt("x:y"), "z", "s"),
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a.qualified_tenant(), b.qualified_tenant(), "{a:?} {b:?}");
                assert_ne!(a.rate_key(), b.rate_key(), "{a:?} {b:?}");
            }
        }
        let anonymous = id(
            Origin::Anonymous {
                ip: IpAddr::from([10, 0, 0, 1]),
            },
            "",
            "anonymous",
        );
        assert_eq!(anonymous.rate_key(), "ip:10.0.0.1");
        assert_eq!(
            all[2].agent_metadata(),
            [
                ("x-subject", "billing"),
                ("x-tenant", "billing"),
                ("x-identity-kind", "jwt"),
                ("x-issuer", "https://a.test"),
            ]
        );
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
