//! Rate limiting and admission, decided before any response (and so any SSE stream) starts.
//!
//! - [`RateLimits`]: a token bucket per identity and route class (`chat`: runs and tickets;
//!   `read`: the rest of `/v1`), with `governor`. Every answer on a limited route carries the
//!   `RateLimit-Policy` and `RateLimit` headers (draft-ietf-httpapi-ratelimit-headers);
//!   refusals are 429 with `Retry-After`.
//! - [`Admission`]: a cap on open runs per identity (429) and per process (503, shedding).
//!   A [`Permit`] travels with the run and frees its slot when the stream ends.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex},
};

use axum::{
    extract::{Request, State},
    http::{HeaderValue, Method},
    middleware::Next,
    response::Response,
};
use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
    state::keyed::DefaultKeyedStateStore,
};

use crate::{
    auth::Identity,
    config::RateSpec,
    error::{ApiError, RateLimitHeaders},
};

type Limiter =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// One route class's bucket.
struct Class {
    name: &'static str,
    limiter: Limiter,
    limit: u32,
    window_secs: u64,
}

/// The per-identity request budgets.
pub struct RateLimits {
    chat: Option<Class>,
    read: Option<Class>,
    /// Failed authentications, keyed by client IP.
    auth_failures: Option<Class>,
}

impl RateLimits {
    pub fn new(chat: RateSpec, read: RateSpec, auth_failures: RateSpec) -> Self {
        Self {
            chat: class("chat", chat),
            read: class("read", read),
            auth_failures: class("auth-failures", auth_failures),
        }
    }

    /// Counts one failed authentication from `ip`: the refusal to send, which becomes a
    /// 429 once the IP has failed too often.
    pub fn auth_failed(&self, ip: std::net::IpAddr, refusal: ApiError) -> ApiError {
        match &self.auth_failures {
            Some(class) => match take(class, &format!("ip:{ip}")) {
                Ok(_) => refusal,
                Err(limited) => limited,
            },
            None => refusal,
        }
    }

    /// Takes one token for `identity` on the class of `path`; the headers to send either way.
    pub fn check(
        &self,
        method: &Method,
        path: &str,
        identity: &Identity,
    ) -> Result<Option<RateLimitHeaders>, ApiError> {
        let class = if is_chat_route(method, path) {
            &self.chat
        } else {
            &self.read
        };
        match class {
            Some(class) => take(class, &identity.rate_key()).map(Some),
            None => Ok(None),
        }
    }
}

/// Takes one token from `key`'s bucket in `class`; the headers to send either way.
fn take(class: &Class, key: &str) -> Result<RateLimitHeaders, ApiError> {
    let policy = HeaderValue::from_str(&format!(
        "\"{}\";q={};w={}",
        class.name, class.limit, class.window_secs
    ))
    .unwrap_or(HeaderValue::from_static("\"default\""));
    match class.limiter.check_key(&key.to_owned()) {
        Ok(snapshot) => {
            let remaining = snapshot.remaining_burst_capacity();
            Ok(RateLimitHeaders {
                policy,
                state: header(class.name, remaining, 0),
            })
        }
        Err(not_until) => {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            // Round up: retrying a fraction of a second early would be refused again.
            let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let retry_after = retry_after.max(1);
            Err(ApiError::RateLimited {
                class: class.name,
                retry_after,
                headers: RateLimitHeaders {
                    policy,
                    state: header(class.name, 0, retry_after),
                },
            })
        }
    }
}

fn header(name: &str, remaining: u32, reset: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{name}\";r={remaining};t={reset}"))
        .unwrap_or(HeaderValue::from_static("\"default\""))
}

fn class(name: &'static str, spec: RateSpec) -> Option<Class> {
    let (n, period) = spec.0?;
    let burst = NonZeroU32::new(n)?;
    let quota = Quota::with_period(period / n)?.allow_burst(burst);
    let limiter: DefaultKeyedRateLimiter<String> = RateLimiter::keyed(quota);
    Some(Class {
        name,
        limiter: limiter.with_middleware::<StateInformationMiddleware>(),
        limit: n,
        window_secs: period.as_secs().max(1),
    })
}

/// Runs, tickets and streams cost a `chat` token; everything else a `read` token.
/// Routes that start runs (or issue tickets for them) spend the `chat` budget: every POST,
/// the EventSource run endpoint and the WebSocket (which posts messages). Reading (thread
/// events, history, lists) and deleting spend the `read` budget.
fn is_chat_route(method: &Method, path: &str) -> bool {
    method == Method::POST || path.ends_with("/stream") || path.ends_with("/ws")
}

/// The rate-limit middleware; runs after authentication (it keys on the identity).
pub async fn middleware(
    State(limits): State<Arc<RateLimits>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let headers = match request.extensions().get::<Identity>() {
        Some(identity) => limits.check(request.method(), request.uri().path(), identity)?,
        None => None,
    };
    let mut response = next.run(request).await;
    if let Some(headers) = headers {
        headers.apply(response.headers_mut());
    }
    Ok(response)
}

/// Caps on open runs.
pub struct Admission {
    per_identity: usize,
    total: usize,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_identity: HashMap<String, usize>,
}

impl Admission {
    pub fn new(per_identity: usize, total: usize) -> Arc<Self> {
        Arc::new(Self {
            per_identity,
            total,
            open: Mutex::default(),
        })
    }

    /// A slot for one run of `identity`, or the refusal.
    pub fn admit(self: &Arc<Self>, identity: &Identity) -> Result<Permit, ApiError> {
        let key = identity.rate_key();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.total >= self.total {
            return Err(ApiError::Overloaded { limit: self.total });
        }
        let mine = open.by_identity.entry(key.clone()).or_default();
        if *mine >= self.per_identity {
            return Err(ApiError::TooManyStreams {
                limit: self.per_identity,
            });
        }
        *mine += 1;
        open.total += 1;
        Ok(Permit {
            admission: Arc::clone(self),
            key,
        })
    }

    /// Runs open right now (all identities).
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

/// One admitted run; dropping it frees the slot.
pub struct Permit {
    admission: Arc<Admission>,
    key: String,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self
            .admission
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_identity.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.by_identity.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Via;
    use std::time::Duration;

    fn who(name: &str) -> Identity {
        Identity {
            subject: name.into(),
            tenant: "t".into(),
            scopes: vec![],
            via: Via::Jwt,
        }
    }

    #[test]
    fn admission_caps_and_frees() {
        let a = Admission::new(1, 2);
        let p1 = a.admit(&who("a")).unwrap();
        assert!(matches!(
            a.admit(&who("a")),
            Err(ApiError::TooManyStreams { .. })
        ));
        let _p2 = a.admit(&who("b")).unwrap();
        assert!(matches!(
            a.admit(&who("c")),
            Err(ApiError::Overloaded { .. })
        ));
        drop(p1);
        assert_eq!(a.open(), 1);
        a.admit(&who("a")).unwrap();
    }

    #[test]
    fn buckets_refuse_with_retry_after() {
        let limits = RateLimits::new(
            RateSpec(Some((2, Duration::from_secs(60)))),
            RateSpec(None),
            RateSpec(None),
        );
        let id = who("a");
        assert!(
            limits
                .check(&Method::POST, "/v1/agents/x/chat", &id)
                .is_ok()
        );
        assert!(
            limits
                .check(&Method::POST, "/v1/agents/x/chat", &id)
                .is_ok()
        );
        match limits.check(&Method::POST, "/v1/agents/x/chat", &id) {
            Err(ApiError::RateLimited { retry_after, .. }) => assert!(retry_after >= 1),
            other => panic!("{other:?}"),
        }
        assert!(
            limits
                .check(&Method::POST, "/v1/agents/x/chat", &who("b"))
                .is_ok()
        );
        assert!(
            limits
                .check(&Method::GET, "/v1/other", &id)
                .unwrap()
                .is_none()
        );
    }
}
